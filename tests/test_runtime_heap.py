"""Generated modules keep freed arrays' memory for the next call (gradc/runtime/heap.py): counted as the
page faults of a fresh process that allocates and frees arrays the way calls do, with and without it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
import sympy as sp

import gradc
from gradc.runtime.heap import _retain_freed_memory

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")

# Four 8 MiB arrays a call, freed before the next (like a kernel's outputs): with glibc's defaults the
# 32 MiB freed at the top of the heap is more than its trim threshold (twice the largest freed block),
# so much of it goes back to the system and the next call faults those pages in again (~2,000).
CALLS = """
import importlib.util, json, resource, sys
import numpy as np
if sys.argv[1] != "-":
    spec = importlib.util.spec_from_file_location("written", sys.argv[1])
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
def call():
    arrays = [np.ones(1 << 20) for _ in range(4)]
    return sum(a[0] for a in arrays)
for _ in range(3):
    call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    call()
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10))
"""


def _faults_per_call(module_path: str, **env: str) -> float:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", CALLS, module_path], env={**environ, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> str:
    x, y = sp.symbols("x y")
    path = tmp_path_factory.mktemp("heap") / "f.py"
    gradc.compile_expr(x * sp.exp(y), [x, y]).write(path)
    return str(path)


def test_a_written_module_keeps_freed_arrays_for_the_next_call(written):
    assert "\n_retain_freed_memory()\n" in open(written).read()
    untuned = _faults_per_call("-")
    assert untuned > 1000, "glibc returned no memory: this test no longer shows what the tuning does"
    assert _faults_per_call(written) < 100
    assert _faults_per_call(written, GRADC_MALLOC_TUNING="0") > 1000


def test_an_mlp_module_calls_it_at_import():
    spec = {"input": 2, "layers": [{"units": 1, "activation": "identity"}], "loss": "mse"}
    assert "\n_retain_freed_memory()\n" in gradc.compile_mlp(spec).source


@pytest.mark.parametrize("environ", [{"GRADC_MALLOC_TUNING": "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"},
                                     {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}])
def test_the_users_own_malloc_settings_are_left_alone(environ):
    assert _retain_freed_memory(environ) is False


def test_it_applies_on_glibc():
    assert _retain_freed_memory({}) is True

"""Processes sharing one cache folder (gradc/jit.py, the MLP support code): the sequences users run (a
notebook, then another, then a script; Dask workers; `gradc warmup` then a first model) load and run what the
earlier processes compiled, with the results they computed, and two processes never compile into one folder
at the same time."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap

import numpy as np
import pytest

try:
    import fcntl
except ImportError:   # Windows
    fcntl = None

_RUN = textwrap.dedent("""
    import json, sys
    import numpy as np
    import gradc
    units = int(sys.argv[1])
    net = gradc.compile_mlp({"input": 5, "layers": [{"units": units, "activation": "tanh"}, {"units": 3}],
                             "loss": "mse"})
    rng = np.random.default_rng(units)
    X, Y = rng.standard_normal((50, 5)), rng.standard_normal((50, 3))
    params = net.init_params(0)
    loss, grads = net.loss_and_grad(params, X, Y)
    print(json.dumps({"loss": float(loss), "grads": {k: v.tolist() for k, v in grads.items()}}))
""")


def _process(units: int, cache) -> dict:
    """Compile (or load) and run a small network in a new process; its loss and gradients."""
    env = {**os.environ, "GRADC_CACHE_DIR": str(cache)}
    run = subprocess.run([sys.executable, "-c", _RUN, str(units)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, f"process exited with {run.returncode}: {run.stderr[-2000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_kernel_compiled_against_cached_shared_code_loads_in_a_fresh_process(tmp_path):
    # The first process compiles the shared support code (parallel loops) into the cache; the second compiles
    # its own small, serial kernels against the cached support; the third loads those kernels alone. Before
    # the support code started Numba's threads at import, the third crashed (Numba issue 8578).
    _process(7, tmp_path)
    compiled = _process(9, tmp_path)
    loaded = _process(9, tmp_path)
    assert loaded["loss"] == compiled["loss"]
    for name, grad in compiled["grads"].items():
        np.testing.assert_array_equal(loaded["grads"][name], grad)


_COMPILE = textwrap.dedent("""
    import sys
    import sympy as sp
    import gradc
    x = sp.Symbol("x")
    gradc.compile_expr(sp.sin(x) * x).module   # a module imported through the cache: the folder lock is on
    print("ready", flush=True)
    sys.stdin.readline()
    import numba
    print(numba.njit(lambda v: v + 1)(41), flush=True)   # any compile in this process takes the folder lock
""")


@pytest.mark.skipif(fcntl is None, reason="no flock on this platform")
def test_a_process_compiles_only_while_no_other_process_compiles_into_its_cache_folder(tmp_path):
    env = {**os.environ, "GRADC_CACHE_DIR": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", _COMPILE], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        fd = os.open(tmp_path / ".compile.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)          # as another process compiling into this folder would
        child.stdin.write("go\n")
        child.stdin.flush()
        waiting, _, _ = select.select([child.stdout], [], [], 3.0)
        assert not waiting, "compiled while another process held the cache folder's lock"
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        assert child.stdout.readline().strip() == "42"
        assert child.wait(timeout=120) == 0
    finally:
        child.kill()

"""When the elementwise loops of generated MLP steps split across threads (gradc/runtime/threads.py):
the choice per process, the modules compiled able to split, and split steps that compute the very
same numbers as one thread (each element and column sum in the same order) and as the hand-written
backprop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numba as nb
import pytest

import gradc
from gradc.backend.mlp import _PARALLEL_UNITS
from gradc.runtime.blas import _mkl_libraries
from gradc.runtime.threads import _SPLIT_MIN, _loop_threads, _numba_uses_openmp

OPENBLAS = {"name": "OpenBLAS", "path": "scipy.linalg.cython_blas"}


def test_gradc_threads_insists_on_a_count():
    assert _loop_threads({"GRADC_THREADS": "3"}, OPENBLAS) == 3
    assert _loop_threads({"GRADC_THREADS": "1"}, OPENBLAS) == 1
    for bad in ("0", "two", "-1", ""):
        with pytest.raises(ImportError, match="GRADC_THREADS=.*expected a whole number of threads"):
            _loop_threads({"GRADC_THREADS": bad}, OPENBLAS)


def test_loops_stay_on_one_thread_unless_they_share_mkls_pool(tmp_path):
    # OpenBLAS's threads spin between products: loops on a second pool would fight them for the cores
    assert _loop_threads({}, OPENBLAS) == 1
    no_runtime = {"name": "MKL", "path": str(tmp_path / "libmkl_rt.so.3")}   # no libiomp5.so beside it
    assert _loop_threads({}, no_runtime) == 1
    assert _loop_threads({}, {"name": "MKL", "path": "C:/mkl/mkl_rt.2.dll"}, platform="win32") == 1


@pytest.mark.skipif(not _mkl_libraries(), reason="MKL is not installed here (pip install 'gradc[mkl]')")
def test_with_mkl_the_loops_use_numbas_threads_on_mkls_openmp_runtime():
    mkl = {"name": "MKL", "path": _mkl_libraries()[0]}
    if sys.platform.startswith("linux"):
        assert _loop_threads({}, mkl) == nb.config.NUMBA_NUM_THREADS
    assert _loop_threads({"MKL_THREADING_LAYER": "tbb"}, mkl) == 1


def _spec(units: int) -> dict:
    return {"name": "wide", "input": 6, "loss": "softmax_cross_entropy",
            "layers": [{"units": units, "activation": "tanh"}, {"units": units, "activation": "sigmoid"},
                       {"units": 3, "activation": "identity"}]}


def test_only_modules_with_wide_layers_are_compiled_able_to_split():
    wide = gradc.compile_mlp(_spec(_PARALLEL_UNITS)).source.splitlines()
    narrow = gradc.compile_mlp(_spec(_PARALLEL_UNITS - 1)).source.splitlines()
    assert any(line.startswith("_PARALLEL = True") for line in wide)
    assert any(line.startswith("_PARALLEL = False") for line in narrow)
    # set above the kernels and helpers whose decorators read it when the module is imported
    first_def = next(k for k, line in enumerate(wide) if line.startswith("def "))
    assert next(k for k, line in enumerate(wide) if line.startswith("_PARALLEL = ")) < first_def
    assert any(line.startswith("def _act_tanh_gate(") for line in wide)
    assert not any("_gate(" in line for line in narrow)


_STEP = textwrap.dedent("""
    import json, sys
    import numpy as np
    import gradc
    from gradc.tools import reference
    m = gradc.compile_mlp(json.loads(sys.argv[1]))
    rng = np.random.default_rng(4)
    params = m.init_params(1)
    X, Y = rng.normal(size=(160, 6)), np.eye(3)[rng.integers(0, 3, 160)]
    value, grads = m.loss_and_grad(params, X, Y)
    want_value, want = reference.loss_and_grad(m.spec, params, X, Y)
    err = max(abs(value - want_value) / abs(want_value),
              *(float(np.max(np.abs(grads[k] - want[k]))) / float(np.max(np.abs(want[k]))) for k in want))
    print(json.dumps({"threads": m.threads, "err": err,
                      "bits": [float(value).hex(), *(grads[k].tobytes().hex() for k in sorted(grads))]}))
""")


def _run_step(env: dict[str, str]) -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-c", _STEP, json.dumps(_spec(_PARALLEL_UNITS))],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1]), out.stdout   # Numba prints its statistics there too


def test_a_split_step_computes_the_same_bits_as_one_thread(tmp_path):
    assert 160 * _PARALLEL_UNITS >= _SPLIT_MIN   # the hidden layers' loops do split
    cache = {"GRADC_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_ARRAY_OPT_STATS": "1"}
    split, stats = _run_step({**cache, "GRADC_THREADS": "2"})
    single, _ = _run_step({**cache, "GRADC_THREADS": "1"})   # the same cached kernels, on one thread
    assert split["threads"] == 2 and single["threads"] == 1
    assert split["err"] < 1e-12 and split["bits"] == single["bits"]
    # every parallel loop is an nb.prange of ours: Numba's own rewrites (np.zeros, astype, array
    # expressions) would run on threads even on the one-thread branch
    patterns = [line for line in stats.splitlines() if "is produced from pattern" in line]
    assert patterns and all("'prange', 'user'" in line for line in patterns), patterns


@pytest.mark.parametrize("layer, openmp", [("omp", True), ("workqueue", False), ("tbb", False),
                                           ("forksafe", False), ("safe", False)])
def test_only_numbas_openmp_layer_can_share_mkls_threads(monkeypatch, layer, openmp):
    # before Numba picks a layer (this process may have picked one already: pretend it has not)
    from numba.np.ufunc import parallel

    monkeypatch.setattr(parallel, "_is_initialized", False)
    monkeypatch.setattr(nb.config, "THREADING_LAYER", layer)
    assert _numba_uses_openmp() is openmp

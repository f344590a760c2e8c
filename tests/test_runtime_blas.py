"""The products of generated MLP steps (gradc/runtime/blas.py): `_matmul` against NumPy for every
operand layout and both float dtypes, the choice of library (MKL when installed, else SciPy's
OpenBLAS, GRADC_BLAS to insist), and kernels that call it compiled cold and loaded from the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numba as nb
import numpy as np
import pytest
from numba.extending import get_cython_function_address

from gradc.runtime import blas as runtime_blas
from gradc.runtime.blas import _find_blas, _matmul, _mkl_libraries

HAVE_MKL = bool(_mkl_libraries())


@nb.njit
def _products(A, B, D, S, T, U):
    """Every operand layout a generated step passes, and strided views it never does."""
    return (_matmul(A, B), _matmul(A.T, D), _matmul(D, B.T), _matmul(B.T, A.T), _matmul(S[::2, ::3], T),
            _matmul(S[:, 1:8], U[:, ::2]), _matmul(A[:1], B), _matmul(A, B[:, :1]), _matmul(A[:, :1], B[:1]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_matches_numpy_for_every_layout(dtype):
    rng = np.random.default_rng(3)
    A, B, D = (rng.uniform(-1, 1, shape).astype(dtype) for shape in ((13, 9), (9, 11), (13, 11)))
    S, T, U = (rng.uniform(-1, 1, shape).astype(dtype) for shape in ((20, 15), (5, 7), (7, 9)))
    want = (A @ B, A.T @ D, D @ B.T, B.T @ A.T, S[::2, ::3] @ T, S[:, 1:8] @ U[:, ::2], A[:1] @ B,
            A @ B[:, :1], A[:, :1] @ B[:1])
    tol = 1e-13 if dtype == np.float64 else 2e-5
    for k, (got, exp) in enumerate(zip(_products(A, B, D, S, T, U), want)):
        assert got.dtype == dtype and got.shape == exp.shape and got.flags.c_contiguous, k
        np.testing.assert_allclose(got, exp, rtol=tol, atol=tol, err_msg=f"product {k}")


def test_without_mkl_the_products_call_scipys_openblas(tmp_path):
    found = _find_blas({}, prefix=str(tmp_path))
    assert found["name"] == "OpenBLAS"
    assert found["dgemm"] == get_cython_function_address("scipy.linalg.cython_blas", "dgemm")
    assert found["sgemm"] == get_cython_function_address("scipy.linalg.cython_blas", "sgemm")
    assert _find_blas({"GRADC_BLAS": "openblas"}, prefix=str(tmp_path))["name"] == "OpenBLAS"


def test_an_unloadable_mkl_is_passed_over_unless_demanded(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libmkl_rt.so.3").write_bytes(b"not a library")
    assert _mkl_libraries(str(tmp_path)) == [str(tmp_path / "lib" / "libmkl_rt.so.3")]
    assert _find_blas({}, prefix=str(tmp_path))["name"] == "OpenBLAS"
    with pytest.raises(ImportError, match=r"GRADC_BLAS=mkl, but no loadable MKL.*pip install 'gradc\[mkl\]'"):
        _find_blas({"GRADC_BLAS": "mkl"}, prefix=str(tmp_path))


def test_an_unknown_choice_is_refused():
    with pytest.raises(ImportError, match="GRADC_BLAS='atlas': expected 'auto', 'mkl' or 'openblas'"):
        _find_blas({"GRADC_BLAS": "atlas"})


_STEP = textwrap.dedent("""
    import json, sys
    import numpy as np
    import gradc
    from gradc.tools import reference
    spec = {"name": "blas_probe", "input": 30, "loss": "softmax_cross_entropy",
            "layers": [{"units": 20, "activation": "tanh"}, {"units": 4, "activation": "identity"}]}
    for dtype in ("float64", "float32"):
        m = gradc.compile_mlp({**spec, "dtype": dtype})
        rng = np.random.default_rng(1)
        params = m.init_params(2)
        X, Y = rng.normal(size=(17, 30)).astype(dtype), np.eye(4, dtype=dtype)[rng.integers(0, 4, 17)]
        value, grads = m.loss_and_grad(params, X, Y)
        want_value, want = reference.loss_and_grad(m.spec, params, X, Y)
        err = max(abs(value - want_value) / abs(want_value),
                  *(float(np.max(np.abs(grads[k] - want[k]))) / float(np.max(np.abs(want[k]))) for k in want))
        print(json.dumps({"dtype": dtype, "blas": m.blas, "err": err}))
""")


def _run_step(env: dict[str, str]) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", _STEP], env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_a_cached_step_binds_the_library_of_the_process_loading_it(tmp_path):
    # the kernels call the symbol by name: compiled under one library, loaded from the cache under another
    # (or the same one when MKL is not installed), the numbers still match the hand-written backprop
    cache = {"GRADC_CACHE_DIR": str(tmp_path)}
    cold = _run_step({**cache, "GRADC_BLAS": "openblas"})
    warm = _run_step({**cache, "GRADC_BLAS": "auto"})
    assert any(tmp_path.rglob("*.nbi")), "nothing was cached"
    for record in cold + warm:
        assert record["err"] < (1e-12 if record["dtype"] == "float64" else 1e-4), record
    assert {r["blas"] for r in cold} == {"OpenBLAS"}
    assert {r["blas"] for r in warm} == {"MKL" if HAVE_MKL else "OpenBLAS"}


@pytest.mark.skipif(not HAVE_MKL, reason="MKL is not installed here (pip install 'gradc[mkl]'; make bench has it)")
def test_mkl_is_found_in_the_prefix_and_computes_the_same_products():
    assert runtime_blas._BLAS["name"] == "MKL" and runtime_blas._BLAS["path"] == _mkl_libraries()[0]
    assert _find_blas({"GRADC_BLAS": "mkl"})["name"] == "MKL"
    assert _find_blas({"GRADC_BLAS": "openblas"})["name"] == "OpenBLAS"
    # the products themselves: test_matmul_matches_numpy_for_every_layout runs on the library bound here

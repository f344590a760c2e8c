"""Support code for generated MLP modules: matrix products through the fastest BLAS installed.

The text below the RUNTIME marker is copied verbatim into every generated MLP module (which must
not import gradc): numpy, numba, scipy (which numba needs for its own `@`) and the standard library.

Every product of a generated step calls `_matmul`, which calls the BLAS routine ?gemm through a
symbol, `gradc_dgemm` or `gradc_sgemm`, that the module points at a library when it is imported:

* Intel MKL (`libmkl_rt`, from the `mkl` package: `pip install 'gradc[mkl]'`), when it is
  installed in the running Python's prefix: its products make the larger MLP steps faster than
  OpenBLAS's (benchmarks/README);
* else SciPy's OpenBLAS, the library Numba's own `@` calls.

`GRADC_BLAS=mkl` or `GRADC_BLAS=openblas` in the environment insists on one. The symbols are the
process's: the module imported last decides for every generated module in the process. Compiled
kernels call the symbol by name, so a cached kernel follows the choice of the process loading it.
"""

# --- RUNTIME ---
import ctypes
import glob
import os
import sys

import llvmlite.binding
import numba as nb
import numpy as np
from numba.core import cgutils, types
from numba.extending import get_cython_function_address, intrinsic


def _mkl_libraries(prefix=sys.prefix):
    """The MKL runtime libraries the `mkl` package installs in `prefix`, newest first."""
    patterns = ("lib/libmkl_rt.so*", "lib/libmkl_rt*.dylib", "Library/bin/mkl_rt*.dll")
    return sorted((path for p in patterns for path in glob.glob(os.path.join(prefix, p))), reverse=True)


def _find_blas(environ=os.environ, prefix=sys.prefix):
    """{"name", "path", "dgemm", "sgemm"}: the library the products call and its two routines'
    addresses (Fortran calling convention, as in the reference BLAS). MKL when found (or demanded by
    GRADC_BLAS=mkl, an ImportError when missing), else SciPy's OpenBLAS."""
    choice = environ.get("GRADC_BLAS", "auto").lower()
    if choice not in ("auto", "mkl", "openblas"):
        raise ImportError(f"GRADC_BLAS={choice!r}: expected 'auto', 'mkl' or 'openblas'")
    for path in _mkl_libraries(prefix) if choice != "openblas" else []:
        try:
            library = ctypes.CDLL(path)
            return {"name": "MKL", "path": path, "dgemm": ctypes.cast(library.dgemm, ctypes.c_void_p).value,
                    "sgemm": ctypes.cast(library.sgemm, ctypes.c_void_p).value}
        except (OSError, AttributeError):
            continue
    if choice == "mkl":
        raise ImportError(f"GRADC_BLAS=mkl, but no loadable MKL runtime (libmkl_rt) under {prefix}: "
                          "pip install 'gradc[mkl]' (or the `mkl` package), or unset GRADC_BLAS")
    return {"name": "OpenBLAS", "path": "scipy.linalg.cython_blas",
            "dgemm": get_cython_function_address("scipy.linalg.cython_blas", "dgemm"),
            "sgemm": get_cython_function_address("scipy.linalg.cython_blas", "sgemm")}


_BLAS = _find_blas()


def _bound(routine):
    """The symbol `gradc_<routine>`, pointed at the chosen library's routine (for every module of the
    process: LLVM resolves symbols by name when a kernel is compiled or loaded from the cache)."""
    symbol = f"gradc_{routine}"
    llvmlite.binding.add_symbol(symbol, _BLAS[routine])
    return symbol


# ?gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), every argument an address
_GEMM = types.void(*[types.uintp] * 13)
_dgemm = types.ExternalFunction(_bound("dgemm"), _GEMM)
_sgemm = types.ExternalFunction(_bound("sgemm"), _GEMM)


@intrinsic
def _address_of_copy(typingctx, value):
    """The address of a copy of `value` on the calling function's stack (BLAS takes scalars by address)."""
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once_value(builder, args[0])
        return builder.ptrtoint(slot, context.get_value_type(types.uintp))
    return types.uintp(value), codegen


@nb.njit(cache=True, nogil=True)
def _blas_operand(a):
    """`a` itself when C- or Fortran-ordered (a `.T` view), else a C-ordered copy (as Numba's `@` does)."""
    if a.flags.c_contiguous or a.flags.f_contiguous:
        return a
    return np.ascontiguousarray(a)


@nb.njit(cache=True, nogil=True)
def _blas_layout(a):
    """(transpose flag, leading dimension) of a C- or Fortran-ordered 2-D array: BLAS is column-major,
    so a C-ordered array is read as its transpose and a Fortran-ordered one (a `.T` view) as itself."""
    if a.flags.c_contiguous:
        return np.uint8(ord("N")), np.int32(a.shape[1])
    return np.uint8(ord("T")), np.int32(a.shape[0])


@nb.njit(cache=True, nogil=True)
def _gemm_into(a, b, c):
    """c = a @ b by the chosen BLAS, for C- or Fortran-ordered a and b and a C-ordered c, all of one
    float dtype. C = A·B row-major is Cᵀ = Bᵀ·Aᵀ column-major, so B goes first. The arrays are this
    function's arguments, so the caller keeps them alive through the call."""
    flag_a, ld_a = _blas_layout(a)
    flag_b, ld_b = _blas_layout(b)
    # BLAS takes every scalar by address: copies in this function's frame, which outlives the call
    p_flag_a, p_ld_a = _address_of_copy(flag_a), _address_of_copy(ld_a)
    p_flag_b, p_ld_b = _address_of_copy(flag_b), _address_of_copy(ld_b)
    p_m, p_n = _address_of_copy(np.int32(a.shape[0])), _address_of_copy(np.int32(b.shape[1]))
    p_k = _address_of_copy(np.int32(a.shape[1]))
    if a.itemsize == 8:
        _dgemm(p_flag_b, p_flag_a, p_n, p_m, p_k, _address_of_copy(1.0), b.ctypes.data, p_ld_b,
               a.ctypes.data, p_ld_a, _address_of_copy(0.0), c.ctypes.data, p_n)
    else:
        _sgemm(p_flag_b, p_flag_a, p_n, p_m, p_k, _address_of_copy(np.float32(1.0)), b.ctypes.data, p_ld_b,
               a.ctypes.data, p_ld_a, _address_of_copy(np.float32(0.0)), c.ctypes.data, p_n)


@nb.njit(cache=True, nogil=True)
def _matmul(a, b):
    """a @ b for 2-D float64 or float32 arrays of one dtype, as a new C-ordered array, by the chosen
    BLAS. `.T` views are read in place, not copied."""
    c = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    _gemm_into(_blas_operand(a), _blas_operand(b), c)
    return c

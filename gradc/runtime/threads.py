"""Support code for generated MLP modules: when the elementwise loops of a step may use several threads.

The text below the RUNTIME marker is copied verbatim into every generated MLP module (which must
not import gradc), after runtime_blas's: numpy, numba and the standard library. The import above the
marker is for this file alone.

A step's products run on the BLAS's threads, which spin for a while after each call, waiting for the
next. Loops on a second pool of threads (Numba's) then fight them for the cores, and a large step
gets much slower than with its loops on one thread. So the loops split across threads only where they
and the products share one pool: MKL's OpenMP runtime (libiomp5, which also serves the GNU OpenMP
calls Numba's OpenMP layer makes), made global here. There, a large step's elementwise loops get
faster than on one thread, and results are bit-identical: each element, and each column sum, is
computed in the same order.

`GRADC_THREADS=N` insists on N threads for the loops (1: never split).
"""
from gradc.runtime.blas import _BLAS  # noqa: I001 (above the marker: not copied)

# --- RUNTIME ---
import ctypes
import importlib
import os
import sys

import llvmlite.binding
import llvmlite.ir
import numba as nb
from numba.core import types
from numba.extending import intrinsic

#: elements from which a loop splits across threads: the fixed cost of a parallel region is then small
#: beside the loop's own (and a module splits only where a layer has 512 units or more)
_SPLIT_MIN = 1 << 16


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _library_of(symbol):
    """The file of the library that provides `symbol` to code loaded from now on (the process's global
    scope, searched in load order), or None where no library does."""
    process = ctypes.CDLL(None)
    try:
        address = ctypes.cast(getattr(process, symbol), ctypes.c_void_p)
    except AttributeError:
        return None
    info = _DlInfo()
    if not process.dladdr(address, ctypes.byref(info)):
        return None
    return os.path.realpath(info.dli_fname.decode())


def _numba_uses_openmp():
    """Whether Numba's parallel loops run (or will run) on its OpenMP layer: chosen already, named by
    NUMBA_THREADING_LAYER, or where "default" and "threadsafe" try it, after TBB when that is not
    importable ("forksafe" never takes GNU's OpenMP on Linux, "safe" is TBB only)."""
    from numba.np.ufunc import parallel

    if parallel._is_initialized:
        return nb.threading_layer() == "omp"
    layer = nb.config.THREADING_LAYER
    if layer in ("omp", "workqueue", "tbb", "forksafe", "safe"):
        return layer == "omp"
    try:   # "default" or "threadsafe": TBB first
        importlib.import_module("numba.np.ufunc.tbbpool")
    except ImportError:
        return True
    return False


def _share_openmp(blas, environ=os.environ, platform=sys.platform):
    """Make MKL's OpenMP runtime global, so that Numba's OpenMP layer runs on it; True when both now
    share one pool of threads. Linux only (dladdr, and the one OpenMP ABI both runtimes speak there);
    not when MKL is told to thread otherwise, when another OpenMP runtime was loaded first (an earlier
    `import torch` brings GNU's), or when Numba uses another layer."""
    if blas["name"] != "MKL" or not platform.startswith("linux"):
        return False
    if environ.get("MKL_THREADING_LAYER", "intel").lower() not in ("intel", "gnu"):
        return False
    runtime = os.path.join(os.path.dirname(blas["path"]), "libiomp5.so")
    if not os.path.exists(runtime):
        return False
    ctypes.CDLL(runtime, mode=ctypes.RTLD_GLOBAL)
    return _library_of("GOMP_parallel") == os.path.realpath(runtime) and _numba_uses_openmp()


def _loop_threads(environ=os.environ, blas=_BLAS, platform=sys.platform):
    """Threads for the elementwise loops of large arrays: GRADC_THREADS when set; else Numba's thread
    count where the loops share the BLAS's threads (see `_share_openmp`); else 1."""
    wanted = environ.get("GRADC_THREADS", "auto")
    if wanted != "auto":
        if not wanted.isdigit() or int(wanted) < 1:
            raise ImportError(f"GRADC_THREADS={wanted!r}: expected a whole number of threads (1: no "
                              "splitting) or 'auto'")
        return int(wanted)
    return nb.config.NUMBA_NUM_THREADS if _share_openmp(blas, environ, platform) else 1


if _BLAS["name"] == "MKL":   # else MKL's OpenMP runtime notes on stderr that Numba calls omp_set_nested
    os.environ.setdefault("KMP_WARNINGS", "0")
_THREADS = ctypes.c_int64(_loop_threads())
llvmlite.binding.add_symbol("gradc_threads", ctypes.addressof(_THREADS))


@intrinsic
def _threads(typingctx):
    """The loops' thread count of this process, read from the symbol `gradc_threads` when the kernel
    runs (so a kernel loaded from the cache follows the process that loads it, as with the BLAS)."""
    def codegen(context, builder, signature, args):
        count = builder.module.globals.get("gradc_threads")
        if count is None:
            count = llvmlite.ir.GlobalVariable(builder.module, llvmlite.ir.IntType(64), "gradc_threads")
            count.linkage = "external"
        return builder.load(count)
    return types.int64(), codegen


@nb.njit(cache=True, forceinline=True)
def _split(size):
    """Whether a loop over `size` elements splits across threads."""
    return size >= _SPLIT_MIN and _threads() > 1

"""Call-time support for generated expression modules.

The text of this file below the RUNTIME marker is copied verbatim into every generated expression
module (which must not import gradc), so it may use only numpy, numba and the standard library.
It is also importable here, so it is linted and tested as ordinary code.

A written module defines, above its copy of this text, the constants and kernels `_values` and
`_values_and_grads` read (gradc/backend/expr.py); the ones above the marker stand in for them so that
this file imports alone (a test sets them to a small program's).
"""
from numpy import dtype as _dtype  # noqa: I001 (above the marker: not copied)

ARGS = ("x",)        # the inputs, in argument order
ARG_SHAPES = ((),)   # each input's own axes after the batch axes (an IndexedBase's or MatrixSymbol's shape)
WRT_INDEX = (0,)     # the differentiated inputs, as indices into ARGS
OUTPUTS = ("f",)     # the outputs, in order
SEQUENCE = False     # compiled from a sequence of expressions: a tuple of values, weighted by cotangents
LAYOUT = None        # compiled from a Matrix: its shape; the outputs are its entries, row by row
DTYPE = _dtype("float64")


def _forward_kernel(*arrays):
    """A written module's kernel: the inputs (flat arrays or shared scalars), then one out array per output."""
    raise NotImplementedError("the kernels are a written module's")


def _row_kernel(*arrays):
    """A written module's kernel: the inputs, then one (points, outputs) array."""
    raise NotImplementedError("the kernels are a written module's")


def _value_and_grad_kernel(*arrays):
    """A written module's kernel: the inputs, a SEQUENCE's cotangents, the out arrays, the gradient buffers."""
    raise NotImplementedError("the kernels are a written module's")


# --- RUNTIME ---
import contextlib
import importlib.util
import threading
import types

import numba as nb
import numpy as np
from numba.extending import overload

CHUNK = 4096   # points per parallel chunk; fixed so that reductions are reproducible on any machine


def _kernel_lock():
    """Numba's workqueue threading layer aborts the process when two threads run parallel kernels at
    once; where it is the layer in use (no OpenMP or TBB layer, or chosen by NUMBA_THREADING_LAYER),
    kernel calls are serialised. Otherwise threads run kernels concurrently."""
    layer = nb.config.THREADING_LAYER
    safe = [m for m in ("omppool", "tbbpool") if importlib.util.find_spec(f"numba.np.ufunc.{m}")]
    if layer == "workqueue" or (layer not in ("omp", "tbb") and not safe):
        return threading.Lock()
    return contextlib.nullcontext()


_KERNEL_LOCK = _kernel_lock()


_SERIAL_TWINS = {}


def _serial_twin(kernel):
    """`kernel` compiled without `parallel=True` (its `prange` is then a plain range), on first use, and
    cached on disk like the kernel itself under its own name (`<name>_serial`: Numba's cache index is keyed
    by the function's name, not by its compile flags, so the twin must not share the kernel's)."""
    twin = _SERIAL_TWINS.get(kernel)
    if twin is None:
        f = kernel.py_func
        copy = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial")
        copy.__qualname__ = f.__qualname__ + "_serial"
        twin = _SERIAL_TWINS[kernel] = nb.njit(error_model="numpy", cache=True)(copy)
    return twin


def _run(kernel, n, *args):
    """Call `kernel(*args)` over n points. A call of at most one chunk of points (a call at
    one point, as an optimiser or an ODE solver makes thousands of times, or any small batch) runs the kernel's
    serial twin: one chunk is one thread's work, and the twin has no parallel region to enter, no lock to take,
    and compiles faster. Larger calls run the parallel kernel on every thread."""
    if n <= CHUNK:
        _serial_twin(kernel)(*args)
        return
    with _KERNEL_LOCK:
        kernel(*args)


def _load(x, i):
    """Value at point i: an array input holds one value per point, a shared scalar the same for all.

    _load and _store index with np.uint64(i): an unsigned index skips Numba's negative-index
    wraparound, a select that hides from LLVM that point i + 1 is the next element, so it would
    gather and scatter 4 points at a time instead of loading and storing them, and a kernel with many
    inputs would be slower than the hand-written loop."""


# _load and _store are plain calls, not inline="always": Numba's own inlining of every call took 0.37 s of a
# 16-link pendulum kernel's 3 s compile (and doubled its type inference), while LLVM inlines the calls anyway,
# so the kernels run as fast (benchmarks/README.md, compile time).
@overload(_load)
def _load_impl(x, i):
    if isinstance(x, nb.types.Array):
        return lambda x, i: x[np.uint64(i)]
    return lambda x, i: x


def _store(out, i, c, v):
    """Output or gradient at point i: per point into out[i]; a shared scalar's gradient is summed into
    out[c, 0] per chunk c."""


@overload(_store)
def _store_impl(out, i, c, v):
    if out.ndim == 1:
        def per_point(out, i, c, v):
            out[np.uint64(i)] = v
        return per_point

    def per_chunk(out, i, c, v):
        out[c, 0] += v
    return per_chunk


def _as_input(value, name):
    """`value` as a float array of `dtype`; TypeError naming the argument if it is not numeric."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"argument {name!r} must be real numbers, got an array of dtype {array.dtype}")
    return array


def _ready_as_is(values, dtype, own=()):
    """Whether every input is already a C-ordered ndarray of `dtype`, all of one shape with an axis, and
    none has axes of its own: the common call, which needs no conversion or broadcasting."""
    shape = getattr(values[0], "shape", None) if values else None
    return bool(shape) and not any(own) and all(
        type(v) is np.ndarray and v.shape == shape and v.dtype == dtype and v.flags.c_contiguous for v in values)


_NUMBERS = (float, np.floating, np.integer)
_A_NUMBER = np.zeros(())   # stands for an input that is one number where only its ndim (0) is read


def _all_numbers(values, own):
    """Whether every input is one real number (an int only in int64's range, as NumPy reads it; bools excluded),
    for inputs with no axes of their own. Plain floats, the common case, are checked first."""
    if any(own):
        return False
    for v in values:
        if type(v) is not float and not isinstance(v, _NUMBERS) and not (type(v) is int and -2**63 <= v < 2**63):
            return False
    return True


def _read_only(array, shape):
    """A read-only view of `array` reshaped to `shape`. Every array input reaches the kernel read-only
    (broadcast views are; converted copies would not be), so the kernel is compiled once, however it is
    called."""
    view = array.reshape(shape)
    view.flags.writeable = False
    return view


def _kernel_argument(array, shape, n, dtype, own=()):
    """One input or cotangent as the kernel takes it: a 0-d scalar as a shared scalar, any other as a
    read-only array of all n points (materialised if it was broadcast to `shape`), each point's value
    a scalar or, for an input with axes of its own (`own`), an array of that shape."""
    if array.ndim == 0:
        return dtype.type(array)
    full = np.ascontiguousarray(np.broadcast_to(array, tuple(shape) + tuple(own)), dtype=dtype)
    return _read_only(full, (n, *own))


def _batch_shape(array, own, name):
    """The batch axes of an input whose own axes are `own`; ValueError naming it if its shape does not end so."""
    if own and array.shape[array.ndim - len(own):] != tuple(own):
        raise ValueError(f"argument {name!r} must have shape (..., {', '.join(map(str, own))}): "
                         f"its last axes are one point's value; got shape {array.shape}")
    return array.shape[: array.ndim - len(own)]


def _prepare(values, names, dtype, own):
    """Broadcast the inputs' batch axes like NumPy (`own`: each input's own axes, which follow them).
    Returns (batch shape, n points, inputs as arrays (a 0-d stand-in for a number), kernel arguments, one
    per input as _kernel_argument makes it). Inputs that are ready as they are skip the broadcasting, whose
    Python is a visible share of even a large call with many inputs."""
    if len(values) != len(names):
        raise TypeError(f"expected {len(names)} inputs ({', '.join(names)}), got {len(values)}")
    if _ready_as_is(values, dtype, own):
        n = values[0].size
        return values[0].shape, n, list(values), [_read_only(v, n) for v in values]
    if _all_numbers(values, own):   # one point, as an optimiser calls: skip the broadcasting machinery
        number = float if dtype == np.float64 else dtype.type   # a Python float is a float64 to Numba
        return (), 1, [_A_NUMBER] * len(values), list(map(number, values))
    arrays = [_as_input(v, name) for v, name in zip(values, names)]
    batches = [_batch_shape(a, o, name) for a, o, name in zip(arrays, own, names)]
    try:
        shape = np.broadcast_shapes(*batches)
    except ValueError:
        shapes = ", ".join(f"{name}: {a.shape}" for name, a in zip(names, arrays))
        raise ValueError(f"inputs do not broadcast together ({shapes})") from None
    n = int(np.prod(shape, dtype=np.int64))
    return shape, n, arrays, [_kernel_argument(a, shape, n, dtype, o) for a, o in zip(arrays, own)]


def _cotangents(values, outputs, shape, n, dtype):
    """Kernel arguments for the weights of each output (default 1): shared scalars or flat arrays. A
    Matrix's cotangent is one array that broadcasts to the batch shape + LAYOUT."""
    if values is None:
        return [dtype.type(1.0)] * len(outputs)
    if LAYOUT is not None:
        values = _entries(_as_input(values, "cotangents"), shape)
    if len(values) != len(outputs):
        raise ValueError(f"expected {len(outputs)} cotangents (one per output), got {len(values)}")
    weights = []
    for value, name in zip(values, outputs):
        array = _as_input(value, f"cotangent of {name}")
        try:
            fits = np.broadcast_shapes(array.shape, shape) == tuple(shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"cotangent of {name} has shape {array.shape}; it must broadcast to {tuple(shape)}")
        weights.append(_kernel_argument(array, shape, n, dtype))
    return weights


def _entries(array, shape):
    """A Matrix output's cotangent (broadcasting to the batch shape + LAYOUT) as one array per entry."""
    full = tuple(shape) + tuple(LAYOUT)
    try:
        array = np.broadcast_to(array, full)
    except ValueError:
        raise ValueError(f"cotangents has shape {array.shape}; it must broadcast to {full}") from None
    flat = array.reshape(tuple(shape) + (-1,))
    return [flat[..., k] for k in range(flat.shape[-1])]


def _grad_buffer(array, n, dtype, own):
    """Where the kernel writes one input's gradient: per point (zeros: an array input's gradient is summed
    into its point's row), or per chunk for a shared scalar (in float64 whatever the dtype, so a float32
    sum over millions of points is rounded once, at the end)."""
    if own:
        return np.zeros((n, *own), dtype)
    if array.ndim == 0:
        return np.zeros(((n + CHUNK - 1) // CHUNK, 1), dtype=np.float64)
    return np.empty(n, dtype)


def _grad_result(buffer, array, shape, dtype, own):
    """Gradient of sum(f) shaped like its input: summed over the batch axes the input was broadcast along."""
    if array.ndim == 0:   # one chunk (a call at one point): its sum is its one entry, without NumPy's reduction
        return dtype.type(buffer[0, 0] if len(buffer) == 1 else buffer.sum())
    full = buffer.reshape(tuple(shape) + tuple(own))
    batch = array.shape[: array.ndim - len(own)]
    extra = len(shape) - len(batch)
    axes = tuple(range(extra)) + tuple(
        extra + k for k, size in enumerate(batch) if size == 1 and shape[extra + k] != 1)
    return full.sum(axis=axes).reshape(array.shape) if axes else full


def _values(inputs):
    """The body of a module's forward: the outputs at every point of the broadcast `inputs`, shaped like
    the broadcast (one array; a tuple of them for a SEQUENCE of expressions)."""
    shape, n, _, args = _prepare(inputs, ARGS, DTYPE, ARG_SHAPES)
    if not shape:   # one point: its outputs as one row (one array to make and pass, however many outputs)
        row = np.empty((1, len(OUTPUTS)), DTYPE)
        _run(_row_kernel, n, *args, row)
        return _shaped(list(row.T), shape)
    outs = [np.empty(n, DTYPE) for _ in OUTPUTS]
    _run(_forward_kernel, n, *args, *outs)
    return _shaped(outs, shape)


def _values_and_grads(inputs, cotangents=None):
    """The body of a module's value_and_grad: (the outputs as `_values` gives them, the gradient of sum(f),
    of Σ cotangent·output for a SEQUENCE, w.r.t. each input of WRT_INDEX, shaped like that input). The
    cotangents (default 1) weight a SEQUENCE's outputs; a single expression takes none."""
    shape, n, arrays, args = _prepare(inputs, ARGS, DTYPE, ARG_SHAPES)
    outs = [np.empty(n, DTYPE) for _ in OUTPUTS]
    buffers = [_grad_buffer(arrays[k], n, DTYPE, ARG_SHAPES[k]) for k in WRT_INDEX]
    weights = _cotangents(cotangents, OUTPUTS, shape, n, DTYPE) if SEQUENCE else []
    _run(_value_and_grad_kernel, n, *args, *weights, *outs, *buffers)
    grads = tuple(_grad_result(b, arrays[k], shape, DTYPE, ARG_SHAPES[k]) for b, k in zip(buffers, WRT_INDEX))
    return _shaped(outs, shape), grads


def _shaped(outs, shape):
    """The kernel's flat outputs shaped like the broadcast inputs: the one array, a SEQUENCE's tuple, or a
    Matrix's array of the batch shape + LAYOUT."""
    if LAYOUT is not None:
        return np.stack(outs, axis=-1).reshape(tuple(shape) + tuple(LAYOUT))
    outs = [o.reshape(shape) for o in outs]
    return tuple(outs) if SEQUENCE else outs[0]

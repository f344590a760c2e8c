"""Support code for generated MLP modules: bias, adjoint and column-sum loops, call-time validation, and the
fixed public functions (init_params, forward, loss, sgd_step).

The text below the RUNTIME marker is copied verbatim into every generated MLP module (which must
not import gradc): numpy, numba and the standard library only. The lines above the marker are
for this file alone: a written module carries the text of vector_math.py, blas.py and threads.py
next to this one, and defines the constants and kernels read here (gradc/backend/mlp.py) above its
support code; the ones above the marker stand in for them so that this file imports alone (a test
sets them to a small network's).
"""
from gradc.runtime.threads import _split  # noqa: I001 (above the marker: not copied)
from numpy import dtype as _dtype

_PARALLEL = True   # a written module says per network whether its loops may split (backend/mlp.py, _parallel)
PARAM_SHAPES = {"W1": (2, 1), "b1": (1,)}       # the parameters, in the kernels' order
PARAM_INITS = {"W1": "xavier", "b1": "zeros"}   # each weight's init rule
INPUT, OUTPUT = 2, 1                            # units of the input and of the last layer
LABELS_OK = False                               # Y may be integer class labels of shape (N,)
LOSS = "mse"                                    # the spec's loss (a mean over rows but for sum_squared)
DTYPE = _dtype("float64")


def _forward(X, *params):
    """A written module's kernel: X -> the last layer's activations."""
    raise NotImplementedError("the kernels are a written module's")


def _loss(X, Y, *params):
    """A written module's kernel: (X, Y) -> loss."""
    raise NotImplementedError("the kernels are a written module's")


def loss_and_grad(params, X, Y):
    """A written module's: (loss, gradients keyed and shaped like params) of a batch."""
    raise NotImplementedError("loss_and_grad is a written module's")


# --- RUNTIME ---
import operator
import threading

import numba as nb
import numpy as np

_JIT = {"cache": True, "error_model": "numpy", "nogil": True}

if _PARALLEL:
    # Start Numba's threads now. A kernel compiled without parallel=True (a small network's, beside the shared
    # support code, which is parallel) that calls the parallel loops below does not start them itself when it is
    # loaded from the cache by a process that has not compiled those loops, and its first call then crashes the
    # process (Numba issues 8578 and 4807: the callees' start-up hook is not inherited by a cached caller).
    nb.get_num_threads()


@nb.njit(forceinline=True, **_JIT)
def _add_to_row(a, r, row):
    for k in range(a.shape[1]):
        a[r, k] += row[k]


@nb.njit(parallel=_PARALLEL, **_JIT)
def _add_bias(a, row):
    """`row` added to every row of the 2-D array `a`, in a's buffer (`a` is a fresh product that nothing
    else holds); returns a. Rows split across threads when `a` is large (see _split)."""
    if _split(a.size):
        for r in nb.prange(a.shape[0]):
            _add_to_row(a, r, row)
    else:
        for r in range(a.shape[0]):
            _add_to_row(a, r, row)
    return a


@nb.njit(forceinline=True, **_JIT)
def _times_row(a, r, b):
    for k in range(a.shape[1]):
        a[r, k] *= b[r, k]


@nb.njit(parallel=_PARALLEL, **_JIT)
def _times_into(a, b):
    """a *= b elementwise, in place, for arrays of one shape (`a` an adjoint nothing else reads); returns a.
    Rows split across threads when `a` is large (see _split)."""
    if _split(a.size):
        for r in nb.prange(a.shape[0]):
            _times_row(a, r, b)
    else:
        for r in range(a.shape[0]):
            _times_row(a, r, b)
    return a


@nb.njit(forceinline=True, **_JIT)
def _sum_columns(a, total, start, stop):
    """total[start:stop] += the column sums of a[:, start:stop], row after row."""
    for r in range(a.shape[0]):
        for k in range(start, stop):
            total[k] += a[r, k]


@nb.njit(parallel=_PARALLEL, **_JIT)
def _sum_columns_into(a, total):
    """total += the column sums of a; blocks of 64 columns split across threads when `a` is large (see
    _split), each column summed in the same order either way. Nothing else is in this function:
    Numba's parallel=True would run its other array operations (np.zeros, astype) on threads."""
    if _split(a.size):
        for block in nb.prange((a.shape[1] + 63) // 64):
            _sum_columns(a, total, 64 * block, min(64 * block + 64, a.shape[1]))
    else:
        _sum_columns(a, total, 0, a.shape[1])


@nb.njit(**_JIT)
def _column_sums(a):
    """np.sum(a, axis=0) for a 2-D array, summed in float64 and rounded once to a's dtype. Written out
    because Numba's np.sum with an axis is slow to compile and runs slower than this loop."""
    total = np.zeros(a.shape[1], dtype=np.float64)
    _sum_columns_into(a, total)
    return total.astype(a.dtype)


@nb.njit(**_JIT)
def _check_finite(value, message):
    """Debug builds: raise FloatingPointError(message, first bad flat index) if `value` is not finite."""
    flat = np.ascontiguousarray(np.asarray(value)).reshape(-1)   # a copy only for a Fortran-ordered gradient
    for k in range(flat.shape[0]):
        if not np.isfinite(flat[k]):
            raise FloatingPointError(message, k)


def _array(value, what, dtype, shape):
    """`value` as a C-contiguous `dtype` array of `shape` (None = any size); ValueError naming `what`."""
    if type(value) is np.ndarray and value.ndim == len(shape) and _ready(
            value, dtype, tuple(d if s is None else s for s, d in zip(shape, value.shape))):
        return value   # nothing to convert
    try:
        array = np.asarray(value)
    except ValueError as exc:   # ragged nested lists
        raise ValueError(f"{what} must be a rectangular array of real numbers ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be real numbers, got dtype {array.dtype}")
    if len(shape) != array.ndim or any(s is not None and s != d for s, d in zip(shape, array.shape)):
        expected = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{what} must have shape {expected}, got {array.shape}")
    return np.require(array, dtype=dtype, requirements="CAW")   # a copy only when needed


def _ready(value, dtype, shape):
    """True when `value` can go to a kernel as it is: a `dtype` array of exactly `shape`, C-contiguous,
    aligned and writeable (the kernel's one compiled signature; NumPy calls that a "carray")."""
    return type(value) is np.ndarray and value.shape == shape and value.dtype == dtype and value.flags.carray


def _params(params, shapes, dtype):
    """The parameters in PARAM_SHAPES order, validated; ValueError names the missing/extra/bad one."""
    if not hasattr(params, "keys"):
        raise ValueError(f"params must be a dict of arrays keyed {', '.join(shapes)}, got {type(params).__name__}")
    missing = [k for k in shapes if k not in params]
    extra = [k for k in params if k not in shapes]
    if missing or extra:
        raise ValueError("params " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unexpected {', '.join(map(str, extra))}"]
                                                                      if extra else []))
            + f" (expected {', '.join(f'{k}{shapes[k]}' for k in shapes)})")
    return [_array(params[k], f"param {k}", dtype, shapes[k]) for k in shapes]


_COMPILED = {}   # kernel -> its params getter, once its one signature is compiled and no other can be (see _run)
_FIRST_CALL = threading.Lock()


def _in_order(shapes):
    """A getter of a params dict's arrays in `shapes` order, as a tuple (operator.itemgetter runs in C;
    with one key it returns the bare value, so that case is wrapped)."""
    take = operator.itemgetter(*shapes)
    return take if len(shapes) > 1 else lambda params: (take(params),)


def _run(kernel, params, data, shapes, n_in, n_out, dtype, labels_ok):
    """kernel(*data, *params in PARAM_SHAPES order), for the public functions; `data` is (X,) or (X, Y).

    A training loop's call (a dict of ready arrays) goes straight to the kernel: after its first call
    a kernel compiles no new signature, so its dispatcher checks every array's dtype, rank and layout
    (in C: a TypeError when one differs) and the kernel checks the shapes (a ValueError). That costs
    well under a microsecond, where checking six arrays in Python costs two. Any other call goes the
    validating way: what can be converted is (lists, other dtypes, integer labels, strided views), what
    cannot is named in a ValueError, and the kernel is called with arrays of its one signature."""
    take = _COMPILED.get(kernel)
    if take is not None and type(params) is dict and len(params) == len(shapes):
        try:
            return kernel(*(data + take(params)))
        except (TypeError, KeyError, ValueError):
            pass   # said precisely, or converted, below
    args = (*_batch(data, n_in, n_out, dtype, labels_ok), *_params(params, shapes, dtype))
    if take is not None:
        return kernel(*args)
    with _FIRST_CALL:   # compile (or load) the one signature; another thread's first call waits for it
        out = kernel(*args)
        kernel.disable_compile()
        _COMPILED[kernel] = _in_order(shapes)
    return out


#: a large batch's loss is computed in blocks of rows whose activations take about this many elements a layer
#: (4 MB in float64): a block's arrays then stay in the CPU's cache, where a whole batch's would stream through
#: memory at every elementwise pass (2.3x faster at 125,000 rows of a 64-128-10 network: benchmarks/README.md)
_BLOCK_ELEMENTS = 1 << 19
_MIN_BLOCK_ROWS = 1024   # below that, the products get too small to run at full speed


def _block_rows(shapes):
    """Rows per block for a network of these parameter shapes (its widest layer or input sets the size)."""
    return max(_MIN_BLOCK_ROWS, _BLOCK_ELEMENTS // max(max(shape) for shape in shapes.values()))


def _run_rows(kernel, params, data, shapes, n_in, n_out, dtype, labels_ok, loss):
    """_run for a kernel of a batch's loss (`_loss`) or (loss, *gradients) (`_loss_and_grad`). Where the loss is
    a mean over the rows (every loss but sum_squared) and the batch spans several blocks of rows, each block is run
    alone and the results are summed, each weighted by its share of the rows, in float64: the batch's loss and
    gradients up to the order of the sums (the L2 term, in every block's, has weights summing to 1)."""
    try:
        rows = len(data[0])
    except TypeError:   # not an array of rows: _run says so
        rows = 0
    # the cheap tests first: a training step's batch is small
    if rows < 2 * _MIN_BLOCK_ROWS or loss == "sum_squared" or rows < 2 * (block := _block_rows(shapes)):
        return _run(kernel, params, data, shapes, n_in, n_out, dtype, labels_ok)
    data = _batch(data, n_in, n_out, dtype, labels_ok)
    params = dict(zip(shapes, _params(params, shapes, dtype)))
    sums = None
    for start in range(0, rows, block):
        part = tuple(a[start:start + block] for a in data)
        out = _run(kernel, params, part, shapes, n_in, n_out, dtype, labels_ok)
        weight = part[0].shape[0] / rows
        weighted = [weight * np.asarray(v, dtype=np.float64) for v in (out if isinstance(out, tuple) else (out,))]
        sums = weighted if sums is None else [s + w for s, w in zip(sums, weighted)]
    value, *grads = sums
    return (float(value), *(g.astype(dtype) for g in grads)) if isinstance(out, tuple) else float(value)


def _batch(data, n_in, n_out, dtype, labels_ok):
    """`data`, (X,) or (X, Y), validated and converted; Y may be integer class labels of shape (N,)
    when `labels_ok` (made one-hot)."""
    if len(data) == 2 and data[1] is None:
        raise ValueError(f"Y must be an array of shape (N, {n_out}), got None")
    X = _array(data[0], "X", dtype, (None, n_in))
    if len(data) == 1:
        return (X,)
    if X.shape[0] == 0:   # the loss is a mean over the batch
        raise ValueError(f"X must have shape (N, {n_in}) with N >= 1 to compute a loss, got {X.shape}")
    Y = np.asarray(data[1])
    if labels_ok and Y.ndim == 1 and Y.dtype.kind in "iu":
        if Y.shape[0] != X.shape[0] or (Y.size and (Y.min() < 0 or Y.max() >= n_out)):
            raise ValueError(f"labels Y must be {X.shape[0]} integers in [0, {n_out}), got shape {Y.shape}"
                             f" with range [{Y.min() if Y.size else ''}, {Y.max() if Y.size else ''}]")
        onehot = np.zeros((X.shape[0], n_out), dtype=dtype)
        onehot[np.arange(X.shape[0]), Y] = 1.0
        return X, onehot
    if n_out == 1 and Y.ndim == 1 and Y.shape[0] == X.shape[0]:   # else the error shows Y's own shape
        Y = Y.reshape(-1, 1)
    Y = _array(Y, "Y", dtype, (X.shape[0], n_out))
    return X, Y


def _init(shapes, inits, seed, dtype):
    """Fresh parameters: weights ~ N(0, σ²) with σ from the layer's init rule, biases zero."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in shapes.items():
        if len(shape) == 1:
            params[name] = np.zeros(shape, dtype=dtype)
            continue
        fan_in, fan_out = shape
        std = {"xavier": np.sqrt(2.0 / (fan_in + fan_out)), "he": np.sqrt(2.0 / fan_in), "normal": 1.0}[inits[name]]
        params[name] = (rng.standard_normal(shape) * std).astype(dtype)
    return params


# The public functions of a written module whose code is the same for every network: they read its
# constants and call its kernels. Its loss_and_grad is written with the kernels: it unpacks the
# gradients by name into a dict display, faster than any loop over PARAM_SHAPES.


def init_params(seed=0):
    """Fresh parameters keyed like PARAM_SHAPES (weights by each layer's init rule, zero biases)."""
    return _init(PARAM_SHAPES, PARAM_INITS, seed, DTYPE)


def forward(params, X):
    """The last layer's activations for X of shape (N, INPUT)."""
    return _run(_forward, params, (X,), PARAM_SHAPES, INPUT, OUTPUT, DTYPE, LABELS_OK)


def loss(params, X, Y):
    """The loss (a float) of a batch."""
    return _run_rows(_loss, params, (X, Y), PARAM_SHAPES, INPUT, OUTPUT, DTYPE, LABELS_OK, LOSS)


def sgd_step(params, X, Y, lr):
    """One step of gradient descent on params, in place; returns the loss before the step."""
    value, grads = loss_and_grad(params, X, Y)
    for name in grads:   # check them all before changing any
        if not isinstance(params[name], np.ndarray) or params[name].dtype.kind != "f":
            raise ValueError(f"sgd_step updates params in place: param {name} must be a float ndarray,"
                             f" got {getattr(params[name], 'dtype', type(params[name]).__name__)}")
    for name, g in grads.items():
        params[name] -= lr * g
    return value

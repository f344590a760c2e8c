"""Support code for generated MLP modules: training (optimiser state, one step, whole epochs, fit), predictions
and parameter files.

The text below the RUNTIME marker is copied into every generated MLP module, after runtime/mlp.py's and
runtime/losses.py's (whose helpers and constants it uses): numpy, numba and the standard library only (a
progress bar uses tqdm where it is installed). A written module defines the kernels `_step` and `_epoch`
(gradc/backend/mlp.py) and the constants LOSS, NETWORK and OPTIMIZER above its support code; the ones above
the marker stand in for them so that this file imports alone.

The update rules are PyTorch's torch.optim.SGD, Adam and AdamW (single-tensor code path, dampening 0, no
amsgrad), step for step.
"""
from gradc.runtime.mlp import (  # noqa: I001 (above the marker: not copied)
    _JIT, DTYPE, INPUT, LABELS_OK, OUTPUT, PARAM_SHAPES, _batch, _params, forward, loss)

LOSS = "mse"                         # the spec's loss: what predict and predict_proba read from the outputs
NETWORK = "0" * 64                   # the spec's network fingerprint, stamped into parameter files
OPTIMIZER = {"name": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}


def _step(X, Y, *arrays):
    """A written module's kernel: one optimiser step in place (params, then moments m and v, rule, step)."""
    raise NotImplementedError("the kernels are a written module's")


def _epoch(X, Y, *arrays):
    """A written module's kernel: the mini-batch steps of one epoch."""
    raise NotImplementedError("the kernels are a written module's")


# --- RUNTIME ---
import difflib
import importlib
import importlib.util
import os
import sys
import tempfile

import numba as nb
import numpy as np

#: each optimiser's fields and defaults (PyTorch's, but sgd's lr, which torch.optim.SGD lacks)
OPTIMIZER_DEFAULTS = {
    "sgd": {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
}



def optimizer_options(options, path="optimizer"):
    """A complete, checked optimiser mapping from `options` (a mapping with a name, or just the name): the
    optimiser's defaults for the fields it leaves out. ValueError naming the field (`optimizer.lr`) for an
    unknown name or field, a value out of range, or nesterov without momentum."""
    if isinstance(options, str):
        options = {"name": options}
    if not hasattr(options, "keys"):
        raise ValueError(f"{path}: expected a mapping with a name ({', '.join(OPTIMIZER_DEFAULTS)}), "
                         f"got {options!r:.80}")
    name = options.get("name")
    if name not in OPTIMIZER_DEFAULTS:
        close = difflib.get_close_matches(str(name).lower(), list(OPTIMIZER_DEFAULTS), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{path}.name: unknown optimizer {name!r}{hint} (valid: {', '.join(OPTIMIZER_DEFAULTS)})")
    defaults = OPTIMIZER_DEFAULTS[name]
    for key in options:
        if key != "name" and key not in defaults:
            raise ValueError(f"{path}: unknown key {key!r} for {name} (valid keys: name, {', '.join(defaults)})")
    checked = {"name": name}
    for key, default in defaults.items():
        value = options.get(key, default)
        if key == "nesterov":
            if not isinstance(value, bool):
                raise ValueError(f"{path}.nesterov: expected true or false, got {value!r:.80}")
        else:
            real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            allowed, wanted = _in_range(key, float(value) if real else 0.0)
            if not real or not np.isfinite(value) or not allowed:
                raise ValueError(f"{path}.{key}: expected {wanted}, got {value!r:.80}")
            value = float(value)
        checked[key] = value
    if checked.get("nesterov") and checked["momentum"] <= 0:
        raise ValueError(f"{path}.nesterov: Nesterov momentum needs momentum > 0, got momentum {checked['momentum']}")
    return checked


def _in_range(key, value):
    """(whether `value` is allowed for the optimiser field `key`, what the field asks for)."""
    if key in ("lr", "eps"):
        return value > 0, "a number > 0"
    if key in ("beta1", "beta2"):
        return 0 <= value < 1, f"a number with 0 <= {key} < 1"
    return value >= 0, "a number >= 0"   # weight_decay, momentum


def _rule(options):
    """The update rule of checked `options` (optimizer_options) as the kernels take it: the tuple of floats
    (adam, decoupled, lr, beta1, beta2, eps, weight_decay, momentum, nesterov), flags 1.0 or 0.0. A plain
    tuple, not a namedtuple: Numba's disk cache pickles argument types, and a written module's classes
    cannot be pickled by reference."""
    return (float(options["name"] != "sgd"), float(options["name"] == "adamw"), options["lr"],
            options.get("beta1", 0.0), options.get("beta2", 0.0), options.get("eps", 1.0),
            options["weight_decay"], options.get("momentum", 0.0), float(options.get("nesterov", False)))


@nb.njit(**_JIT)
def _update_vector(p, g, m, v, rule, t):
    """One step of the rule at step t (1-based) for the 1-D parameter p with gradient g and state m, v, in
    place. Adam/AdamW keep the moments in m and v; SGD keeps its momentum buffer in m (zero at first, so
    that the first step's buffer is the gradient, as torch.optim.SGD's)."""
    adam, decoupled, lr, beta1, beta2, eps, wd, momentum, nesterov = rule
    if adam:
        step_size = lr / (1.0 - beta1 ** t)
        correction2_sqrt = np.sqrt(1.0 - beta2 ** t)
        for k in range(p.shape[0]):
            gk = g[k]
            if decoupled:   # AdamW: decay the weight itself
                p[k] *= 1.0 - lr * wd
            else:           # Adam: L2 through the gradient
                gk += wd * p[k]
            m[k] += (1.0 - beta1) * (gk - m[k])   # torch's lerp_
            v[k] = beta2 * v[k] + (1.0 - beta2) * gk * gk
            p[k] -= step_size * (m[k] / (np.sqrt(v[k]) / correction2_sqrt + eps))
        return
    for k in range(p.shape[0]):
        gk = g[k] + wd * p[k]
        if momentum != 0.0:
            m[k] = momentum * m[k] + gk
            gk = gk + momentum * m[k] if nesterov else m[k]
        p[k] -= lr * gk


@nb.njit(**_JIT)
def _update_matrix(p, g, m, v, rule, t):
    """_update_vector row by row, for a 2-D parameter (its gradient may be in either memory order)."""
    for r in range(p.shape[0]):
        _update_vector(p[r], g[r], m[r], v[r], rule, t)


@nb.njit(**_JIT)
def _take_rows(a, index):
    """a[index] for a 2-D array and an index array (a copy, C-ordered): written out, because Numba's fancy
    indexing takes seconds more to compile.

    A shuffled mini-batch's rows are scattered over a training array far larger than the cache, and copied row
    after row each would wait for its own memory. So a first pass copies one element of every cache line of
    every row (a few instructions a row, so the CPU has many rows' loads in flight at once), and the second
    copies every element, from the cache: 256 rows of 40 float64 from 200,000 in 22-26 µs instead of 44-53."""
    rows, columns = index.shape[0], a.shape[1]
    out = np.empty((rows, columns), a.dtype)
    if columns == 0:
        return out
    line = max(1, 64 // a.itemsize)   # elements per 64-byte cache line
    for r in range(rows):
        for k in range(0, columns, line):
            out[r, k] = a[index[r], k]
        out[r, columns - 1] = a[index[r], columns - 1]
    for r in range(rows):
        for k in range(columns):
            out[r, k] = a[index[r], k]
    return out


def _trainable(params):
    """The parameters as the kernels update them in place: the dict's own arrays, each of its shape, DTYPE,
    C order and writeable (ValueError naming the first that is not: a converted copy would be updated
    instead of it)."""
    arrays = _params(params, PARAM_SHAPES, DTYPE)
    for name, array in zip(PARAM_SHAPES, arrays):
        if array is not params[name]:
            raise ValueError(f"param {name} must be a writeable C-ordered {DTYPE} ndarray of shape "
                             f"{PARAM_SHAPES[name]} to be trained in place, got "
                             f"{getattr(params[name], 'dtype', type(params[name]).__name__)}")
    return arrays


def init_state(params):
    """Optimiser state for params: the step count ("step", a 0-d int64 array) and zero moments "m_<name>",
    "v_<name>" (Adam's first and second; SGD's momentum buffer is m). Any optimiser trains from it."""
    arrays = _params(params, PARAM_SHAPES, DTYPE)
    state = {"step": np.zeros((), np.int64)}
    state.update({f"m_{name}": np.zeros_like(a) for name, a in zip(PARAM_SHAPES, arrays)})
    state.update({f"v_{name}": np.zeros_like(a) for name, a in zip(PARAM_SHAPES, arrays)})
    return state


def _moments(state):
    """The state's moment arrays in the kernels' order (all m, then all v); ValueError if `state` is not
    init_state's for these parameters."""
    if not hasattr(state, "keys") or "step" not in state:
        raise ValueError("state must be the dict init_state(params) returns")
    arrays = []
    for prefix in ("m_", "v_"):
        for name, shape in PARAM_SHAPES.items():
            key = prefix + name
            array = state.get(key)
            if not (type(array) is np.ndarray and array.shape == shape and array.dtype == DTYPE
                    and array.flags.carray):
                raise ValueError(f"state[{key!r}] must be a writeable C-ordered {DTYPE} array of shape {shape} "
                                 f"(as init_state makes it), got {getattr(array, 'shape', array)!r:.80}")
            arrays.append(array)
    return arrays


def step(params, state, X, Y, optimizer=None):
    """One optimiser step on params and state, in place, as one compiled call; returns the loss before the
    step. `optimizer` (a mapping like the spec's) overrides the spec's OPTIMIZER. Nothing changes when an
    argument is refused."""
    rule = _rule(optimizer_options(OPTIMIZER if optimizer is None else optimizer))
    X, Y = _batch((X, Y), INPUT, OUTPUT, DTYPE, LABELS_OK)
    arrays, moments = _trainable(params), _moments(state)
    t = int(state["step"]) + 1
    value = _step(X, Y, *arrays, *moments, rule, t)
    state["step"][...] = t
    return value


def _progress(total, enabled):
    """A progress bar over `total` epochs: tqdm's where it is installed, else one line on stderr per epoch
    (nothing when not `enabled`). Returns an object with update(n) and set_postfix_str(text) and close()."""
    if enabled and importlib.util.find_spec("tqdm") is not None:
        return importlib.import_module("tqdm.auto").tqdm(total=total, unit="epoch", leave=True)
    return _Lines(total, enabled)


class _Lines:
    """The progress bar where tqdm is not installed: 'epoch k/n: loss ...' lines on stderr."""

    def __init__(self, total, enabled):
        self.total, self.enabled, self.done, self.text = total, enabled, 0, ""

    def set_postfix_str(self, text):
        self.text = text

    def update(self, n):
        self.done += n
        if self.enabled:
            print(f"epoch {self.done}/{self.total}: {self.text}", file=sys.stderr, flush=True)

    def close(self):
        pass


def _labels(Y):
    """The class labels of one-hot rows Y (argmax), or Y's 0/1 entries for binary_cross_entropy."""
    return (Y > 0.5).astype(np.int64) if LOSS == "binary_cross_entropy" else np.argmax(Y, axis=1)


def _accuracy(params, X, Y):
    """The fraction of X's predictions that equal Y's labels (of each output, for binary_cross_entropy)."""
    return float(np.mean(predict(params, X) == _labels(Y)))


def _history(validation):
    """fit's empty history: the loss per epoch; with a validation set its loss, and its accuracy where the loss
    classifies."""
    history = {"loss": []}
    if validation is not None:
        history["val_loss"] = []
        if LOSS != "mse" and LOSS != "sum_squared":
            history["val_accuracy"] = []
    return history


def _record_epoch(history, mean, params, validation, bar):
    """Append an epoch's training loss `mean` (and the validation scores) to `history`; show them on `bar`."""
    history["loss"].append(float(mean))
    text = f"loss {mean:.4g}"
    if validation is not None:
        history["val_loss"].append(float(loss(params, *validation)))
        text += f", val_loss {history['val_loss'][-1]:.4g}"
        if "val_accuracy" in history:
            history["val_accuracy"].append(_accuracy(params, *validation))
            text += f", val_accuracy {history['val_accuracy'][-1]:.4f}"
    bar.set_postfix_str(text)
    bar.update(1)


def fit(params, X, Y, epochs=10, batch_size=32, shuffle=True, seed=0, validation=None, progress=True,
        callback=None, optimizer=None, state=None):
    """Train params in place for `epochs` epochs of mini-batches of `batch_size` rows (the last one smaller),
    the rows shuffled each epoch when `shuffle` (reproducibly from `seed`). Each epoch is one compiled call:
    the shuffle, every step and the running loss, no Python per batch. `optimizer` overrides the spec's;
    `state` (init_state's) continues an earlier training, else a fresh one starts. `validation`: (Xv, Yv),
    scored after each epoch. `callback(epoch, history)` returning True stops after that epoch.

    Returns the history: {"loss": mean training loss of each epoch (over its steps, each before its update),
    "val_loss": ..., "val_accuracy": ... (with validation; accuracy for classification losses)}."""
    rule = _rule(optimizer_options(OPTIMIZER if optimizer is None else optimizer))
    X, Y = _batch((X, Y), INPUT, OUTPUT, DTYPE, LABELS_OK)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0, got {epochs!r:.80}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r:.80}")
    if validation is not None:
        if len(validation) != 2:
            raise ValueError("validation must be a pair (X_val, Y_val)")
        validation = _batch(tuple(validation), INPUT, OUTPUT, DTYPE, LABELS_OK)
    arrays = _trainable(params)
    state = init_state(params) if state is None else state
    moments = _moments(state)
    history = _history(validation)
    seeds = np.random.default_rng(seed).integers(0, 2 ** 31 - 1, size=epochs)
    bar = _progress(epochs, progress)
    try:
        for epoch in range(epochs):
            t = int(state["step"])
            mean = _epoch(X, Y, *arrays, *moments, rule, t, batch_size, bool(shuffle), int(seeds[epoch]))
            state["step"][...] = t + (X.shape[0] + batch_size - 1) // batch_size
            _record_epoch(history, mean, params, validation, bar)
            if callback is not None and callback(epoch, history):
                break
    finally:
        bar.close()
    return history


def _softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def predict(params, X):
    """Predictions for X: the class index of each row (softmax_cross_entropy, hinge), 0/1 per output
    (binary_cross_entropy), or the outputs themselves (mse, sum_squared)."""
    out = forward(params, X)
    if LOSS in ("softmax_cross_entropy", "hinge"):
        return np.argmax(out, axis=1)
    if LOSS == "binary_cross_entropy":
        return (out > 0.5).astype(np.int64)
    return out


def predict_proba(params, X):
    """Class probabilities for X: softmax of the outputs (softmax_cross_entropy: rows sum to 1), or the
    outputs, each a probability (binary_cross_entropy). ValueError for other losses: hinge scores and
    regression outputs are not probabilities."""
    if LOSS not in ("softmax_cross_entropy", "binary_cross_entropy"):
        raise ValueError(f"predict_proba needs a probabilistic classification loss (softmax_cross_entropy or "
                         f"binary_cross_entropy); this network's loss is {LOSS}")
    out = forward(params, X)
    return _softmax(out) if LOSS == "softmax_cross_entropy" else out


_NETWORK_KEY = "__network__"


def save_params(params, path):
    """Write params to the .npz file `path` (atomically), stamped with the network's fingerprint."""
    arrays = _params(params, PARAM_SHAPES, DTYPE)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".params.", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_NETWORK_KEY: np.array(NETWORK)}, **dict(zip(PARAM_SHAPES, arrays)))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_params(path):
    """The params save_params wrote to `path`, as DTYPE arrays; ValueError if the file is another network's
    (its fingerprint differs) or not a parameter file."""
    with np.load(os.fspath(path), allow_pickle=False) as data:
        if _NETWORK_KEY not in data.files:
            raise ValueError(f"{path} is not a parameter file written by save_params (no network fingerprint)")
        stamp = str(data[_NETWORK_KEY])
        if stamp != NETWORK:
            raise ValueError(f"{path} holds the parameters of another network (fingerprint {stamp[:16]}, "
                             f"this one is {NETWORK[:16]}): layers, units or activations differ")
        params = {name: data[name] for name in data.files if name != _NETWORK_KEY}
    return dict(zip(PARAM_SHAPES, _params(params, PARAM_SHAPES, DTYPE)))

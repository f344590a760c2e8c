"""The MLP training-step contestants and the benchmark loop over them, shared by ``gradc bench`` and
benchmarks/run.py.

A contestant computes the loss and every parameter gradient of one batch for a spec (gradc's spec
dicts / MLPSpec), float64 or float32. ``hand_numpy`` (``gradc.tools.reference``) is the reference;
gradc; and, when importable, PyTorch eager autograd, JAX ``jit(value_and_grad)`` with x64, autograd,
and PyTensor in its C and Numba modes. Every contestant is checked against the reference before it is
timed. A peer that is not installed is skipped with a note, never an error.

The peers' network is written once (:func:`_loss_fn`) against an array library's vocabulary
(:class:`_Ops`: its own sigmoid, logsumexp, ...; an activation a library lacks is built from its
``tanh``/``exp``/``maximum`` once, in :class:`_Ops`). Each peer library is imported only when its
contestant is built.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from gradc.tools.timing import Contestant, Skip, add_ratios, cold_warm, import_peer, run_contestants

REFERENCE = "hand_numpy"
MLP_CONTESTANTS = ("hand_numpy", "gradc", "torch", "jax", "autograd", "pytensor_c", "pytensor_numba")
LABELS = {  # names shown in tables and plots
    "hand_numpy": "hand NumPy", "gradc": "gradc", "torch": "torch", "jax": "JAX", "autograd": "autograd",
    "pytensor_c": "PyTensor C", "pytensor_numba": "PyTensor Numba",
}

Builder = Callable[[Any, dict[str, np.ndarray], np.ndarray, np.ndarray], Contestant]


# ---------------------------------------------------------------- data


def make_batch(spec: Any, batch: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Deterministic ``(params, X, Y)`` for a spec: weights scaled by the layer's init rule, small
    non-zero biases, X ~ N(0, 1), and targets that suit the loss (one-hot rows for the classifiers)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(spec.dtype)
    params: dict[str, np.ndarray] = {}
    for name, shape in spec.param_shapes().items():
        if name.startswith("b"):
            params[name] = (0.1 * rng.standard_normal(shape)).astype(dtype)
            continue
        fan_in, units = shape
        std = {"xavier": np.sqrt(2.0 / (fan_in + units)), "he": np.sqrt(2.0 / fan_in),
               "normal": 1.0}.get(spec.layers[int(name[1:]) - 1].init, np.sqrt(1.0 / fan_in))
        params[name] = (rng.standard_normal(shape) * std).astype(dtype)
    X = rng.standard_normal((batch, spec.input)).astype(dtype)
    K = spec.layers[-1].units
    if spec.loss in ("softmax_cross_entropy", "hinge"):
        Y = np.eye(K, dtype=dtype)[rng.integers(0, K, batch)]
    elif spec.loss == "binary_cross_entropy":
        Y = rng.integers(0, 2, (batch, K)).astype(dtype)
    else:
        Y = rng.uniform(0.0, 1.0, (batch, K)).astype(dtype)
    return params, X, Y


# ---------------------------------------------------------------- one network for every array library


class _Ops:
    """An array library's vocabulary for :func:`_loss_fn`: ``sum``, ``row_sum`` (keepdims), ``lse_rows``,
    ``log`` and the activations. A library passes its own functions; the activations it does not pass
    are made below from its ``tanh``, ``exp``, ``minimum``, ``maximum`` and ``where``."""

    ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu")

    def __init__(self, **fns: Callable):
        self.__dict__.update(fns)

    def act(self, layer: Any, z: Any) -> Any:
        if layer.activation not in self.ACTIVATIONS:
            raise Skip(f"activation {layer.activation!r} has no peer implementation")
        alpha = () if layer.alpha is None else (layer.alpha,)   # leaky_relu's slope, elu's scale
        return getattr(self, layer.activation)(z, *alpha)

    def identity(self, z: Any) -> Any:
        return z

    def sigmoid(self, z: Any) -> Any:
        return 0.5 * (self.tanh(0.5 * z) + 1.0)

    def relu(self, z: Any) -> Any:
        return self.maximum(z, 0.0)

    def leaky_relu(self, z: Any, alpha: float) -> Any:
        return self.maximum(z, alpha * z)

    def elu(self, z: Any, alpha: float) -> Any:
        return self.where(z > 0, z, alpha * (self.exp(self.minimum(z, 0.0)) - 1.0))

    def gelu(self, z: Any) -> Any:   # the tanh approximation, as gradc and the reference
        return 0.5 * z * (1.0 + self.tanh(0.7978845608028654 * (z + 0.044715 * z ** 3)))

    def silu(self, z: Any) -> Any:
        return z * self.sigmoid(z)


def _loss_fn(spec: Any, ops: _Ops, batch: int) -> Callable[[list, Any, Any], Any]:
    """``loss(params_list, X, Y)`` (parameters in ``spec.param_shapes()`` order) written once against
    ``ops``. Same math as gradc.tools.reference; the classifier losses use the library's logsumexp."""
    names = list(spec.param_shapes())
    N = float(batch)
    for layer in spec.layers:
        if layer.activation == "custom":
            raise Skip(f"custom activation {layer.formula!r} has no peer implementation")

    def loss(params_list, X, Y):
        p = dict(zip(names, params_list))
        a = X
        for i, layer in enumerate(spec.layers, 1):
            z = a @ p[f"W{i}"]
            if layer.bias:
                z = z + p[f"b{i}"]
            a = ops.act(layer, z)
        if spec.loss == "mse":
            value = ops.sum((a - Y) ** 2) / (2.0 * N)
        elif spec.loss == "sum_squared":
            value = ops.sum((a - Y) ** 2)
        elif spec.loss == "softmax_cross_entropy":
            value = (ops.sum(ops.lse_rows(a)) - ops.sum(a * Y)) / N
        elif spec.loss == "binary_cross_entropy":
            value = -ops.sum(Y * ops.log(a) + (1.0 - Y) * ops.log(1.0 - a)) / N
        elif spec.loss == "hinge":
            margins = (a - ops.row_sum(a * Y) + 1.0) * (1.0 - Y)
            value = ops.sum(ops.relu(margins)) / N
        else:
            raise Skip(f"loss {spec.loss!r} has no peer implementation")
        if spec.l2:
            value = value + 0.5 * spec.l2 * sum(ops.sum(p[f"W{i}"] ** 2) for i in range(1, len(spec.layers) + 1))
        return value

    return loss


def _torch_ops() -> _Ops:
    import torch
    import torch.nn.functional as F

    return _Ops(sigmoid=torch.sigmoid, tanh=torch.tanh, relu=torch.relu, leaky_relu=F.leaky_relu, elu=F.elu,
                softplus=F.softplus, gelu=lambda z: F.gelu(z, approximate="tanh"), silu=F.silu,
                sum=torch.sum, row_sum=lambda x: torch.sum(x, dim=1, keepdim=True),
                lse_rows=lambda x: torch.logsumexp(x, dim=1), log=torch.log)


def _jax_ops() -> _Ops:
    import jax
    import jax.numpy as jnp

    nn = jax.nn
    return _Ops(sigmoid=nn.sigmoid, tanh=jnp.tanh, relu=nn.relu, leaky_relu=nn.leaky_relu, elu=nn.elu,
                softplus=nn.softplus, gelu=lambda z: nn.gelu(z, approximate=True), silu=nn.silu,
                sum=jnp.sum, row_sum=lambda x: jnp.sum(x, axis=1, keepdims=True),
                lse_rows=lambda x: nn.logsumexp(x, axis=1), log=jnp.log)


def _autograd_ops() -> _Ops:
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    return _Ops(tanh=anp.tanh, exp=anp.exp, minimum=anp.minimum, maximum=anp.maximum, where=anp.where,
                softplus=lambda z: anp.logaddexp(0.0, z),
                sum=anp.sum, row_sum=lambda x: anp.sum(x, axis=1, keepdims=True),
                lse_rows=lambda x: logsumexp(x, axis=1), log=anp.log)


def _pytensor_ops() -> _Ops:
    import pytensor.tensor as pt

    return _Ops(sigmoid=pt.sigmoid, tanh=pt.tanh, exp=pt.exp, minimum=pt.minimum, maximum=pt.maximum,
                where=pt.switch, softplus=pt.softplus,
                sum=pt.sum, row_sum=lambda x: pt.sum(x, axis=1, keepdims=True),
                lse_rows=lambda x: pt.logsumexp(x, axis=1), log=pt.log)


# ---------------------------------------------------------------- contestants


def _from_list(names: list[str], value: Any, grads: Iterable[Any]) -> tuple[float, dict[str, np.ndarray]]:
    return float(value), {k: np.asarray(g) for k, g in zip(names, grads)}


def _hand_numpy(spec: Any, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> Contestant:
    from gradc.tools import reference

    if any(layer.activation == "custom" for layer in spec.layers):
        raise Skip("custom activations have no hand-written backprop")
    return Contestant(REFERENCE, lambda: reference.loss_and_grad(spec, params, X, Y))


def _gradc(spec: Any, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> Contestant:
    import gradc

    module = gradc.compile_mlp(spec)
    return Contestant("gradc", lambda: module.loss_and_grad(params, X, Y),
                      extra={"op_counts": dict(module.op_counts), "blas": module.blas, "threads": module.threads})


def _torch(spec: Any, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> Contestant:
    torch = import_peer("torch")
    loss = _loss_fn(spec, _torch_ops(), X.shape[0])
    names = list(params)
    tp = [torch.from_numpy(params[k]).requires_grad_(True) for k in names]
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

    def run_torch():
        value = loss(tp, tX, tY)
        return value, torch.autograd.grad(value, tp)

    return Contestant("torch", run_torch, lambda out: _from_list(names, out[0].item(), (g.numpy() for g in out[1])),
                      {"threads": torch.get_num_threads()})


def _jax(spec: Any, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> Contestant:
    jax = import_peer("jax")
    jax.config.update("jax_enable_x64", True)   # before any array is made; float32 specs stay float32
    step = jax.jit(jax.value_and_grad(_loss_fn(spec, _jax_ops(), X.shape[0])))
    names = list(params)
    jp = [jax.device_put(params[k]) for k in names]
    jX, jY = jax.device_put(X), jax.device_put(Y)
    return Contestant("jax", lambda: jax.block_until_ready(step(jp, jX, jY)),
                      lambda out: _from_list(names, out[0], out[1]))


def _autograd(spec: Any, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> Contestant:
    autograd = import_peer("autograd")
    step = autograd.value_and_grad(_loss_fn(spec, _autograd_ops(), X.shape[0]))
    names = list(params)
    plist = [params[k] for k in names]
    return Contestant("autograd", lambda: step(plist, X, Y), lambda out: _from_list(names, out[0], out[1]))


def _pytensor(name: str, mode: str) -> Builder:
    """PyTensor's contestant ``name``, compiled in ``mode`` (FAST_RUN: its C backend; NUMBA)."""

    def build(spec: Any, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> Contestant:
        pytensor = import_peer("pytensor")
        import pytensor.tensor as pt

        loss = _loss_fn(spec, _pytensor_ops(), X.shape[0])
        names = list(params)
        sym = [pt.tensor(name=k, dtype=spec.dtype, shape=(None,) * params[k].ndim) for k in names]
        sX, sY = pt.matrix("X", dtype=spec.dtype), pt.matrix("Y", dtype=spec.dtype)
        cost = loss(sym, sX, sY)
        fn = pytensor.function([*sym, sX, sY], [cost, *pytensor.grad(cost, sym)], mode=mode)
        fn.trust_input = True  # inputs are already arrays of the right dtype: skip per-call checks
        args = [*(params[k] for k in names), X, Y]
        return Contestant(name, lambda: fn(*args), lambda out: _from_list(names, out[0], out[1:]))

    return build


#: Contestant name -> builder(spec, params, X, Y) -> Contestant (raises Skip when it cannot run here).
MLP_BUILDERS: dict[str, Builder] = {
    "hand_numpy": _hand_numpy, "gradc": _gradc, "torch": _torch, "jax": _jax, "autograd": _autograd,
    "pytensor_c": _pytensor("pytensor_c", "FAST_RUN"), "pytensor_numba": _pytensor("pytensor_numba", "NUMBA"),
}


def build_mlp_contestant(name: str, spec: Any, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray,
                         builders: Mapping[str, Builder] = MLP_BUILDERS) -> Contestant:
    """One contestant bound to the batch; raises Skip when it cannot run here."""
    if name not in builders:
        raise ValueError(f"unknown MLP contestant {name!r}; expected one of {', '.join(builders)}")
    return builders[name](spec, params, X, Y)


def _finite(result: tuple[Any, Mapping[str, Any]]) -> bool:
    return bool(np.isfinite(result[0]) and all(np.all(np.isfinite(g)) for g in result[1].values()))


def run_mlp_benchmark(spec: Any, batch: int, *, contestants: Iterable[str] | None = None,
                      builders: Mapping[str, Builder] | None = None, seed: int = 0, repeat: int = 30,
                      warmup: int = 3, rtol: float | None = None, budget_s: float = 60.0, passes: int = 3,
                      gap_s: float = 0.2, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Loss + every gradient of one batch (:func:`make_batch`) for ``spec`` (dict, path or MLPSpec), per
    contestant; ``builders`` adds to or replaces :data:`MLP_BUILDERS`.

    The reference (hand NumPy) runs first and every contestant is verified against it; ``rtol``
    defaults to 1e-6 for float64 and 1e-3 for float32. Where the reference cannot run (a custom
    activation), gradc is the reference; where its loss or gradients are not finite, nothing is
    checked. Either is said in ``notes``. Returns ``{"spec", "batch", "reference", "rtol",
    "contestants": [records with ms/ratio]}`` (and ``"notes"`` when there are any).
    """
    from gradc.frontend.spec import load_spec

    parsed = load_spec(spec)
    params, X, Y = make_batch(parsed, batch, seed)
    builders = {**MLP_BUILDERS, **(builders or {})}
    reference, notes = REFERENCE, []
    try:
        oracle = build_mlp_contestant(REFERENCE, parsed, params, X, Y, builders)
    except Skip as exc:
        reference = "gradc"
        notes.append(f"no reference: {exc}; gradc is the baseline")
        oracle = build_mlp_contestant(reference, parsed, params, X, Y, builders)
    want = oracle.unpack(oracle.run())
    rtol = rtol if rtol is not None else (1e-6 if parsed.dtype == "float64" else 1e-3)
    if not _finite(want):
        rtol = math.inf
        notes.append("the reference loss or gradients are not finite on this batch (is the loss defined for the "
                     "last activation's range?); results were not checked")
    order = list(dict.fromkeys([reference, REFERENCE, *(contestants or MLP_CONTESTANTS)]))
    records = run_contestants(
        order, lambda n: oracle if n == reference else build_mlp_contestant(n, parsed, params, X, Y, builders),
        want, rtol=rtol, repeat=repeat, warmup=warmup, budget_s=budget_s, passes=passes, gap_s=gap_s,
        progress=progress)
    add_ratios(records, reference)
    result = {"spec": parsed.to_dict(), "batch": batch, "reference": reference, "rtol": rtol, "contestants": records}
    return {**result, "notes": notes} if notes else result


# ---------------------------------------------------------------- gradc compile times (fresh processes)

_MLP_COMPILE_SNIPPET = """
import json, sys, time
import numpy as np
import gradc
spec = json.loads(sys.argv[1])
t0 = time.perf_counter()
m = gradc.compile_mlp(spec)
t1 = time.perf_counter()
params = m.init_params(0)
K = m.spec.layers[-1].units
m.loss_and_grad(params, np.zeros((2, m.spec.input)), np.eye(K)[[0, K - 1]])
t2 = time.perf_counter()
print(json.dumps({"codegen_s": t1 - t0, "load_s": t2 - t1, "total_s": t2 - t0}))
"""


def gradc_mlp_compile_times(spec: Mapping[str, Any] | Any, **kw: Any) -> dict[str, Any]:
    """Cold compile and warm load seconds of ``gradc.compile_mlp(spec)`` + a first call on 2 rows, each in
    a fresh process (imports excluded): ``codegen_s`` (spec -> source), ``load_s`` (import, Numba compile or
    cache load, first call) and ``total_s``."""
    from gradc.frontend.spec import load_spec

    return cold_warm(_MLP_COMPILE_SNIPPET, json.dumps(load_spec(spec).to_dict()), **kw)

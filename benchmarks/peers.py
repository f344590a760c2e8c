"""The MLP training-step contestants and the benchmark loop over them (reusable by ``gradc bench SPEC``).

A contestant computes the loss and every parameter gradient of one batch for a spec (gradc's spec
dicts / MLPSpec), float64 or float32. ``hand_numpy`` (``gradc.tools.reference``) is always present and is the
reference; gradc; and, when importable, PyTorch eager autograd, JAX ``jit(value_and_grad)`` with x64,
autograd, and PyTensor in its C and Numba modes. Every contestant is checked against the reference
before it is timed. A peer that is not installed is skipped with a note, never an error.

Imports: numpy, gradc (public API, ``gradc.tools.reference``, ``gradc.frontend.spec``) and ``.timing``;
each peer library is imported only when its contestant is built.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .timing import Contestant, Skip, add_ratios, cold_warm, import_peer, run_contestants

REFERENCE = "hand_numpy"
MLP_CONTESTANTS = ("hand_numpy", "gradc", "torch", "jax", "autograd", "pytensor_c", "pytensor_numba")
LABELS = {  # names shown in tables and plots (expression and MLP contestants)
    "hand_numpy": "hand NumPy", "hand_numba": "hand Numba loop", "gradc": "gradc", "sympy": "sympy lambdify",
    "sympy_cse": "lambdify cse", "torch": "torch", "jax": "JAX", "autograd": "autograd",
    "pytensor_c": "PyTensor C", "pytensor_numba": "PyTensor Numba",
}


# ---------------------------------------------------------------- data


def param_shapes(spec: Any) -> dict[str, tuple[int, ...]]:
    """Ordered ``W1, b1, W2, ...`` shapes of an MLPSpec (``b_i`` only where the layer has a bias)."""
    from gradc.tools import reference

    return reference.param_shapes(spec)


def make_batch(spec: Any, batch: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Deterministic ``(params, X, Y)`` for a spec: weights scaled by the layer's init rule, small
    non-zero biases, X ~ N(0, 1), and targets that suit the loss (one-hot rows for the classifiers)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(spec.dtype)
    params: dict[str, np.ndarray] = {}
    for i, layer in enumerate(spec.layers, 1):
        fan_in = spec.input if i == 1 else spec.layers[i - 2].units
        std = {"xavier": np.sqrt(2.0 / (fan_in + layer.units)), "he": np.sqrt(2.0 / fan_in),
               "normal": 1.0}.get(layer.init, np.sqrt(1.0 / fan_in))
        params[f"W{i}"] = (rng.standard_normal((fan_in, layer.units)) * std).astype(dtype)
        if layer.bias:
            params[f"b{i}"] = (0.1 * rng.standard_normal(layer.units)).astype(dtype)
    X = rng.standard_normal((batch, spec.input)).astype(dtype)
    K = spec.layers[-1].units
    if spec.loss in ("softmax_cross_entropy", "hinge"):
        Y = np.eye(K, dtype=dtype)[rng.integers(0, K, batch)]
    elif spec.loss == "binary_cross_entropy":
        Y = rng.integers(0, 2, (batch, K)).astype(dtype)
    else:
        Y = rng.uniform(0.0, 1.0, (batch, K)).astype(dtype)
    return params, X, Y


# ---------------------------------------------------------------- one loss function for every array library


def _loss_fn(spec: Any, ops: Any, batch: int) -> Callable[[list, Any, Any], Any]:
    """``loss(params_list, X, Y)`` written once against ``ops`` (an array library's vocabulary):
    ``ops.act(layer, z)``, ``ops.sum(x)``, ``ops.row_sum(x)`` (keepdims), ``ops.lse_rows(x)``, ``ops.log``,
    ``ops.relu``. Same math as gradc.tools.reference; the classifier losses use the library's logsumexp."""
    names = list(param_shapes(spec))
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


def _gelu(tanh: Callable) -> Callable:
    return lambda z: 0.5 * z * (1.0 + tanh(0.7978845608028654 * (z + 0.044715 * z ** 3)))


class _Ops:
    """An array library's vocabulary for :func:`_loss_fn`; ``acts`` maps name -> f(z, alpha)."""

    def __init__(self, acts: dict[str, Callable], **fns: Callable):
        self.acts = acts
        self.__dict__.update(fns)

    def act(self, layer: Any, z: Any) -> Any:
        if layer.activation not in self.acts:
            raise Skip(f"activation {layer.activation!r} has no peer implementation")
        return self.acts[layer.activation](z, layer.alpha)


def _torch_ops():
    import torch
    import torch.nn.functional as F

    acts = {"identity": lambda z, a: z, "sigmoid": lambda z, a: torch.sigmoid(z), "tanh": lambda z, a: torch.tanh(z),
            "relu": lambda z, a: torch.relu(z), "leaky_relu": lambda z, a: F.leaky_relu(z, a),
            "elu": lambda z, a: F.elu(z, a), "softplus": lambda z, a: F.softplus(z),
            "gelu": lambda z, a: F.gelu(z, approximate="tanh"), "silu": lambda z, a: F.silu(z)}
    return _Ops(acts, sum=torch.sum, row_sum=lambda x: torch.sum(x, dim=1, keepdim=True),
                lse_rows=lambda x: torch.logsumexp(x, dim=1), log=torch.log, relu=torch.relu)


def _jax_ops():
    import jax
    import jax.numpy as jnp

    acts = {"identity": lambda z, a: z, "sigmoid": lambda z, a: jax.nn.sigmoid(z), "tanh": lambda z, a: jnp.tanh(z),
            "relu": lambda z, a: jax.nn.relu(z), "leaky_relu": lambda z, a: jax.nn.leaky_relu(z, a),
            "elu": lambda z, a: jax.nn.elu(z, a), "softplus": lambda z, a: jax.nn.softplus(z),
            "gelu": lambda z, a: jax.nn.gelu(z, approximate=True), "silu": lambda z, a: jax.nn.silu(z)}
    return _Ops(acts, sum=jnp.sum, row_sum=lambda x: jnp.sum(x, axis=1, keepdims=True),
                lse_rows=lambda x: jax.nn.logsumexp(x, axis=1), log=jnp.log, relu=jax.nn.relu)


def _autograd_ops():
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    def sig(z):
        return 0.5 * (anp.tanh(0.5 * z) + 1.0)

    acts = {"identity": lambda z, a: z, "sigmoid": lambda z, a: sig(z), "tanh": lambda z, a: anp.tanh(z),
            "relu": lambda z, a: anp.maximum(z, 0.0), "leaky_relu": lambda z, a: anp.maximum(z, a * z),
            "elu": lambda z, a: anp.where(z > 0, z, a * (anp.exp(anp.minimum(z, 0.0)) - 1.0)),
            "softplus": lambda z, a: anp.logaddexp(0.0, z), "gelu": lambda z, a: _gelu(anp.tanh)(z),
            "silu": lambda z, a: z * sig(z)}
    return _Ops(acts, sum=anp.sum, row_sum=lambda x: anp.sum(x, axis=1, keepdims=True),
                lse_rows=lambda x: logsumexp(x, axis=1), log=anp.log, relu=lambda x: anp.maximum(x, 0.0))


def _pytensor_ops():
    import pytensor.tensor as pt

    acts = {"identity": lambda z, a: z, "sigmoid": lambda z, a: pt.sigmoid(z), "tanh": lambda z, a: pt.tanh(z),
            "relu": lambda z, a: pt.maximum(z, 0.0), "leaky_relu": lambda z, a: pt.maximum(z, a * z),
            "elu": lambda z, a: pt.switch(z > 0, z, a * (pt.exp(pt.minimum(z, 0.0)) - 1.0)),
            "softplus": lambda z, a: pt.softplus(z), "gelu": lambda z, a: _gelu(pt.tanh)(z),
            "silu": lambda z, a: z * pt.sigmoid(z)}
    return _Ops(acts, sum=pt.sum, row_sum=lambda x: pt.sum(x, axis=1, keepdims=True),
                lse_rows=lambda x: pt.logsumexp(x, axis=1), log=pt.log, relu=lambda x: pt.maximum(x, 0.0))


# ---------------------------------------------------------------- contestants


def build_mlp_contestant(name: str, spec: Any, params: dict[str, np.ndarray], X: np.ndarray,
                         Y: np.ndarray) -> Contestant:
    """One contestant bound to the batch; raises Skip when it cannot run here."""
    names = list(params)
    batch = X.shape[0]

    def from_list(value: Any, grads: Iterable[Any]) -> tuple[float, dict[str, np.ndarray]]:
        return float(value), {k: np.asarray(g) for k, g in zip(names, grads)}

    if name == "hand_numpy":
        from gradc.tools import reference

        return Contestant(name, lambda: reference.loss_and_grad(spec, params, X, Y), lambda out: out)
    if name == "gradc":
        import gradc

        module = gradc.compile_mlp(spec)
        return Contestant(name, lambda: module.loss_and_grad(params, X, Y), lambda out: out,
                          {"op_counts": dict(module.op_counts), "blas": module.blas, "threads": module.threads})
    if name == "torch":
        torch = import_peer("torch")
        loss = _loss_fn(spec, _torch_ops(), batch)
        tp = [torch.from_numpy(params[k]).requires_grad_(True) for k in names]
        tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

        def run_torch():
            value = loss(tp, tX, tY)
            return value, torch.autograd.grad(value, tp)

        return Contestant(name, run_torch, lambda out: from_list(out[0].item(), (g.numpy() for g in out[1])),
                          {"threads": torch.get_num_threads()})
    if name == "jax":
        jax = import_peer("jax")
        jax.config.update("jax_enable_x64", True)
        loss = _loss_fn(spec, _jax_ops(), batch)
        step = jax.jit(jax.value_and_grad(loss))
        jp = [jax.device_put(params[k]) for k in names]
        jX, jY = jax.device_put(X), jax.device_put(Y)
        return Contestant(name, lambda: jax.block_until_ready(step(jp, jX, jY)),
                          lambda out: from_list(out[0], out[1]))
    if name == "autograd":
        autograd = import_peer("autograd")
        step = autograd.value_and_grad(_loss_fn(spec, _autograd_ops(), batch))
        plist = [params[k] for k in names]
        return Contestant(name, lambda: step(plist, X, Y), lambda out: from_list(out[0], out[1]))
    if name in ("pytensor_c", "pytensor_numba"):
        pytensor = import_peer("pytensor")
        import pytensor.tensor as pt

        loss = _loss_fn(spec, _pytensor_ops(), batch)
        sym = [pt.tensor(name=k, dtype=spec.dtype, shape=(None,) * params[k].ndim) for k in names]
        sX, sY = pt.matrix("X", dtype=spec.dtype), pt.matrix("Y", dtype=spec.dtype)
        cost = loss(sym, sX, sY)
        mode = "FAST_RUN" if name == "pytensor_c" else "NUMBA"
        fn = pytensor.function([*sym, sX, sY], [cost, *pytensor.grad(cost, sym)], mode=mode)
        fn.trust_input = True  # inputs are already arrays of the right dtype: skip per-call checks
        args = [*(params[k] for k in names), X, Y]
        return Contestant(name, lambda: fn(*args), lambda out: from_list(out[0], out[1:]))
    raise ValueError(f"unknown MLP contestant {name!r}; expected one of {', '.join(MLP_CONTESTANTS)}")


def run_mlp_benchmark(spec: Any, batch: int, *, contestants: Iterable[str] | None = None, seed: int = 0,
                      repeat: int = 30, warmup: int = 3, rtol: float | None = None, budget_s: float = 60.0,
                      passes: int = 3, gap_s: float = 0.2,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Loss + every gradient of one batch for ``spec`` (dict, path or MLPSpec), per contestant.

    The reference (hand NumPy) is always run first; ``rtol`` defaults to 1e-6 for float64 and 1e-3
    for float32. Returns ``{"spec", "batch", "reference", "contestants": [records with ms/ratio]}``.
    """
    from gradc.frontend.spec import load_spec
    from gradc.tools import reference as ref_impl

    parsed = load_spec(spec)
    params, X, Y = make_batch(parsed, batch, seed)
    want = ref_impl.loss_and_grad(parsed, params, X, Y)
    rtol = rtol if rtol is not None else (1e-6 if parsed.dtype == "float64" else 1e-3)
    order = [REFERENCE, *(c for c in (contestants or MLP_CONTESTANTS) if c != REFERENCE)]
    records = run_contestants(order, lambda n: build_mlp_contestant(n, parsed, params, X, Y), want, rtol=rtol,
                              repeat=repeat, warmup=warmup, budget_s=budget_s, passes=passes, gap_s=gap_s,
                              progress=progress)
    add_ratios(records, REFERENCE)
    return {"spec": parsed.to_dict(), "batch": batch, "reference": REFERENCE, "rtol": rtol, "contestants": records}


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
    """Cold compile and warm load seconds of ``gradc.compile_mlp(spec)`` + a first call on 2 rows."""
    from gradc.frontend.spec import load_spec

    return cold_warm(_MLP_COMPILE_SNIPPET, json.dumps(load_spec(spec).to_dict()), **kw)


# ---------------------------------------------------------------- targets and the text table


def target_status(case: dict[str, Any]) -> str:
    """gradc against the case's ``target``: ``{"max_ratio": r}`` (ratio to the reference at most r) and/or
    ``{"beat": [peer names] or "all"}`` (no slower than those peers). Returns 'met: ...', 'missed: ...' or
    '?' when gradc or the named rivals were not timed."""
    target = case.get("target") or {}
    ok = {r["name"]: r for r in case["contestants"] if r["status"] == "ok"}
    gradc = ok.get("gradc")
    if gradc is None or not target:
        return "?"
    checks, met = [], True
    if "max_ratio" in target:
        checks.append(f"ratio {gradc['ratio']:.2f} (goal <= {target['max_ratio']})")
        met &= gradc["ratio"] <= target["max_ratio"]
    beat = target.get("beat")
    if beat:
        rivals = [r for n, r in ok.items() if n not in ("gradc", case.get("reference"))
                  and (beat == "all" or n in beat)]
        if not rivals:
            return "?"
        slower = [f"{LABELS.get(r['name'], r['name'])} {r['ms']:.3g} ms" for r in rivals if gradc["ms"] > r["ms"]]
        checks.append(f"slower than {', '.join(slower)}" if slower else f"faster than all {len(rivals)} peers")
        met &= not slower
    return ("met: " if met else "missed: ") + "; ".join(checks)


def format_table(cases: list[dict[str, Any]], title: str = "", labels: Mapping[str, str] | None = None) -> str:
    """A plain-text table: per case a header line, one row per timed contestant (median ms, ratio to the
    reference, interquartile range, max error against the reference), then the skipped and failed ones."""
    labels = {**LABELS, **(labels or {})}
    header = f"  {'contestant':<18} {'ms (median)':>12} {'ratio':>8} {'IQR ms':>10} {'max err':>9} {'samples':>9}"
    lines = [title] if title else []
    lines += [header, "  " + "-" * (len(header) - 2)]
    for case in cases:
        status = target_status(case)
        lines.append(case.get("label", case.get("name", "?")) + (f"   [target {status}]" if status != "?" else ""))
        for r in case["contestants"]:
            if r["status"] != "ok":
                continue
            who = labels.get(r["name"], r["name"]) + (f" ({r['blas']})" if "blas" in r else "")
            who += " *" if r["name"] == case.get("reference") else ""
            ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-"
            t = r["timing"]
            lines.append(f"  {who:<18} {r['ms']:>12.4g} {ratio:>8} {t['iqr_ms']:>10.3g} {r['error']:>9.1e} "
                         f"{t['samples']:>4}x{t['number']:<4}")
        skipped = [r for r in case["contestants"] if r["status"] == "skipped"]
        for note in dict.fromkeys(r["note"] for r in skipped):
            names = ", ".join(labels.get(r["name"], r["name"]) for r in skipped if r["note"] == note)
            lines.append(f"  skipped ({note}): {names}")
        for r in case["contestants"]:
            if r["status"] == "failed":
                lines.append(f"  FAILED {labels.get(r['name'], r['name'])}: {r['note']}")
    lines.append("* = the reference of the ratio column (ratio < 1: faster than it); max err = worst relative "
                 "error of value/gradients vs the oracle; samples = samples x calls per sample")
    return "\n".join(lines)

"""`gradc warmup`: compile, once for this machine, the code every module shares.

A module compiled in-process imports its runtime (vector math, BLAS binding, loss loops, optimisers) from one
shared support module, and each built-in activation's loops from a module of their own (gradc/backend/support.py);
Numba caches all of them on disk, per signature, the first time they run. Warming up runs a few small models of
each kind through every entry point, so that a user's first model compiles only its own kernels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

#: Hidden layers warmed: every built-in activation but identity (the output layers'); 512 units is where a
#: layer's loops are compiled able to split across threads (backend/mlp.py _PARALLEL_UNITS), so they differ.
_HIDDEN = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu")
_SPLIT_HIDDEN = ("sigmoid", "tanh", "relu")
_SPLIT_UNITS = 512
_LOSSES = {   # loss -> (output units, its output activation, optimizer)
    "softmax_cross_entropy": (3, "identity", {"name": "adam"}),
    "mse": (2, "sigmoid", {"name": "sgd", "lr": 0.1, "momentum": 0.9}),
    "binary_cross_entropy": (2, "identity", {"name": "adamw"}),
    "hinge": (3, "identity", {"name": "sgd", "lr": 0.1, "nesterov": True, "momentum": 0.5}),
    "sum_squared": (2, "identity", {"name": "sgd", "lr": 0.01}),
}


def _spec(hidden: Sequence[str], units: int, loss: str, dtype: str) -> dict[str, Any]:
    outputs, activation, optimizer = _LOSSES[loss]
    layers = [{"units": units, "activation": a} for a in hidden] + [{"units": outputs, "activation": activation}]
    return {"name": "warmup", "input": 4, "layers": layers, "loss": loss, "dtype": dtype, "optimizer": optimizer}


def _labels(loss: str, rows: int, rng: np.random.Generator) -> np.ndarray:
    outputs = _LOSSES[loss][0]
    if loss in ("softmax_cross_entropy", "hinge"):
        return np.arange(rows) % outputs
    return rng.random((rows, outputs)).round() if loss == "binary_cross_entropy" else rng.random((rows, outputs))


def _run_network(spec: dict[str, Any]) -> None:
    """Every entry point of a compiled network, on a few rows."""
    import gradc

    net = gradc.compile_mlp(spec)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, spec["input"])).astype(spec["dtype"])
    Y = _labels(spec["loss"], 8, rng)
    params = net.init_params(0)
    net.loss_and_grad(params, X, Y)
    net.forward(params, X)
    net.loss(params, X, Y)
    net.predict(params, X)
    if spec["loss"] in ("softmax_cross_entropy", "binary_cross_entropy"):
        net.predict_proba(params, X)
    net.step(params, net.init_state(params), X, Y)
    net.fit(params, X, Y, epochs=1, batch_size=4, validation=(X, Y), progress=False)


def _run_expression(dtype: str) -> None:
    """Forward, gradients, derivatives at one point and at batches (a chunk's worth and more)."""
    import sympy as sp

    import gradc

    x, y = sp.symbols("x y")
    f = gradc.compile_expr(sp.sin(x) * sp.exp(y) / (1 + x**2) + sp.log(1 + y**2) * sp.tanh(x), dtype=dtype)
    for n in (1, 16, 70_000):   # one point, a serial batch, a batch split across threads
        xs, ys = np.linspace(-1, 1, n).astype(dtype), np.linspace(0, 2, n).astype(dtype)
        f.forward(xs, ys), f.grad(xs, ys), f.value_and_grad(xs, 0.5)
        f.jacobian(xs, ys), f.hessian(xs, ys), f.jvp(xs, ys, tangents=(1.0, 0.0)), f.hvp(xs, ys, v=(1.0, 0.0))
    f.forward(0.3, 0.2), f.grad(0.3, 0.2), f.hessian(0.3, 0.2)


def tasks(dtypes: Sequence[str] = ("float64", "float32")) -> Iterator[tuple[str, Callable[[], None]]]:
    """(what, how) of each warm-up step, cheapest first."""
    for dtype in dtypes:
        yield f"expressions, {dtype}", lambda dtype=dtype: _run_expression(dtype)
        for loss in _LOSSES:
            hidden = _HIDDEN if loss == "softmax_cross_entropy" else ("tanh",)
            yield (f"networks, {loss}, {dtype}",
                   lambda hidden=hidden, loss=loss, dtype=dtype: _run_network(_spec(hidden, 5, loss, dtype)))
        yield (f"networks of {_SPLIT_UNITS}+ units, {dtype}",
               lambda dtype=dtype: _run_network(_spec(_SPLIT_HIDDEN, _SPLIT_UNITS, "softmax_cross_entropy", dtype)))


def warmup(dtypes: Sequence[str] = ("float64", "float32"),
           report: Callable[[str], None] | None = print) -> float:
    """Compile (or load from the cache) the shared support code for `dtypes`; `report(line)` after each step.
    Returns the seconds taken. Safe to run again: a warm cache makes it quick."""
    start = time.perf_counter()
    steps = list(tasks(dtypes))
    for k, (what, run) in enumerate(steps, 1):
        began = time.perf_counter()
        run()
        if report is not None:
            report(f"[{k}/{len(steps)}] {what}: {time.perf_counter() - began:.1f} s")
    return time.perf_counter() - start

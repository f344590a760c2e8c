"""MLP modules on dask arrays: the loss and its gradients as exact sums of per-chunk partials.

Every loss but sum_squared is a mean over the rows, so a chunk of n rows contributes n·loss and n·gradient
(in float64) and the sum is divided by the total rows once; sum_squared's partials are summed as they are.
The chunks are computed by a module compiled without the L2 term, which the client adds once, from the
parameters, to the summed loss and the weights' gradients. The result equals the in-memory one up to the
order of the sums. forward, predict and predict_proba map the module over the row chunks.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from gradc.distributed.remote import Kernel, kernel_of

SPLIT_EVERY = 8   # partials summed per task of the tree reduction


def rows_aligned(X: Any, Y: Any = None) -> tuple[da.Array, da.Array | None]:
    """X (and Y) as dask arrays split into the same row chunks, each chunk holding whole rows (X's columns,
    Y's outputs in one chunk). The row chunks are X's, or Y's when only Y is a dask array."""
    lead = X if isinstance(X, da.Array) or Y is None or not isinstance(Y, da.Array) else Y
    rows = lead.chunks[0] if isinstance(lead, da.Array) else "auto"
    X = _rows(X, rows)
    return X, None if Y is None else _rows(Y, X.chunks[0])


def _rows(a: Any, rows: Any) -> da.Array:
    a = a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks=-1)
    if a.ndim == 0:
        raise ValueError(f"expected an array of rows, got shape {a.shape}")
    return a.rechunk((rows, *(-1,) * (a.ndim - 1)))


@functools.lru_cache(maxsize=16)
def _data_kernel(compiled_source: str, spec: Any) -> Kernel:
    """The Kernel of the network's module without its L2 term (its own when l2 is 0)."""
    from gradc.pipeline import compile_mlp

    return kernel_of(compile_mlp(dataclasses.replace(spec, l2=0.0)))


def data_kernel(net) -> Kernel:
    """The Kernel whose loss is the data term alone (see the module's docstring)."""
    return kernel_of(net) if net.spec.l2 == 0 else _data_kernel(net.source, net.spec)


def weighted(net) -> bool:
    """Whether the loss is a mean over rows (every loss but sum_squared): partials are then weighted by rows."""
    return net.spec.loss != "sum_squared"


def partial(kernel: Kernel, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, weigh: bool,
            grads: bool = True) -> tuple[int, float, dict[str, np.ndarray]]:
    """One chunk's share: (rows, loss sum, gradient sums in float64), each loss and gradient multiplied by the
    chunk's rows where the loss is a mean. A chunk without rows contributes nothing."""
    n = int(X.shape[0])
    if n == 0:
        return 0, 0.0, {}
    module = kernel.module
    weight = float(n) if weigh else 1.0
    if not grads:
        return n, weight * float(module.loss(params, X, Y)), {}
    value, gradients = module.loss_and_grad(params, X, Y)
    return n, weight * float(value), {k: weight * g.astype(np.float64) for k, g in gradients.items()}


def add(*parts: tuple[int, float, dict[str, np.ndarray]]) -> tuple[int, float, dict[str, np.ndarray]]:
    """The sum of partials (rows, loss, gradients), in the order given."""
    rows, total, grads = 0, 0.0, {}
    for n, value, g in parts:
        rows += n
        total += value
        for name, array in g.items():
            grads[name] = array.copy() if name not in grads else grads[name] + array
    return rows, total, grads


def tree_sum(parts: Sequence[Any], split_every: int = SPLIT_EVERY) -> Any:
    """The delayed sum of delayed partials, `split_every` at a time (a tree: depth log(chunks))."""
    parts = list(parts)
    while len(parts) > 1:
        parts = [dask.delayed(add, pure=True)(*parts[k:k + split_every]) for k in range(0, len(parts), split_every)]
    return parts[0]


def finish(net, params: dict[str, np.ndarray], summed: tuple[int, float, dict[str, np.ndarray]],
           grads: bool = True) -> Any:
    """The loss (and gradients, shaped and typed like params) of the whole data from the summed partials:
    divided by the rows where the loss is a mean, with the L2 term added once."""
    rows, total, g = summed
    if rows == 0:
        raise ValueError(f"X must have shape (N, {net.spec.input}) with N >= 1 to compute a loss, got 0 rows")
    scale = 1.0 / rows if weighted(net) else 1.0
    l2 = net.spec.l2
    weights = [name for name in net.param_names if name.startswith("W")]
    value = total * scale
    if l2:
        value += l2 / 2.0 * sum(float(np.sum(np.square(params[w], dtype=np.float64))) for w in weights)
    if not grads:
        return value
    dtype = np.dtype(net.spec.dtype)
    out = {}
    for name in net.param_names:
        gradient = g[name] * scale
        if l2 and name in weights:
            gradient = gradient + l2 * np.asarray(params[name], np.float64)
        out[name] = gradient.astype(dtype)
    return value, out


def _plain(params: Any) -> dict[str, np.ndarray]:
    """params as a dict of NumPy arrays (what travels to the workers)."""
    return {name: np.asarray(value) for name, value in dict(params).items()}


def loss_and_grad(net, params: dict[str, np.ndarray], X: Any, Y: Any, grads: bool = True) -> Any:
    """MLPModule.loss_and_grad (or, without `grads`, loss) over dask X and Y: concrete numbers, computed by
    the current distributed Client or Dask's default scheduler."""
    X, Y = rows_aligned(X, Y)
    params = _plain(params)
    kernel = dask.delayed(data_kernel(net), pure=True)
    shared = dask.delayed(params, pure=True)
    parts = [dask.delayed(partial, pure=True)(kernel, shared, x, y, weighted(net), grads)
             for x, y in zip(X.to_delayed().ravel(), Y.to_delayed().ravel())]
    (summed,) = dask.compute(tree_sum(parts))
    return finish(net, params, summed, grads)


def _apply(X: np.ndarray, kernel: Kernel, method: str, params: dict[str, np.ndarray]) -> np.ndarray:
    """One row chunk's forward, predict or predict_proba."""
    return getattr(kernel.module, method)(params, X)


def rowwise(net, method: str, params: dict[str, np.ndarray], X: Any) -> da.Array:
    """forward, predict or predict_proba of dask X: a dask array of the same row chunks."""
    loss = net.spec.loss
    if method == "predict_proba" and loss not in ("softmax_cross_entropy", "binary_cross_entropy"):
        return getattr(net.module, method)(params, np.zeros((1, net.spec.input)))   # the module's ValueError
    X, _ = rows_aligned(X)
    if X.ndim != 2 or X.shape[1] != net.spec.input:
        raise ValueError(f"X must have shape (N, {net.spec.input}), got {X.shape}")
    outputs = net.spec.layers[-1].units
    labels = method == "predict" and loss in ("softmax_cross_entropy", "hinge")
    dtype = np.int64 if method == "predict" and loss != "mse" and loss != "sum_squared" else np.dtype(net.spec.dtype)
    kernel = dask.delayed(data_kernel(net), pure=True)   # L2 changes no output: the workers' one module
    shared = dask.delayed(_plain(params), pure=True)
    if labels:
        return X.map_blocks(_apply, kernel, method, shared, meta=np.empty((0,), dtype), drop_axis=1,
                            chunks=(X.chunks[0],))
    return X.map_blocks(_apply, kernel, method, shared, meta=np.empty((0, 0), dtype), chunks=(X.chunks[0], (outputs,)))

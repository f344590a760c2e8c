"""Hand-written NumPy backprop for MLPs: the independent oracle for gradc's generated gradients.

Written in the staged style of the CS231n / Nielsen lecture notes, deliberately without SymPy, Numba
or any other gradc module (only the spec dataclasses are read, by attribute).  Conventions:

* batch-major data: ``X`` is ``(N, input)``; ``W_i`` is ``(fan_in, fan_out)``, ``b_i`` is ``(fan_out,)``;
* layer ``i``: ``z_i = a_{i-1} @ W_i + b_i`` and ``a_i = act_i(z_i)``, with ``a_0 = X``;
* parameters are named ``W1, b1, W2, b2, ...`` (``b_i`` absent when the layer has ``bias=False``);
* everything is computed in ``spec.dtype``; losses are returned as Python floats and gradients as
  arrays of ``spec.dtype`` shaped like the parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gradc.frontend.spec import LayerSpec, MLPSpec

Array = np.ndarray

# ---------------------------------------------------------------- activations: (f(z), f'(z) from z, a)

_GELU_C = 0.7978845608028654  # sqrt(2 / pi)
_GELU_K = 0.044715


def _sigmoid(z: Array) -> Array:
    """Logistic function without overflow: only ``exp(-|z|)`` (which is <= 1) is ever evaluated."""
    e = np.exp(-np.abs(z))
    s = 1 / (1 + e)
    return np.where(z >= 0, s, e * s)


def _softplus(z: Array) -> Array:
    """``log(1 + exp(z))`` computed stably as ``log1p(exp(-|z|)) + max(z, 0)``."""
    return np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0)


def _activation_table(alpha: float | None) -> dict[str, tuple[Callable, Callable]]:
    """name -> (f(z), df(z, a)); ``df`` reuses the cached forward value ``a = f(z)`` where it can."""
    slope = 0.01 if alpha is None else float(alpha)  # leaky_relu negative slope
    scale = 1.0 if alpha is None else float(alpha)  # elu saturation value

    def gelu(z: Array) -> Array:
        return 0.5 * z * (1 + np.tanh(_GELU_C * (z + _GELU_K * z**3)))

    def d_gelu(z: Array, a: Array) -> Array:
        t = np.tanh(_GELU_C * (z + _GELU_K * z**3))
        return 0.5 * (1 + t) + 0.5 * z * (1 - t**2) * _GELU_C * (1 + 3 * _GELU_K * z**2)

    return {
        "identity": (lambda z: z, lambda z, a: np.ones_like(z)),
        "sigmoid": (_sigmoid, lambda z, a: a * (1 - a)),
        "tanh": (np.tanh, lambda z, a: 1 - a**2),
        "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
        "leaky_relu": (
            lambda z: np.maximum(z, slope * z),
            lambda z, a: np.where(z > 0, 1, slope).astype(z.dtype),
        ),
        "elu": (
            lambda z: np.where(z > 0, z, scale * np.expm1(np.minimum(z, 0))),
            lambda z, a: np.where(z > 0, 1, a + scale).astype(z.dtype),  # alpha*exp(z) = a + alpha for z <= 0
        ),
        "softplus": (_softplus, lambda z, a: _sigmoid(z)),
        "gelu": (gelu, d_gelu),
        "silu": (lambda z: z * _sigmoid(z), lambda z, a: _sigmoid(z) + a * (1 - _sigmoid(z))),
    }


def _activation(layer: LayerSpec) -> tuple[Callable, Callable]:
    """The (f, df) pair of one layer; ``custom`` has no reference, unknown names are a ValueError."""
    if layer.activation == "custom":
        raise NotImplementedError("custom activations have no hand-written reference")
    table = _activation_table(layer.alpha)
    if layer.activation not in table:
        raise ValueError(f"unknown activation {layer.activation!r}; expected one of {sorted(table)}")
    return table[layer.activation]


# ---------------------------------------------------------------- parameters and forward pass


def param_shapes(spec: MLPSpec) -> dict[str, tuple[int, ...]]:
    """Ordered parameter shapes (``MLPSpec.param_shapes``)."""
    return spec.param_shapes()


def _cast_params(spec: MLPSpec, params: Mapping[str, Array]) -> dict[str, Array]:
    """Views of ``params`` in ``spec.dtype``; a missing key or wrong shape is a KeyError / ValueError."""
    dtype = np.dtype(spec.dtype)
    out = {}
    for name, shape in param_shapes(spec).items():
        if name not in params:
            raise KeyError(f"missing parameter {name!r} (expected shape {shape})")
        value = np.asarray(params[name], dtype=dtype)
        if value.shape != shape:
            raise ValueError(f"parameter {name!r} has shape {value.shape}, expected {shape}")
        out[name] = value
    return out


def _forward_cache(spec: MLPSpec, params: dict[str, Array], X: Array) -> list[tuple[Array, Array, Array]]:
    """Run the network and keep, per layer, ``(a_prev, z, a)`` for the backward pass."""
    a = np.asarray(X, dtype=spec.dtype)
    if a.ndim != 2 or a.shape[1] != spec.input:
        raise ValueError(f"X has shape {a.shape}, expected (N, {spec.input})")
    cache = []
    for i, layer in enumerate(spec.layers, start=1):
        f, _ = _activation(layer)
        z = a @ params[f"W{i}"]
        if layer.bias:
            z = z + params[f"b{i}"]
        a_prev, a = a, f(z)
        cache.append((a_prev, z, a))
    return cache


def forward(spec: MLPSpec, params: Mapping[str, Array], X: Array) -> Array:
    """The last layer's activation ``a_L``, shape ``(N, units_L)``, in ``spec.dtype``."""
    return _forward_cache(spec, _cast_params(spec, params), X)[-1][2]


# ---------------------------------------------------------------- losses: value and d_a (or d_z)


def _targets(spec: MLPSpec, Y: Array, a: Array) -> Array:
    """``Y`` as an array shaped like ``a``: integer labels (N,) become one-hot for the classifier losses."""
    Y = np.asarray(Y)
    N, K = a.shape
    if Y.ndim == 1 and spec.loss in ("softmax_cross_entropy", "hinge"):
        if not np.issubdtype(Y.dtype, np.integer):
            raise ValueError(f"1-D labels must be integers, got dtype {Y.dtype}")
        return np.eye(K, dtype=a.dtype)[Y]
    if Y.ndim == 1 and K == 1:
        Y = Y[:, None]
    if Y.shape != (N, K):
        raise ValueError(f"Y has shape {Y.shape}, expected {(N, K)}")
    return Y.astype(a.dtype, copy=False)


def _mse(z: Array, a: Array, y: Array) -> tuple[float, Array]:
    """Nielsen's quadratic cost ``1/(2N) sum ||a - y||^2``; d_a = (a - y) / N."""
    N = a.shape[0]
    diff = a - y
    return np.sum(diff**2) / (2 * N), diff / N


def _sum_squared(z: Array, a: Array, y: Array) -> tuple[float, Array]:
    """CS231n's ``sum (a - y)^2``; d_a = 2 (a - y)."""
    diff = a - y
    return np.sum(diff**2), 2.0 * diff


def _softmax_cross_entropy(z: Array, a: Array, y: Array) -> tuple[float, Array]:
    """``mean_n logsumexp(a_n) - a_n . y_n`` (row max subtracted); d_a = (softmax(a) - y) / N."""
    N = a.shape[0]
    m = a.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(a - m).sum(axis=1, keepdims=True))
    value = np.sum(lse[:, 0] - np.sum(a * y, axis=1)) / N
    return value, (np.exp(a - lse) - y) / N


def _hinge(z: Array, a: Array, y: Array) -> tuple[float, Array]:
    """Multiclass SVM ``1/N sum_n sum_{j != y_n} max(0, a_nj - a_n,y_n + 1)``; margins > 0 count."""
    N = a.shape[0]
    correct = np.sum(a * y, axis=1, keepdims=True)
    margins = (a - correct + 1) * (1 - y)  # the correct class contributes nothing
    active = (margins > 0).astype(a.dtype)
    d_a = active - y * active.sum(axis=1, keepdims=True)
    return np.sum(np.maximum(margins, 0)) / N, d_a / N


def _binary_cross_entropy(z: Array, a: Array, y: Array) -> tuple[float, Array]:
    """``-1/N sum [y log a + (1 - y) log(1 - a)]`` on ``a`` directly; d_a = (a - y) / (a (1 - a) N)."""
    N = a.shape[0]
    value = -np.sum(y * np.log(a) + (1 - y) * np.log(1 - a)) / N
    return value, (a - y) / (a * (1 - a) * N)


def _binary_cross_entropy_logits(z: Array, a: Array, y: Array) -> tuple[float, Array]:
    """BCE after a sigmoid, from the logits: ``1/N sum softplus(z) - y z``; d_z = (sigmoid(z) - y) / N."""
    N = z.shape[0]
    return np.sum(_softplus(z) - y * z) / N, (_sigmoid(z) - y) / N


_LOSSES: dict[str, Callable[[Array, Array, Array], tuple[float, Array]]] = {
    "mse": _mse,
    "sum_squared": _sum_squared,
    "softmax_cross_entropy": _softmax_cross_entropy,
    "hinge": _hinge,
    "binary_cross_entropy": _binary_cross_entropy,
}


def _loss_and_delta(spec: MLPSpec, z: Array, a: Array, Y: Array) -> tuple[float, Array, bool]:
    """(loss without l2, its gradient, True if that gradient is already w.r.t. ``z_L`` instead of ``a_L``)."""
    if spec.loss not in _LOSSES:
        raise ValueError(f"unknown loss {spec.loss!r}; expected one of {sorted(_LOSSES)}")
    y = _targets(spec, Y, a)
    if spec.loss == "binary_cross_entropy" and spec.layers[-1].activation == "sigmoid":
        value, d_z = _binary_cross_entropy_logits(z, a, y)
        return value, d_z, True
    value, d_a = _LOSSES[spec.loss](z, a, y)
    return value, d_a, False


def _l2_penalty(spec: MLPSpec, params: dict[str, Array]) -> float:
    """``(l2 / 2) sum_i ||W_i||^2`` over weights only (biases are not regularized)."""
    if not spec.l2:
        return 0.0
    return float(spec.l2) / 2 * sum(np.sum(params[f"W{i}"] ** 2) for i in range(1, len(spec.layers) + 1))


# ---------------------------------------------------------------- public entry points


def loss(spec: MLPSpec, params: Mapping[str, Array], X: Array, Y: Array) -> float:
    """The spec's loss (plus its l2 penalty) at ``params`` on the batch ``(X, Y)``, as a Python float."""
    p = _cast_params(spec, params)
    _, z, a = _forward_cache(spec, p, X)[-1]
    value, _, _ = _loss_and_delta(spec, z, a, Y)
    return float(value + _l2_penalty(spec, p))


def loss_and_grad(
    spec: MLPSpec, params: Mapping[str, Array], X: Array, Y: Array
) -> tuple[float, dict[str, Array]]:
    """``(loss, grads)``: grads has the keys, order, shapes of ``param_shapes(spec)`` and ``spec.dtype``."""
    p = _cast_params(spec, params)
    cache = _forward_cache(spec, p, X)
    _, z_L, a_L = cache[-1]
    value, delta, is_d_z = _loss_and_delta(spec, z_L, a_L, Y)

    L, l2 = len(spec.layers), float(spec.l2 or 0.0)
    d_z = delta if is_d_z else delta * _activation(spec.layers[-1])[1](z_L, a_L)
    grads: dict[str, Array] = {}
    for i in range(L, 0, -1):
        a_prev, _, _ = cache[i - 1]
        W = p[f"W{i}"]
        grads[f"W{i}"] = a_prev.T @ d_z + (l2 * W if l2 else 0)
        if spec.layers[i - 1].bias:
            grads[f"b{i}"] = d_z.sum(axis=0)
        if i > 1:
            d_a = d_z @ W.T
            _, z, a = cache[i - 2]
            d_z = d_a * _activation(spec.layers[i - 2])[1](z, a)

    ordered = {name: grads[name] for name in param_shapes(spec)}
    return float(value + _l2_penalty(spec, p)), ordered

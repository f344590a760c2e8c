"""Support code for generated MLP modules: the losses, each a fused loop over the batch, and their
gradients with respect to the last layer (the op table's loss records print as calls of these).

The text below the RUNTIME marker is copied into generated MLP modules that use it, after
runtime/mlp.py's (whose `_JIT` it reads): numpy, numba and the standard library only. The imports
above the marker are for this file alone.
"""
from gradc.runtime.mlp import _JIT  # noqa: I001 (above the marker: not copied)
from gradc.runtime.vector_math import _exp

# --- RUNTIME ---
import numba as nb
import numpy as np


@nb.njit(**_JIT)
def _scaled_diff(a, y, c):
    """c·(a - y) in a's dtype (Numba would type `c * (a - y)` as float64 for float32 arrays)."""
    out = np.empty_like(a)
    for r in range(a.shape[0]):
        for k in range(a.shape[1]):
            out[r, k] = c * (a[r, k] - y[r, k])
    return out


@nb.njit(**_JIT)
def _mse(a, y):
    total = 0.0
    for r in range(a.shape[0]):
        for k in range(a.shape[1]):
            d = a[r, k] - y[r, k]
            total += d * d
    return 0.5 * total / a.shape[0]


@nb.njit(**_JIT)
def _mse_grad(a, y):
    return _scaled_diff(a, y, 1.0 / a.shape[0])


@nb.njit(**_JIT)
def _sum_squared(a, y):
    total = 0.0
    for r in range(a.shape[0]):
        for k in range(a.shape[1]):
            d = a[r, k] - y[r, k]
            total += d * d
    return total


@nb.njit(**_JIT)
def _sum_squared_grad(a, y):
    return _scaled_diff(a, y, 2.0)


@nb.njit(**_JIT)
def _shifted_exp(z, r, e):
    """e[k] = exp(z[r, k] - max_k z[r, k]) for row r (vectorised: _exp, no reduction in that loop);
    returns the row max."""
    m = z[r, 0]
    for k in range(1, z.shape[1]):
        m = max(m, z[r, k])
    for k in range(z.shape[1]):
        e[k] = _exp(z[r, k] - m)
    return m


@nb.njit(**_JIT)
def _softmax_ce(z, y):
    """Mean over rows of logsumexp(z_r) - z_r·y_r, shifted by the row max (stable at |z| ~ 1e3)."""
    e = np.empty(z.shape[1], dtype=np.float64)
    total = 0.0
    for r in range(z.shape[0]):
        m = _shifted_exp(z, r, e)
        total += m + np.log(np.sum(e))
        for k in range(z.shape[1]):
            total -= z[r, k] * y[r, k]
    return total / z.shape[0]


@nb.njit(**_JIT)
def _softmax_ce_grad(z, y):
    """(softmax(z) - y) / N."""
    out = np.empty_like(z)
    e = np.empty(z.shape[1], dtype=np.float64)
    for r in range(z.shape[0]):
        _shifted_exp(z, r, e)
        scale = 1.0 / (np.sum(e) * z.shape[0])
        for k in range(z.shape[1]):
            out[r, k] = e[k] * scale - y[r, k] / z.shape[0]
    return out


@nb.njit(**_JIT)
def _bce(a, y):
    total = 0.0
    for r in range(a.shape[0]):
        for k in range(a.shape[1]):
            total -= y[r, k] * np.log(a[r, k]) + (1.0 - y[r, k]) * np.log(1.0 - a[r, k])
    return total / a.shape[0]


@nb.njit(**_JIT)
def _bce_grad(a, y):
    out = np.empty_like(a)
    for r in range(a.shape[0]):
        for k in range(a.shape[1]):
            out[r, k] = (a[r, k] - y[r, k]) / (a[r, k] * (1.0 - a[r, k])) / a.shape[0]
    return out


@nb.njit(**_JIT)
def _bce_logits(z, y):
    """Mean over rows of Σ softplus(z) - y·z: binary cross-entropy of σ(z) without forming σ(z)."""
    total = 0.0
    for r in range(z.shape[0]):
        for k in range(z.shape[1]):
            u = z[r, k]
            total += max(u, 0.0) + np.log1p(np.exp(-abs(u))) - y[r, k] * u
    return total / z.shape[0]


@nb.njit(**_JIT)
def _bce_logits_grad(z, y):
    out = np.empty_like(z)
    for r in range(z.shape[0]):
        for k in range(z.shape[1]):
            out[r, k] = (1.0 / (1.0 + np.exp(-z[r, k])) - y[r, k]) / z.shape[0]
    return out


@nb.njit(**_JIT)
def _hinge(a, y):
    """Multiclass SVM loss, mean over rows: Σ_{j≠y} max(0, a_j - a_y + 1)."""
    total = 0.0
    for r in range(a.shape[0]):
        correct = 0.0
        for k in range(a.shape[1]):
            correct += a[r, k] * y[r, k]
        for k in range(a.shape[1]):
            total += max(0.0, a[r, k] - correct + 1.0) * (1.0 - y[r, k])
    return total / a.shape[0]


@nb.njit(**_JIT)
def _hinge_grad(a, y):
    out = np.zeros_like(a)
    for r in range(a.shape[0]):
        correct = 0.0
        for k in range(a.shape[1]):
            correct += a[r, k] * y[r, k]
        hits = 0.0
        for k in range(a.shape[1]):
            if y[r, k] == 0.0 and a[r, k] - correct + 1.0 > 0.0:
                out[r, k] = 1.0 / a.shape[0]
                hits += 1.0
        for k in range(a.shape[1]):
            out[r, k] -= y[r, k] * hits / a.shape[0]
    return out

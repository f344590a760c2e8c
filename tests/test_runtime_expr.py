"""The public functions' code of expression modules (gradc/runtime/expr.py: `_values`, `_values_and_grads`),
run here as ordinary Python on the module constants and kernels of a small program set by hand:
f = x·y, or the sequence (x·y, x)."""

from __future__ import annotations

import numpy as np
import pytest

from gradc.runtime import expr as runtime


def _at(a, i):
    return a[i] if np.ndim(a) else a


def _put(out, i, v):
    if out.ndim == 1:
        out[i] = v
    else:   # a shared scalar's gradient: summed per chunk
        out[i // runtime.CHUNK, 0] += v


def _forward_kernel(x, y, *outs):
    for i in range(outs[0].shape[0]):
        _put(outs[0], i, _at(x, i) * _at(y, i))
        if len(outs) == 2:
            _put(outs[1], i, _at(x, i))


def _row_kernel(x, y, row):
    _forward_kernel(x, y, *row.T)


def _value_and_grad_kernel(x, y, *rest):
    sequence = len(rest) == 6
    weights, (*outs, d_x, d_y) = (rest[:2], rest[2:]) if sequence else ((1.0,), rest)
    _forward_kernel(x, y, *outs)
    for i in range(outs[0].shape[0]):
        seed = _at(weights[0], i)
        _put(d_x, i, seed * _at(y, i) + (_at(weights[1], i) if sequence else 0.0))
        _put(d_y, i, seed * _at(x, i))


@pytest.fixture
def product(monkeypatch):
    """The runtime as a module computing f = x·y would have it."""
    for name, value in {"ARGS": ("x", "y"), "ARG_SHAPES": ((), ()), "WRT_INDEX": (0, 1), "OUTPUTS": ("f",),
                        "SEQUENCE": False, "DTYPE": np.dtype("float64"), "_forward_kernel": _forward_kernel,
                        "_value_and_grad_kernel": _value_and_grad_kernel, "_row_kernel": _row_kernel,
                        "_serial_twin": lambda kernel: kernel}.items():
        monkeypatch.setattr(runtime, name, value)
    return runtime


@pytest.fixture
def pair(product, monkeypatch):
    """... and computing the sequence (x·y, x), weighted by cotangents."""
    monkeypatch.setattr(runtime, "OUTPUTS", ("f0", "f1"))
    monkeypatch.setattr(runtime, "SEQUENCE", True)
    return runtime


def test_values_broadcast_like_numpy(product):
    x, y = np.arange(3.0).reshape(3, 1), np.array([1.0, 2.0])
    np.testing.assert_array_equal(product._values((x, y)), x * y)
    assert product._values((2.0, 3.0)) == 6.0 and product._values((2.0, 3.0)).shape == ()
    with pytest.raises(ValueError, match=r"inputs do not broadcast together \(x: \(3,\), y: \(2,\)\)"):
        product._values((np.ones(3), np.ones(2)))
    with pytest.raises(TypeError, match=r"expected 2 inputs \(x, y\), got 1"):
        product._values((1.0,))


def test_values_and_grads_shape_each_gradient_like_its_input(product):
    x, y = np.arange(3.0).reshape(3, 1), np.array([1.0, 2.0])
    value, (d_x, d_y) = product._values_and_grads((x, y))
    np.testing.assert_array_equal(value, x * y)
    np.testing.assert_array_equal(d_x, np.full((3, 1), 3.0))       # summed over the broadcast axis
    np.testing.assert_array_equal(d_y, np.full(2, 3.0))
    value, (d_x, d_y) = product._values_and_grads((np.arange(4.0), 2.0))
    assert d_y == 6.0 and type(d_y) is np.float64 and d_x.shape == (4,)


def test_a_sequence_gives_tuples_weighted_by_cotangents(pair):
    x, y = np.arange(3.0), np.full(3, 2.0)
    values = pair._values((x, y))
    assert isinstance(values, tuple) and len(values) == 2
    np.testing.assert_array_equal(values[1], x)
    (v0, v1), (d_x, d_y) = pair._values_and_grads((x, y), [2.0, x])
    np.testing.assert_array_equal(d_x, 2.0 * y + x)
    np.testing.assert_array_equal(d_y, 2.0 * x)
    _, (d_x, _) = pair._values_and_grads((x, y))                      # cotangents default to 1
    np.testing.assert_array_equal(d_x, y + 1.0)
    with pytest.raises(ValueError, match=r"expected 2 cotangents \(one per output\), got 1"):
        pair._values_and_grads((x, y), [1.0])
    with pytest.raises(ValueError, match=r"cotangent of f1 has shape \(2,\); it must broadcast to \(3,\)"):
        pair._values_and_grads((x, y), [1.0, np.ones(2)])


def test_the_placeholders_say_they_stand_in_for_a_written_module():
    with pytest.raises(NotImplementedError):
        runtime._forward_kernel()
    assert runtime.SEQUENCE is False and runtime.DTYPE == np.float64

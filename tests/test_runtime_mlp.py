"""The public functions of MLP modules that are the same for every network (gradc/runtime/mlp.py:
init_params, forward, loss, sgd_step), run here as ordinary Python on the constants and kernels of a
small network set by hand (one linear layer, 2 inputs -> 1 output, loss ½·mean((XW + b - Y)²))."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest

from gradc.runtime import mlp as runtime


@nb.njit
def _forward(X, W1, b1):
    if X.shape[1] != 2:   # as a written kernel's shape guard: the public function then says what is wrong
        raise ValueError("an array's shape does not fit the network")
    out = np.empty((X.shape[0], 1))
    for r in range(X.shape[0]):
        out[r, 0] = X[r, 0] * W1[0, 0] + X[r, 1] * W1[1, 0] + b1[0]
    return out


@nb.njit
def _loss(X, Y, W1, b1):
    if X.shape[1] != 2 or Y.shape[0] != X.shape[0]:
        raise ValueError("an array's shape does not fit the network")
    total = 0.0
    for r in range(X.shape[0]):
        d = X[r, 0] * W1[0, 0] + X[r, 1] * W1[1, 0] + b1[0] - Y[r, 0]
        total += d * d
    return 0.5 * total / X.shape[0]


def _loss_and_grad(params, X, Y):
    X, Y = np.asarray(X, float), np.asarray(Y, float).reshape(-1, 1)
    residual = X @ params["W1"] + params["b1"] - Y
    return 0.5 * float(np.mean(residual ** 2)), {"W1": X.T @ residual / len(X), "b1": residual.mean(axis=0)}


@pytest.fixture
def linear(monkeypatch):
    """The runtime as a module of that network would have it."""
    for name, value in {"PARAM_SHAPES": {"W1": (2, 1), "b1": (1,)}, "PARAM_INITS": {"W1": "he", "b1": "zeros"},
                        "INPUT": 2, "OUTPUT": 1, "LABELS_OK": False, "DTYPE": np.dtype("float64"),
                        "_forward": _forward, "_loss": _loss, "loss_and_grad": _loss_and_grad}.items():
        monkeypatch.setattr(runtime, name, value)
    return runtime


def test_init_params_follows_the_constants(linear):
    params = linear.init_params(seed=4)
    assert {k: v.shape for k, v in params.items()} == {"W1": (2, 1), "b1": (1,)}
    assert all(v.dtype == np.float64 for v in params.values()) and not params["b1"].any()
    np.testing.assert_array_equal(params["W1"], linear.init_params(seed=4)["W1"])
    assert not np.array_equal(params["W1"], linear.init_params(seed=5)["W1"])


def test_forward_and_loss_call_the_kernels_through_the_validating_path(linear):
    params = {"W1": np.array([[1.0], [2.0]]), "b1": np.array([0.5])}
    X = [[1.0, 1.0], [0.0, 2.0]]   # a list: converted
    np.testing.assert_array_equal(linear.forward(params, X), [[3.5], [4.5]])
    assert linear.loss(params, X, np.array([3.5, 2.5])) == pytest.approx(1.0)   # Y of shape (N,) for one output
    with pytest.raises(ValueError, match=r"X must have shape \(N, 2\), got \(2, 3\)"):
        linear.forward(params, np.ones((2, 3)))
    with pytest.raises(ValueError, match="params missing b1"):
        linear.loss({"W1": params["W1"]}, X, np.ones(2))


def test_sgd_step_updates_in_place_and_returns_the_loss_before(linear):
    params = {"W1": np.array([[1.0], [2.0]]), "b1": np.array([0.5])}
    X, Y = np.array([[1.0, 1.0], [0.0, 2.0]]), np.array([3.5, 2.5])
    before, grads = _loss_and_grad(params, X, Y)
    W1 = params["W1"]
    assert linear.sgd_step(params, X, Y, 0.1) == before
    assert params["W1"] is W1   # in place
    np.testing.assert_allclose(params["W1"], np.array([[1.0], [2.0]]) - 0.1 * grads["W1"])
    np.testing.assert_allclose(params["b1"], np.array([0.5]) - 0.1 * grads["b1"])


def test_sgd_step_checks_every_param_before_changing_any(linear):
    params = {"W1": np.array([[1.0], [2.0]]), "b1": np.array([1], dtype=np.int64)}
    with pytest.raises(ValueError, match="sgd_step updates params in place: param b1 must be a float ndarray, "
                                         "got int64"):
        linear.sgd_step(params, np.ones((2, 2)), np.ones(2), 0.1)
    np.testing.assert_array_equal(params["W1"], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="param b1 must be a float ndarray, got list"):
        linear.sgd_step({**params, "b1": [1.0]}, np.ones((2, 2)), np.ones(2), 0.1)


def test_the_placeholders_say_they_stand_in_for_a_written_module():
    with pytest.raises(NotImplementedError):
        runtime.loss_and_grad({}, None, None)

"""Tests of the hand-written NumPy backprop oracle (gradc.tools.reference) against finite differences,
against the literal CS231n two-layer code, and for its numerical-stability and dtype contracts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gradc.frontend.spec import LayerSpec, MLPSpec, load_spec
from gradc.tools.reference import forward, loss, loss_and_grad, param_shapes

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu")
LOSSES = ("mse", "sum_squared", "softmax_cross_entropy", "binary_cross_entropy", "hinge")
N = 6


def make_spec(
    activation: str,
    loss_name: str,
    *,
    l2: float = 0.0,
    bias: tuple[bool, bool] = (True, True),
    last: str | None = None,
    dtype: str = "float64",
    sizes: tuple[int, int, int] = (5, 4, 3),
) -> MLPSpec:
    """A validated 5-4-3 spec: ``activation`` on both layers unless ``last`` names the output one."""
    layers = [
        {"units": sizes[1], "activation": activation, "bias": bias[0]},
        {"units": sizes[2], "activation": last or activation, "bias": bias[1]},
    ]
    return load_spec({"input": sizes[0], "layers": layers, "loss": loss_name, "l2": l2, "dtype": dtype})


def make_params(spec: MLPSpec, seed: int = 0, scale: float = 0.7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: scale * rng.standard_normal(shape) for name, shape in param_shapes(spec).items()}


def make_targets(spec: MLPSpec, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    K = spec.layers[-1].units
    if spec.loss in ("softmax_cross_entropy", "hinge"):
        return np.eye(K)[rng.integers(0, K, size=N)]
    if spec.loss == "binary_cross_entropy":
        return rng.uniform(0.0, 1.0, size=(N, K))
    return rng.standard_normal((N, K))


def numeric_grad(spec: MLPSpec, params: dict, X: np.ndarray, Y: np.ndarray, h: float = 1e-6) -> dict:
    """Central finite differences of ``loss`` w.r.t. every parameter entry."""
    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus = {**params, name: value.copy()}
            minus = {**params, name: value.copy()}
            plus[name][idx] += h
            minus[name][idx] -= h
            g[idx] = (loss(spec, plus, X, Y) - loss(spec, minus, X, Y)) / (2 * h)
        grads[name] = g
    return grads


@pytest.mark.parametrize("bias", [(True, True), (False, True)], ids=["bias", "no_bias1"])
@pytest.mark.parametrize("l2", [0.0, 0.3], ids=["l2=0", "l2=0.3"])
@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_match_finite_differences(activation, loss_name, l2, bias):
    spec = make_spec(activation, loss_name, l2=l2, bias=bias)
    params = make_params(spec)
    if loss_name == "binary_cross_entropy" and activation != "sigmoid":
        # The naive BCE path needs a_L in (0, 1): small output weights around a bias of 0.3 keep it there.
        params["W2"] *= 0.05
        params["b2"] = np.full(spec.layers[-1].units, 0.3)
    X = np.random.default_rng(2).standard_normal((N, spec.input))
    Y = make_targets(spec)

    value, grads = loss_and_grad(spec, params, X, Y)
    assert np.isfinite(value)
    assert value == pytest.approx(loss(spec, params, X, Y), rel=1e-12)
    assert list(grads) == list(param_shapes(spec))
    expected = numeric_grad(spec, params, X, Y)
    for name in params:
        assert grads[name].shape == params[name].shape
        assert grads[name].dtype == np.float64
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("activation,alpha", [("leaky_relu", 0.2), ("elu", 0.5)])
def test_alpha_is_used(activation, alpha):
    base = make_spec(activation, "mse")
    layers = tuple(dataclasses.replace(layer, alpha=alpha) for layer in base.layers)
    spec = dataclasses.replace(base, layers=layers)
    params = make_params(spec)
    X = np.random.default_rng(2).standard_normal((N, spec.input))
    Y = make_targets(spec)
    assert loss(spec, params, X, Y) != pytest.approx(loss(base, params, X, Y))
    _, grads = loss_and_grad(spec, params, X, Y)
    expected = numeric_grad(spec, params, X, Y)
    for name in params:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-5, atol=1e-7, err_msg=name)
    z = np.array([[-2.0, 3.0]])
    identity = {"W1": np.eye(2)}
    layer = {"units": 2, "activation": activation, "bias": False}
    one = load_spec({"input": 2, "layers": [layer], "loss": "mse"})
    one = dataclasses.replace(one, layers=(dataclasses.replace(one.layers[0], alpha=alpha),))
    want = [-2.0 * alpha, 3.0] if activation == "leaky_relu" else [alpha * np.expm1(-2.0), 3.0]
    np.testing.assert_allclose(forward(one, identity, z)[0], want, rtol=1e-14)


@pytest.mark.parametrize("loss_name", ["softmax_cross_entropy", "hinge"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_integer_labels_equal_one_hot(loss_name, l2):
    spec = make_spec("tanh", loss_name, l2=l2)
    params = make_params(spec)
    X = np.random.default_rng(2).standard_normal((N, spec.input))
    labels = np.random.default_rng(3).integers(0, spec.layers[-1].units, size=N)
    one_hot = np.eye(spec.layers[-1].units)[labels]
    v_int, g_int = loss_and_grad(spec, params, X, labels)
    v_hot, g_hot = loss_and_grad(spec, params, X, one_hot)
    assert loss(spec, params, X, labels) == v_int
    assert v_int == pytest.approx(v_hot, rel=1e-14)
    for name in params:
        np.testing.assert_allclose(g_int[name], g_hot[name], rtol=1e-14, atol=1e-16, err_msg=name)


def test_softmax_cross_entropy_and_hinge_values_by_hand():
    spec = load_spec({"input": 3, "layers": [{"units": 3, "bias": False}], "loss": "hinge"})
    a = np.array([[3.0, 1.0, 2.5], [0.0, 0.5, -1.0]])
    labels = np.array([0, 2])
    eye = {"W1": np.eye(3)}
    # row 0: max(0, 1-3+1) + max(0, 2.5-3+1) = 0.5; row 1: max(0, 0+1+1) + max(0, 0.5+1+1) = 4.5
    assert loss(spec, eye, a, labels) == pytest.approx((0.5 + 4.5) / 2)
    ce = dataclasses.replace(spec, loss="softmax_cross_entropy")
    want = np.mean([np.log(np.exp(a[n]).sum()) - a[n, labels[n]] for n in range(2)])
    assert loss(ce, eye, a, labels) == pytest.approx(want, rel=1e-14)
    assert np.isfinite(loss(ce, eye, 1000 * a, labels))


def test_bce_with_sigmoid_output_is_stable_at_extreme_logits():
    spec = make_spec("tanh", "binary_cross_entropy", last="sigmoid")
    params = make_params(spec)
    params["W2"][:] = 0.0
    params["b2"] = np.array([1000.0, -1000.0, 1000.0])
    X = np.random.default_rng(2).standard_normal((N, spec.input))
    Y = np.tile([0.0, 1.0, 1.0], (N, 1))  # two rows' worth of confidently wrong, one confidently right
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        value, grads = loss_and_grad(spec, params, X, Y)
        assert forward(spec, params, X)[0] == pytest.approx([1.0, 0.0, 1.0])
    assert value == pytest.approx(2000.0)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    np.testing.assert_allclose(grads["b2"], [1.0, -1.0, 0.0], atol=1e-12)  # (sigmoid(z) - y) summed / N


def test_bce_with_sigmoid_output_matches_naive_formula_at_moderate_logits():
    spec = make_spec("tanh", "binary_cross_entropy", last="sigmoid")
    params = make_params(spec)
    X = np.random.default_rng(2).standard_normal((N, spec.input))
    Y = make_targets(spec)
    a = forward(spec, params, X)
    assert np.all((a > 0.01) & (a < 0.99))
    naive = -np.sum(Y * np.log(a) + (1 - Y) * np.log(1 - a)) / N
    assert loss(spec, params, X, Y) == pytest.approx(naive, rel=1e-12)


def test_sigmoid_does_not_overflow():
    layer = {"units": 1, "activation": "sigmoid", "bias": False}
    spec = load_spec({"input": 1, "layers": [layer], "loss": "mse"})
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        a = forward(spec, {"W1": np.ones((1, 1))}, np.array([[-1000.0], [1000.0], [0.0]]))
    np.testing.assert_array_equal(a[:, 0], [0.0, 1.0, 0.5])


@pytest.mark.parametrize("loss_name", LOSSES)
def test_float32_runs_and_returns_float32(loss_name):
    last = "sigmoid" if loss_name == "binary_cross_entropy" else None
    spec64 = make_spec("gelu", loss_name, l2=0.1, last=last)
    spec32 = dataclasses.replace(spec64, dtype="float32")
    params = make_params(spec64)
    X = np.random.default_rng(2).standard_normal((N, spec64.input))
    Y = make_targets(spec64)
    v32, g32 = loss_and_grad(spec32, params, X, Y)
    v64, g64 = loss_and_grad(spec64, params, X, Y)
    assert type(v32) is float and type(loss(spec32, params, X, Y)) is float
    assert forward(spec32, params, X).dtype == np.float32
    assert v32 == pytest.approx(v64, rel=1e-5)
    for name in params:
        assert g32[name].dtype == np.float32, name
        np.testing.assert_allclose(g32[name], g64[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_cs231n_two_layer_example():
    N_, D_in, H, D_out = 64, 1000, 100, 10
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N_, D_in)), rng.standard_normal((N_, D_out))
    w1, w2 = rng.standard_normal((D_in, H)), rng.standard_normal((H, D_out))

    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    loss_ref = np.square(y_pred - y).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2.T)
    grad_w1 = x.T.dot(grad_h * h * (1 - h))

    spec = MLPSpec(
        name="cs231n",
        input=D_in,
        layers=(
            LayerSpec(H, "sigmoid", "sigmoid(z)", bias=False),
            LayerSpec(D_out, "identity", "z", bias=False),
        ),
        loss="sum_squared",
    )
    assert param_shapes(spec) == {"W1": (D_in, H), "W2": (H, D_out)}
    params = {"W1": w1, "W2": w2}
    value, grads = loss_and_grad(spec, params, x, y)

    # Identical up to round-off: the stable sigmoid and the evaluation order of d_a * a(1 - a) differ
    # from the literal code by an ulp, so compare to 1e-13 of each array's largest entry.
    def same(actual, desired):
        np.testing.assert_allclose(actual, desired, rtol=1e-13, atol=1e-13 * np.abs(desired).max())

    same(forward(spec, params, x), y_pred)
    assert value == pytest.approx(loss_ref, rel=1e-13)
    same(grads["W2"], grad_w2)
    same(grads["W1"], grad_w1)


def test_param_shapes_order_and_forward_shape():
    spec = make_spec("relu", "mse", bias=(False, True), sizes=(7, 5, 2))
    assert list(param_shapes(spec).items()) == [("W1", (7, 5)), ("W2", (5, 2)), ("b2", (2,))]
    params = make_params(spec)
    assert forward(spec, params, np.zeros((3, 7))).shape == (3, 2)


def test_errors():
    spec = make_spec("tanh", "mse")
    params = make_params(spec)
    X, Y = np.zeros((N, 5)), np.zeros((N, 3))
    custom = load_spec({"input": 5, "layers": [{"units": 3, "activation": "z**2"}], "loss": "mse"})
    with pytest.raises(NotImplementedError, match="custom activations have no hand-written reference"):
        loss_and_grad(custom, make_params(custom), X, Y)
    with pytest.raises(ValueError, match="unknown loss"):
        loss(dataclasses.replace(spec, loss="nope"), params, X, Y)
    with pytest.raises(ValueError, match="W1"):
        loss(spec, {**params, "W1": np.zeros((4, 5))}, X, Y)
    with pytest.raises(KeyError, match="b2"):
        loss(spec, {k: v for k, v in params.items() if k != "b2"}, X, Y)
    with pytest.raises(ValueError, match="Y has shape"):
        loss(spec, params, X, np.zeros((N, 2)))

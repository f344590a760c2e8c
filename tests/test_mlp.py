"""Compiled MLPs against independent oracles: gradc.tools.reference (hand-written NumPy backprop), central
finite differences (for custom activations, which the reference cannot do), and hand-written forward
passes. Every activation and every loss is covered by the fast cases; the full product is slow."""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import gradc
from gradc.frontend.spec import load_spec
from gradc.tools import reference

N_IN, UNITS, N = 4, (5, 4, 3), 8
CUSTOM = "z*tanh(softplus(z))"
BUILTIN_ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu"]
LOSSES = ["mse", "sum_squared", "softmax_cross_entropy", "binary_cross_entropy", "bce_plain", "hinge"]
# "bce_plain": binary cross-entropy on the activations themselves (last layer not a sigmoid)


@dataclass
class Case:
    """A 3-layer network `N_IN -> 5 -> 4 -> 3`: hidden `activation`, a last layer suited to `loss`."""

    activation: str
    loss: str
    alpha: float | None = None
    l2: float = 0.0
    no_bias: tuple[int, ...] = ()       # 0-based layers without a bias
    dtype: str = "float64"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        parts = [self.activation, self.loss, f"l2={self.l2}" if self.l2 else "",
                 f"nobias{list(self.no_bias)}" if self.no_bias else "",
                 "" if self.dtype == "float64" else self.dtype]
        return "-".join(p for p in parts if p)

    def spec(self) -> dict[str, Any]:
        act = CUSTOM if self.activation == "custom" else self.activation
        last = {"binary_cross_entropy": "sigmoid", "bce_plain": "identity"}.get(self.loss, act)
        layers = []
        for i, (units, a) in enumerate(zip(UNITS, [act, act, last])):
            layer: dict[str, Any] = {"units": units, "activation": a}
            if self.alpha is not None and a == act:
                layer["alpha"] = self.alpha
            if i in self.no_bias:
                layer["bias"] = False
            layers.append(layer)
        loss = "binary_cross_entropy" if self.loss == "bce_plain" else self.loss
        return {"name": f"net_{self.activation}", "input": N_IN, "layers": layers, "loss": loss,
                "l2": self.l2, "dtype": self.dtype}


def make_data(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, N_IN))
    k = UNITS[-1]
    if case.loss in ("softmax_cross_entropy", "hinge"):
        Y = np.eye(k)[rng.integers(0, k, N)]
    elif case.loss in ("binary_cross_entropy", "bce_plain"):
        Y = rng.integers(0, 2, size=(N, k)).astype(float)
    else:
        Y = rng.normal(size=(N, k))
    return X, Y


def make_params(module: Any, case: Case, seed: int = 0) -> dict[str, np.ndarray]:
    """init_params plus noise (so that biases are not zero); for "bce_plain", a last layer whose
    outputs stay inside (0, 1): small weights around a bias of 0.5."""
    rng = np.random.default_rng(seed + 100)
    params = {k: (v + 0.2 * rng.normal(size=v.shape)).astype(v.dtype)
              for k, v in module.init_params(seed).items()}
    if case.loss == "bce_plain":
        params["W3"] *= 0.02
        params["b3"] = np.full(UNITS[-1], 0.5) + 0.05 * rng.normal(size=UNITS[-1])
    return params


def assert_close(actual, expected, rtol: float = 1e-9, what: str = "") -> None:
    scale = float(np.max(np.abs(expected))) if np.size(expected) else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * 1e-3 * max(scale, 1.0), err_msg=what)


def assert_matches_reference(module, spec, params, X, Y, rtol: float = 1e-9) -> None:
    before = {"X": np.array(X, copy=True), "Y": np.array(Y, copy=True), **{k: v.copy() for k, v in params.items()}}
    value, grads = module.loss_and_grad(params, X, Y)
    for name, array in {"X": X, "Y": Y, **params}.items():   # kernels write into their own buffers only
        np.testing.assert_array_equal(array, before[name], err_msg=f"{name} was modified")
    ref_value, ref_grads = reference.loss_and_grad(spec, params, X, Y)
    assert isinstance(value, float)
    assert_close(value, ref_value, rtol, "loss")
    assert list(grads) == list(ref_grads) == list(module.param_names)
    for name in grads:
        assert grads[name].shape == params[name].shape, name
        assert_close(grads[name], ref_grads[name], rtol, name)


def finite_difference_grads(module, params, X, Y, h: float = 1e-6) -> dict[str, np.ndarray]:
    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            saved = value[idx]
            value[idx] = saved + h
            up = module.loss(params, X, Y)
            value[idx] = saved - h
            down = module.loss(params, X, Y)
            value[idx] = saved
            g[idx] = (up - down) / (2 * h)
        grads[name] = g
    return grads


def custom_forward(params, X, no_bias=()) -> np.ndarray:
    """z·tanh(softplus(z)) by hand, layer by layer."""
    a = X
    for i in range(1, len(UNITS) + 1):
        z = a @ params[f"W{i}"] + (0 if i - 1 in no_bias else params[f"b{i}"])
        a = z * np.tanh(np.logaddexp(0.0, z))
    return a


# -- one module per activation; together they cover every loss, l2 > 0 and layers without bias --------
FAST_CASES = [
    Case("identity", "hinge"),
    Case("sigmoid", "binary_cross_entropy"),               # stable logits path
    Case("tanh", "mse", l2=0.05),
    Case("relu", "softmax_cross_entropy", no_bias=(1,)),
    Case("leaky_relu", "sum_squared", alpha=0.2),
    Case("elu", "softmax_cross_entropy", alpha=0.5, l2=0.01),
    Case("softplus", "bce_plain"),                         # BCE on the activations themselves
    Case("gelu", "hinge", l2=0.1),
    Case("silu", "mse", no_bias=(0,)),
]
CUSTOM_CASE = Case("custom", "sum_squared", l2=0.02, no_bias=(2,))
_modules: dict[str, Any] = {}


def compiled(case: Case):
    """One compiled module per spec for the whole session (Numba compiles each on first call)."""
    if case.id not in _modules:
        _modules[case.id] = gradc.compile_mlp(case.spec())
    return _modules[case.id]


def by_activation(name: str) -> Case:
    return next(c for c in FAST_CASES if c.activation == name)


def test_fast_cases_cover_every_activation_and_loss():
    assert {c.activation for c in FAST_CASES} == set(BUILTIN_ACTIVATIONS)
    assert {c.loss for c in FAST_CASES} | {CUSTOM_CASE.loss} == set(LOSSES)


@pytest.mark.parametrize("case", FAST_CASES, ids=lambda c: c.id)
def test_loss_grads_and_forward_match_reference(case):
    module = compiled(case)
    spec = load_spec(case.spec())
    X, Y = make_data(case)
    params = make_params(module, case)
    assert_matches_reference(module, spec, params, X, Y)
    assert_close(module.loss(params, X, Y), reference.loss(spec, params, X, Y), what="loss()")
    out = module.forward(params, X)
    assert out.shape == (N, UNITS[-1]) and out.dtype == np.float64
    assert_close(out, reference.forward(spec, params, X), what="forward")


def test_custom_activation_matches_finite_differences_and_hand_forward():
    module = compiled(CUSTOM_CASE)
    X, Y = make_data(CUSTOM_CASE)
    params = make_params(module, CUSTOM_CASE)
    assert module.param_names == ("W1", "b1", "W2", "b2", "W3")
    value, grads = module.loss_and_grad(params, X, Y)
    out = custom_forward(params, X, no_bias=(2,))
    assert_close(module.forward(params, X), out, what="forward")
    l2 = CUSTOM_CASE.l2 / 2 * sum(np.sum(params[f"W{i}"] ** 2) for i in (1, 2, 3))
    assert_close(value, np.sum((out - Y) ** 2) + l2, what="loss")
    fd = finite_difference_grads(module, params, X, Y)
    for name in params:
        np.testing.assert_allclose(grads[name], fd[name], rtol=1e-6, atol=1e-7, err_msg=name)
    assert "_act_custom1_both" in module.source


def test_float32_spec_gives_float32_close_to_float64_reference():
    # mse + l2: both once produced float64 arrays in a float32 program (0.01 * W, 1/N * (a - y))
    case = Case("tanh", "mse", l2=0.01, dtype="float32", no_bias=(1,))
    module = compiled(case)
    X, Y = make_data(case)
    params = make_params(module, case)
    assert all(p.dtype == np.float32 for p in params.values())
    value, grads = module.loss_and_grad(params, X, Y)
    assert isinstance(value, float) and isinstance(module.loss(params, X, Y), float)
    assert all(g.dtype == np.float32 for g in grads.values()), {k: g.dtype for k, g in grads.items()}
    out = module.forward(params, X)
    assert out.dtype == np.float32
    spec64 = load_spec({**case.spec(), "dtype": "float64"})
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    ref_value, ref_grads = reference.loss_and_grad(spec64, p64, X, Y)
    assert_close(value, ref_value, rtol=1e-4)
    for name in grads:
        assert_close(grads[name], ref_grads[name], rtol=1e-4, what=name)
    assert_close(out, reference.forward(spec64, p64, X), rtol=1e-4)
    assert "np.float32(" in module.source          # typed constants keep the program in float32


@pytest.mark.parametrize("activation", ["elu", "identity"])   # softmax CE and hinge
def test_integer_labels_equal_one_hot(activation):
    case = by_activation(activation)
    module = compiled(case)
    X, Y = make_data(case, seed=3)
    params = make_params(module, case)
    labels = Y.argmax(axis=1)
    expected_value, expected = module.loss_and_grad(params, X, Y)
    for lab in (labels, labels.astype(np.int32), labels.astype(np.uint8), list(labels)):
        value, grads = module.loss_and_grad(params, X, lab)
        assert value == pytest.approx(expected_value, rel=1e-15)
        for name in grads:
            np.testing.assert_allclose(grads[name], expected[name], rtol=1e-15, atol=0)
    assert module.loss(params, X, labels) == pytest.approx(expected_value, rel=1e-15)
    ref_value, _ = reference.loss_and_grad(load_spec(case.spec()), params, X, labels)
    assert_close(expected_value, ref_value)


def test_sgd_step_updates_in_place_and_returns_the_pre_step_loss():
    case = by_activation("tanh")
    module = compiled(case)
    X, Y = make_data(case, seed=5)
    params = make_params(module, case)
    arrays = dict(params)
    before = {k: v.copy() for k, v in params.items()}
    loss_before, grads = module.loss_and_grad(params, X, Y)
    returned = module.sgd_step(params, X, Y, 0.1)
    assert returned == loss_before
    for name in params:
        assert params[name] is arrays[name], f"{name} was replaced instead of updated in place"
        np.testing.assert_allclose(params[name], before[name] - 0.1 * grads[name], rtol=1e-14, atol=1e-16)
    assert module.loss(params, X, Y) < loss_before


@pytest.mark.parametrize(("debug", "l2"), [(False, 0.0), (True, 0.0), (False, 0.01)])
def test_narrowing_layers_compute_weight_gradients_short_side_first(debug, l2):
    # fan_out <= fan_in / 4: _matmul(g.T, a).T, a Fortran-ordered gradient; the square layer keeps a.T @ g
    spec = {"name": "narrowing", "input": 40, "l2": l2, "loss": "mse",
            "layers": [{"units": 8, "activation": "tanh", "bias": False}, {"units": 8, "activation": "tanh"},
                       {"units": 2, "activation": "identity"}]}
    module = gradc.compile_mlp(spec, debug=debug)
    body = _loss_and_grad_body(module.source)
    assert re.search(r"^\s+d_W1 \+?= _matmul\(d_z1\.T, X\)\.T  #", body, re.M), body   # += after the l2 term
    assert re.search(r"^\s+d_W2 \+?= _matmul\(h1\.T, d_z2\)  #", body, re.M), body
    assert re.search(r"^\s+d_W3 \+?= _matmul\(d_z3\.T, h2\)\.T  #", body, re.M), body
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(16, 40)), rng.normal(size=(16, 2))
    params = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in module.init_params(1).items()}
    assert_matches_reference(module, load_spec(spec), params, X, Y, rtol=1e-12)
    _, grads = module.loss_and_grad({k: v for k, v in params.items() if k != "W3"} | {
        "W3": np.asfortranarray(params["W3"])}, X, Y)   # a Fortran-ordered parameter is converted
    # updating C-ordered parameters with the gradients keeps them C-ordered: the next call's fast path
    functional = {k: params[k] - 0.1 * grads[k] for k in params}
    module.sgd_step(params, X, Y, 0.1)
    for name in params:
        assert params[name].flags.c_contiguous and functional[name].flags.c_contiguous, name


@pytest.mark.parametrize("layers", [
    [{"units": 3, "activation": "tanh"}, {"units": 2, "activation": "identity"}],
    [{"units": 2, "activation": "identity", "bias": False}],   # one parameter: its getter is wrapped
], ids=["four_params", "one_param"])
def test_ready_arrays_go_straight_to_the_kernel(layers, monkeypatch):
    # after the first call a dict of ready arrays skips validation; the gradients come back by name
    spec = {"name": "straight", "input": 4, "layers": layers, "loss": "mse"}
    module = gradc.compile_mlp(spec)
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    params = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in module.init_params(1).items()}
    want_value, want_grads = reference.loss_and_grad(load_spec(spec), params, X, Y)
    module.loss_and_grad(params, X, Y)   # compiles the one signature

    def validating(*args):
        raise AssertionError("a ready call took the validating path")
    monkeypatch.setattr(module.module, "_batch", validating)
    monkeypatch.setattr(module.module, "_params", validating)
    value, grads = module.loss_and_grad(params, X, Y)
    assert value == pytest.approx(want_value, rel=1e-12)
    assert list(grads) == list(params)
    for name in params:
        np.testing.assert_allclose(grads[name], want_grads[name], rtol=1e-12, atol=1e-15)


def test_an_adjoint_is_overwritten_only_when_nothing_else_reads_it():
    from gradc.backend.mlp import _in_place, _Network, _plan
    from gradc.core.program import differentiate
    from gradc.frontend.mlp import lower_mlp
    p = _Network(differentiate(lower_mlp(load_spec(by_activation("tanh").spec()))))
    order, naming = _plan([p.loss], p.grads, p)
    names = {id(n): naming.names.get(id(n)) for n in order}
    chosen = {names[k]: helper for k, helper in _in_place(order, naming, [p.loss, *p.grads]).items()}
    assert chosen == {"z1": "_add_bias", "z2": "_add_bias", "z3": "_add_bias",
                      "d_z1": "_times_into", "d_z2": "_times_into", "d_z3": "_times_into"}, chosen
    d_h1 = next(n for n in order if names[id(n)] == "d_h1")
    again = _in_place(order, naming, [p.loss, *p.grads, d_h1])   # d_h1 returned too: a second reader
    assert "d_z1" not in {names[k] for k in again} and "d_z2" in {names[k] for k in again}


def test_sgd_decreases_the_loss_on_a_small_problem():
    case = by_activation("elu")   # softmax CE, l2
    module = compiled(case)
    rng = np.random.default_rng(11)
    X = rng.normal(size=(30, N_IN))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)   # 3 classes
    params = module.init_params(seed=2)
    losses = [module.sgd_step(params, X, labels, 0.3) for _ in range(150)]
    assert losses[-1] < 0.5 * losses[0]
    assert all(np.isfinite(losses))
    assert np.mean(module.forward(params, X).argmax(axis=1) == labels) > 0.9


def test_layers_with_the_same_activation_and_different_alphas_get_their_own_helpers():
    # a helper-name clash once made both leaky_relu layers use the second layer's alpha
    spec = {"input": 3, "layers": [{"units": 4, "activation": "leaky_relu", "alpha": 0.1},
                                   {"units": 4, "activation": "leaky_relu", "alpha": 0.3},
                                   {"units": 4, "activation": "elu"},
                                   {"units": 2, "activation": "elu", "alpha": 0.5},
                                   {"units": 2, "activation": "leaky_relu", "alpha": 0.1}], "loss": "mse"}
    module = gradc.compile_mlp(spec)
    helpers = re.findall(r"^def (_act_\w+)\(z\):", module.source, re.M)
    assert len(helpers) == len(set(helpers)) == 8, helpers
    rng = np.random.default_rng(9)
    X, Y = rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    params = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in module.init_params(1).items()}
    assert_matches_reference(module, load_spec(spec), params, X, Y)


# -- init_params (NumPy only: no kernel is compiled) ---------------------------------------------------
def test_init_params_shapes_dtype_determinism_and_scale():
    spec = {"input": 400, "loss": "mse",
            "layers": [{"units": 100, "activation": "relu"}, {"units": 300, "activation": "tanh"},
                       {"units": 10, "activation": "sigmoid", "bias": False}]}
    module = gradc.compile_mlp(spec)
    assert module.param_names == ("W1", "b1", "W2", "b2", "W3")
    params = module.init_params(seed=7)
    assert {k: v.shape for k, v in params.items()} == reference.param_shapes(load_spec(spec))
    assert all(v.dtype == np.float64 for v in params.values())
    again, other = module.init_params(seed=7), module.init_params(seed=8)
    for name in params:
        np.testing.assert_array_equal(params[name], again[name])
    assert not np.array_equal(params["W1"], other["W1"])
    assert not np.any(params["b1"]) and not np.any(params["b2"])
    he1, xavier1 = np.sqrt(2 / 400), np.sqrt(2 / 500)                        # relu layer: He
    assert abs(params["W1"].std() / he1 - 1) < 0.03 and abs(params["W1"].std() / xavier1 - 1) > 0.08
    xavier2, he2 = np.sqrt(2 / 400), np.sqrt(2 / 100)                        # tanh layer: Xavier
    assert abs(params["W2"].std() / xavier2 - 1) < 0.03 and params["W2"].std() < 0.6 * he2
    assert abs(params["W1"].mean()) < 0.01

    f32 = gradc.compile_mlp({**spec, "dtype": "float32", "init": "normal"}).init_params(seed=7)
    assert all(v.dtype == np.float32 for v in f32.values())
    assert abs(f32["W2"].std() - 1.0) < 0.03


# -- numerical stability -------------------------------------------------------------------------------
def test_softmax_cross_entropy_is_finite_at_huge_logits():
    case = by_activation("relu")   # identity last layer, softmax CE
    module = compiled(case)
    X, Y = make_data(case, seed=1)
    params = make_params(module, case)
    params["b3"] = np.array([1e3, -1e3, 0.0])
    value, grads = module.loss_and_grad(params, X, Y)
    assert np.isfinite(value) and value > 100     # rows whose label is not class 0 pay ~1e3
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    assert_matches_reference(module, load_spec(case.spec()), params, X, Y)


def test_binary_cross_entropy_with_sigmoid_is_finite_at_huge_logits():
    case = by_activation("sigmoid")
    module = compiled(case)
    X, Y = make_data(case, seed=2)
    params = make_params(module, case)
    params["b3"] = np.array([1e3, -1e3, 1e3])
    value, grads = module.loss_and_grad(params, X, Y)
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())
    assert_matches_reference(module, load_spec(case.spec()), params, X, Y)
    assert module.loss(params, X, Y) == pytest.approx(value, rel=1e-12)


# -- the generated source -----------------------------------------------------------------------------
def _loss_and_grad_body(source: str) -> str:
    start = source.index("def _loss_and_grad(")
    return source[start:source.index("\n\n\n", start)]


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_source_is_staged_per_layer(activation):
    case = by_activation(activation)
    module = compiled(case)
    src = module.source
    body = _loss_and_grad_body(src)
    helper = f"_act_{activation}_both"
    prev = "X"
    for i in (1, 2, 3):
        # the bias is added into the fresh product's buffer
        product = f"_matmul({prev}, W{i})"
        product = product if i - 1 in case.no_bias else f"_add_bias({product}, b{i})"
        assert re.search(rf"^\s+z{i} = {re.escape(product)}  #", body, re.M), (i, body)
        if i < 3 or activation == "tanh":
            assert re.search(rf"^\s+h{i}, dh{i} = _act_\w+_both\(z{i}\)", body, re.M), (i, body)
        assert re.search(rf"^\s+d_W{i} \+?= _matmul\({prev}\.T, d_z{i}\)", body, re.M), (i, body)
        if i - 1 not in case.no_bias:
            assert re.search(rf"^\s+d_b{i} = _column_sums\(d_z{i}\)", body, re.M), (i, body)
        else:
            assert f"d_b{i}" not in body
        prev = f"h{i}"
    assert re.search(r"^\s+d_z1 = _times_into\(d_h1, dh1\)", body, re.M), body   # d_h1 has no other reader
    assert f"def {helper}(z):" in src
    assert "# backward" in body


def test_source_imports_only_numpy_and_numba_and_has_a_header():
    module = compiled(by_activation("gelu"))
    tree = ast.parse(module.source)
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            roots.add(node.module.split(".")[0])
    assert {"numpy", "numba"} <= roots
    # llvmlite is Numba's own LLVM binding, installed with it (runtime_blas names the BLAS symbols there)
    assert roots - {"numpy", "numba", "llvmlite"} <= set(sys.stdlib_module_names), roots
    assert "gradc" not in roots and "__import__" not in module.source
    head = module.source.splitlines()[:8]
    assert any(gradc.__version__ in line for line in head)
    assert any("sha256" in line for line in head) and any("Regenerate" in line for line in head)
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"init_params", "forward", "loss", "loss_and_grad", "sgd_step"} <= names


def test_written_module_loads_and_gives_the_same_numbers(tmp_path):
    case = by_activation("identity")
    module = compiled(case)
    X, Y = make_data(case)
    params = make_params(module, case)
    path = module.write(tmp_path / "sub" / "net.py")
    assert path.read_text() == module.source
    net = gradc.load(path)
    value, grads = module.loss_and_grad(params, X, Y)
    value2, grads2 = net.loss_and_grad(params, X, Y)
    assert value2 == pytest.approx(value, rel=1e-14)
    for name in grads:
        np.testing.assert_allclose(grads2[name], grads[name], rtol=1e-14, atol=0)
    for name, value in net.init_params(3).items():
        np.testing.assert_array_equal(value, module.init_params(3)[name])
    assert net.PARAM_SHAPES == reference.param_shapes(load_spec(case.spec()))


# -- the full product ---------------------------------------------------------------------------------
PAIRS = [(a, loss) for a in [*BUILTIN_ACTIVATIONS, "custom"] for loss in LOSSES]
PRODUCT = [Case(a, loss, alpha={"leaky_relu": 0.1, "elu": 1.5}.get(a), l2=0.03 if i % 2 else 0.0,
                no_bias=(1,) if i % 3 == 0 else ()) for i, (a, loss) in enumerate(PAIRS)]


@pytest.mark.slow
@pytest.mark.parametrize("case", PRODUCT, ids=lambda c: c.id)
def test_every_activation_times_every_loss(case):
    module = gradc.compile_mlp(case.spec())
    X, Y = make_data(case, seed=4)
    params = make_params(module, case, seed=4)
    if case.activation != "custom":
        assert_matches_reference(module, load_spec(case.spec()), params, X, Y)
        assert_close(module.forward(params, X), reference.forward(load_spec(case.spec()), params, X))
        return
    value, grads = module.loss_and_grad(params, X, Y)
    assert value == pytest.approx(module.loss(params, X, Y), rel=1e-12)
    fd = finite_difference_grads(module, params, X, Y)
    for name in params:
        np.testing.assert_allclose(grads[name], fd[name], rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_in_float32(loss):
    case = Case("softplus", loss, l2=0.01, dtype="float32")
    module = gradc.compile_mlp(case.spec())
    X, Y = make_data(case, seed=6)
    params = make_params(module, case, seed=6)
    value, grads = module.loss_and_grad(params, X, Y)
    assert all(g.dtype == np.float32 for g in grads.values())
    spec64 = load_spec({**case.spec(), "dtype": "float64"})
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    ref_value, ref_grads = reference.loss_and_grad(spec64, p64, X, Y)
    assert_close(value, ref_value, rtol=1e-4)
    for name in grads:
        assert_close(grads[name], ref_grads[name], rtol=1e-4, what=name)


@pytest.mark.parametrize("loss, l2, dtype", [("softmax_cross_entropy", 0.01, "float64"), ("mse", 0.0, "float64"),
                                             ("binary_cross_entropy", 0.02, "float32")])
def test_a_large_batch_runs_in_blocks_of_rows_with_the_whole_batch_loss_and_gradients(loss, l2, dtype, monkeypatch):
    spec = {"name": "blocks", "input": 4, "layers": [{"units": 5, "activation": "tanh"},
                                                   {"units": 3, "activation": "sigmoid"}], "loss": loss, "l2": l2,
            "dtype": dtype}
    module = gradc.compile_mlp(spec)
    monkeypatch.setattr(module.module, "_block_rows", lambda shapes: 1024)   # the size of 1,024 units' layers
    calls = []
    run = module.module._run
    monkeypatch.setattr(module.module, "_run", lambda kernel, params, data, *rest: calls.append(len(data[0]))
                        or run(kernel, params, data, *rest))
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2500, 4))
    Y = rng.integers(0, 3, 2500) if loss == "softmax_cross_entropy" else rng.random((2500, 3)).round()
    params = {k: v + 0.1 * rng.normal(size=v.shape).astype(dtype) for k, v in module.init_params(2).items()}
    value, grads = module.loss_and_grad(params, X, Y)
    assert calls == [1024, 1024, 452]
    assert module.loss(params, X, Y) == pytest.approx(value, rel=1e-12)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    Y1 = np.eye(3)[Y] if Y.ndim == 1 else Y
    ref_value, ref_grads = reference.loss_and_grad(load_spec({**spec, "dtype": "float64"}), p64, X, Y1)
    rtol = 1e-12 if dtype == "float64" else 1e-4
    assert value == pytest.approx(ref_value, rel=rtol)
    for name in params:
        assert grads[name].dtype == np.dtype(dtype)
        assert_close(grads[name], ref_grads[name], rtol, name)


def test_sum_squared_runs_a_large_batch_whole(monkeypatch):
    # its loss is a sum: a block's L2 term would count once per block, so the batch is never split
    spec = {"name": "whole", "input": 3, "layers": [{"units": 2, "activation": "identity"}], "loss": "sum_squared",
            "l2": 0.5}
    module = gradc.compile_mlp(spec)
    monkeypatch.setattr(module.module, "_block_rows", lambda shapes: 1024)
    calls = []
    run = module.module._run
    monkeypatch.setattr(module.module, "_run", lambda kernel, params, data, *rest: calls.append(len(data[0]))
                        or run(kernel, params, data, *rest))
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(5000, 3)), rng.normal(size=(5000, 2))
    params = module.init_params(0)
    value, grads = module.loss_and_grad(params, X, Y)
    assert calls == [5000]
    ref_value, ref_grads = reference.loss_and_grad(load_spec(spec), params, X, Y)
    assert value == pytest.approx(ref_value, rel=1e-12)
    for name in params:
        assert_close(grads[name], ref_grads[name], 1e-12, name)

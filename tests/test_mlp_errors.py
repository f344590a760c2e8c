"""Every way to misuse an MLP fails loudly and says where: call-time ValueErrors name the argument and
the expected shape; bad specs raise gradc.SpecError naming the field path. The module under test
has run each kernel once, so every bad call here first takes the fast path (arrays straight to the
compiled kernel) and must fall back to the validating one that says what is wrong."""

from __future__ import annotations

import re

import numpy as np
import pytest

import gradc

X = np.zeros((6, 4))
Y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
SPEC = {"name": "net", "input": 4, "layers": [{"units": 5, "activation": "tanh"},
                                             {"units": 3, "activation": "identity"}],
        "loss": "softmax_cross_entropy"}


@pytest.fixture(scope="module")
def module():
    compiled = gradc.compile_mlp(SPEC)
    params = compiled.init_params(0)   # compile each kernel's one signature: later calls try the fast path
    compiled.forward(params, X), compiled.loss(params, X, Y), compiled.loss_and_grad(params, X, Y)
    return compiled


@pytest.fixture()
def params(module):
    return module.init_params(0)


def raises(match: str, *parts: str):
    """pytest.raises(ValueError) whose message contains `match` and each of `parts` literally."""
    return pytest.raises(ValueError, match=".*".join(re.escape(p) for p in (match, *parts)))


# -- call-time validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_X, got", [
    (np.zeros((6, 5)), "(6, 5)"), (np.zeros(4), "(4,)"), (np.zeros((2, 6, 4)), "(2, 6, 4)"),
    (np.float64(1.0), "()"),
])
def test_wrong_X_shape(module, params, bad_X, got):
    for call in (lambda: module.forward(params, bad_X), lambda: module.loss(params, bad_X, Y),
                 lambda: module.loss_and_grad(params, bad_X, Y)):
        with raises("X must have shape (N, 4)", got):
            call()


@pytest.mark.parametrize("bad_Y, got", [(np.zeros((6, 2)), "(6, 2)"), (np.zeros((5, 3)), "(5, 3)"),
                                        (np.zeros(6), "(6,)"), (np.zeros((6, 3, 1)), "(6, 3, 1)")])
def test_wrong_Y_shape(module, params, bad_Y, got):
    with raises("Y must have shape (6, 3)", got):
        module.loss_and_grad(params, X, bad_Y)
    with raises("Y must have shape (6, 3)", got):
        module.loss(params, X, bad_Y)


def test_one_dimensional_Y_is_fine_only_for_a_single_output():
    one = gradc.compile_mlp({"input": 2, "layers": [{"units": 1, "activation": "sigmoid"}], "loss": "mse"})
    p = one.init_params(0)
    with raises("Y must have shape (3, 1)", "(4,)"):
        one.loss(p, np.zeros((3, 2)), np.zeros(4))
    mse = gradc.compile_mlp({**SPEC, "loss": "mse"})
    with raises("Y must have shape (6, 3)", "(6,)"):   # integer labels are for classifier losses only
        mse.loss(params := mse.init_params(0), X, np.array([0, 1, 2, 0, 1, 2]))
    assert params


def test_missing_extra_and_misshapen_params(module, params):
    missing = {k: v for k, v in params.items() if k != "b2"}
    with raises("params missing b2", "W1(4, 5)", "b2(3,)"):
        module.loss_and_grad(missing, X, Y)
    with raises("params", "unexpected W3"):
        module.forward({**params, "W3": np.zeros((3, 3))}, X)
    renamed = {("w1" if k == "W1" else k): v for k, v in params.items()}
    with raises("missing W1", "unexpected w1"):
        module.loss(renamed, X, Y)


@pytest.mark.parametrize("name, bad, expected", [
    ("W1", np.zeros((5, 4)), "(4, 5)"), ("W2", np.zeros(15), "(5, 3)"), ("b1", np.zeros((1, 5)), "(5,)"),
    ("b2", np.zeros(4), "(3,)"), ("b2", 0.0, "(3,)"),
])
def test_misshapen_param_names_it_and_its_shape(module, params, name, bad, expected):
    params[name] = bad
    with raises(f"param {name} must have shape {expected}", str(np.shape(bad))):
        module.loss_and_grad(params, X, Y)
    with raises(f"param {name} must have shape {expected}"):
        module.forward(params, X)


def test_params_must_be_a_mapping(module, params):
    with raises("params must be a dict", "W1, b1, W2, b2", "list"):
        module.loss_and_grad(list(params.values()), X, Y)


@pytest.mark.parametrize("where", ["X", "Y", "W1", "b2"])
@pytest.mark.parametrize("bad", [np.full((6, 4), "a"), np.full((6, 4), None, dtype=object),
                                 np.zeros((6, 4), dtype=complex)], ids=["str", "object", "complex"])
def test_non_numeric_arrays_are_rejected(module, params, where, bad):
    shape = {"X": (6, 4), "Y": (6, 3), "W1": (4, 5), "b2": (3,)}[where]
    bad = np.resize(bad, shape)
    args = {"X": X, "Y": Y}
    if where in args:
        args[where] = bad
    else:
        params[where] = bad
    label = where if where in ("X", "Y") else f"param {where}"
    with raises(f"{label} must be real numbers", str(bad.dtype)):
        module.loss_and_grad(params, args["X"], args["Y"])


@pytest.mark.parametrize("labels", [[0, 1, 2, 0, 1, 3], [0, 1, -1, 0, 1, 2], [0, 1, 2]])
def test_labels_out_of_range_or_wrong_length(module, params, labels):
    with raises("labels Y must be 6 integers in [0, 3)"):
        module.loss_and_grad(params, X, np.array(labels))


def test_failed_sgd_step_leaves_params_untouched(module, params):
    before = {k: v.copy() for k, v in params.items()}
    with raises("X must have shape (N, 4)"):
        module.sgd_step(params, np.zeros((6, 3)), Y, 0.1)
    for name in params:
        np.testing.assert_array_equal(params[name], before[name])


def test_ragged_and_empty_batches(module, params):
    with raises("X must be a rectangular array of real numbers"):
        module.loss(params, [[0.0] * 4, [0.0] * 3], Y[:2])
    with raises("X must have shape (N, 4) with N >= 1", "(0, 4)"):
        module.loss_and_grad(params, np.zeros((0, 4)), np.zeros((0, 3)))
    assert module.forward(params, np.zeros((0, 4))).shape == (0, 3)


def test_loss_needs_Y(module, params):
    with raises("Y must be an array of shape (N, 3), got None"):
        module.loss(params, X, None)


def test_arrays_of_other_types_are_converted_and_compile_nothing_new(module, params):
    """Float32, Fortran-order, strided, read-only and list inputs, and integer labels, go the validating
    way and give the float64 result; each kernel keeps its one compiled signature."""
    rng = np.random.default_rng(3)
    Xr, labels = rng.standard_normal((6, 4)), np.array([0, 1, 2, 0, 1, 2])
    want_loss, want_grads = module.loss_and_grad(params, Xr, Y)
    frozen = Xr.copy()
    frozen.flags.writeable = False
    wide = np.zeros((6, 8))
    wide[:, ::2] = Xr
    for X_in, Y_in in [(Xr.astype(np.float32), Y), (np.asfortranarray(Xr), Y), (wide[:, ::2], Y), (frozen, Y),
                       (Xr.tolist(), Y), (Xr, labels), (Xr, Y.astype(np.int8))]:
        value, grads = module.loss_and_grad({k: np.asfortranarray(v) for k, v in params.items()}, X_in, Y_in)
        assert value == pytest.approx(want_loss, rel=1e-6)
        for k in grads:
            np.testing.assert_allclose(grads[k], want_grads[k], rtol=1e-5, atol=1e-12)
    kernels = [getattr(module.module, name) for name in ("_forward", "_loss", "_loss_and_grad")]
    assert [len(k.signatures) for k in kernels] == [1, 1, 1]
    assert all(k in module.module._COMPILED for k in kernels)   # the fast path was live throughout


def test_sgd_step_needs_float_arrays_it_can_update_in_place(module, params):
    params["b1"] = np.zeros(5, dtype=int)
    before = {k: v.copy() for k, v in params.items()}
    with raises("sgd_step updates params in place: param b1 must be a float ndarray", "int"):
        module.sgd_step(params, X, Y, 0.1)
    for name in params:
        np.testing.assert_array_equal(params[name], before[name])


def test_write_wants_a_py_path(module, tmp_path):
    with raises("module path must end in .py"):
        module.write(tmp_path / "net.txt")


# -- bad specs ------------------------------------------------------------------------------------------
def spec_error(*parts: str):
    return pytest.raises(gradc.SpecError, match=".*".join(re.escape(p) for p in parts))


def with_layer(index: int, **changes):
    layers = [dict(layer) for layer in SPEC["layers"]]
    layers[index].update(changes)
    return {**SPEC, "layers": layers}


def test_spec_error_is_a_gradc_error_and_a_value_error():
    assert issubclass(gradc.SpecError, gradc.GradcError) and issubclass(gradc.SpecError, ValueError)


@pytest.mark.parametrize("typo, nearest", [("sigmiod", "sigmoid"), ("Relu", "relu"),
                                           ("leaky_rel", "leaky_relu"), ("gelu2", "gelu")])
def test_unknown_activation_suggests_the_nearest(typo, nearest):
    with spec_error("layers[1].activation", repr(typo), f"did you mean {nearest!r}"):
        gradc.compile_mlp(with_layer(1, activation=typo))


CODE = [
    "__import__('os').system('touch {marker}')",
    "z.__class__",
    "z.__class__.__bases__[0].__subclasses__()",
    "(lambda: 1)()",
    "eval('1')",
    "exec('x = 1')",
    "open('{marker}', 'w')",
    "getattr(z, 'real')",
    "[z][0]",
    "z if z else 1",
    "z; import os",
    "f'{{z}}'",
    "z * y",          # a free name other than z
    "foo(z)",         # not a function of the op table
    "tanh(z, z)",
    "exp(z=1)",
    "'z'",
    "z == 1",
    "9**9**9**9",
]


@pytest.mark.parametrize("formula", CODE)
def test_custom_activation_that_is_not_plain_math_is_rejected(formula, tmp_path):
    marker = tmp_path / "pwned"
    text = formula.format(marker=marker)
    with spec_error("layers[0].activation"):
        gradc.compile_mlp(with_layer(0, activation=text))
    assert not marker.exists()


def test_custom_activation_of_plain_math_is_accepted():
    module = gradc.compile_mlp(with_layer(0, activation="z*tanh(softplus(z)) + 0.1*exp(-z**2)"))
    assert module.spec.layers[0].activation == "custom"


@pytest.mark.parametrize("loss, nearest", [("cross_entropy", "binary_cross_entropy"), ("MSE", "mse"),
                                           ("hing", "hinge"), ("l1", None)])
def test_unknown_loss(loss, nearest):
    parts = ["loss", repr(loss)] + ([f"did you mean {nearest!r}"] if nearest else []) + ["valid: mse"]
    with spec_error(*parts):
        gradc.compile_mlp({**SPEC, "loss": loss})


@pytest.mark.parametrize("units", [0, -3, 2.5, True, "4", None])
def test_units_must_be_a_positive_int(units):
    with spec_error("layers[1].units", "integer > 0", repr(units)):
        gradc.compile_mlp(with_layer(1, units=units))


@pytest.mark.parametrize("change, path", [
    ({"input": 0}, "input"), ({"layers": []}, "layers"), ({"dtype": "float16"}, "dtype"),
    ({"l2": -1.0}, "l2"), ({"l2": "1e-3"}, "l2"), ({"init": "glorot"}, "init"),
    ({"activation": "relu"}, "spec"),
    ({"name": ""}, "name"), ({"layers": [{"activation": "relu"}]}, "layers[0].units"),
])
def test_bad_top_level_fields(change, path):
    with spec_error(path):
        gradc.compile_mlp({**SPEC, **change})


@pytest.mark.parametrize("change, path", [
    ({"alpha": 2.0, "activation": "leaky_relu"}, "layers[0].alpha"), ({"alpha": 0.1}, "layers[0].alpha"),
    ({"bias": "yes"}, "layers[0].bias"), ({"init": "he2"}, "layers[0].init"), ({"unit": 3}, "layers[0]"),
    ({"activation": 3}, "layers[0].activation"), ({"activation": ""}, "layers[0].activation"),
])
def test_bad_layer_fields(change, path):
    with spec_error(path):
        gradc.compile_mlp(with_layer(0, **change))


def test_unknown_key_suggests_the_nearest():
    with spec_error("layers[0]", "'activaton'", "did you mean 'activation'"):
        gradc.compile_mlp({**SPEC, "layers": [{"units": 3, "activaton": "relu"}]})


def test_yaml_python_tags_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "net.yaml"
    path.write_text(f"input: !!python/object/apply:os.system ['touch {marker}']\n"
                    "layers: [{units: 3, activation: relu}]\nloss: mse\n")
    with spec_error(str(path)):
        gradc.compile_mlp(path)
    assert not marker.exists()
    path.write_text("!!python/object:gradc.frontend.spec.MLPSpec {name: x}\n")
    with spec_error(str(path)):
        gradc.compile_mlp(str(path))


def test_spec_files_in_every_format_give_the_same_module(tmp_path):
    import json

    (tmp_path / "net.json").write_text(json.dumps(SPEC))
    (tmp_path / "net.yaml").write_text(
        "name: net\ninput: 4\nlayers:\n  - {units: 5, activation: tanh}\n"
        "  - {units: 3, activation: identity}\nloss: softmax_cross_entropy\n")
    (tmp_path / "net.toml").write_text(
        'name = "net"\ninput = 4\nloss = "softmax_cross_entropy"\n'
        '[[layers]]\nunits = 5\nactivation = "tanh"\n[[layers]]\nunits = 3\nactivation = "identity"\n')
    sources = {gradc.compile_mlp(tmp_path / f"net.{ext}").source for ext in ("json", "yaml", "toml")}
    assert sources == {gradc.compile_mlp(SPEC).source}
    with spec_error("unsupported spec file suffix"):
        gradc.compile_mlp(tmp_path / "net.txt")
    with spec_error("not found"):
        gradc.compile_mlp(tmp_path / "missing.yaml")

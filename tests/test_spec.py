"""Tests for gradc.frontend.spec: loading, defaults, round trips, fingerprints and every error path."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from gradc.errors import SpecError
from gradc.frontend.spec import ACTIVATIONS, LOSSES, LayerSpec, MLPSpec, load_spec

EXAMPLE: dict[str, Any] = {
    "name": "digits_mlp",
    "input": 64,
    "layers": [
        {"units": 30, "activation": "sigmoid"},
        {"units": 10, "activation": "leaky_relu", "alpha": 0.1},
        {"units": 3, "activation": "z*tanh(softplus(z))", "bias": False},
    ],
    "loss": "mse",
    "l2": 0.001,
    "dtype": "float32",
    "init": "normal",
}

EXPECTED = MLPSpec(
    name="digits_mlp",
    input=64,
    layers=(
        LayerSpec(30, "sigmoid", "sigmoid(z)", bias=True, init="normal", alpha=None),
        LayerSpec(10, "leaky_relu", "Max(z, 0.1*z)", bias=True, init="normal", alpha=0.1),
        LayerSpec(3, "custom", "z*tanh(softplus(z))", bias=False, init="normal", alpha=None),
    ),
    loss="mse",
    l2=0.001,
    dtype="float32",
)

TOML_EXAMPLE = """
name = "digits_mlp"
input = 64
loss = "mse"
l2 = 0.001
dtype = "float32"
init = "normal"

[[layers]]
units = 30
activation = "sigmoid"

[[layers]]
units = 10
activation = "leaky_relu"
alpha = 0.1

[[layers]]
units = 3
activation = "z*tanh(softplus(z))"
bias = false
"""


def minimal(**layer: Any) -> dict[str, Any]:
    """A minimal valid spec with one layer built from ``layer`` (units default 4)."""
    return {"input": 2, "layers": [{"units": 4, **layer}], "loss": "mse"}


def test_constants() -> None:
    assert set(ACTIVATIONS) == {
        "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu",
    }  # fmt: skip
    assert ACTIVATIONS["relu"] == "Max(z, 0)"
    assert LOSSES == ("mse", "sum_squared", "softmax_cross_entropy", "binary_cross_entropy", "hinge")


def test_dict_loads() -> None:
    assert load_spec(EXAMPLE) == EXPECTED


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(EXAMPLE))
    assert load_spec(path) == EXPECTED
    assert load_spec(str(path)) == EXPECTED


def test_yml_file_handwritten(tmp_path: Path) -> None:
    path = tmp_path / "spec.yml"
    path.write_text(
        "name: digits_mlp\ninput: 64\ninit: normal\nlayers:\n"
        "  - {units: 30, activation: sigmoid}\n"
        "  - {units: 10, activation: leaky_relu, alpha: 0.1}\n"
        '  - {units: 3, activation: "z*tanh(softplus(z))", bias: false}\n'
        "loss: mse\nl2: 0.001\ndtype: float32\n"
    )
    assert load_spec(path) == EXPECTED


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(EXAMPLE))
    assert load_spec(path) == EXPECTED


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(TOML_EXAMPLE)
    assert load_spec(path) == EXPECTED


def test_uppercase_suffix(tmp_path: Path) -> None:
    path = tmp_path / "SPEC.JSON"
    path.write_text(json.dumps(EXAMPLE))
    assert load_spec(path) == EXPECTED


def test_spec_passes_through() -> None:
    assert load_spec(EXPECTED) is EXPECTED


def test_input_mapping_not_mutated() -> None:
    data = copy.deepcopy(EXAMPLE)
    load_spec(data)
    assert data == EXAMPLE


def test_defaults() -> None:
    spec = load_spec(minimal())
    assert spec.name == "mlp"
    assert spec.l2 == 0.0 and isinstance(spec.l2, float)
    assert spec.dtype == "float64"
    assert spec.layers == (LayerSpec(4, "identity", "z", bias=True, init="xavier", alpha=None),)


@pytest.mark.parametrize(
    ("activation", "init"),
    [
        ("identity", "xavier"),
        ("sigmoid", "xavier"),
        ("tanh", "xavier"),
        ("softplus", "xavier"),
        ("relu", "he"),
        ("leaky_relu", "he"),
        ("elu", "he"),
        ("gelu", "he"),
        ("silu", "he"),
        ("z**2 + 1", "xavier"),
    ],
)
def test_default_init_per_activation(activation: str, init: str) -> None:
    assert load_spec(minimal(activation=activation)).layers[0].init == init


def test_init_precedence() -> None:
    data = {"input": 2, "init": "normal", "loss": "mse", "layers": [{"units": 3, "activation": "relu"}]}
    assert load_spec(data).layers[0].init == "normal"
    data["layers"] = [{"units": 3, "activation": "relu", "init": "xavier"}]
    assert load_spec(data).layers[0].init == "xavier"


def test_alpha_defaults_and_substitution() -> None:
    leaky = load_spec(minimal(activation="leaky_relu")).layers[0]
    assert (leaky.alpha, leaky.formula) == (0.01, "Max(z, 0.01*z)")
    elu = load_spec(minimal(activation="elu")).layers[0]
    assert (elu.alpha, elu.formula) == (1.0, "Max(z, 0) + 1.0*(exp(Min(z, 0)) - 1)")
    elu2 = load_spec(minimal(activation="elu", alpha=2)).layers[0]
    assert elu2.alpha == 2.0 and isinstance(elu2.alpha, float)
    assert elu2.formula == "Max(z, 0) + 2.0*(exp(Min(z, 0)) - 1)"
    assert load_spec(minimal(activation="leaky_relu", alpha=0)).layers[0].formula == "Max(z, 0.0*z)"


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_builtin_formulas(name: str) -> None:
    layer = load_spec(minimal(activation=name)).layers[0]
    assert layer.activation == name
    assert "{alpha}" not in layer.formula
    if name not in ("leaky_relu", "elu"):
        assert layer.formula == ACTIVATIONS[name] and layer.alpha is None


@pytest.mark.parametrize("formula", ["z*tanh(softplus(z))", "z", " z ", "sigmoid(z)", "Max(z, 0.2*z)"])
def test_custom_formula_kept(formula: str) -> None:
    layer = load_spec(minimal(activation=formula)).layers[0]
    assert (layer.activation, layer.formula, layer.alpha) == ("custom", formula, None)


def test_ints_accepted_for_l2() -> None:
    spec = load_spec({**minimal(), "l2": 1})
    assert spec.l2 == 1.0 and isinstance(spec.l2, float)


def test_to_dict_round_trip() -> None:
    assert load_spec(EXPECTED.to_dict()) == EXPECTED
    for spec in (load_spec(minimal(activation=a)) for a in [*ACTIVATIONS, "z", "z*sigmoid(z)"]):
        assert load_spec(spec.to_dict()) == spec


def test_to_dict_is_plain_and_serialisable(tmp_path: Path) -> None:
    data = EXPECTED.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["layers"][2]["activation"] == "z*tanh(softplus(z))"
    assert "alpha" not in data["layers"][0]
    for suffix, dump in ((".json", json.dumps), (".yaml", yaml.safe_dump)):
        path = tmp_path / f"out{suffix}"
        path.write_text(dump(data))
        assert load_spec(path) == EXPECTED


def test_fingerprint_stable_and_distinct() -> None:
    fp = EXPECTED.fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert load_spec(EXAMPLE).fingerprint() == fp
    assert load_spec(EXPECTED.to_dict()).fingerprint() == fp
    assert load_spec({**EXAMPLE, "l2": 0.002}).fingerprint() != fp
    assert load_spec({**EXAMPLE, "name": "other"}).fingerprint() != fp
    assert load_spec({**EXAMPLE, "dtype": "float64"}).fingerprint() != fp


def test_fingerprint_known_value() -> None:
    """Pins the canonical JSON so the hash stays stable across runs and versions."""
    spec = load_spec(minimal())
    canonical = (
        '{"dtype":"float64","input":2,"l2":0.0,"layers":[{"activation":"identity","bias":true,'
        '"init":"xavier","units":4}],"loss":"mse","name":"mlp","optimizer":{"lr":0.1,"momentum":0.0,'
        '"name":"sgd","nesterov":false,"weight_decay":0.0}}'
    )
    assert spec.fingerprint() == hashlib.sha256(canonical.encode()).hexdigest()


def _with(path: str, value: Any) -> dict[str, Any]:
    """EXAMPLE with the field at ``path`` (``a``, ``layers[i].b``) set to ``value`` (or deleted)."""
    data = copy.deepcopy(EXAMPLE)
    target, key = data, path
    if path.startswith("layers["):
        index, key = path[len("layers[") :].split("].")
        target = data["layers"][int(index)]
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return data


DELETE = object()

BAD_CASES = [
    # (data, substrings that must appear in the message)
    (_with("lose", "mse"), ["lose", "did you mean 'loss'"]),
    (_with("layers[0].unit", 3), ["layers[0]", "'unit'", "did you mean 'units'"]),
    (_with("input", DELETE), ["input", "missing"]),
    (_with("layers", DELETE), ["layers", "missing"]),
    (_with("loss", DELETE), ["loss", "missing"]),
    (_with("layers[0].units", DELETE), ["layers[0].units", "missing"]),
    (_with("layers[0].units", 0), ["layers[0].units", "0"]),
    (_with("layers[1].units", -3), ["layers[1].units", "-3"]),
    (_with("layers[0].units", 2.5), ["layers[0].units", "2.5"]),
    (_with("layers[0].units", "30"), ["layers[0].units", "'30'"]),
    (_with("layers[0].units", True), ["layers[0].units", "True"]),
    (_with("input", True), ["input", "True"]),
    (_with("input", 0), ["input", "0"]),
    (_with("input", "64"), ["input", "'64'"]),
    (_with("layers", []), ["layers", "[]"]),
    (_with("layers", {"units": 3}), ["layers", "{'units': 3}"]),
    (_with("layers", "relu"), ["layers", "'relu'"]),
    ({**EXAMPLE, "layers": [{"units": 3}, 5]}, ["layers[1]", "5"]),
    ({**EXAMPLE, "layers": [["units", 3]]}, ["layers[0]", "['units', 3]"]),
    (_with("layers[0].activation", "sigmod"), ["layers[0].activation", "'sigmod'", "did you mean 'sigmoid'"]),
    (_with("layers[1].activation", "ReLU"), ["layers[1].activation", "'ReLU'", "did you mean 'relu'"]),
    (_with("layers[0].activation", "custom"), ["layers[0].activation", "'custom'"]),
    (_with("layers[0].activation", 3), ["layers[0].activation", "3"]),
    (_with("layers[0].activation", "   "), ["layers[0].activation", "'   '"]),
    (_with("layers[0].activation", "z+" * 1001), ["layers[0].activation", "2000"]),
    (_with("loss", "mse_loss"), ["loss", "'mse_loss'", "did you mean 'mse'"]),
    (_with("loss", "crossentropy"), ["loss", "'crossentropy'", "softmax_cross_entropy"]),
    (_with("loss", None), ["loss", "None"]),
    (_with("layers[0].alpha", 0.1), ["layers[0].alpha", "0.1", "leaky_relu"]),
    (_with("layers[2].alpha", 0.1), ["layers[2].alpha", "0.1"]),
    (_with("layers[1].alpha", 1.0), ["layers[1].alpha", "1.0", "0 <= alpha < 1"]),
    (_with("layers[1].alpha", -0.1), ["layers[1].alpha", "-0.1"]),
    (_with("layers[1].alpha", "0.1"), ["layers[1].alpha", "'0.1'"]),
    (_with("layers[1].alpha", True), ["layers[1].alpha", "True"]),
    (_with("layers[1].alpha", None), ["layers[1].alpha", "None"]),
    (_with("layers[1].alpha", math.nan), ["layers[1].alpha", "nan"]),
    (minimal(activation="elu", alpha=0), ["layers[0].alpha", "0", "alpha > 0"]),
    (minimal(activation="elu", alpha=-1.0), ["layers[0].alpha", "-1.0"]),
    (_with("layers[0].bias", "yes"), ["layers[0].bias", "'yes'"]),
    (_with("layers[0].bias", 1), ["layers[0].bias", "1"]),
    (_with("dtype", "float16"), ["dtype", "'float16'", "float32", "float64"]),
    (_with("dtype", "float"), ["dtype", "'float'"]),
    (_with("layers[0].activation", "qqqq"), ["layers[0].activation", "'qqqq'", "valid: identity, sigmoid"]),
    (_with("init", "glorot"), ["init", "'glorot'", "xavier"]),
    (_with("layers[0].init", "kaiming"), ["layers[0].init", "'kaiming'", "he"]),
    (_with("l2", -0.1), ["l2", "-0.1", ">= 0"]),
    (_with("l2", "0.1"), ["l2", "'0.1'"]),
    (_with("l2", "1e-3"), ["l2", "'1e-3'", "1.0e-3"]),
    (_with("l2", math.nan), ["l2", "nan"]),
    (_with("l2", math.inf), ["l2", "inf"]),
    (_with("l2", True), ["l2", "True"]),
    (_with("l2", None), ["l2", "None"]),
    (_with("name", 3), ["name", "3"]),
    (_with("name", ""), ["name", "''"]),
    (_with("name", None), ["name", "None"]),
    (_with("name", "n" * 201), ["name", "'nnnn"]),
]


@pytest.mark.parametrize(("data", "needles"), BAD_CASES)
def test_bad_spec_raises(data: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(data)
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)


def test_spec_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="loss"):
        load_spec(_with("loss", "nope"))


def test_long_value_truncated() -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_with("loss", "x" * 500))
    assert "x" * 70 in str(info.value)
    assert "x" * 90 not in str(info.value)


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(SpecError, match="valid keys: .*units"):
        load_spec(_with("layers[0].activaton", "relu"))
    with pytest.raises(SpecError, match="did you mean 'activation'"):
        load_spec(_with("layers[0].activaton", "relu"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found: .*nope.yaml"):
        load_spec(tmp_path / "nope.yaml")


def test_bad_suffix(tmp_path: Path) -> None:
    path = tmp_path / "spec.txt"
    path.write_text("{}")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "'.txt'" in message and ".yaml" in message and ".json" in message and ".toml" in message


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("bad.yaml", "input: [1, 2\nlayers: x"),
        ("bad.json", '{"input": 3,'),
        ("bad.toml", "input = = 3"),
    ],
)
def test_parse_errors(tmp_path: Path, filename: str, text: str) -> None:
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(SpecError, match=filename):
        load_spec(path)


def test_yaml_python_tag_rejected(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text('!!python/object/apply:os.system ["echo hi"]\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "evil.yaml" in str(info.value) and "python/object/apply" in str(info.value)


def test_yaml_python_tag_nested_rejected(tmp_path: Path) -> None:
    path = tmp_path / "evil.yml"
    path.write_text('input: 2\nloss: !!python/object/apply:os.system ["echo hi"]\nlayers: [{units: 1}]\n')
    with pytest.raises(SpecError, match="evil.yml"):
        load_spec(path)


@pytest.mark.parametrize(("filename", "text"), [("l.yaml", "- 1\n- 2\n"), ("e.yaml", ""), ("s.json", '"x"')])
def test_top_level_not_mapping(tmp_path: Path, filename: str, text: str) -> None:
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(SpecError, match="mapping"):
        load_spec(path)


def test_directory_path(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()
    with pytest.raises(SpecError, match="dir.yaml"):
        load_spec(path)


def test_wrong_source_type() -> None:
    with pytest.raises(TypeError, match="list"):
        load_spec([1, 2])  # type: ignore[arg-type]


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        EXPECTED.name = "x"  # type: ignore[misc]

"""MLP specs (batch-major, ``a = act(a @ W + b)`` per layer): load, validate, return a frozen MLPSpec.

Invalid specs raise SpecError naming the field path (``layers[1].alpha``), the value and nearest choice."""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import numbers
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gradc.errors import SpecError
from gradc.runtime.train import OPTIMIZER_DEFAULTS, optimizer_options

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

#: Built-in activation name -> SymPy-syntax formula in ``z`` (``{alpha}`` is replaced by a number).
ACTIVATIONS: dict[str, str] = {
    "identity": "z",
    "sigmoid": "sigmoid(z)",
    "tanh": "tanh(z)",
    "relu": "Max(z, 0)",
    "leaky_relu": "Max(z, {alpha}*z)",
    "elu": "Max(z, 0) + {alpha}*(exp(Min(z, 0)) - 1)",
    "softplus": "softplus(z)",
    "gelu": "0.5*z*(1 + tanh(0.7978845608028654*(z + 0.044715*z**3)))",
    "silu": "z*sigmoid(z)",
}
#: Weight initialisation used when neither the layer nor the spec names one.
DEFAULT_INIT: dict[str, str] = {
    **dict.fromkeys(("sigmoid", "tanh", "identity", "softplus", "custom"), "xavier"),
    **dict.fromkeys(("relu", "leaky_relu", "elu", "gelu", "silu"), "he"),
}
LOSSES = ("mse", "sum_squared", "softmax_cross_entropy", "binary_cross_entropy", "hinge")
DTYPES = ("float32", "float64")
INITS = ("xavier", "he", "normal")
_PARSERS: dict[str, Callable[[str], Any]] = dict.fromkeys((".yaml", ".yml"), yaml.safe_load)
_PARSERS.update({".json": json.loads, ".toml": tomllib.loads})
SUFFIXES = tuple(_PARSERS)
MAX_FORMULA_CHARS = 2000
MAX_NAME_CHARS = 200
_ALPHA: dict[str, tuple[float, Callable[[float], bool], str]] = {  # default, range check, range text
    "leaky_relu": (0.01, lambda a: 0 <= a < 1, "0 <= alpha < 1"),
    "elu": (1.0, lambda a: a > 0, "alpha > 0"),
}
_TOP_KEYS = ("name", "input", "layers", "loss", "l2", "dtype", "init", "optimizer")
_LAYER_KEYS = ("units", "activation", "alpha", "bias", "init")


@dataclass(frozen=True)
class LayerSpec:
    """One dense layer: ``units`` outputs, activation name (or ``"custom"``) and its formula in ``z``."""

    units: int
    activation: str
    formula: str
    bias: bool = True
    init: str = "xavier"
    alpha: float | None = None


@dataclass(frozen=True)
class OptimizerSpec:
    """The training rule: ``sgd`` (momentum, nesterov, weight_decay), ``adam`` (L2 weight decay added to the
    gradient) or ``adamw`` (decoupled weight decay), each step as PyTorch's torch.optim class of that name
    takes it. Fields an optimiser does not use keep their defaults."""

    name: str = "sgd"
    lr: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The fields this optimiser uses, as the spec writes them."""
        return {"name": self.name, **{key: getattr(self, key) for key in OPTIMIZER_DEFAULTS[self.name]}}


@dataclass(frozen=True)
class MLPSpec:
    """A validated MLP: ``input`` features, a non-empty tuple of layers, a loss, L2 weight and dtype."""

    name: str
    input: int
    layers: tuple[LayerSpec, ...]
    loss: str
    l2: float = 0.0
    dtype: str = "float64"
    optimizer: OptimizerSpec = field(default_factory=lambda: OptimizerSpec(**optimizer_options("sgd")))

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON/YAML/TOML-serialisable dict; ``load_spec(s.to_dict()) == s``."""
        fields = {
            "name": self.name,
            "input": self.input,
            "loss": self.loss,
            "l2": self.l2,
            "dtype": self.dtype,
            "optimizer": self.optimizer.to_dict(),
        }
        return {**fields, "layers": [_layer_to_dict(layer) for layer in self.layers]}

    def network_fingerprint(self) -> str:
        """SHA-256 hex digest of what gives the parameters their meaning: the input width and each layer's
        units, activation and bias (not the loss, l2, dtype, init or optimiser, which train or read them)."""
        network = {"input": self.input, "layers": [{k: v for k, v in _layer_to_dict(layer).items() if k != "init"}
                                                   for layer in self.layers]}
        canonical = json.dumps(network, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Ordered parameter shapes, the one place their names are made: ``W1 (input, units1)``, ``b1 (units1,)``
        (where the layer has a bias), ``W2``, ``b2``, ..."""
        shapes: dict[str, tuple[int, ...]] = {}
        fan_in = self.input
        for i, layer in enumerate(self.layers, start=1):
            shapes[f"W{i}"] = (fan_in, layer.units)
            if layer.bias:
                shapes[f"b{i}"] = (layer.units,)
            fan_in = layer.units
        return shapes

    def param_inits(self) -> dict[str, str]:
        """Each parameter's init rule, keyed like `param_shapes`: the layer's for weights, "zeros" for biases."""
        return {name: "zeros" if name.startswith("b") else self.layers[int(name[1:]) - 1].init
                for name in self.param_shapes()}

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the canonical JSON of :meth:`to_dict` (stable across runs)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _layer_to_dict(layer: LayerSpec) -> dict[str, Any]:
    """The input form of ``layer``: a custom activation is written back as its formula."""
    activation = layer.formula if layer.activation == "custom" else layer.activation
    out = {"units": layer.units, "activation": activation, "bias": layer.bias, "init": layer.init}
    return out if layer.alpha is None else {**out, "alpha": layer.alpha}


def load_spec(source: MLPSpec | Mapping[str, Any] | str | os.PathLike[str]) -> MLPSpec:
    """Return a validated MLPSpec from an MLPSpec (as is), a mapping, or a .yaml/.yml/.json/.toml path.

    Raises SpecError for any invalid spec or unreadable file, TypeError for another type of ``source``."""
    if isinstance(source, MLPSpec):
        return source
    if isinstance(source, Mapping):
        return _parse_spec(source)
    if isinstance(source, (str, os.PathLike)):
        data = _read_file(Path(source))
        if not isinstance(data, Mapping):
            raise SpecError(f"{source}: the top level must be a mapping, got {_show(data)}")
        return _parse_spec(data)
    raise TypeError(f"load_spec expects an MLPSpec, a mapping or a path, got {type(source).__name__}")


def _read_file(path: Path) -> Any:
    """Parse a spec file by its suffix; every failure becomes a SpecError naming the file."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SpecError(f"{path}: unsupported spec file suffix {suffix!r} (valid: {', '.join(SUFFIXES)})")
    if not path.exists():
        raise SpecError(f"spec file not found: {path}")
    try:
        return _PARSERS[suffix](path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:  # JSON/TOML/Unicode errors are ValueErrors
        raise SpecError(f"cannot load spec file {path}: {exc}") from exc


def _parse_spec(data: Mapping[str, Any]) -> MLPSpec:
    """Validate a top-level spec mapping and build the MLPSpec."""
    _check_keys(data, "", _TOP_KEYS, required=("input", "layers", "loss"))
    name = data.get("name", "mlp")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
        raise _error("name", f"expected a string of 1..{MAX_NAME_CHARS} characters", name)
    init = _choice(data["init"], "init", "init", INITS) if "init" in data else None
    return MLPSpec(
        name=name,
        input=_positive_int(data["input"], "input"),
        layers=_parse_layers(data["layers"], init),
        loss=_choice(data["loss"], "loss", "loss", LOSSES),
        l2=_real(data.get("l2", 0.0), "l2", lambda v: v >= 0, "a number >= 0"),
        dtype=_choice(data.get("dtype", "float64"), "dtype", "dtype", DTYPES),
        optimizer=parse_optimizer(data.get("optimizer", {"name": "sgd"}), "optimizer"),
    )


def parse_optimizer(raw: Any, path: str = "optimizer") -> OptimizerSpec:
    """Validate an optimiser mapping (``{name: adam, lr: 0.001, ...}``, or just its name) into an
    OptimizerSpec, the optimiser's defaults filling what it leaves out; SpecError names the field
    (``optimizer.lr``). The checks are the generated modules' own (gradc/runtime/train.py)."""
    if isinstance(raw, OptimizerSpec):
        return raw
    try:
        return OptimizerSpec(**optimizer_options(raw, path))
    except ValueError as exc:
        raise SpecError(str(exc)) from None


def _parse_layers(raw: Any, default_init: str | None) -> tuple[LayerSpec, ...]:
    """Validate the non-empty ``layers`` list; ``default_init`` is the spec-wide init, if any."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise _error("layers", "expected a non-empty list of layer mappings", raw)
    return tuple(_parse_layer(item, f"layers[{i}]", default_init) for i, item in enumerate(raw))


def _parse_layer(raw: Any, path: str, default_init: str | None) -> LayerSpec:
    """Validate one layer mapping at ``path`` and substitute alpha into its formula."""
    if not isinstance(raw, Mapping):
        raise _error(path, "expected a mapping with at least 'units'", raw)
    _check_keys(raw, path, _LAYER_KEYS, required=("units",))
    units = _positive_int(raw["units"], f"{path}.units")
    activation, formula = _parse_activation(raw.get("activation", "identity"), f"{path}.activation")
    alpha = _parse_alpha(activation, raw, f"{path}.alpha")
    if alpha is not None:
        formula = formula.replace("{alpha}", repr(alpha))
    bias = raw.get("bias", True)
    if not isinstance(bias, bool):
        raise _error(f"{path}.bias", "expected true or false", bias)
    init = _choice(raw.get("init", default_init or DEFAULT_INIT[activation]), f"{path}.init", "init", INITS)
    return LayerSpec(units, activation, formula, bias=bias, init=init, alpha=alpha)


def _parse_activation(value: Any, path: str) -> tuple[str, str]:
    """Return ``(name, formula template)``; a non-identifier string (or ``"z"``) is ``"custom"``."""
    if not isinstance(value, str):
        raise _error(path, "expected an activation name or a formula in z", value)
    text = value.strip()
    if not text or len(value) > MAX_FORMULA_CHARS:
        raise _error(path, f"expected a name or a formula of 1..{MAX_FORMULA_CHARS} characters", value)
    if text.isidentifier() and text != "z":
        return _choice(text, path, "activation", tuple(ACTIVATIONS)), ACTIVATIONS[text]
    return "custom", value


def _parse_alpha(activation: str, layer: Mapping[str, Any], path: str) -> float | None:
    """The layer's alpha (default per activation), or None for activations without one."""
    if activation not in _ALPHA:
        if "alpha" in layer:
            raise _error(path, f"only {' and '.join(_ALPHA)} take an alpha, not {activation}", layer["alpha"])
        return None
    default, in_range, description = _ALPHA[activation]
    return _real(layer.get("alpha", default), path, in_range, f"a number with {description} for {activation}")


def _check_keys(data: Mapping[Any, Any], path: str, valid: Sequence[str], required: Sequence[str]) -> None:
    """Reject keys outside ``valid`` (suggesting the nearest) and missing ``required`` keys."""
    for key in data:
        if key not in valid:
            hint = f"{_nearest(key, valid)} (valid keys: {', '.join(valid)})"
            raise SpecError(f"{path or 'spec'}: unknown key {_show(key)}{hint}")
    for key in required:
        if key not in data:
            raise SpecError(f"{path + '.' if path else ''}{key}: required key {key!r} is missing")


def _choice(value: Any, path: str, what: str, choices: Collection[str]) -> str:
    """Return ``value`` if it is one of ``choices``; else SpecError with the nearest choice."""
    if isinstance(value, str) and value in choices:
        return value
    hint = _nearest(value, choices)
    raise SpecError(f"{path}: unknown {what} {_show(value)}{hint} (valid: {', '.join(choices)})")


def _positive_int(value: Any, path: str) -> int:
    """Return ``value`` as an int > 0; bools and non-integers are rejected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise _error(path, "expected an integer > 0", value)
    return int(value)


def _real(value: Any, path: str, in_range: Callable[[float], bool], description: str) -> float:
    """Return ``value`` as a float if it is a finite real (not bool/str/NaN/inf) and ``in_range``."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not ok or not in_range(float(value)):
        yaml_trap = isinstance(value, str) and "e" in value.lower()
        hint = " (YAML 1.1 reads 1e-3 as a string; write 1.0e-3)" if yaml_trap else ""
        raise _error(path, f"expected {description}{hint}", value)
    return float(value)


def _nearest(value: Any, choices: Collection[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice (difflib, case-insensitive), or ``""``."""
    lowered = {choice.lower(): choice for choice in choices}
    match = difflib.get_close_matches(str(value).lower(), list(lowered), n=1, cutoff=0.5)
    return f"; did you mean {lowered[match[0]]!r}?" if match else ""


def _show(value: Any) -> str:
    """``repr(value)`` truncated to 80 characters."""
    return text if len(text := repr(value)) <= 80 else text[:77] + "..."


def _error(path: str, problem: str, value: Any) -> SpecError:
    """A SpecError ``"<path>: <problem>, got <value>"``."""
    return SpecError(f"{path}: {problem}, got {_show(value)}")

"""MLP spec -> IR: the staged layers of the lecture notes, `z_i = a_{i-1} @ W_i + b_i`, `a_i = act(z_i)`.

Activations are scalar programs compiled by gradc itself: the formula (a built-in's or the user's)
is parsed without eval, lowered, gate-rewritten and differentiated by gradc's own reverse mode, and
emitted as one fused loop that yields the activation and its derivative together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy

from gradc.backend.names import sanitize
from gradc.core import autodiff, interpret, passes
from gradc.core.ir import Graph, Node, call
from gradc.frontend.parse import parse_expr
from gradc.frontend.spec import MLPSpec
from gradc.frontend.sympy import TEXT_CONSTANTS, lower_exprs, text_functions

_Z = sympy.Symbol("z", real=True)


@dataclass(frozen=True)
class Activation:
    """A scalar activation h(z), its derivative h'(z) as IR, and the helper name emitted for it."""

    helper: str                 # e.g. "_act_sigmoid"; identity across a program
    formula: str
    h: Node = field(compare=False, hash=False, repr=False)
    dh: Node = field(compare=False, hash=False, repr=False)

    def value(self, z: np.ndarray) -> np.ndarray:
        return np.broadcast_to(interpret.evaluate([self.h], {"z": z})[0], np.shape(z))

    def deriv(self, z: np.ndarray) -> np.ndarray:
        return np.broadcast_to(interpret.evaluate([self.dh], {"z": z})[0], np.shape(z))


def compile_activation(stem: str, formula: str, dtype: str, where: str) -> Activation:
    """Parse `formula` (a SymPy-syntax string in z; SpecError naming `where` if it is not one) and
    build the scalar program of the activation and of its derivative."""
    expr = parse_expr(formula, text_functions(), TEXT_CONSTANTS, symbols={"z"}, what=where)
    expr = expr.subs(sympy.Symbol("z", real=True), _Z)
    graph, (h,) = lower_exprs([expr], [_Z], dtype)
    (h,) = passes.rewrite([h])
    (dh,) = autodiff.backward([h], [graph.const(1.0)], [graph.input("z")])
    (dh,) = passes.rewrite([dh])
    return Activation(f"_act_{sanitize(stem)}", formula, h, dh)


@dataclass
class MLPProgram:
    """The three programs of a compiled MLP, over one graph, and what the wrappers need to know."""

    spec: MLPSpec
    X: Node
    Y: Node
    params: dict[str, Node]
    output: Node                 # a_L
    loss: Node
    grads: list[Node]            # in params order
    activations: list[Activation]
    inits: dict[str, str]


def _loss(spec: MLPSpec, z: Node, a: Node, Y: Node) -> Node:
    if spec.loss == "binary_cross_entropy":
        if spec.layers[-1].activation == "sigmoid":
            return call("bce_logits", z, Y)   # stable: softplus(z) - y·z, gradient σ(z) - y
        return call("bce", a, Y)
    return call({"softmax_cross_entropy": "softmax_ce"}.get(spec.loss, spec.loss), a, Y)


def lower_mlp(spec: MLPSpec) -> MLPProgram:
    """Build the forward, loss and gradient programs of `spec`."""
    g = Graph(spec.dtype)
    X = g.input("X", ("N", spec.input))
    Y = g.input("Y", ("N", spec.layers[-1].units))
    params: dict[str, Node] = {}
    inits: dict[str, str] = {}
    activations: dict[str, Activation] = {}
    a, z, fan_in = X, X, spec.input
    for i, layer in enumerate(spec.layers, 1):
        where = f"layers[{i - 1}].activation"
        params[f"W{i}"] = W = g.input(f"W{i}", (fan_in, layer.units))
        inits[f"W{i}"] = layer.init
        z = call("matmul", a, W)
        if layer.bias:
            params[f"b{i}"] = b = g.input(f"b{i}", (layer.units,))
            inits[f"b{i}"] = "zeros"
            z = z + b
        z.hint, z.label = f"z{i}", f"layer {i}: {fan_in} -> {layer.units}, pre-activation"
        if layer.formula.strip() == "z":
            a = z
        else:
            stem = layer.activation if layer.activation != "custom" else f"custom{i}"
            key = layer.formula
            if any(act.helper == f"_act_{sanitize(stem)}" for act in activations.values()):
                stem = f"{stem}{i}"   # e.g. leaky_relu with another alpha: a helper of its own
            if key not in activations:
                activations[key] = compile_activation(stem, layer.formula, spec.dtype, where)
            a = call("act", z, fn=activations[key])
            a.hint, a.label = f"h{i}", f"layer {i}: {layer.activation}"
        fan_in = layer.units
    loss = _loss(spec, z, a, Y)
    weights = [p for name, p in params.items() if name.startswith("W")]
    if spec.l2 > 0:
        penalty = call("sumsq", weights[0])
        for W in weights[1:]:
            penalty = penalty + call("sumsq", W)
        loss = loss + (spec.l2 / 2.0) * penalty
    loss.hint, loss.label = "loss", f"{spec.loss}" + (f" + l2/2·Σ‖W‖² (l2={spec.l2})" if spec.l2 > 0 else "")
    grads = autodiff.backward([loss], [g.const(1.0)], list(params.values()))
    return MLPProgram(spec, X, Y, params, a, loss, grads, list(activations.values()), inits)

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
from gradc.core import interpret
from gradc.core.graph import Graph
from gradc.core.ir import Node, call, topological_order
from gradc.core.program import Meta, Program, differentiate
from gradc.frontend.functions import TEXT_CONSTANTS, text_functions
from gradc.frontend.parse import parse_expr
from gradc.frontend.spec import LayerSpec, MLPSpec
from gradc.frontend.sympy import lower_exprs

_Z = sympy.Symbol("z", real=True)


@dataclass(frozen=True)
class Activation:
    """A scalar activation h(z) and its derivative h'(z), as a differentiated program of one input z,
    and the helper name emitted for it."""

    helper: str                 # e.g. "_act_sigmoid"; identity across a program
    formula: str
    program: Program = field(compare=False, hash=False, repr=False)

    @property
    def h(self) -> Node:
        return self.program.outputs[0]

    @property
    def dh(self) -> Node:
        return self.program.grads[0]

    def value(self, z: np.ndarray) -> np.ndarray:
        return np.broadcast_to(interpret.evaluate([self.h], {"z": z})[0], np.shape(z))

    def deriv(self, z: np.ndarray) -> np.ndarray:
        return np.broadcast_to(interpret.evaluate([self.dh], {"z": z})[0], np.shape(z))


def compile_activation(stem: str, formula: str, dtype: str, where: str) -> Activation:
    """Parse `formula` (a SymPy-syntax string in z; SpecError naming `where` if it is not one) and
    build the scalar program of the activation and of its derivative."""
    expr = parse_expr(formula, text_functions(), TEXT_CONSTANTS, symbols={"z"}, what=where)
    expr = expr.subs(sympy.Symbol("z", real=True), _Z)
    meta = Meta()
    graph, (h,) = lower_exprs([expr], [_Z], dtype, meta)
    z = graph.input("z")
    program = Program(f"activation {stem}", graph, (z,), (h,), (h,), (graph.const(1.0),), (z,), meta=meta,
                      origin=formula)
    return Activation(f"_act_{sanitize(stem)}", formula, differentiate(program))


def _loss(spec: MLPSpec, z: Node, a: Node, Y: Node) -> Node:
    if spec.loss == "binary_cross_entropy":
        if spec.layers[-1].activation == "sigmoid":
            return call("bce_logits", z, Y)   # stable: softplus(z) - y·z, gradient σ(z) - y
        return call("bce", a, Y)
    return call({"softmax_cross_entropy": "softmax_ce"}.get(spec.loss, spec.loss), a, Y)


def activations(program: Program) -> list[Activation]:
    """The activations of an MLP program, in the order of their first layer."""
    found: dict[str, Activation] = {}
    for node in topological_order(program.outputs):
        if node.op == "act":
            found.setdefault(node.attr("fn").helper, node.attr("fn"))
    return list(found.values())


def lower_mlp(spec: MLPSpec) -> Program:
    """The program of `spec`: outputs (the last layer's activations, the loss) over inputs X, Y and the
    parameters in `spec.param_shapes()` order; its objective is the loss, differentiated w.r.t. the
    parameters. `origin` is the spec."""
    g = Graph(spec.dtype)
    meta = Meta()
    X = g.input("X", ("N", spec.input))
    Y = g.input("Y", ("N", spec.layers[-1].units))
    params = {name: g.input(name, shape) for name, shape in spec.param_shapes().items()}
    helpers: dict[str, Activation] = {}
    a, z, fan_in = X, X, spec.input
    for i, layer in enumerate(spec.layers, 1):
        z = call("matmul", a, params[f"W{i}"])
        if layer.bias:
            z = z + params[f"b{i}"]
        meta.name(z, f"z{i}", f"layer {i}: {fan_in} -> {layer.units}, pre-activation")
        if layer.formula.strip() == "z":
            a = z
        else:
            a = meta.name(call("act", z, fn=_activation(helpers, layer, i, spec.dtype)), f"h{i}",
                          f"layer {i}: {layer.activation}")
        fan_in = layer.units
    loss = _loss(spec, z, a, Y)
    weights = [p for name, p in params.items() if name.startswith("W")]
    if spec.l2 > 0:
        penalty = call("sumsq", weights[0])
        for W in weights[1:]:
            penalty = penalty + call("sumsq", W)
        loss = loss + (spec.l2 / 2.0) * penalty
    meta.name(loss, "loss", f"{spec.loss}" + (f" + l2/2·Σ‖W‖² (l2={spec.l2})" if spec.l2 > 0 else ""))
    return Program(spec.name, g, (X, Y, *params.values()), (a, loss), (loss,), (g.const(1.0),),
                   tuple(params.values()), meta=meta, origin=spec)


def _activation(helpers: dict[str, Activation], layer: LayerSpec, i: int, dtype: str) -> Activation:
    """Layer i's activation: one compiled per formula; a helper name per formula (leaky_relu with
    another alpha gets a helper of its own)."""
    for act in helpers.values():
        if act.formula == layer.formula:
            return act
    stem = layer.activation if layer.activation != "custom" else f"custom{i}"
    if f"_act_{sanitize(stem)}" in helpers:
        stem = f"{stem}{i}"
    act = compile_activation(stem, layer.formula, dtype, f"layers[{i - 1}].activation")
    helpers[act.helper] = act
    return act

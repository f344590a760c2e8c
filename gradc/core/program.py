"""The program: what both frontends produce and every transformation and backend takes.

A `Program` is a set of IR outputs over named inputs, the objective its gradient is taken of, and
the side tables (`Meta`) that say what its nodes mean to a reader. `differentiate` is the one
transformation pipeline of the compiler: gate rewrites, reverse mode, rewrites again, for
expressions, activations and networks alike; further modes (forward mode, second order) are further
transformations of the same `Program`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gradc.core import autodiff, passes
from gradc.core.graph import Graph
from gradc.core.ir import Node, op_count, topological_order


@dataclass
class Meta:
    """What nodes mean to a reader, kept beside the nodes (which are shared and immutable).

    labels: the source sub-expression or layer a value computes (the comment of its statement);
    stems: the name a frontend gives a value (z1, h1, loss); adjoint_of: for a node holding (part of)
    the adjoint of another, that node; via: for a node a VJP rule built, the forward node it came from;
    tangent_of: for a node holding a directional derivative (forward mode), the value it is the derivative of.
    """

    labels: dict[Node, str] = field(default_factory=dict)
    stems: dict[Node, str] = field(default_factory=dict)
    adjoint_of: dict[Node, Node] = field(default_factory=dict)
    via: dict[Node, Node] = field(default_factory=dict)
    tangent_of: dict[Node, Node] = field(default_factory=dict)

    def label(self, node: Node, text: str) -> Node:
        """Give `node` the label `text` unless it has one (leaves are never labelled); returns node."""
        if text and not node.is_leaf and node not in self.labels:
            self.labels[node] = text
        return node

    def describe(self, node: Node) -> str:
        """What `node` computes, for a reader: its label, an input's name, a constant's value; "" if unknown."""
        if node.is_input:
            return self.labels.get(node) or node.name
        if node.is_const:
            return repr(node.value)
        return self.labels.get(node, "")

    def name(self, node: Node, stem: str, text: str) -> Node:
        """A value a frontend names (`z1`, with the comment `layer 1: ...`); returns node."""
        self.stems[node] = stem
        self.labels[node] = text
        return node


@dataclass(frozen=True)
class Program:
    """Outputs over inputs, in one graph, and the gradient to take.

    The gradient is of Σ_k seeds[k]·objective[k] summed over all points, with respect to each node of
    `wrt`; `grads` holds it (one node per `wrt` entry) once `differentiate` has run. `origin` is what
    the frontend compiled (an MLPSpec, SymPy expressions), for the backends' headers."""

    name: str
    graph: Graph
    inputs: tuple[Node, ...]           # the arguments, in order
    outputs: tuple[Node, ...]          # the values the module returns
    objective: tuple[Node, ...]
    seeds: tuple[Node, ...]
    wrt: tuple[Node, ...]
    grads: tuple[Node, ...] = ()
    meta: Meta = field(default_factory=Meta)
    origin: Any = None
    layout: tuple[int, ...] | None = None   # the outputs are the entries of an array of this shape, row by row

    @property
    def dtype(self) -> str:
        return self.graph.dtype

    def input(self, name: str) -> Node:
        """The input called `name`."""
        return next(x for x in self.inputs if x.name == name)

    def op_counts(self) -> dict[str, int]:
        """IR operations of the forward pass, and those the backward pass adds."""
        forward = op_count(topological_order([*self.outputs, *self.objective]))
        return {"forward": forward,
                "backward": op_count(topological_order([*self.outputs, *self.objective, *self.grads])) - forward}


def differentiate(program: Program) -> Program:
    """The program with `grads` filled: gate rewrites of the forward values, reverse mode over them
    (they are its primal set), and the rewrites again over forward and backward together."""
    values = passes.rewrite([*program.outputs, *program.objective], program.meta)
    outputs, objective = _split(values, len(program.outputs))
    primal = topological_order(values)
    grads = autodiff.backward(objective, program.seeds, program.wrt, primal, program.meta)
    values = passes.rewrite([*outputs, *objective, *grads], program.meta)
    outputs, rest = _split(values, len(outputs))
    objective, grads = _split(rest, len(objective))
    return replace(program, outputs=outputs, objective=objective, grads=grads)


def _split(values: Sequence[Node], k: int) -> tuple[tuple[Node, ...], tuple[Node, ...]]:
    return tuple(values[:k]), tuple(values[k:])

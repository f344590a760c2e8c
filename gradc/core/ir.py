"""The IR: a DAG of `Node`s owned by a `Graph` that hash-conses them.

Every node is built through `Graph.apply`, which folds constants, applies the op's algebraic
simplifications and returns an existing node when an identical one exists (so common
sub-expressions are shared as they are built: CSE is a property of the builder). Nodes overload
the arithmetic operators, so derivative rules in `ops.py` read like the math they stand for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(eq=False, repr=False)
class Node:
    """One value of the program. Identity is by object; `Graph.apply` guarantees uniqueness."""

    graph: Graph
    op: str
    inputs: tuple[Node, ...]
    attrs: tuple[tuple[str, Any], ...]
    shape: tuple[Any, ...]
    dtype: str
    label: str = ""          # provenance: the SymPy sub-expression or layer this value came from
    adjoint_of: Node | None = None   # set on nodes that hold (part of) the adjoint of another node
    hint: str = ""           # preferred name stem for emitted code
    via: Node | None = None  # on backward nodes: the forward node whose VJP made it

    def attr(self, key: str, default: Any = None) -> Any:
        return dict(self.attrs).get(key, default)

    @property
    def is_const(self) -> bool:
        return self.op == "const"

    @property
    def value(self) -> float:
        """The number held by a `const` node."""
        return self.attr("value")

    def __repr__(self) -> str:
        if self.is_const:
            return f"const({self.value})"
        if self.op == "input":
            return f"input({self.attr('name')})"
        return f"{self.op}({', '.join(map(repr, self.inputs))})"

    # Arithmetic builds nodes, so VJP rules are written as formulas over nodes.
    def _lift(self, other: Node | float) -> Node:
        return other if isinstance(other, Node) else self.graph.const(other)

    def __add__(self, o): return self.graph.apply("add", self, self._lift(o))
    def __radd__(self, o): return self.graph.apply("add", self._lift(o), self)
    def __sub__(self, o): return self.graph.apply("sub", self, self._lift(o))
    def __rsub__(self, o): return self.graph.apply("sub", self._lift(o), self)
    def __mul__(self, o): return self.graph.apply("mul", self, self._lift(o))
    def __rmul__(self, o): return self.graph.apply("mul", self._lift(o), self)
    def __truediv__(self, o): return self.graph.apply("div", self, self._lift(o))
    def __rtruediv__(self, o): return self.graph.apply("div", self._lift(o), self)
    def __pow__(self, o): return self.graph.apply("pow", self, self._lift(o))
    def __neg__(self): return self.graph.apply("neg", self)


@dataclass
class Graph:
    """Owner and builder of nodes. `dtype` is the floating type of every real-valued node."""

    dtype: str = "float64"
    _table: dict[tuple, Node] = field(default_factory=dict)
    inputs: list[Node] = field(default_factory=list)

    def nodes(self) -> list[Node]:
        """Every node built so far."""
        return list(self._table.values())

    def input(self, name: str, shape: tuple = (), label: str = "") -> Node:
        """A named program input (a SymPy symbol, a weight matrix, ...)."""
        key = ("input", name)
        if key not in self._table:
            node = Node(self, "input", (), (("name", name),), shape, self.dtype, label or name, hint=name)
            self._table[key] = node
            self.inputs.append(node)
        return self._table[key]

    def const(self, value: float) -> Node:
        value = float(value)
        key = ("const", value if not math.isnan(value) else "nan")
        if key not in self._table:
            self._table[key] = Node(self, "const", (), (("value", value),), (), self.dtype, repr(value))
        return self._table[key]

    def apply(self, op: str, *inputs: Node, label: str = "", **attrs: Any) -> Node:
        """Build (or find) `op(*inputs)`; folds constants and applies the op's simplifier first."""
        from gradc.core.ops import OPS  # the table imports this module for its builders

        record = OPS[op]
        attr_items = tuple(sorted(attrs.items()))
        if record.simplify is not None:
            simpler = record.simplify(*inputs, **attrs)
            if simpler is not None:
                return simpler
        if inputs and record.foldable and all(x.is_const for x in inputs):
            return self.const(record.eval(*(np.float64(x.value) for x in inputs), **attrs))
        key = (op, tuple(id(x) for x in inputs), attr_items)
        node = self._table.get(key)
        if node is None:
            shape = record.shape(*inputs, **attrs)
            dtype = record.dtype_rule(self.dtype, *inputs)
            node = Node(self, op, tuple(inputs), attr_items, shape, dtype, label, hint=record.hint)
            self._table[key] = node
        elif label and not node.label:
            node.label = label
        return node


def topological_order(outputs: Iterable[Node]) -> list[Node]:
    """Every node reachable from `outputs`, each after its inputs (iterative: deep graphs are fine)."""
    order: list[Node] = []
    seen: set[int] = set()
    for root in outputs:
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((x, False) for x in reversed(node.inputs) if id(x) not in seen)
    return order


def use_counts(order: Sequence[Node]) -> dict[int, int]:
    """How many times each node (by id) is consumed by the nodes of `order`."""
    counts: dict[int, int] = {}
    for node in order:
        for x in node.inputs:
            counts[id(x)] = counts.get(id(x), 0) + 1
    return counts


# Builders for the ops that have no operator: `ir.exp(x)` reads like the math.
def call(op: str, *inputs: Node, **attrs: Any) -> Node:
    return inputs[0].graph.apply(op, *inputs, **attrs)


def exp(x: Node) -> Node: return call("exp", x)
def log(x: Node) -> Node: return call("log", x)
def sqrt(x: Node) -> Node: return call("sqrt", x)
def sin(x: Node) -> Node: return call("sin", x)
def cos(x: Node) -> Node: return call("cos", x)
def cosh(x: Node) -> Node: return call("cosh", x)
def sinh(x: Node) -> Node: return call("sinh", x)
def sign(x: Node) -> Node: return call("sign", x)
def sigmoid(x: Node) -> Node: return call("sigmoid", x)
def square(x: Node) -> Node: return x * x
def select(cond: Node, a: Node, b: Node) -> Node: return call("select", cond, a, b)
def ge(a: Node, b: Node) -> Node: return call("ge", a, b)
def gt(a: Node, b: Node) -> Node: return call("gt", a, b)
def eq(a: Node, b: Node) -> Node: return call("eq", a, b)


def logsumexp(*terms: Node) -> Node:
    """log(Σ exp(t)), shifted by the max of the terms so that no exp overflows."""
    shift = terms[0]
    for t in terms[1:]:
        shift = call("max", shift, t)
    return call("logsumexp", shift, *terms)

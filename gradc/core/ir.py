"""The IR's values: immutable `Node`s, built by a `Graph` (core/graph.py) that hash-conses them.

A node is its op, its inputs, its attributes, its shape and dtype, and nothing else: what a node
means to a reader (the source sub-expression it computes, the name a frontend gives it, the value
whose adjoint it holds) lives in the side tables of the program that uses it (core/program.py),
so a node shared by two programs, or by two uses in one, carries no state either could change.

Nodes overload the arithmetic operators and this module has a builder per op without one, so
derivative rules (core/ops.py) read like the math they stand for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradc.core.graph import Graph


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Node:
    """One value of a program. Identity is by object; `Graph.apply` guarantees uniqueness."""

    graph: Graph
    op: str
    inputs: tuple[Node, ...]
    attrs: tuple[tuple[str, Any], ...]
    shape: tuple[Any, ...]
    dtype: str

    def attr(self, key: str, default: Any = None) -> Any:
        return dict(self.attrs).get(key, default)

    @property
    def is_const(self) -> bool:
        return self.op == "const"

    @property
    def is_input(self) -> bool:
        return self.op == "input"

    @property
    def is_leaf(self) -> bool:
        """An input or a constant: a value no statement computes."""
        return not self.inputs

    @property
    def value(self) -> float:
        """The number held by a `const` node."""
        return self.attr("value")

    @property
    def name(self) -> str:
        """The name of an `input` node."""
        return self.attr("name")

    def __repr__(self) -> str:
        if self.is_const:
            return f"const({self.value})"
        if self.is_input:
            return f"input({self.name})"
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


def op_count(nodes: Iterable[Node]) -> int:
    """How many of `nodes` are operations (not inputs or constants)."""
    return sum(1 for n in nodes if not n.is_leaf)


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

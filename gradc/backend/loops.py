"""Loops printed (core/loops.py): a Sum or Product as a `for` over its index inside the point loop, the
adjoint of an array input as `+=` into its buffer at each position the loop read, and loops over the
same range whose inputs are ready fused into one `for` (the forward sum and its reverse, when the
reverse does not wait for the sum's value: one pass over the array, as a hand-written loop makes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gradc.backend.names import comment
from gradc.core import loops
from gradc.core.ir import Node

if TYPE_CHECKING:
    from gradc.backend.printer import Printer

_STEP = "    "


def position_text(at: tuple[loops.Position, ...], index_names: Sequence[str]) -> str:
    """`k + 1`, `r, 2 * k - 1`: the printed position of an element."""
    axes = []
    for offset, coeffs in at:
        terms = [name if c == 1 else f"-{name}" if c == -1 else f"{c} * {name}"
                 for c, name in zip(coeffs, index_names) if c != 0]
        text = " + ".join(terms).replace("+ -", "- ")
        if offset or not text:
            text = f"{text} {'+' if offset >= 0 else '-'} {abs(offset)}" if text else str(offset)
        axes.append(text)
    return ", ".join(axes)


def emit_element(args: list[str], node: Node) -> str:
    return f"{args[0]}[{position_text(node.attr('at'), args[1:])}]"


def fusable(first: Node, other: Node, ready: set[int]) -> bool:
    """Whether loop `other` can run in the same `for` as loop `first`: the same index and range, and
    every value it reads outside the loop is ready (a leaf, or computed before `first`)."""
    same = all(first.attr(k) is other.attr(k) or first.attr(k) == other.attr(k) for k in ("var", "start", "stop"))
    return same and all(x.is_leaf or id(x) in ready for x in other.inputs)


def block(printer: Printer, nodes: Sequence[Node]) -> list[str]:
    """The loops `nodes` (fusable, the first printed first) as one `for`: each result's initial value,
    the union of their bodies' statements, and each one's accumulation."""
    naming = printer.naming
    head = []
    for node in nodes:
        name = naming.names[id(node)]
        note = comment(naming.meta.describe(node) or naming.meta.describe(naming.meta.adjoint_of.get(node, node)))
        start = naming.array_init.get(name) if node.shape else ("0.0" if node.attr("kind") == "sum" else "1.0")
        head.append(f"{name} = {start}" + (f"  # {note}" if note else ""))
    first = nodes[0]
    var = naming.names[id(first.attr("var"))]
    body = [f"for {var} in range({first.attr('start')}, {first.attr('stop')}):"]
    body += [_STEP + line for line in body_statements(printer, [n.attr("body") for n in nodes], first.attr("var"))]
    for node in nodes:
        body += [_STEP + line for line in _accumulate_body(printer, node, naming.names[id(node)])]
    return head + body


def body_statements(printer: Printer, bodies: Sequence[Node], var: Node) -> list[str]:
    """The statements of one iteration: the named scalar values of `bodies` that change with `var`."""
    seen: set[int] = set()
    lines = []
    for body in bodies:
        for node in loops.body_order(body, var):
            if id(node) in seen or node.shape or id(node) not in printer.naming.names:
                continue
            seen.add(id(node))
            lines += printer.lines(node)
    return lines


def _accumulate_body(printer: Printer, node: Node, target: str) -> list[str]:
    body = node.attr("body")
    if node.shape:
        return accumulate(printer, body, target)
    return [f"{target} {'+=' if node.attr('kind') == 'sum' else '*='} {printer.text(body)}"]


def accumulate(printer: Printer, node: Node, target: str) -> list[str]:
    """Statements adding the array value `node` into the array named `target`: a `+=` at the position of
    each scatter it sums, a `for` for each loop."""
    name = printer.naming.names.get(id(node))
    if name is not None and name != target:
        return [f"{target} += {name}"]
    if node.op == "add":
        return accumulate(printer, node.inputs[0], target) + accumulate(printer, node.inputs[1], target)
    if node.op == "scatter":
        value, *index = node.inputs
        where = position_text(node.attr("at"), [printer.text(x) for x in index])
        return [f"{target}[{where}] += {printer.text(value)}"]
    if node.op == "loop":
        var = printer.naming.names[id(node.attr("var"))]
        inner = body_statements(printer, [node.attr("body")], node.attr("var"))
        inner += accumulate(printer, node.attr("body"), target)
        return [f"for {var} in range({node.attr('start')}, {node.attr('stop')}):", *(_STEP + s for s in inner)]
    raise NotImplementedError(f"an array-valued {node.op!r} in an expression kernel")

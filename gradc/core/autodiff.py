"""Reverse mode: the backward pass is built as IR, with the same builders as the forward pass.

Walk the forward nodes in reverse topological order; each node that holds an adjoint hands it to
its op's VJP rule, and each input's contribution is (a) reduced to the input's shape where the op
broadcast it, then (b) added to that input's adjoint: the `+=` of fan-out. Every invariant of the
VJP rules (arity, unbroadcast, accumulation) is checked here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gradc.core import ir
from gradc.core.ir import Node
from gradc.core.ops import OPS
from gradc.errors import UnsupportedError

if TYPE_CHECKING:
    from gradc.core.program import Meta


def _depends_on(order: Sequence[Node], wrt: Sequence[Node]) -> set[int]:
    """Ids of the nodes whose value changes with some node of `wrt` (only they need adjoints)."""
    live = {id(x) for x in wrt}
    for node in order:
        if any(id(x) in live for x in node.inputs):
            live.add(id(node))
    return live


def unbroadcast(adjoint: Node, shape: tuple) -> Node:
    """Sum `adjoint` over the axes along which a value of `shape` was broadcast."""
    if adjoint.shape == shape:
        return adjoint
    extra = len(adjoint.shape) - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + k for k, n in enumerate(shape) if n == 1 and adjoint.shape[extra + k] != 1
    )
    return ir.call("sum", adjoint, axes=axes, keep_shape=shape)


def backward(outputs: Sequence[Node], seeds: Sequence[Node], wrt: Sequence[Node], primal: Sequence[Node],
             meta: Meta, order: Sequence[Node] | None = None) -> list[Node]:
    """Adjoints of `wrt` for the scalar-valued Σ_k seeds[k]·outputs[k] (summed over all points).

    `primal` is the forward pass (the nodes the outputs are computed from): a node the backward pass
    builds that is one of them keeps its forward meaning; every other node it builds is recorded in
    `meta` as part of an adjoint (`adjoint_of`) or as made by a VJP rule (`via`).
    Returns one node per `wrt` entry; a zero constant where the outputs do not depend on it.
    `order` (default: all that `outputs` reach) is the forward nodes to differentiate through, in
    topological order; the values they read that are not in it are treated as leaves (a loop's closure).
    Raises UnsupportedError naming the op (and its source expression) that has no derivative rule.
    """
    order = ir.topological_order(outputs) if order is None else order
    live = _depends_on(order, wrt)
    forward = {id(n) for n in primal}
    adjoints: dict[int, Node] = {}
    for out, seed in zip(outputs, seeds):
        if id(out) in live:
            _accumulate(adjoints, out, seed, forward, meta)
    for node in reversed(order):
        g = adjoints.get(id(node))
        if g is None or node.is_leaf:
            continue
        record = OPS[node.op]
        if record.vjp is None:
            raise UnsupportedError(f"gradc cannot differentiate {node.op!r} (in {meta.labels.get(node) or node!r})")
        extra = {"meta": meta} if record.vjp_meta else {}
        contributions = record.vjp(g, node, *node.inputs, **dict(node.attrs), **extra)
        if len(contributions) != len(node.inputs):
            raise AssertionError(f"VJP of {node.op!r} returned {len(contributions)} adjoints for "
                                 f"{len(node.inputs)} inputs")
        # reduced to each input's shape first, so a bias's batch sum is also marked as this node's
        reduced = [None if c is None else unbroadcast(c, x.shape) for x, c in zip(node.inputs, contributions)]
        _mark_made_by(node, [c for c in reduced if c is not None], forward, meta)
        for x, c in zip(node.inputs, reduced):
            if c is not None and id(x) in live:
                _accumulate(adjoints, x, c, forward, meta)
    zero = wrt[0].graph.const(0.0) if wrt else None
    return [adjoints.get(id(x), zero) for x in wrt]


def _mark_made_by(node: Node, contributions: list[Node], forward: set[int], meta: Meta) -> None:
    """Record `node` as the origin (`via`) of every node its VJP rule built: the contributions and the
    helpers under them (a comparison, a shared denominator), so each backward statement can say where it
    comes from. Stops at forward values, leaves, earlier rules' nodes and adjoint totals."""
    stack = list(contributions)
    while stack:
        n = stack.pop()
        if n in meta.via or n in meta.adjoint_of or id(n) in forward or n.is_leaf:
            continue
        meta.via[n] = node
        stack.extend(n.inputs)


def _accumulate(adjoints: dict[int, Node], target: Node, contribution: Node, forward: set[int], meta: Meta) -> None:
    """adjoint(target) += contribution, recording which primal each partial sum belongs to (only on
    nodes the backward pass made: a forward value that happens to equal an adjoint keeps its name)."""
    previous = adjoints.get(id(target))
    total = contribution if previous is None else previous + contribution
    if total not in meta.adjoint_of and id(total) not in forward and not total.is_const:
        meta.adjoint_of[total] = target
    adjoints[id(target)] = total

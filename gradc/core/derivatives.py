"""Derivatives beyond the gradient, as transformations of a program's IR: forward mode (JVP), Jacobians,
Hessians (forward over reverse) and Hessian-vector products.

Forward mode needs no rule of its own: every elementwise op's VJP is the cotangent times its partial
derivatives, so the partials are its VJP rule applied to the cotangent 1, and the tangent of a value is
Σ_k ∂value/∂input_k · tangent(input_k). The results are IR built with the same builders (simplified and
shared as they are built), so the backends print and compile them like any other value. Second order is
forward mode applied to the reverse pass: the Hessian's column j is the JVP of the gradient in the
direction of the j-th argument, and a Hessian-vector product is the JVP of the gradient along v.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gradc.core import autodiff, ir, loops
from gradc.core.ir import Node
from gradc.core.ops import OPS
from gradc.core.program import Meta, Program
from gradc.errors import UnsupportedError


def partials(node: Node, meta: Meta) -> tuple[Node | None, ...]:
    """∂node/∂input_k for each input (None: zero): the op's VJP rule applied to the cotangent 1."""
    record = OPS[node.op]
    if record.vjp is None or record.vjp_meta:   # (a loop's tangent is jvp's own: _loop_tangent)
        raise UnsupportedError(f"gradc cannot take derivatives beyond the gradient through {node.op!r} "
                               f"(in {meta.labels.get(node) or node!r})")
    return record.vjp(node.graph.const(1.0), node, *node.inputs, **dict(node.attrs))


def jvp(outputs: Sequence[Node], tangents: Mapping[Node, Node], meta: Meta) -> list[Node]:
    """The directional derivatives of `outputs` where the leaves of `tangents` move along their tangents
    (every other leaf is fixed). Each tangent built is recorded in `meta.tangent_of`."""
    known: dict[int, Node] = {id(x): t for x, t in tangents.items()}
    for node in ir.topological_order(outputs):
        if node.is_leaf or id(node) in known or not any(id(x) in known for x in node.inputs):
            continue
        if node.op == "loop":
            _record(known, node, _loop_tangent(node, known, meta), meta)
            continue
        total = None
        for x, partial in zip(node.inputs, partials(node, meta)):
            if partial is None or id(x) not in known:
                continue
            term = partial * known[id(x)]
            total = term if total is None else total + term
        _record(known, node, total, meta)
    zero = outputs[0].graph.const(0.0) if outputs else None
    return [known.get(id(o), zero) for o in outputs]


def _record(known: dict[int, Node], node: Node, tangent: Node | None, meta: Meta) -> None:
    """Keep `tangent` as the tangent of `node` (unless it is zero), naming it as such in `meta`."""
    if tangent is None or (tangent.is_const and tangent.value == 0.0):
        return
    if not tangent.is_leaf and not _has_meaning(tangent, meta):
        meta.tangent_of[tangent] = node
    known[id(node)] = tangent


def _has_meaning(node: Node, meta: Meta) -> bool:
    """Whether `node` already means something to a reader (a forward value, an adjoint, a VJP's helper, a
    tangent): a tangent that turns out to be such a node (the partial x*y of x*y*z) keeps that meaning."""
    return any(node in table for table in (meta.labels, meta.stems, meta.adjoint_of, meta.via, meta.tangent_of))


def _loop_tangent(node: Node, known: dict[int, Node], meta: Meta) -> Node | None:
    """The tangent of a Sum loop is the Sum of its body's tangents; of a Product, Π · Σ tangent/factor. The
    closure's tangents are known: the body's are built inside the loop (a loop-invariant part stays out)."""
    var, body, kind = node.attr("var"), node.attr("body"), node.attr("kind")
    (inner,) = jvp([body], {x: known[id(x)] for x in node.inputs if id(x) in known}, meta)
    if inner.is_const and inner.value == 0.0:
        return None
    start, stop = node.attr("start"), node.attr("stop")
    if kind == "sum":
        return loops.build("sum", var, start, stop, inner)
    return node * loops.build("sum", var, start, stop, inner / body)


def _one_hot(program: Program, j: int) -> dict[Node, Node]:
    return {program.wrt[j]: program.graph.const(1.0)}


def _existing(program: Program) -> list[Node]:
    """The nodes the program already has (its forward and reverse passes): a later reverse pass that meets one
    leaves its meaning (and so the gradient kernel's names and comments) as it was."""
    return ir.topological_order([*program.outputs, *program.grads])


def jacobian(program: Program) -> list[list[Node]]:
    """J[k][j] = ∂output_k/∂wrt_j at each point: forward mode, one pass per argument, or reverse mode, one
    pass per output, whichever takes fewer passes."""
    p, n, m = program, len(program.wrt), len(program.outputs)
    if n <= m:
        columns = [jvp(p.outputs, _one_hot(p, j), p.meta) for j in range(n)]
        return [[columns[j][k] for j in range(n)] for k in range(m)]
    primal = _existing(p)
    return [autodiff.backward([out], [p.graph.const(1.0)], p.wrt, primal, p.meta) for out in p.outputs]


def hessians(program: Program) -> list[list[list[Node]]]:
    """H[k][a][b] = ∂²output_k/∂wrt_a∂wrt_b at each point, forward over reverse: the gradient of each output,
    then its JVP along each argument. Exactly symmetric: the entry below the diagonal is the node above it."""
    p, n = program, len(program.wrt)
    primal = _existing(p)
    out = []
    single = len(p.outputs) == 1 and p.seeds[0].is_const and p.seeds[0].value == 1.0
    for output in p.outputs:   # one expression's gradient is the program's own
        grad = list(p.grads) if single else autodiff.backward([output], [p.graph.const(1.0)], p.wrt, primal, p.meta)
        columns = [jvp(grad, _one_hot(p, b), p.meta) for b in range(n)]
        out.append([[columns[max(a, b)][min(a, b)] for b in range(n)] for a in range(n)])
    return out


def hvp(program: Program, v: Sequence[Node]) -> list[Node]:
    """H·v of a program of one output at each point: the JVP of its gradient along v (one value per wrt)."""
    return jvp(program.grads, dict(zip(program.wrt, v)), program.meta)


@dataclass(frozen=True)
class Derivatives:
    """What a module's derivative kernels compute, over the program's inputs and one tangent input per
    differentiated argument (the direction of `jvp`, the v of `hvp`)."""

    tangents: tuple[Node, ...]
    jacobian: tuple[Node, ...]      # output k, argument j: row-major
    hessian: tuple[Node, ...]       # output k, arguments a, b: row-major, symmetric
    jvp: tuple[Node, ...]           # one per output
    hvp: tuple[Node, ...]           # one per argument (a program of one output), else empty


def derive(program: Program) -> Derivatives | None:
    """The derivative kernels' values for `program` (differentiated), or None where nothing is differentiated
    or an array input is (arrays that are data, read in Sum loops, are fine)."""
    if not program.wrt or any(x.shape for x in program.wrt):
        return None
    g = program.graph
    tangents = tuple(g.input(f"\x00tangent{j}") for j in range(len(program.wrt)))
    return Derivatives(
        tangents=tangents,
        jacobian=tuple(node for row in jacobian(program) for node in row),
        hessian=tuple(node for h in hessians(program) for row in h for node in row),
        jvp=tuple(jvp(program.outputs, dict(zip(program.wrt, tangents)), program.meta)),
        hvp=tuple(hvp(program, tangents)) if len(program.outputs) == 1 and not program.seeds[0].is_input else ())

"""Graph passes.

Constant folding and CSE happen in `Graph.apply` as nodes are built, and dead nodes vanish because
emission walks only what the outputs reach; so a pass here is a *rebuild*: each reachable node is
rebuilt bottom-up through the builder and then offered to the rewrite rules.

The rules recognise gates whose naive chain rule is unstable or wasteful:
  1/(1+exp(-u)) -> sigmoid(u)   σ' = σ(1-σ); finite at u = ±1000 where exp overflows
  log(1+exp(u)) -> softplus(u)  max(u,0) + log1p(exp(-|u|)); never overflows
  log(Σ exp(u)) -> logsumexp(u) shifted by the max term
  log(1+u)      -> log1p(u)     accurate for small u
  log σ(u), log(1-σ(u))         -softplus(∓u): finite where σ rounds to 0 or 1
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from gradc.core import ir, loops
from gradc.core.ir import Node

if TYPE_CHECKING:
    from gradc.core.program import Meta

Rule = Callable[[Node, "Meta"], "Node | None"]


def _terms(node: Node) -> list[Node]:
    """The summands of a chain of `add` nodes, left to right (iterative: a long sum is a deep chain)."""
    terms, stack = [], [node]
    while stack:
        n = stack.pop()
        if n.op == "add":
            stack.extend(reversed(n.inputs))
        else:
            terms.append(n)
    return terms


def _one_plus(node: Node) -> Node | None:
    """u when node is 1 + u (either order), else None."""
    if node.op == "add":
        a, b = node.inputs
        if a.is_const and a.value == 1.0:
            return b
        if b.is_const and b.value == 1.0:
            return a
    return None


def _gate(op: str, u: Node, meta: Meta, text: str) -> Node:
    """The gate `op(u)`, labelled `text` with u's label in place of {} (unless it has a label)."""
    return meta.label(u.graph.apply(op, u), text.format(meta.describe(u) or "·"))


def sigmoid_gate(node: Node, meta: Meta) -> Node | None:
    """1/(1+exp(-u)) -> σ(u); 1/(1+exp(u)) -> σ(-u)."""
    if node.op != "div" or not (node.inputs[0].is_const and node.inputs[0].value == 1.0):
        return None
    rest = _one_plus(node.inputs[1])
    if rest is None or rest.op != "exp":
        return None
    arg = rest.inputs[0]
    u = arg.inputs[0] if arg.op == "neg" else -arg
    return _gate("sigmoid", u, meta, "σ({})")


def log_gates(node: Node, meta: Meta) -> Node | None:
    """log(1+exp(u)) -> softplus(u); log(Σ exp(u_k)) -> logsumexp; log(1+u) -> log1p(u);
    log σ(u) -> -softplus(-u) and log(1-σ(u)) -> -softplus(u) (finite where σ rounds to 0 or 1)."""
    if node.op != "log":
        return None
    (arg,) = node.inputs
    if arg.op == "sigmoid":
        u = arg.inputs[0]
        return -_gate("softplus", -u, meta, "softplus(-({}))")
    if arg.op == "sub" and arg.inputs[0].is_const and arg.inputs[0].value == 1.0 and arg.inputs[1].op == "sigmoid":
        u = arg.inputs[1].inputs[0]
        return -_gate("softplus", u, meta, "softplus({})")
    terms = _terms(arg)
    if len(terms) >= 2 and all(t.op == "exp" for t in terms):
        return ir.logsumexp(*(t.inputs[0] for t in terms))
    rest = _one_plus(arg)
    if rest is None:
        return None
    if rest.op == "exp":
        return meta.label(node.graph.apply("softplus", rest.inputs[0]), meta.labels.get(node, ""))
    return meta.label(node.graph.apply("log1p", rest), meta.labels.get(node, ""))


GATE_RULES: tuple[Rule, ...] = (sigmoid_gate, log_gates)


def rewrite(outputs: Sequence[Node], meta: Meta, rules: Sequence[Rule] = GATE_RULES) -> list[Node]:
    """Rebuild everything `outputs` reach, bottom-up, applying `rules` to each rebuilt node until none
    fires (inside loop bodies too). Returns the new outputs; what `meta` says of a node is carried over to
    its rebuilt form."""
    new: dict[int, Node] = {}
    _rebuild(outputs, new, meta, rules)
    return [new[id(x)] for x in outputs]


def _rebuild(outputs: Sequence[Node], new: dict[int, Node], meta: Meta, rules: Sequence[Rule]) -> None:
    """Rebuild the nodes `outputs` reach that `new` does not hold yet, recording each in `new`. A loop is
    rebuilt from its rebuilt body, so that its inputs stay the body's closure."""
    for node in ir.topological_order(outputs):
        if id(node) in new:
            continue
        if node.is_leaf:
            new[id(node)] = node
            continue
        if node.op == "loop":
            attrs = dict(node.attrs)
            _rebuild([attrs["body"]], new, meta, rules)
            built = loops.build(attrs["kind"], attrs["var"], attrs["start"], attrs["stop"], new[id(attrs["body"])])
        else:
            built = node.graph.apply(node.op, *(new[id(x)] for x in node.inputs), **dict(node.attrs))
        meta.label(built, meta.labels.get(node, ""))
        built = _apply_rules(built, rules, meta)
        if built not in meta.adjoint_of and node in meta.adjoint_of:
            target = meta.adjoint_of[node]
            meta.adjoint_of[built] = new.get(id(target), target)
        new[id(node)] = built


def _apply_rules(node: Node, rules: Sequence[Rule], meta: Meta) -> Node:
    for _ in range(16):   # each rule strictly shrinks the graph, so this settles fast
        for rule in rules:
            result = rule(node, meta)
            if result is not None and result is not node:
                meta.label(result, meta.labels.get(node, ""))
                node = result
                break
        else:
            return node
    return node

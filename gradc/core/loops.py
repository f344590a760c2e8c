"""Loops in the IR: a Sum or Product over an integer index, compiled as a loop (never unrolled), the
indexing of array inputs inside it, and its reverse mode.

A loop node `loop(*closure; var, start, stop, kind, body)` is Σ (kind "sum") or Π ("product") of `body`
for the index leaf `var` = start, ..., stop - 1. `body` is a node of the same graph; the nodes between
it and `var` (those whose value changes with the index) are the loop's body statements, and the
values they read that do not change with it are the loop's `closure`, its inputs: so the rest of the
compiler sees a loop as one node depending on its closure, and a value the body reads that does not
depend on the index is computed once, outside the loop.

An array input (a per-point vector or matrix) is read with `element(array, *index leaves; at)`, whose
position on each axis is affine in the loop indices: `at` holds, per axis, (offset, coefficients of the
index inputs in order). Its adjoint is array-valued: `scatter(value, *index leaves; at, shape)`, the
array that is `value` at that position and 0 elsewhere, and a sum loop of those is the reverse of a
loop that reads the array (a `+=` into the adjoint at each iteration's positions).

Reverse mode through a loop: the body is differentiated once, symbolically, with the loop's adjoint as
seed (for a product, the adjoint times the product over the factor); the adjoint of each closure value
is a new sum loop over the same index of what the body contributes to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from gradc.core import ir
from gradc.core.ir import Node

if TYPE_CHECKING:
    from gradc.core.program import Meta

Position = tuple[int, tuple[int, ...]]   # one axis of `at`: offset, and a coefficient per index input


def body_order(body: Node, var: Node) -> list[Node]:
    """The nodes of a loop's body that change with the index `var`, each after its inputs (`var` excluded):
    the statements of one iteration."""
    dependent = {id(var)}
    order = []
    for node in ir.topological_order([body]):
        if node is not var and any(id(x) in dependent for x in node.inputs):
            dependent.add(id(node))
            order.append(node)
    return order


def closure(body: Node, var: Node) -> list[Node]:
    """The values the body reads that do not change with `var`, in a fixed order (first use)."""
    inside = {id(n) for n in body_order(body, var)} | {id(var)}
    seen: set[int] = set()
    out = []
    for node in body_order(body, var):
        for x in node.inputs:
            if id(x) not in inside and id(x) not in seen:
                seen.add(id(x))
                out.append(x)
    return out


def build(kind: str, var: Node, start: int, stop: int, body: Node) -> Node:
    """Σ or Π of `body` over var = start .. stop - 1; folded where the body does not change with var."""
    g = body.graph
    count = max(stop - start, 0)
    if not body_order(body, var) and body is not var:
        if body.shape:   # an array adjoint that is the same at every iteration
            return body if count == 1 else g.apply("loop", body, var=var, start=start, stop=stop, kind=kind,
                                                   body=body)
        return g.const(float(count)) * body if kind == "sum" else body ** float(count)
    return g.apply("loop", *closure(body, var), var=var, start=start, stop=stop, kind=kind, body=body)


def loop_shape(*closure_values: Node, body: Node, **_: Any) -> tuple:
    return body.shape


def vjp(g: Node, out: Node, *closure_values: Node, var: Node, start: int, stop: int, kind: str, body: Node,
        meta: Meta) -> tuple[Node | None, ...]:
    """The adjoint of each closure value: a sum loop over the index of what the body's reverse pass
    gives it. A product's factor k has the adjoint g·Π/body_k (nan where a factor is exactly 0)."""
    from gradc.core import autodiff  # autodiff calls this rule: imported when first used

    seed = g if kind == "sum" else g * out / body
    order = body_order(body, var)
    wrt = [x for x in closure_values if x.dtype != "int64" and not x.is_const]
    primal = ir.topological_order([body, out])   # values the body pass reuses keep their forward names
    adjoints = dict(zip(map(id, wrt), autodiff.backward([body], [seed], wrt, primal, meta, order=order)))
    result: list[Node | None] = []
    for x in closure_values:
        a = adjoints.get(id(x))
        zero = a is None or (a.is_const and a.value == 0.0)
        label = f"Σ_{var.name} ∂/∂{meta.describe(x) or x.op}"
        result.append(None if zero else meta.label(build("sum", var, start, stop, a), label))
    return tuple(result)


def position(at: tuple[Position, ...], index_values: tuple[int, ...]) -> tuple[int, ...]:
    """The array position `at` names for the given values of the index inputs."""
    return tuple(offset + sum(c * v for c, v in zip(coeffs, index_values)) for offset, coeffs in at)


def eval_element(array: np.ndarray, *index_values: int, at: tuple[Position, ...]) -> np.ndarray:
    """array[..., position]: the batch axes lead, the array's own axes trail."""
    return array[(Ellipsis, *position(at, index_values))]


def eval_scatter(value: np.ndarray, *index_values: int, at: tuple[Position, ...], shape: tuple) -> np.ndarray:
    out = np.zeros(np.shape(value) + tuple(shape))
    out[(Ellipsis, *position(at, index_values))] = value
    return out


def vjp_element(g: Node, out: Node, array: Node, *index: Node, at: tuple[Position, ...]) -> tuple[Node | None, ...]:
    return (ir.call("scatter", g, *index, at=at, shape=array.shape), *(None for _ in index))


def vjp_scatter(g: Node, out: Node, value: Node, *index: Node, at: tuple[Position, ...],
                shape: tuple) -> tuple[Node | None, ...]:
    return (ir.call("element", g, *index, at=at), *(None for _ in index))


def eval_unbound(*_: Any, **__: Any) -> Any:
    raise TypeError("a loop is evaluated with its index bound: interpret.evaluate does it (loops.evaluate)")


def evaluate(node: Node, values: Mapping[int, Any],
             run: Callable[[list[Node], dict[int, Any]], list[Any]]) -> np.ndarray:
    """The value of loop `node` given the values of its closure (`values`, by node id); `run(outputs, known)`
    evaluates nodes with some values known (interpret.evaluate's walk)."""
    var, body, kind = node.attr("var"), node.attr("body"), node.attr("kind")
    total: Any = 0.0 if kind == "sum" else 1.0
    for k in range(node.attr("start"), node.attr("stop")):
        known = {**values, id(var): k}
        value = run([body], known)[0]
        total = total + value if kind == "sum" else total * value
    return np.asarray(total)

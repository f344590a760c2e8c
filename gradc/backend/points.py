"""The shape every expression kernel has: one function whose loop over the points is split into fixed
chunks run in parallel (`prange`), or serial in the debug build (which checks every value); and the row
kernels, which store several results per point into one (points, entries) array."""

from __future__ import annotations

from collections.abc import Sequence

from gradc.backend.names import Namer
from gradc.backend.printer import Printer, plan_names, statements
from gradc.core import ir
from gradc.core.ir import Node
from gradc.core.program import Program

_DECORATOR = '@nb.njit(parallel=True, error_model="numpy", cache=True)'
_DEBUG_DECORATOR = '@nb.njit(error_model="numpy", cache=True)  # debug build: serial, checks every value'
_INDENT = " " * 12


def point_kernel(name: str, params: Sequence[str], length: str, body: Sequence[str], debug: bool) -> list[str]:
    """`def name(params)`: `body` (lines, at point i of chunk c) for every point i < `length`."""
    return [_DEBUG_DECORATOR if debug else _DECORATOR, f"def {name}({', '.join(params)}):",
            f"    for c in {'range' if debug else 'nb.prange'}(({length} + CHUNK - 1) // CHUNK):",
            f"        for i in range(c * CHUNK, min({length}, (c + 1) * CHUNK)):",
            *(_INDENT + line for line in body)]


def row_kernel(name: str, p: Program, namer: Namer, args: Sequence[str], tangents: Sequence[Node],
            results: Sequence[Node], stores: Sequence[str], debug: bool, check) -> list[str]:
    """`name(args, t_args if tangents, out)`: the values of `results`, stored per point by `stores` (one
    template each, over the point index and the value)."""
    points = {id(x): namer.fresh(f"{a}_i") for x, a in zip(p.inputs, args)}
    t_params = [namer.fresh(f"t_{args[p.inputs.index(w)]}") for w in p.wrt] if tangents else []
    points.update({id(t): namer.fresh(f"{param}_i") for t, param in zip(tangents, t_params)})
    out = namer.fresh("out")
    naming = plan_names(p.outputs, results, namer, p.meta, points, {})
    order = ir.topological_order([*p.outputs, *results])
    params = {id(x): a for x, a in zip(p.inputs, args)} | {id(t): q for t, q in zip(tangents, t_params)}
    seen = {id(n) for n in ir.topological_order(results)}
    body = [f"{points[id(n)]} = _load({params[id(n)]}, i)" for n in order if id(n) in points and id(n) in seen]
    body += statements([n for n in order if id(n) in seen], naming, check=check)
    printer = Printer(naming)
    row = namer.fresh("row")   # stores through the point's row: Numba compiles n² of them into a prange loop
    body.append(f"{row} = {out}[i]")   # far faster than n² two-index stores (a 30x30 Hessian: 100 s -> 15 s)
    body += [store.format(out=row, value=printer.text(node)) for node, store in zip(results, stores)]
    return point_kernel(name, [*args, *t_params, out], f"{out}.shape[0]", body, debug)

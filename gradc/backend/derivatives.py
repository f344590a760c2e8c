"""The derivative kernels of an expression module (core/derivatives.py): Jacobian, Hessian, JVP and HVP at
every point, each one fused loop over the points like the forward kernel, storing its results per point
into one (points, entries) array. Numba compiles a kernel on its first call: a module whose `hessian` is
never called never compiles it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradc.backend.names import Namer
from gradc.backend.points import point_kernel
from gradc.backend.printer import Printer, plan_names, statements
from gradc.core import ir
from gradc.core.derivatives import Derivatives
from gradc.core.ir import Node
from gradc.core.program import Program


def _kernel(name: str, p: Program, namer: Namer, args: Sequence[str], tangents: Sequence[Node],
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


def derivative_kernels(p: Program, d: Derivatives, reserved: frozenset[str], debug: bool, check) -> list[list[str]]:
    """The kernels `_jacobian_kernel`, `_hessian_kernel`, `_jvp_kernel` and (one output) `_hvp_kernel`."""
    def namer_and_args() -> tuple[Namer, list[str]]:
        namer = Namer(reserved)
        return namer, [namer.fresh(x.name) for x in p.inputs]

    n, m = len(p.wrt), len(p.outputs)
    kernels = []
    namer, args = namer_and_args()
    kernels.append(_kernel("_jacobian_kernel", p, namer, args, (), d.jacobian,
                           [f"{{out}}[{k}] = {{value}}" for k in range(m * n)], debug, check))
    namer, args = namer_and_args()
    stores = []
    for k in range(m):
        for a in range(n):
            for b in range(n):
                if a <= b:   # one value, both places: exactly symmetric
                    both = {(k * n + a) * n + b, (k * n + b) * n + a}
                    stores.append(" = ".join(f"{{out}}[{e}]" for e in sorted(both)) + " = {value}")
    upper = [d.hessian[(k * n + a) * n + b] for k in range(m) for a in range(n) for b in range(n) if a <= b]
    kernels.append(_kernel("_hessian_kernel", p, namer, args, (), upper, stores, debug, check))
    namer, args = namer_and_args()
    stores = [f"{{out}}[{k}] = {{value}}" for k in range(2 * m)]
    kernels.append(_kernel("_jvp_kernel", p, namer, args, d.tangents, [*p.outputs, *d.jvp], stores, debug, check))
    if d.hvp:
        namer, args = namer_and_args()
        kernels.append(_kernel("_hvp_kernel", p, namer, args, d.tangents, d.hvp,
                               [f"{{out}}[{k}] = {{value}}" for k in range(n)], debug, check))
    return kernels


def derivative_wrappers(args: Sequence[str], hvp: bool) -> list[str]:
    """The public functions around the runtime's `_jacobians`, `_hessians`, `_jvps`, `_hvps`."""
    joined = ", ".join(args)
    call = f"({joined}{',' if len(args) == 1 else ''})"
    lines = [
        f"def jacobian({joined}):",
        '    """∂output/∂(each of WRT) at every point: the batch shape + the output shape + (len(WRT),)."""',
        f"    return _jacobians({call})",
        "", "",
        f"def hessian({joined}):",
        '    """Second derivatives at every point: the batch shape + the output shape + (len(WRT), len(WRT))."""',
        f"    return _hessians({call})",
        "", "",
        f"def jvp({joined}, tangents):",
        '    """(forward value, its derivative along `tangents`, one per WRT argument) in one forward-mode pass."""',
        f"    return _jvps({call}, tangents)",
    ]
    if hvp:
        lines += ["", "",
                  f"def hvp({joined}, v):",
                  '    """The Hessian times v (one array per WRT argument) at every point: a tuple like grad\'s."""',
                  f"    return _hvps({call}, v)"]
    return lines

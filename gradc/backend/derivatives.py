"""The derivative kernels of an expression module (core/derivatives.py): Jacobian, Hessian, JVP and HVP at
every point, each one fused loop over the points like the forward kernel, storing its results per point
into one (points, entries) array (backend/points.py's row kernels). Numba compiles a kernel on its first
call: a module whose `hessian` is never called never compiles it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradc.backend.names import Namer
from gradc.backend.points import row_kernel
from gradc.core.derivatives import Derivatives
from gradc.core.program import Program


def derivative_kernels(p: Program, d: Derivatives, reserved: frozenset[str], debug: bool, check) -> list[list[str]]:
    """The kernels `_jacobian_kernel`, `_hessian_kernel`, `_jvp_kernel` and (one output) `_hvp_kernel`."""
    def namer_and_args() -> tuple[Namer, list[str]]:
        namer = Namer(reserved)
        return namer, [namer.fresh(x.name) for x in p.inputs]

    n, m = len(p.wrt), len(p.outputs)
    kernels = []
    namer, args = namer_and_args()
    kernels.append(row_kernel("_jacobian_kernel", p, namer, args, (), d.jacobian,
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
    kernels.append(row_kernel("_hessian_kernel", p, namer, args, (), upper, stores, debug, check))
    namer, args = namer_and_args()
    stores = [f"{{out}}[{k}] = {{value}}" for k in range(2 * m)]
    kernels.append(row_kernel("_jvp_kernel", p, namer, args, d.tangents, [*p.outputs, *d.jvp], stores, debug, check))
    if d.hvp:
        namer, args = namer_and_args()
        kernels.append(row_kernel("_hvp_kernel", p, namer, args, d.tangents, d.hvp,
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

"""Expression programs -> a standalone module of batched Numba kernels.

Each kernel is one fused loop over the points, split into fixed chunks run in parallel (`prange`):
inputs are loaded per point (or are shared scalars), the staged forward and backward statements
run on scalars with no temporaries, and each gradient is stored per point or, for a shared scalar,
summed per chunk (the in-loop reduction).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from gradc.backend.derivatives import derivative_kernels, derivative_wrappers
from gradc.backend.names import RESERVED, Namer, defined_names
from gradc.backend.points import point_kernel, row_kernel
from gradc.backend.printer import (
    Naming,
    Printer,
    debug_message,
    header,
    identifier,
    module_source,
    plan_names,
    runtime_source,
    statements,
    vectorises,
)
from gradc.core import ir
from gradc.core.derivatives import Derivatives
from gradc.core.ir import Node
from gradc.core.program import Meta, Program

#: the runtime files (gradc/runtime/) a written expression module draws its support code from, in their order there
RUNTIMES = ("vector_math", "special", "expr", "derivatives", "heap")


def _checker(meta: Meta) -> Callable[[Node, str], str]:
    """The debug build's check after each statement: a FloatingPointError naming a non-finite value."""
    def check(node: Node, name: str) -> str:
        return f"if not np.isfinite({name}): raise FloatingPointError({debug_message(node, name, meta)}, i)"
    return check


def _vector(order: Sequence[Node], debug: bool) -> bool:
    """Print the loop in its vectorising forms? Not in the debug build (serial, one check per value)."""
    return not debug and vectorises(order)


@functools.cache
def _reserved() -> frozenset[str]:
    """Names a user's names must not take: gradc's own and every global of the embedded runtime."""
    return RESERVED.union(*(defined_names(runtime_source(name)) for name in RUNTIMES))


class _Names:
    """The identifiers of one program's arguments, kernels' parameters and locals; which arguments are
    differentiated (`wrt_index`) and the cotangent inputs that weight a sequence's outputs (none for
    a single expression, whose seed is 1)."""

    def __init__(self, program: Program):
        namer = Namer(_reserved())
        self.wrt_index = [program.inputs.index(x) for x in program.wrt]
        self.cotangents = [s for s in program.seeds if s.is_input]
        self.args = [namer.fresh(x.name) for x in program.inputs]
        self.points = {id(x): namer.fresh(f"{a}_i") for x, a in zip(program.inputs, self.args)}
        self.outputs = [namer.fresh(program.name if len(program.outputs) == 1 else f"{program.name}{k}")
                        for k in range(len(program.outputs))]
        self.out_params = [namer.fresh(f"{o}_out") for o in self.outputs]
        self.ct_params = [namer.fresh(f"ct_{o}") for o in self.outputs] if self.cotangents else []
        self.ct_points = {id(c): namer.fresh(f"{p}_i") for c, p in zip(self.cotangents, self.ct_params)}
        self.grad_params = [namer.fresh(f"d_{self.args[k]}_out") for k in self.wrt_index]
        out_names = {id(o): n for o, n in zip(program.outputs, self.outputs) if not o.is_leaf}
        self.naming: Naming = plan_names(program.outputs, program.grads, namer, program.meta,
                                         {**self.points, **self.ct_points}, out_names)
        # an array input's gradient is summed straight into its row of the gradient buffer
        self.naming.array_init.update({self.naming.names[id(g)]: f"{param}[i]"
                                       for x, g, param in zip(program.wrt, program.grads, self.grad_params)
                                       if x.shape and id(g) in self.naming.names})


def _loads(order: Sequence[Node], points: dict[int, str], params: dict[int, str]) -> list[str]:
    return [f"{points[id(n)]} = _load({params[id(n)]}, i)" for n in order if id(n) in points]


def _forward_kernel(p: Program, nm: _Names, debug: bool) -> list[str]:
    order = ir.topological_order(p.outputs)
    params = {id(x): a for x, a in zip(p.inputs, nm.args)}
    check = _checker(p.meta) if debug else None
    vector = _vector(order, debug)
    body = _loads(order, nm.points, params) + statements(order, nm.naming, check=check, vector=vector)
    body += [f"_store({o}, i, c, {_value(x, nm.naming, vector)})" for x, o in zip(p.outputs, nm.out_params)]
    return point_kernel("_forward_kernel", [*nm.args, *nm.out_params], f"{nm.out_params[0]}.shape[0]", body, debug)


def _row_kernel(p: Program, debug: bool) -> list[str]:
    """The outputs again, as one row per point: a call at one point fills one array, not one per output."""
    namer = Namer(_reserved())
    args = [namer.fresh(x.name) for x in p.inputs]
    stores = [f"{{out}}[{k}] = {{value}}" for k in range(len(p.outputs))]
    return row_kernel("_row_kernel", p, namer, args, (), p.outputs, stores, debug,
                      _checker(p.meta) if debug else None)


def _value(node: Node, naming: Naming, vector: bool) -> str:
    """`node` as an expression over named values (a kernel's stored result)."""
    return Printer(Naming(naming.names, set(), naming.meta), vector).text(node)


def _value_and_grad_kernel(p: Program, nm: _Names, debug: bool) -> list[str]:
    forward = ir.topological_order(p.outputs)
    done = {id(n) for n in forward}
    backward = [n for n in ir.topological_order([*p.outputs, *p.grads]) if id(n) not in done]
    params = {id(x): a for x, a in zip(p.inputs, nm.args)}
    params.update({id(c): a for c, a in zip(nm.cotangents, nm.ct_params)})
    check = _checker(p.meta) if debug else None
    vector = _vector([*forward, *backward], debug)
    fused: set[int] = set()   # backward loops run in a forward loop's `for`, so the cotangents load first
    early = any(n.op == "loop" for n in backward)
    cotangents = _loads(backward, nm.ct_points, params)
    body = _loads(forward, nm.points, params) + (cotangents if early else [])
    body += statements(forward, nm.naming, check=check, vector=vector, later=backward, done=fused)
    body += [f"_store({o}, i, c, {_value(x, nm.naming, vector)})" for x, o in zip(p.outputs, nm.out_params)]
    rest = ([] if early else cotangents) + statements(backward, nm.naming, check=check, vector=vector, done=fused)
    if rest:   # (empty when the whole backward pass ran in the forward loops)
        body += ["# backward: adjoints of " + ("sum(" + nm.outputs[0] + ")" if not nm.cotangents else
                                               "sum(Σ cotangent·output)")] + rest
    body += [f"_store({g}, i, c, {_value(x, nm.naming, vector)})" for w, x, g in zip(p.wrt, p.grads, nm.grad_params)
             if not w.shape]   # an array input's gradient is already in its buffer
    return point_kernel("_value_and_grad_kernel", [*nm.args, *nm.ct_params, *nm.out_params, *nm.grad_params],
                        f"{nm.out_params[0]}.shape[0]", body, debug)


def _wrappers(p: Program, nm: _Names) -> list[str]:
    """The public functions: the user's argument names around the runtime's `_values` and
    `_values_and_grads` (gradc/runtime/expr.py), which read the module's constants."""
    args = ", ".join(nm.args)
    call = f"({args}{',' if len(nm.args) == 1 else ''})"
    single = not nm.cotangents   # a one-item sequence still returns a tuple and takes cotangents
    cts, ct_arg = ("", "") if single else (", cotangents=None", ", cotangents")
    what = nm.outputs[0] if single else f"the outputs {', '.join(nm.outputs)}"   # sanitised names only
    if p.layout is not None:
        what = f"{identifier(p.name)}, a {' x '.join(map(str, p.layout))} matrix,"
    return [
        f"def forward({args}):",
        f'    """Value of {what} at every point of the broadcast inputs."""',
        f"    return _values({call})",
        "", "",
        f"def value_and_grad({args}{cts}):",
        f'    """(forward value, gradient of sum({"f" if single else "Σ cotangent·output"}) w.r.t. each of '
        f'WRT, shaped like that input)."""',
        f"    return _values_and_grads({call}{ct_arg})",
        "", "",
        f"def grad({args}{cts}):",
        '    """Gradient of the summed output w.r.t. each of WRT, shaped like that input."""',
        f"    return _values_and_grads({call}{ct_arg})[1]",
    ]


def emit_expr_module(p: Program, source_hash: str, regenerate: str, debug: bool = False,
                     derivatives: Derivatives | None = None) -> str:
    """The standalone module's source text: the header, the constants, the kernels and the public
    functions (with `derivatives`, those of jacobian, hessian, jvp, hvp too), then the support code they
    use (`module_source`)."""
    nm = _Names(p)
    described = [f"{o} = {label}" for o, label in zip(nm.outputs, p.origin)]
    sequence = ("True   # a sequence of expressions: forward gives a tuple, value_and_grad takes cotangents"
                if nm.cotangents else "False   # one expression: forward gives an array")
    constants = "\n".join([
        f"ARGS = {tuple(nm.args)!r}",
        f"ARG_SHAPES = {tuple(x.shape for x in p.inputs)!r}   # each input's own axes, after the batch axes",
        f"WRT = {tuple(nm.args[k] for k in nm.wrt_index)!r}",
        f"WRT_INDEX = {tuple(nm.wrt_index)!r}",
        f"OUTPUTS = {tuple(nm.outputs)!r}",
        f"SEQUENCE = {sequence}",
        *([f"LAYOUT = {p.layout!r}   # a Matrix: forward gives the batch shape + LAYOUT, entries row by row"]
          if p.layout is not None else ["LAYOUT = None"]),
        f"DTYPE = np.dtype({p.dtype!r})",
    ])
    parts = [_forward_kernel(p, nm, debug), _row_kernel(p, debug), _value_and_grad_kernel(p, nm, debug)]
    if derivatives is not None:
        parts += derivative_kernels(p, derivatives, _reserved(), debug, _checker(p.meta) if debug else None)
    parts.append(_wrappers(p, nm))
    if derivatives is not None:
        parts.append(derivative_wrappers(nm.args, bool(derivatives.hvp)))
    code = "\n\n\n".join("\n".join(lines) for lines in parts)
    # `import math` kept only where an op is printed as a call of it (erf, gamma)
    support = ["import math", *(runtime_source(name) for name in RUNTIMES)]
    return module_source(header(f"{p.name}({', '.join(nm.args)})", source_hash, regenerate, described),
                         constants, code, support)

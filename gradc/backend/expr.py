"""Expression programs -> a standalone module of batched Numba kernels.

Each kernel is one fused loop over the points, split into fixed chunks run in parallel (`prange`):
inputs are loaded per point (or are shared scalars), the staged forward and backward statements
run on scalars with no temporaries, and each gradient is stored per point or, for a shared scalar,
summed per chunk (the in-loop reduction).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from gradc.backend.names import RESERVED, Namer, defined_names
from gradc.backend.printer import (
    Naming,
    Printer,
    debug_message,
    header,
    plan_names,
    runtime_source,
    statements,
    used_runtime,
    vectorises,
)
from gradc.core import ir
from gradc.core.ir import Node

_DECORATOR = '@nb.njit(parallel=True, error_model="numpy", cache=True)'
_DEBUG_DECORATOR = '@nb.njit(error_model="numpy", cache=True)  # debug build: serial, checks every value'
_INDENT = " " * 12


@dataclass
class ExprProgram:
    """What the emitter needs: inputs, outputs and their adjoints, all in one graph."""

    name: str
    arg_names: list[str]          # the users' names, in argument order
    inputs: list[Node]
    outputs: list[Node]
    output_labels: list[str]
    wrt: list[int]                # indices into inputs
    grads: list[Node]             # adjoint of Σ_k cotangent_k·output_k for each wrt input
    cotangents: list[Node]        # seed inputs (empty for a single output, whose seed is 1)
    dtype: str
    source_hash: str
    regenerate: str
    debug: bool = False           # serial loops and a finiteness check after every named value


def _check(node: Node, name: str) -> str:
    return f"if not np.isfinite({name}): raise FloatingPointError({debug_message(node, name)}, i)"


def _loop(length: str, body: list[str], debug: bool) -> list[str]:
    return [f"    for c in {'range' if debug else 'nb.prange'}(({length} + CHUNK - 1) // CHUNK):",
            f"        for i in range(c * CHUNK, min({length}, (c + 1) * CHUNK)):",
            *(_INDENT + line for line in body)]


def _vector(order: Sequence[Node], debug: bool) -> bool:
    """Print the loop in its vectorising forms? Not in the debug build (serial, one check per value)."""
    return not debug and vectorises(order)


@functools.cache
def _reserved() -> frozenset[str]:
    """Names a user's names must not take: gradc's own and every global of the embedded runtime."""
    return RESERVED | defined_names(runtime_source("expr")) | defined_names(runtime_source("vector_math"))


class _Names:
    """The identifiers of one program's arguments, kernels' parameters and locals."""

    def __init__(self, program: ExprProgram):
        namer = Namer(_reserved())
        self.args = [namer.fresh(a) for a in program.arg_names]
        self.points = {id(x): namer.fresh(f"{a}_i") for x, a in zip(program.inputs, self.args)}
        self.outputs = [namer.fresh(program.name if len(program.outputs) == 1 else f"{program.name}{k}")
                        for k in range(len(program.outputs))]
        self.out_params = [namer.fresh(f"{o}_out") for o in self.outputs]
        self.ct_params = [namer.fresh(f"ct_{o}") for o in self.outputs] if program.cotangents else []
        self.ct_points = {id(c): namer.fresh(f"{p}_i") for c, p in zip(program.cotangents, self.ct_params)}
        self.grad_params = [namer.fresh(f"d_{self.args[k]}_out") for k in program.wrt]
        out_names = {id(o): n for o, n in zip(program.outputs, self.outputs)
                     if o.op not in ("input", "const")}
        self.naming: Naming = plan_names(program.outputs, program.grads, namer,
                                         {**self.points, **self.ct_points}, out_names)


def _loads(order: Sequence[Node], points: dict[int, str], params: dict[int, str]) -> list[str]:
    return [f"{points[id(n)]} = _load({params[id(n)]}, i)" for n in order if id(n) in points]


def _forward_kernel(p: ExprProgram, nm: _Names) -> list[str]:
    order = ir.topological_order(p.outputs)
    params = {id(x): a for x, a in zip(p.inputs, nm.args)}
    check = _check if p.debug else None
    vector = _vector(order, p.debug)
    body = _loads(order, nm.points, params) + statements(order, nm.naming, check=check, vector=vector)
    body += [f"_store({o}, i, c, {_value(x, nm.naming.names, vector)})" for x, o in zip(p.outputs, nm.out_params)]
    signature = ", ".join([*nm.args, *nm.out_params])
    return [_DEBUG_DECORATOR if p.debug else _DECORATOR, f"def _forward_kernel({signature}):",
            *_loop(f"{nm.out_params[0]}.shape[0]", body, p.debug)]


def _value(node: Node, names: dict[int, str], vector: bool) -> str:
    return Printer(Naming(names, set()), vector).text(node)


def _value_and_grad_kernel(p: ExprProgram, nm: _Names) -> list[str]:
    forward = ir.topological_order(p.outputs)
    done = {id(n) for n in forward}
    backward = [n for n in ir.topological_order([*p.outputs, *p.grads]) if id(n) not in done]
    params = {id(x): a for x, a in zip(p.inputs, nm.args)}
    params.update({id(c): a for c, a in zip(p.cotangents, nm.ct_params)})
    check = _check if p.debug else None
    vector = _vector([*forward, *backward], p.debug)
    body = _loads(forward, nm.points, params) + statements(forward, nm.naming, check=check, vector=vector)
    body += [f"_store({o}, i, c, {_value(x, nm.naming.names, vector)})" for x, o in zip(p.outputs, nm.out_params)]
    body += ["# backward: adjoints of " + ("sum(" + nm.outputs[0] + ")" if not p.cotangents else
                                           "sum(Σ cotangent·output)")]
    body += _loads(backward, nm.ct_points, params) + statements(backward, nm.naming, check=check, vector=vector)
    body += [f"_store({g}, i, c, {_value(x, nm.naming.names, vector)})" for x, g in zip(p.grads, nm.grad_params)]
    signature = ", ".join([*nm.args, *nm.ct_params, *nm.out_params, *nm.grad_params])
    return [_DEBUG_DECORATOR if p.debug else _DECORATOR, f"def _value_and_grad_kernel({signature}):",
            *_loop(f"{nm.out_params[0]}.shape[0]", body, p.debug)]


def _wrappers(p: ExprProgram, nm: _Names) -> list[str]:
    args = ", ".join(nm.args)
    call = f"({args}{',' if len(nm.args) == 1 else ''})"
    single = not p.cotangents   # a one-item sequence still returns a tuple and takes cotangents
    result = "outs[0]" if single else "tuple(outs)"
    cts = "" if single else ", cotangents=None"
    ct_args = "" if single else "*_cotangents(cotangents, OUTPUTS, shape, n, DTYPE), "
    what = nm.outputs[0] if single else f"the outputs {', '.join(nm.outputs)}"   # sanitised names only
    return [
        f"def forward({args}):",
        f'    """Value of {what} at every point of the broadcast inputs."""',
        f"    shape, n, _, args = _prepare({call}, ARGS, DTYPE)",
        "    outs = [np.empty(n, DTYPE) for _ in OUTPUTS]",
        "    with _KERNEL_LOCK:",
        "        _forward_kernel(*args, *outs)",
        "    outs = [o.reshape(shape) for o in outs]",
        f"    return {result}",
        "", "",
        f"def value_and_grad({args}{cts}):",
        f'    """(forward value, gradient of sum({"f" if single else "Σ cotangent·output"}) w.r.t. each of '
        f'WRT, shaped like that input)."""',
        f"    shape, n, arrays, args = _prepare({call}, ARGS, DTYPE)",
        "    outs = [np.empty(n, DTYPE) for _ in OUTPUTS]",
        "    buffers = [_grad_buffer(arrays[k], n, DTYPE) for k in WRT_INDEX]",
        "    with _KERNEL_LOCK:",
        f"        _value_and_grad_kernel(*args, {ct_args}*outs, *buffers)",
        "    grads = tuple(_grad_result(b, arrays[k], shape, DTYPE) for b, k in zip(buffers, WRT_INDEX))",
        "    outs = [o.reshape(shape) for o in outs]",
        f"    return {result}, grads",
        "", "",
        f"def grad({args}{cts}):",
        '    """Gradient of the summed output w.r.t. each of WRT, shaped like that input."""',
        f"    return value_and_grad({args}{', cotangents=cotangents' if not single else ''})[1]",
    ]


def emit_expr_module(p: ExprProgram) -> str:
    """The standalone module's source text."""
    nm = _Names(p)
    described = [f"{o} = {label}" for o, label in zip(nm.outputs, p.output_labels)]
    parts = [
        f"ARGS = {tuple(nm.args)!r}",
        f"WRT = {tuple(nm.args[k] for k in p.wrt)!r}",
        f"WRT_INDEX = {tuple(p.wrt)!r}",
        f"OUTPUTS = {tuple(nm.outputs)!r}",
        f"DTYPE = np.dtype({p.dtype!r})",
        "", "",
        "\n".join(_forward_kernel(p, nm)),
        "", "",
        "\n".join(_value_and_grad_kernel(p, nm)),
        "", "",
        "\n".join(_wrappers(p, nm)),
    ]
    code = "\n".join(parts) + "\n"
    support = [runtime_source("vector_math"), runtime_source("expr"), "import math" if "math." in code else "",
               runtime_source("heap")]
    runtime = used_runtime(support, code).rstrip("\n")
    return "\n".join([header(f"{p.name}({', '.join(nm.args)})", p.source_hash, p.regenerate, described),
                      runtime, "", code])

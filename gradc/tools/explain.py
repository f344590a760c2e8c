"""See the gradient: the lecture notes' circuit of an expression, with values, local derivatives and adjoints.

`explain(expr, at={x: -2, y: 5, z: -4})` evaluates the program gradc compiles for `expr` (the same IR,
after the same gate rewrites) with the reference evaluator (core/interpret.py) at one point, and runs
the textbook backward pass over its gates: each gate's local derivatives come from its op's VJP rule
(core/ops.py), and each input's adjoint is the sum of upstream × local over the gates that read it
(the `+=` of fan-out). The gates and adjoints carry the names of the generated code (`sum1`, `sig_y`,
`d_sum2`: backend/expr.py plans them), so the table, the picture and the source line up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradc.core import interpret, ir
from gradc.core.ir import Node
from gradc.core.ops import OPS
from gradc.core.program import Program
from gradc.errors import GradcError
from gradc.tools import circuit


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for a reader: integers without a point (-12, not -12.0), others to `digits` significant digits."""
    if value is None:
        return ""
    value = float(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.{digits}g}"


@dataclass(frozen=True)
class Part:
    """One `+=` of an adjoint: the adjoint of `gate` (upstream) times that gate's local derivative
    with respect to this value (`local`, the formula `local_text`)."""

    gate: str                 # "" for the seed of an output that gates also read
    upstream: float | None
    local: float | None
    local_text: str

    @property
    def value(self) -> float | None:
        return None if self.upstream is None or self.local is None else self.upstream * self.local


@dataclass(frozen=True)
class Row:
    """One value of the circuit, in forward order: an input or a gate.

    name: its name in the generated code (an argument's name for an input); op: the IR op ("input" for
    an input); expr: the SymPy sub-expression it computes; code: its statement's right-hand side;
    operands: the names (or constants) it reads; value: its forward value; local: ∂gate/∂operand for
    each operand that carries a gradient (not the constants); adjoint_name / adjoint: d_name
    and ∂f/∂(this value) (None where f does not depend on it through a wrt input); parts: the
    contributions summed into the adjoint, one per reading gate and operand (more than one: fan-out)."""

    name: str
    op: str
    expr: str
    code: str
    operands: tuple[str, ...]
    value: float | None
    local: tuple[float | None, ...]
    adjoint_name: str
    adjoint: float | None
    parts: tuple[Part, ...]
    output: bool = False
    live: bool = False     # it carries an adjoint (f depends on it through a wrt input)

    @property
    def fanout(self) -> bool:
        return len(self.parts) > 1


class Explanation(circuit.Picture):
    """The circuit of an expression at one point: `rows` (see Row), the table (`str(e)`), the picture
    (`svg()`, `dot()`, `write(path)`), and `grads` (the adjoint of each wrt input, as the module's grad)."""

    def __init__(self, rows: Sequence[Row], title: str, at: Mapping[str, float], wrt: Sequence[str],
                 outputs: Sequence[str]):
        self.rows = tuple(rows)
        self.title = title
        self.at = dict(at)
        self.wrt = tuple(wrt)
        self.outputs = tuple(outputs)

    def row(self, name: str) -> Row:
        """The row of the value called `name` (a gate's name or an argument's)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no gate or input called {name!r} (have: {', '.join(r.name for r in self.rows)})")

    @property
    def grads(self) -> dict[str, float]:
        """∂f/∂(each wrt input) at the point: what `module.grad` returns there."""
        return {w: (self.row(w).adjoint or 0.0) for w in self.wrt}

    @property
    def value(self) -> float:
        return self.row(self.outputs[0]).value

    def table(self, digits: int = 4) -> str:
        """The gate-by-gate table: the forward pass, then the backward pass (upstream × local = adjoint)."""
        from gradc.tools.views import format_table

        return format_table(self, digits)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<Explanation {self.title}: {len(self.rows)} values>"

    def diagram(self, digits: int = 4) -> circuit.Diagram:
        """The circuit: inputs and gates as boxes, values above the wires, adjoints beneath them."""
        from gradc.tools.views import build_diagram

        return build_diagram(self, digits)

    def _repr_html_(self) -> str:
        from html import escape

        return f"<div>{self.svg()}</div><details><summary>table</summary><pre>{escape(self.table())}</pre></details>"


# ------------------------------------------------------------------------------------------ evaluation


def explain(expr: Any, at: Mapping[Any, float], args: Sequence[Any] | None = None, wrt: Sequence[Any] | None = None,
            *, name: str = "f", dtype: str = "float64") -> Explanation:
    """The circuit of `expr` (a SymPy expression or a sequence of them, or an ExprModule) at the point `at`
    ({symbol or name: number}, one per argument): each gate's value, local derivatives and adjoint, in the
    names of the generated code. `args`, `wrt`, `name`, `dtype` are compile_expr's. The adjoints of the wrt
    inputs equal what the compiled module's grad returns at that point."""
    from gradc.module import ExprModule
    from gradc.pipeline import expr_program

    if isinstance(expr, ExprModule):
        return expr.explain(at)
    return explain_program(expr_program(expr, args, wrt, name=name, dtype=dtype), at)


def point(program: Program, at: Mapping[Any, float]) -> dict[str, np.ndarray]:
    """`at` as the evaluator's inputs: one number per argument of `program`, keyed by its input name."""
    given = {getattr(k, "name", str(k)): v for k, v in dict(at).items()}
    names = [x.name for x in program.inputs]
    missing = [n for n in names if n not in given]
    if missing:
        raise GradcError(f"explain needs a value for every argument: missing {', '.join(missing)}")
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise GradcError(f"explain: {unknown[0]!r} is not an argument ({', '.join(names)})")
    out = {}
    for x in program.inputs:
        value = np.asarray(given[x.name], dtype=program.dtype)
        if value.shape != x.shape or x.shape:
            raise GradcError(f"explain evaluates at one point of scalar arguments: {x.name} must be one number, "
                             f"got shape {value.shape}")
        out[x.name] = value
    return out


def _locals(node: Node, program: Program) -> list[Node | None]:
    """∂node/∂(each input) as IR: the op's VJP rule with an upstream adjoint of 1."""
    record = OPS[node.op]
    if record.vjp is None:
        raise GradcError(f"explain cannot differentiate {node.op!r} (in {program.meta.describe(node) or node!r})")
    extra = {"meta": program.meta} if record.vjp_meta else {}
    return list(record.vjp(node.graph.const(1.0), node, *node.inputs, **dict(node.attrs), **extra))


def explain_program(program: Program, at: Mapping[Any, float] | None) -> Explanation:
    """The explanation of a differentiated expression program at the point `at` (see `explain`); without
    a point (`at=None`), its structure: the same rows and formulas with no numbers."""
    from gradc.backend.expr import _Names
    from gradc.backend.printer import Naming, Printer

    arrays = [x.name for x in program.inputs if x.shape]
    if arrays:
        raise GradcError(f"explain takes scalar arguments only; {arrays[0]} is an array (IndexedBase, MatrixSymbol)")
    inputs = None if at is None else point(program, at)
    plan = _Names(program)   # the generated code's names, planned as the expression backend plans them
    order = ir.topological_order(program.outputs)
    gates = [n for n in order if not n.is_leaf]
    names = _gate_names(program, plan, gates)
    printer = Printer(Naming(names, set(), program.meta))
    values = {} if inputs is None else {id(n): _scalar(v) for n, v in zip(order, interpret.evaluate(order, inputs))}
    local = _local_derivatives(program, gates, _live(order, program.wrt), printer, inputs)
    adjoint, parts = _backward(program, gates, local, names, numeric=inputs is not None)
    adjoint_names = {id(t): plan.naming.names[id(n)] for n, t in program.meta.adjoint_of.items()
                     if plan.naming.names.get(id(n), "").startswith("d_") and not t.is_const}
    outputs = {id(o) for o in program.outputs}
    rows = []
    for n in [*program.inputs, *gates]:
        stem = names[id(n)]
        rows.append(Row(
            name=stem, op=n.op, expr=program.meta.describe(n), code="" if n.is_leaf else _code(printer, n),
            operands=tuple(fmt(x.value) if x.is_const else names.get(id(x), "?") for x in n.inputs),
            value=values.get(id(n)), local=tuple(d for _, d, _ in local.get(id(n), [])),
            adjoint_name=adjoint_names.get(id(n), f"d_{stem}"), adjoint=adjoint.get(id(n)),
            parts=tuple(parts.get(id(n), ())), output=id(n) in outputs, live=id(n) in adjoint))
    out_names = [names[id(o)] for o in program.outputs]
    at_values = {} if inputs is None else {a: float(inputs[x.name]) for x, a in zip(program.inputs, plan.args)}
    shown = ", ".join(f"{a} = {fmt(v)}" for a, v in at_values.items())
    what = "; ".join(f"{o} = {e}" for o, e in zip(out_names, program.origin or ()))
    return Explanation(rows, f"{what}  at  {shown}" if shown else what, at_values,
                       [plan.args[k] for k in plan.wrt_index], out_names)


def _gate_names(program: Program, plan: Any, gates: Sequence[Node]) -> dict[int, str]:
    """Node id -> name: an argument's name for an input, the generated code's name for a gate (its label
    for the rare gate the code prints inline)."""
    from gradc.backend.names import comment

    names = {id(x): a for x, a in zip(program.inputs, plan.args)}
    names.update({id(n): plan.naming.names.get(id(n)) or comment(program.meta.describe(n), 24) or n.op
                  for n in gates})
    return names


def _local_derivatives(program: Program, gates: Sequence[Node], live: set[int], printer: Any,
                       inputs: Mapping[str, np.ndarray] | None) -> dict[int, list[tuple[Node, float | None, str]]]:
    """Gate id -> (operand, ∂gate/∂operand at the point or None, its formula) for each operand that
    carries a gradient; evaluated in one pass."""
    nodes = {id(g): [(x, d) for x, d in zip(g.inputs, _locals(g, program))
                     if d is not None and not x.is_const and id(x) in live] for g in gates if id(g) in live}
    flat = [d for pairs in nodes.values() for _, d in pairs]
    numbers = iter([None] * len(flat) if inputs is None else map(_scalar, interpret.evaluate(flat, inputs)))
    return {k: [(x, next(numbers), _local_text(printer, d)) for x, d in pairs] for k, pairs in nodes.items()}


def _backward(program: Program, gates: Sequence[Node], local: dict, names: dict[int, str],
              numeric: bool) -> tuple[dict[int, float | None], dict[int, list[Part]]]:
    """The textbook backward pass: each output's adjoint seeded with 1 (the cotangents' default), then, in
    reverse order, each operand's adjoint += the gate's adjoint × its local derivative. Returns the
    adjoints (None without a point) and the parts of each, keyed by node id (only nodes that carry one)."""
    adjoint: dict[int, float | None] = {}
    parts: dict[int, list[Part]] = {}
    for out in program.outputs:
        if id(out) in local or out in program.wrt:
            adjoint[id(out)] = (adjoint.get(id(out)) or 0.0) + 1.0 if numeric else None
    for g in reversed(gates):
        if id(g) not in adjoint:
            continue
        up = adjoint[id(g)]
        for x, d, text in local[id(g)]:
            parts.setdefault(id(x), []).append(Part(names[id(g)], up, d, text))
            adjoint[id(x)] = None if up is None or d is None else (adjoint.get(id(x)) or 0.0) + up * d
    for out in dict.fromkeys(program.outputs):   # an output read by gates too: its seed is one more part
        if id(out) in adjoint and (parts.get(id(out)) or out.is_input):
            one = 1.0 if numeric else None
            parts.setdefault(id(out), []).insert(0, Part("", one, one, "1"))
    return adjoint, parts


def _live(order: Sequence[Node], wrt: Sequence[Node]) -> set[int]:
    """Ids of the values that change with some wrt input (only they carry adjoints)."""
    live = {id(x) for x in wrt}
    for n in order:
        if any(id(x) in live for x in n.inputs):
            live.add(id(n))
    return live


def _scalar(value: Any) -> float:
    return float(np.asarray(value, dtype=float).reshape(()))


def _code(printer: Any, node: Node) -> str:
    try:
        return printer.definition(node)[0].replace("np.", "")
    except NotImplementedError:   # a loop: printed as a block
        return node.op


def _local_text(printer: Any, node: Node) -> str:
    """A local derivative as the generated code would print it (without `np.`), in parentheses where it
    binds less tightly than the product it stands in (`d_sel1 × (1.0 if gt1 else 0.0)`)."""
    from gradc.backend.forms import MUL_PREC

    try:
        text, prec = printer.expr(node)
    except (NotImplementedError, KeyError):
        return "?"
    text = text.replace("np.", "")
    return f"({text})" if prec < MUL_PREC else text


# ------------------------------------------------------------------------------------------ command line


def parse_point(text: str) -> dict[str, float]:
    """`x=-2,y=5` -> {"x": -2.0, "y": 5.0} (the command line's --at); GradcError on anything else."""
    from gradc.tools.sources import UsageError

    point: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise UsageError(f"--at: expected name=number pairs separated by commas, got {item.strip()!r}")
        if name in point:
            raise UsageError(f"--at: {name!r} is given twice")
        try:
            point[name] = float(value)
        except ValueError:
            raise UsageError(f"--at: {name} must be a number, got {value.strip()!r}") from None
    return point


def explain_source(source: Any, at: str | None, at_batch: str | None) -> Any:
    """The explanation the command line asks for: an expression at --at, or a spec (at --at-batch)."""
    from gradc.tools.sources import UsageError

    if source.spec is not None:
        if at is not None:
            raise UsageError("--at applies to --expr only; for a spec give --at-batch FILE.npz")
        from gradc.tools.netview import explain_net

        if at_batch is None:
            return explain_net(source.spec)
        arrays = _load_batch(at_batch)
        params = {k: arrays[k] for k in source.spec.param_shapes() if k in arrays} or None
        return explain_net(source.spec, arrays["X"], arrays["Y"], params)
    if at_batch is not None:
        raise UsageError("--at-batch applies to a spec only; for an expression give --at x=1,y=2")
    from gradc.pipeline import expr_program

    program = expr_program(source.exprs, source.args, source.wrt, name=source.name, dtype=source.dtype)
    return explain_program(program, None if at is None else parse_point(at))


def _load_batch(path: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz file, which must hold X and Y."""
    from gradc.tools.sources import UsageError

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise UsageError(f"--at-batch: cannot read {path}: {exc}") from None
    missing = [k for k in ("X", "Y") if k not in arrays]
    if missing:
        raise UsageError(f"--at-batch: {path} has no array {missing[0]} (has: {', '.join(arrays) or 'none'})")
    return arrays

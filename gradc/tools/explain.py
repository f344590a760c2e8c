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

#: how a gate is drawn (the op's symbol); an op not listed is drawn by its name
SYMBOLS = {"add": "+", "sub": "−", "mul": "×", "div": "÷", "neg": "−", "pow": "^", "sigmoid": "σ",
           "exp": "exp", "log": "log", "sqrt": "√", "max": "max", "min": "min", "abs": "|·|"}


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

    gate: str
    upstream: float
    local: float
    local_text: str

    @property
    def value(self) -> float:
        return self.upstream * self.local


@dataclass(frozen=True)
class Row:
    """One value of the circuit, in forward order: an input or a gate.

    name: its name in the generated code (an argument's name for an input); op: the IR op ("input" for
    an input); expr: the SymPy sub-expression it computes; code: its statement's right-hand side;
    operands: the names (or constants) it reads; value: its forward value; local: ∂gate/∂operand per
    operand (None where the operand is a constant or carries no gradient); adjoint_name / adjoint: d_name
    and ∂f/∂(this value) (None where f does not depend on it through a wrt input); parts: the
    contributions summed into the adjoint, one per reading gate and operand (more than one: fan-out)."""

    name: str
    op: str
    expr: str
    code: str
    operands: tuple[str, ...]
    value: float
    local: tuple[float | None, ...]
    adjoint_name: str
    adjoint: float | None
    parts: tuple[Part, ...]
    output: bool = False

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
        return format_table(self, digits)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<Explanation {self.title}: {len(self.rows)} values>"

    def diagram(self, digits: int = 4) -> circuit.Diagram:
        """The circuit: inputs and gates as boxes, values above the wires, adjoints beneath them."""
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
            raise GradcError(f"explain evaluates at one point: {x.name} must be one number, got shape {value.shape}")
        out[x.name] = value
    return out


def _locals(node: Node, program: Program, inputs: Mapping[str, np.ndarray]) -> list[Node | None]:
    """∂node/∂(each input) as IR: the op's VJP rule with an upstream adjoint of 1."""
    record = OPS[node.op]
    if record.vjp is None:
        raise GradcError(f"explain cannot differentiate {node.op!r} (in {program.meta.describe(node) or node!r})")
    extra = {"meta": program.meta} if record.vjp_meta else {}
    return list(record.vjp(node.graph.const(1.0), node, *node.inputs, **dict(node.attrs), **extra))


def explain_program(program: Program, at: Mapping[Any, float]) -> Explanation:
    """The explanation of a differentiated expression program at the point `at` (see `explain`)."""
    from gradc.backend.expr import _Names
    from gradc.backend.names import comment
    from gradc.backend.printer import Naming, Printer

    inputs = point(program, at)
    plan = _Names(program)
    order = ir.topological_order(program.outputs)
    gates = [n for n in order if not n.is_leaf]
    names = {id(x): a for x, a in zip(program.inputs, plan.args)}
    names.update({id(n): plan.naming.names.get(id(n)) or comment(program.meta.describe(n), 24) or n.op
                  for n in gates})
    adjoint_names = {id(t): plan.naming.names[id(n)] for n, t in program.meta.adjoint_of.items()
                     if id(n) in plan.naming.names and not t.is_const}
    values = {id(n): v for n, v in zip(order, interpret.evaluate(order, inputs))}
    printer = Printer(Naming(names, set(), program.meta))
    live = _live(order, program.wrt)

    local: dict[int, list[tuple[float | None, str]]] = {}
    for g in gates:
        nodes = _locals(g, program, inputs) if id(g) in live else [None] * len(g.inputs)
        local[id(g)] = [(None, "") if d is None or x.is_const or id(x) not in live else
                        (_scalar(interpret.evaluate([d], inputs)[0]), _local_text(printer, d))
                        for x, d in zip(g.inputs, nodes)]
    adjoint: dict[int, float] = {}
    parts: dict[int, list[Part]] = {}
    for out in program.outputs:
        if id(out) in live:
            adjoint[id(out)] = adjoint.get(id(out), 0.0) + 1.0   # cotangents default to 1
    for g in reversed(gates):
        if id(g) not in adjoint:
            continue
        for x, (d, text) in zip(g.inputs, local[id(g)]):
            if d is not None:
                parts.setdefault(id(x), []).append(Part(names[id(g)], adjoint[id(g)], d, text))
                adjoint[id(x)] = adjoint.get(id(x), 0.0) + adjoint[id(g)] * d

    outputs = {id(o) for o in program.outputs}
    rows = []
    for n in [*program.inputs, *gates]:
        stem = names[id(n)]
        rows.append(Row(
            name=stem, op=n.op, expr=program.meta.describe(n), code="" if n.is_leaf else _code(printer, n),
            operands=tuple(fmt(x.value) if x.is_const else names.get(id(x), "?")
                           for x in n.inputs),
            value=_scalar(values[id(n)]), local=tuple(d for d, _ in local.get(id(n), [])),
            adjoint_name=adjoint_names.get(id(n), f"d_{stem}"), adjoint=adjoint.get(id(n)),
            parts=tuple(parts.get(id(n), ())), output=id(n) in outputs))
    out_names = [names[id(o)] for o in program.outputs]
    shown = ", ".join(f"{a} = {fmt(float(inputs[x.name]))}" for x, a in zip(program.inputs, plan.args))
    what = "; ".join(f"{o} = {e}" for o, e in zip(out_names, program.origin or ()))
    return Explanation(rows, f"{what}  at  {shown}", {a: float(inputs[x.name]) for x, a in
                                                       zip(program.inputs, plan.args)},
                       [plan.args[k] for k in plan.wrt_index], out_names)


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
    """A local derivative as the generated code would print it (without `np.`)."""
    try:
        return printer.text(node).replace("np.", "")
    except (NotImplementedError, KeyError):
        return "?"


# --------------------------------------------------------------------------------------------- table


def format_table(e: Explanation, digits: int = 4) -> str:
    """The table of `e` (see Explanation.table)."""
    f = [r for r in e.rows]
    width = max(len(r.name) for r in f)
    code_w = max((len(r.code) for r in f), default=0)
    lines = [f"explain {e.title}", "", "forward pass (values)"]
    for r in f:
        code = "(input)" if r.op == "input" else r.code
        note = f"# {r.expr}" if r.expr and r.expr != r.code and r.op != "input" else ""
        out = "   <- output" if r.output else ""
        lines.append(f"  {r.name:<{width}} = {code:<{code_w}}  = {fmt(r.value, digits):>10}  {note}{out}".rstrip())
    seeds = ", ".join(f"d_{o} = 1" for o in e.outputs)
    lines += ["", f"backward pass (adjoints of {' + '.join(e.outputs)}: {seeds}; upstream × local = adjoint)"]
    body = []
    for r in reversed(e.rows):   # reverse forward order: a gate's adjoint is complete before it is used
        for k, p in enumerate(r.parts):
            op = "=" if k == 0 else "+="
            formula = f"d_{p.gate} × {p.local_text}" if p.local_text else f"d_{p.gate} × ∂"
            numbers = f"{fmt(p.upstream, digits)} × {fmt(p.local, digits)}"
            total = f"   (fan-out: {r.adjoint_name} = {fmt(r.adjoint, digits)})" if r.fanout and k == len(
                r.parts) - 1 else ""
            body.append((f"{r.adjoint_name} {op}", formula, numbers, fmt(p.value, digits) + total))
    _adjoint_lines(body, lines)
    not_live = [r.name for r in e.rows if r.adjoint is None and r.op == "input"]
    if not_live:
        lines.append(f"  (no gradient taken w.r.t. {', '.join(not_live)})")
    return "\n".join(lines)


def _adjoint_lines(body: list[tuple[str, str, str, str]], lines: list[str]) -> None:
    if not body:
        lines.append("  (no adjoints: the output does not depend on a wrt input)")
        return
    widths = [max(len(b[k]) for b in body) for k in range(3)]
    for lhs, formula, numbers, value in body:
        lines.append(f"  {lhs:<{widths[0]}} {formula:<{widths[1]}} = {numbers:<{widths[2]}} = {value}")


# ------------------------------------------------------------------------------------------- picture


def _symbol(r: Row) -> str:
    """The gate's symbol, with a constant operand written into it (`×2`, `+1`, `^2`)."""
    sym = SYMBOLS.get(r.op, r.op)
    consts = [(k, o) for k, o in enumerate(r.operands) if _is_number(o)]
    if len(r.operands) == 2 and len(consts) == 1:
        k, c = consts[0]
        return f"{c}{sym}" if k == 0 else f"{sym}{c}"
    return sym


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def build_diagram(e: Explanation, digits: int = 4) -> circuit.Diagram:
    """The circuit of `e` (see Explanation.diagram)."""
    by_name = {r.name: r for r in e.rows}
    readers: dict[str, int] = {}
    for r in e.rows:
        for o in set(r.operands):
            readers[o] = readers.get(o, 0) + 1
    boxes, wires = [], []
    for r in e.rows:
        fan = readers.get(r.name, 0) > 1 or r.fanout
        note = f"Σ {r.adjoint_name} = {fmt(r.adjoint, digits)}" if fan and r.adjoint is not None else ""
        if r.op == "input":
            boxes.append(circuit.Box(r.name, r.name, kind="input", note=note))
            continue
        boxes.append(circuit.Box(r.name, _symbol(r), r.name, note=note))
        for o in dict.fromkeys(r.operands):   # x*x: one wire, carrying both parts
            if o not in by_name:
                continue
            src = by_name[o]
            parts = [p for p in src.parts if p.gate == r.name]
            grad = sum(p.value for p in parts) if parts else None
            marked = fan_src = readers.get(o, 0) > 1 or len(parts) > 1
            below = ("+= " if marked and grad is not None else "") + fmt(grad, digits)
            wires.append(circuit.Wire(o, r.name, fmt(src.value, digits), below, fanout=fan_src))
    for r in e.rows:
        if r.output:
            boxes.append(circuit.Box(f"→{r.name}", "", kind="end"))
            wires.append(circuit.Wire(r.name, f"→{r.name}", fmt(r.value, digits), fmt(r.adjoint, digits)))
    return circuit.Diagram(boxes, wires, title=e.title)

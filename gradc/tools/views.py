"""How an explanation reads: the gate-by-gate table and the circuit diagram of tools/explain.py's rows.

The table is the lecture notes' staged backprop in text: the forward pass (each gate's statement, as the
generated code writes it, and its value), then the backward pass in reverse order, one line per `+=` part
(upstream adjoint × local derivative = part), with the total where a value fans out. The diagram is what
tools/layout.py places and tools/circuit.py draws: inputs and gates as boxes (a constant operand written
into its gate's symbol), values above the wires, adjoints beneath.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradc.tools import circuit
from gradc.tools.explain import fmt

if TYPE_CHECKING:
    from gradc.tools.explain import Explanation, Row

#: how a gate is drawn (the op's symbol); an op not listed is drawn by its name
SYMBOLS = {"add": "+", "sub": "−", "mul": "×", "div": "÷", "neg": "×-1", "pow": "^", "sigmoid": "σ",
           "exp": "exp", "log": "log", "sqrt": "√", "max": "max", "min": "min", "abs": "|·|"}


def format_table(e: Explanation, digits: int = 4) -> str:
    """The table of `e` (see Explanation.table); without a point, the same formulas without numbers."""
    numeric = bool(e.at)
    width = max(len(r.name) for r in e.rows)
    code_w = max(len("(input)"), *(len(r.code) for r in e.rows))
    first = "forward pass (values)" if numeric else "forward pass (no point given: formulas only)"
    lines = [f"explain {e.title}", "", first]
    for r in e.rows:
        code = "(input)" if r.op == "input" else r.code
        value = f"  = {fmt(r.value, digits):>10}" if numeric else ""
        note = f"  # {r.expr}" if r.expr and r.expr != r.code and r.op != "input" else ""
        out = "   <- output" if r.output else ""
        lines.append(f"  {r.name:<{width}} = {code:<{code_w}}{value}{note}{out}".rstrip())
    seeds = ", ".join(f"d_{o} = 1" for o in e.outputs)
    lines += ["", f"backward pass (adjoints of {' + '.join(e.outputs)}: {seeds}; upstream × local = adjoint)"]
    body = []
    for r in reversed(e.rows):   # reverse forward order: a gate's adjoint is complete before it is used
        for k, p in enumerate(r.parts):
            formula = f"d_{p.gate} × {p.local_text}" if p.gate else "1 (the output's seed)"
            total = f"   (fan-out: {r.adjoint_name} = {fmt(r.adjoint, digits)})" if (
                numeric and r.fanout and k == len(r.parts) - 1) else ""
            numbers = [f"{fmt(p.upstream, digits)} × {fmt(p.local, digits)}", fmt(p.value, digits) + total] if (
                numeric) else []
            body.append([r.adjoint_name, "=" if k == 0 else "+=", formula, *numbers])
    if not body:
        lines.append("  (no adjoints: the output does not depend on a wrt input)")
    widths = [max(len(b[k]) for b in body) for k in range(len(body[0]))] if body else []
    for row in body:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths)] + [row[-1]]
        lines.append("  " + " ".join(cells[:3]) + "".join(f" = {c}" for c in cells[3:]))
    not_live = [r.name for r in e.rows if not r.live and r.op == "input"]
    if not_live:
        lines.append(f"  (no gradient taken w.r.t. {', '.join(not_live)})")
    return "\n".join(line.rstrip() for line in lines)


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
        note = "" if not fan or not r.live else f"Σ {r.adjoint_name}" + (
            f" = {fmt(r.adjoint, digits)}" if r.adjoint is not None else "")
        if r.op == "input":
            boxes.append(circuit.Box(r.name, r.name, kind="input", note=note))
            continue
        boxes.append(circuit.Box(r.name, _symbol(r), r.name, note=note))
        for o in dict.fromkeys(r.operands):   # x*x: one wire, carrying both parts
            if o not in by_name:
                continue
            src = by_name[o]
            parts = [p for p in src.parts if p.gate == r.name]
            values = [p.value for p in parts]
            grad = sum(values) if values and None not in values else None
            marked = fan_src = readers.get(o, 0) > 1 or len(parts) > 1
            symbolic = " + ".join(f"d_{p.gate}·{p.local_text}" for p in parts) if marked else src.adjoint_name
            below = ("+= " if marked and parts else "") + (fmt(grad, digits) if grad is not None else
                                                           symbolic if parts else "")
            wires.append(circuit.Wire(o, r.name, fmt(src.value, digits), below, fanout=fan_src))
    for r in e.rows:
        if r.output:
            boxes.append(circuit.Box(f"→{r.name}", "", kind="end"))
            wires.append(circuit.Wire(r.name, f"→{r.name}", fmt(r.value, digits) or r.name,
                                      fmt(r.adjoint, digits) or f"{r.adjoint_name} = 1"))
    return circuit.Diagram(boxes, wires, title=e.title)

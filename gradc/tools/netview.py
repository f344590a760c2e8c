"""See a network: the layer graph of an MLP spec with shapes, and at a batch the statistics people look at
when training goes wrong (mean and std of each layer's activations and of the gradients flowing back).

The graph is the program gradc compiles (frontend/mlp.py's `lower_mlp`), with the names of the generated
code (`z1`, `h1`, `loss`, `d_z1`, `d_W1`); the statistics come from evaluating that program's IR with the
reference evaluator (core/interpret.py) and its reverse mode (core/autodiff.py) at the batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradc.core import autodiff, interpret
from gradc.core.ir import topological_order
from gradc.core.program import Meta
from gradc.errors import GradcError
from gradc.tools import circuit
from gradc.tools.explain import fmt


@dataclass(frozen=True)
class Stats:
    """Mean and standard deviation of a value over the batch, and of its adjoint."""

    mean: float
    std: float | None
    grad_mean: float | None = None
    grad_std: float | None = None


@dataclass(frozen=True)
class LayerRow:
    """One named value of the network: `name` as in the generated code, the `code` computing it, its
    `shape` ("N" is the batch), what the frontend says of it (`what`), and `stats` at a batch (or None)."""

    name: str
    code: str
    shape: tuple
    what: str
    reads: tuple[str, ...]
    stats: Stats | None = None


def _shape(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


class NetExplanation(circuit.Picture):
    """The layer graph of a network: `rows` (X, z1, h1, ..., loss), `params` (name -> (shape, Stats or None)),
    the table (`str(e)`) and the picture (`svg()`, `dot()`, `write(path)`)."""

    def __init__(self, title: str, rows: list[LayerRow], params: dict[str, tuple[tuple, Stats | None]],
                 batch: int | None):
        self.title = title
        self.rows = tuple(rows)
        self.params = params
        self.batch = batch

    def row(self, name: str) -> LayerRow:
        return next(r for r in self.rows if r.name == name)

    def table(self, digits: int = 3) -> str:
        """Values in forward order with their shapes (and statistics at the batch, if given)."""
        at = f"  (statistics over a batch of N = {self.batch})" if self.batch else ""
        head = ["value", "computes", "shape"] + (["mean", "std", "grad mean", "grad std"] if self.batch else [])
        body = []
        for r in self.rows:
            body.append([r.name, r.code, _shape(r.shape), *_stat_cells(r.stats, digits, self.batch)])
        for name, (shape, stats) in self.params.items():
            body.append([name, "parameter", _shape(shape), *_stat_cells(stats, digits, self.batch)])
        widths = [max(len(row[k]) for row in [head, *body]) for k in range(len(head))]
        lines = [f"network {self.title}{at}", "  " + "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
        lines += ["  " + "  ".join(c.ljust(w) if k < 3 else c.rjust(w) for k, (c, w) in
                                   enumerate(zip(row, widths))).rstrip() for row in body]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<NetExplanation {self.title}: {len(self.rows)} values>"

    def diagram(self, digits: int = 3) -> circuit.Diagram:
        """Inputs and parameters as boxes, each layer's product and activation as gates, shapes (or the
        activations' mean ± std) above the wires and the gradients' below."""
        boxes, wires = [], []
        for r in self.rows:
            kind = "input" if not r.reads else "gate"
            symbol = r.name if not r.reads else _gate_symbol(r)
            name = r.name if not self.batch else f"{r.name} {_shape(r.shape)}"
            boxes.append(circuit.Box(r.name, symbol, name if r.reads else _shape(r.shape), kind=kind))
        for name, (shape, _) in self.params.items():
            boxes.append(circuit.Box(name, name, _shape(shape), kind="param"))
        by_name = {r.name: r for r in self.rows}
        for r in self.rows:
            for src in r.reads:
                above, below = _wire_text(by_name.get(src), self.params.get(src), digits)
                wires.append(circuit.Wire(src, r.name, above, below))
        last = self.rows[-1]
        boxes.append(circuit.Box("→loss", "", kind="end"))
        wires.append(circuit.Wire(last.name, "→loss", fmt(last.stats.mean, 4) if last.stats else "", ""))
        return circuit.Diagram(boxes, wires, title=f"{self.title}" + (f"  (batch N = {self.batch})"
                                                                       if self.batch else ""))

    def _repr_html_(self) -> str:
        from html import escape

        return f"<div>{self.svg()}</div><pre>{escape(self.table())}</pre>"


def _gate_symbol(r: LayerRow) -> str:
    return "@ +" if r.name.startswith("z") and "@" in r.code else r.code.split("(")[0]


def _stat_cells(stats: Stats | None, digits: int, batch: int | None) -> list[str]:
    if not batch:
        return []
    if stats is None:
        return ["", "", "", ""]
    return [fmt(stats.mean, digits), fmt(stats.std, digits), fmt(stats.grad_mean, digits),
            fmt(stats.grad_std, digits)]


def _wire_text(row: LayerRow | None, param: tuple | None, digits: int) -> tuple[str, str]:
    """(above, below) of a wire leaving a value: its shape, or its statistics and its gradient's."""
    stats = row.stats if row is not None else param[1] if param is not None else None
    if row is not None and stats is None:
        return _shape(row.shape), ""
    if stats is None:
        return "", ""
    above = "" if row is None else f"μ {fmt(stats.mean, digits)} σ {fmt(stats.std, digits)}"
    below = "" if stats.grad_mean is None else f"∇ μ {fmt(stats.grad_mean, digits)} σ {fmt(stats.grad_std, digits)}"
    return above, below


def explain_net(spec: Any, X: np.ndarray | None = None, Y: np.ndarray | None = None,
                params: Mapping[str, np.ndarray] | None = None) -> NetExplanation:
    """The layer graph of `spec` (an MLPSpec, dict or path); with a batch X, Y (and params, by default
    init_params(seed=0) of the compiled module) each value's and gradient's mean and std over it."""
    from gradc.frontend.mlp import lower_mlp
    from gradc.frontend.spec import load_spec

    spec = load_spec(spec)
    program = lower_mlp(spec)
    meta = program.meta
    order = topological_order([*program.outputs, *program.objective])
    named = [n for n in order if n in meta.stems]
    stem = {id(n): meta.stems[n] for n in named}
    stem.update({id(x): x.name for x in program.inputs})
    stats: dict[int, Stats] = {}
    batch = None
    if X is not None:
        if Y is None:
            raise GradcError("explain needs the targets Y of the batch as well as X")
        inputs = _batch(spec, X, Y, params)
        batch = int(inputs["X"].shape[0])
        stats = _statistics(program, named, inputs)
    rows = [LayerRow(x.name, "input", x.shape, "the batch", (), stats.get(id(x)))
            for x in program.inputs if x not in program.wrt]
    for n in named:
        reads = _reads(n, stem)
        rows.append(LayerRow(stem[id(n)], _code(spec, stem[id(n)], reads), n.shape, meta.labels.get(n, ""), reads,
                             stats.get(id(n))))
    param_rows = {x.name: (x.shape, stats.get(id(x))) for x in program.wrt}
    title = f"{spec.name}: {' -> '.join([str(spec.input), *(str(layer.units) for layer in spec.layers)])}, {spec.loss}"
    return NetExplanation(title, rows, param_rows, batch)


def _reads(node: Any, stem: dict[int, str]) -> tuple[str, ...]:
    """The named values (or inputs) `node` is computed from, through its unnamed intermediates (a matmul)."""
    out: list[str] = []
    stack = list(reversed(node.inputs))
    while stack:
        x = stack.pop()
        if id(x) in stem:
            out.append(stem[id(x)])
        elif not x.is_const:
            stack.extend(reversed(x.inputs))
    return tuple(dict.fromkeys(out))


def _code(spec: Any, name: str, reads: tuple[str, ...]) -> str:
    """How the generated code computes a named value, written as the notes write it."""
    if name.startswith("z") and name[1:].isdigit():
        a, w, *b = reads
        return f"{a} @ {w}" + (f" + {b[0]}" if b else "")
    if name.startswith("h") and name[1:].isdigit():
        layer = spec.layers[int(name[1:]) - 1]
        if layer.activation == "custom" and len(layer.formula) < 40:   # the formula, in this layer's names
            return re.sub(r"\bz\b", reads[0], layer.formula)
        return f"{layer.activation}({reads[0]})"
    weights = {f"W{i}" for i in range(1, len(spec.layers) + 1)} if spec.l2 > 0 else set()
    main = [r for r in reads if r not in weights]
    return f"{spec.loss}({', '.join(main)})" + (f" + {spec.l2:g}/2·Σ‖W‖²" if spec.l2 > 0 else "")


def _batch(spec: Any, X: Any, Y: Any, params: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The evaluator's inputs: X, Y (integer labels made one-hot) and the parameters."""
    X = np.asarray(X, dtype=spec.dtype)
    Y = np.asarray(Y)
    units = spec.layers[-1].units
    if Y.ndim == 1 and spec.loss in ("softmax_cross_entropy", "hinge"):
        Y = np.eye(units, dtype=spec.dtype)[Y.astype(int)]
    if X.ndim != 2 or X.shape[1] != spec.input:
        raise GradcError(f"X must be (N, {spec.input}), got shape {X.shape}")
    if Y.shape != (X.shape[0], units):
        raise GradcError(f"Y must be ({X.shape[0]}, {units}) (or integer labels), got shape {Y.shape}")
    if params is None:
        import gradc

        params = gradc.compile_mlp(spec).init_params(0)
    missing = [k for k in spec.param_shapes() if k not in params]
    if missing:
        raise GradcError(f"params lack {', '.join(missing)}")
    return {"X": X, "Y": Y.astype(spec.dtype), **{k: np.asarray(params[k], dtype=spec.dtype)
                                                   for k in spec.param_shapes()}}


def _statistics(program: Any, named: list, inputs: Mapping[str, np.ndarray]) -> dict[int, Stats]:
    """Mean and std of each named value and parameter, and of its adjoint (d loss / d value)."""
    loss = program.objective[0]
    values = [n for n in named if n is not loss]
    targets = [*values, *program.wrt]
    primal = topological_order([*program.outputs, *program.objective])
    adjoints = autodiff.backward(program.objective, program.seeds, targets, primal, Meta())
    results = interpret.evaluate([*named, *program.wrt, *adjoints], inputs)
    forward = dict(zip([id(n) for n in [*named, *program.wrt]], results))
    # a zero constant adjoint: the loss does not read the value (an output beside the loss's path)
    grads = {id(n): g for n, a, g in zip(targets, adjoints, results[len(named) + len(program.wrt):]) if not a.is_const}
    out = {}
    for x in program.inputs:
        if x not in program.wrt:
            v = np.asarray(inputs[x.name], dtype=float)
            out[id(x)] = Stats(float(v.mean()), float(v.std()))
    for n in [*named, *program.wrt]:
        v = np.asarray(forward[id(n)], dtype=float)
        g = grads.get(id(n))
        g = None if g is None else np.broadcast_to(np.asarray(g, dtype=float), v.shape)
        out[id(n)] = Stats(float(v.mean()), float(v.std()) if v.ndim else None, None if g is None else float(g.mean()),
                           None if g is None else float(g.std()))
    return out

"""SymPy expressions -> IR.

One-to-one SymPy classes lower through the op table's `sympy` field; the few classes whose
structure differs from the IR's (n-ary Add and Mul, Pow with special exponents, Piecewise) have
a small lowering each. Anything else raises UnsupportedError naming the construct.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from gradc.errors import GradcError, UnsupportedError
from gradc.ir import Graph, Node
from gradc.ops import SYMPY_OPS

_LABEL_CHARS = 60


def _label(expr: sympy.Basic) -> str:
    text = sympy.sstr(expr)
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


class _Lowering:
    """Memoised recursive lowering of one set of expressions into one graph."""

    def __init__(self, graph: Graph, symbols: dict[sympy.Symbol, Node]):
        self.graph = graph
        self.symbols = symbols
        self.memo: dict[sympy.Basic, Node] = {}

    def lower(self, expr: sympy.Basic) -> Node:
        node = self.memo.get(expr)
        if node is None:
            node = self._lower(expr)
            if not node.label and node.op not in ("const", "input"):
                node.label = _label(expr)
            self.memo[expr] = node
        return node

    def _lower(self, expr: sympy.Basic) -> Node:
        g = self.graph
        if isinstance(expr, sympy.Symbol):
            if expr not in self.symbols:
                raise GradcError(f"symbol {expr.name!r} appears in the expression but not in args "
                                 f"({', '.join(s.name for s in self.symbols)})")
            return self.symbols[expr]
        if expr is sympy.true or expr is sympy.false:
            return g.const(1.0 if expr is sympy.true else 0.0)
        if expr.is_Number or expr.is_NumberSymbol or expr in (sympy.oo, -sympy.oo, sympy.nan):
            if not expr.is_real and expr is not sympy.nan:
                raise UnsupportedError(f"gradc compiles real expressions; {expr} is not real")
            return g.const(float(expr))
        if isinstance(expr, sympy.Add):
            return self._sum(expr.as_ordered_terms())
        if isinstance(expr, sympy.Mul):
            return self._product(expr)
        if isinstance(expr, sympy.Pow):
            return self._power(expr)
        if isinstance(expr, sympy.Piecewise):
            return self._piecewise(expr)
        if expr.has(sympy.I) or isinstance(expr, sympy.core.numbers.ImaginaryUnit):
            raise UnsupportedError(f"gradc compiles real expressions; {_label(expr)} is complex")
        op = SYMPY_OPS.get(type(expr))
        if op is None:
            raise UnsupportedError(f"gradc cannot compile {type(expr).__name__} (in {_label(expr)})")
        args = [self.lower(a) for a in expr.args]
        if op in ("max", "min") and len(args) > 2:   # SymPy's Max/Min are n-ary
            node = args[0]
            for a in args[1:]:
                node = g.apply(op, node, a)
            return node
        return g.apply(op, *args)

    def _sum(self, terms: Sequence[sympy.Expr]) -> Node:
        """a + b - c: a negated term (coefficient < 0) becomes a subtraction, as a reader writes it."""
        node: Node | None = None
        for term in terms:
            coeff, rest = term.as_coeff_Mul()
            negative = coeff.is_negative and node is not None
            value = self.lower(-term if negative else term)
            node = value if node is None else (node - value if negative else node + value)
        assert node is not None
        return node

    def _product(self, expr: sympy.Mul) -> Node:
        """Numerator factors times constants, divided by the product of factors with negative powers."""
        coeff, factors = expr.as_coeff_mul()
        numer = [f for f in factors if not (f.is_Pow and f.exp.is_negative)]
        denom = [1 / f for f in factors if f.is_Pow and f.exp.is_negative]
        node: Node | None = None
        for f in numer:
            node = self.lower(f) if node is None else node * self.lower(f)
        if denom:
            den = self.lower(sympy.Mul(*denom))
            node = self.graph.const(1.0) / den if node is None else node / den
        if coeff == -1:
            return -node
        if coeff != 1:
            return self.graph.const(float(coeff)) * node
        return node

    def _power(self, expr: sympy.Pow) -> Node:
        base, exponent = expr.args
        if exponent == sympy.S.Half:
            return self.graph.apply("sqrt", self.lower(base))
        if base == sympy.E:
            return self.graph.apply("exp", self.lower(exponent))
        if exponent.is_Number and exponent.is_negative:   # u**-k is 1/u**k: the division the reader wrote
            return self.graph.const(1.0) / self.lower(base ** -exponent)
        return self.lower(base) ** self.lower(exponent)

    def _piecewise(self, expr: sympy.Piecewise) -> Node:
        """Piecewise((e1, c1), (e2, c2), ...) -> select(c1, e1, select(c2, e2, ... nan))."""
        node = self.graph.const(float("nan"))   # SymPy's value where no condition holds
        for value, cond in reversed(expr.args):
            if cond is sympy.true:
                node = self.lower(value)
            else:
                node = self.graph.apply("select", self.lower(cond), self.lower(value), node)
        return node


def lower_exprs(exprs: Sequence[sympy.Expr], args: Sequence[sympy.Symbol],
                dtype: str) -> tuple[Graph, list[Node]]:
    """Lower `exprs` over the input symbols `args` into a fresh graph; returns (graph, outputs).
    The graph's inputs are in `args` order."""
    graph = Graph(dtype)
    symbols = {s: graph.input(s.name) for s in args}
    lowering = _Lowering(graph, symbols)
    outputs = []
    for e in exprs:
        if not isinstance(e, sympy.Basic):
            e = sympy.sympify(e, strict=True)   # numbers only: strict refuses strings
        outputs.append(lowering.lower(e))
    return graph, outputs


def _gate_constructors() -> dict[str, object]:
    """Gates as users write them in text; passes.py recognises the expansions again."""
    return {
        "sigmoid": lambda u: 1 / (1 + sympy.exp(-u)),
        "softplus": lambda u: sympy.log(1 + sympy.exp(u)),
        "log1p": lambda u: sympy.log(1 + u),
        "logsumexp": lambda *us: sympy.log(sum(sympy.exp(u) for u in us)),
    }


def text_functions() -> dict[str, object]:
    """Function names allowed in expression strings (specs, CLI), each mapped to its SymPy builder:
    every SymPy function class of the op table, lower-case aliases, and the gates."""
    table: dict[str, object] = {cls.__name__: cls for cls in SYMPY_OPS
                                if issubclass(cls, sympy.Function) and cls is not sympy.Piecewise}
    table.update({"Max": sympy.Max, "Min": sympy.Min, "abs": sympy.Abs, "max": sympy.Max, "min": sympy.Min,
                  "sqrt": sympy.sqrt, "ceil": sympy.ceiling, **_gate_constructors()})
    return table


TEXT_CONSTANTS = {"pi": sympy.pi, "E": sympy.E}

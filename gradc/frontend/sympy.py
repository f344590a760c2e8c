"""SymPy expressions -> IR.

One-to-one SymPy classes lower through `SYMPY_OPS` (a SymPy class -> an op of the table); the few classes whose
structure differs from the IR's (n-ary Add and Mul, Pow with special exponents, Piecewise) have
a small lowering each; functions that are numerically fine as a composition of others (sec = 1/cos, ...)
are lowered as that composition (`COMPOSED`). Anything else raises UnsupportedError naming the construct.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import sympy
from sympy.core.function import AppliedUndef
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import BooleanFunction
from sympy.matrices.expressions.matexpr import MatrixElement

from gradc.core.graph import Graph
from gradc.core.ir import Node
from gradc.core.ops import OPS
from gradc.core.program import Meta, Program
from gradc.errors import GradcError, UnsupportedError
from gradc.frontend.functions import COMPOSED, SYMPY_OPS
from gradc.frontend.indexed import ARRAY_TYPES, Loops, array_shape, input_name

_LABEL_CHARS = 60
_LABEL_NODES = 60    # printing costs the expression's size: larger ones print shallow, in bounded work
_SHALLOW_DEPTH, _SHALLOW_BREADTH = 4, 4


def _label(expr: sympy.Basic, chars: int = _LABEL_CHARS) -> str:
    """`expr` as SymPy prints it, cut to `chars`. An expression of more than _LABEL_NODES nodes is printed with
    what lies below depth 4, and the arguments after the 4th of each node, as … (a label shows its first
    characters only): so every label costs bounded work, and codegen stays linear in the expression's size."""
    if sum(1 for _ in zip(range(_LABEL_NODES + 1), _preorder(expr))) <= _LABEL_NODES:
        text = sympy.sstr(expr)
    elif isinstance(expr, (sympy.Add, sympy.Mul)) and len(expr.args) > _SHALLOW_BREADTH:   # `a + b + c + d + …`
        head = expr.func(*expr.args[:_SHALLOW_BREADTH], evaluate=False)
        text = sympy.sstr(_shallow(head, _SHALLOW_DEPTH)) + (" + …" if isinstance(expr, sympy.Add) else "*…")
    else:
        text = sympy.sstr(_shallow(expr, _SHALLOW_DEPTH))
    return text if len(text) <= chars else text[: chars - 1] + "…"


_UNEVALUATED = (sympy.Derivative, sympy.Integral, sympy.Limit)
_BINDING = (*_UNEVALUATED, sympy.Sum, sympy.Product)   # their variables are bound


def _unsupported(expr: sympy.Basic) -> UnsupportedError:
    """The one-line error for a construct gradc cannot compile, with what to do about it where known."""
    if isinstance(expr, AppliedUndef):
        return UnsupportedError(f"{_label(expr)} is an undefined function (sympy.Function({type(expr).__name__!r})):"
                                " gradc needs its formula; substitute one with .subs() before compiling")
    if isinstance(expr, _UNEVALUATED):
        return UnsupportedError(f"{_label(expr)} is an unevaluated {type(expr).__name__}: call .doit() on the "
                                "expression first")
    return UnsupportedError(f"gradc cannot compile {type(expr).__name__} (in {_label(expr)})")


def _preorder(expr: sympy.Basic):
    """Every node of `expr`, parents first (iterative: any depth)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.args))


def _shallow(expr: sympy.Basic, depth: int) -> sympy.Basic:
    """`expr` with its sub-expressions `depth` levels down, and each node's arguments after the
    _SHALLOW_BREADTH-th, replaced by the symbol …, unevaluated."""
    if not expr.args:
        return expr
    if depth == 0:
        return sympy.Symbol("…")
    args = [_shallow(a, depth - 1) for a in expr.args[:_SHALLOW_BREADTH]]
    if len(expr.args) > _SHALLOW_BREADTH:
        args.append(sympy.Symbol("…"))
    try:
        return expr.func(*args, evaluate=False)
    except (TypeError, ValueError):
        return sympy.Symbol(f"{type(expr).__name__}(…)")


def _logistic_arg(base: sympy.Basic) -> sympy.Expr | None:
    """t when `base` is 1 + exp(t), else None."""
    if isinstance(base, sympy.Add) and len(base.args) == 2 and sympy.S.One in base.args:
        other = base.args[0] if base.args[1] == sympy.S.One else base.args[1]
        if isinstance(other, sympy.exp):
            return other.args[0]
    return None


class _SigmoidOf(sympy.Function):
    """Marks exp(t)/(1+exp(t)) inside a product while it is lowered (never leaves this module)."""

    nargs = 1

    def _sympystr(self, printer) -> str:   # labels read σ(t), as the staged notes write it
        return f"σ({printer._print(self.args[0])})"


class _Lowering:
    """Memoised recursive lowering of one set of expressions into one graph."""

    def __init__(self, graph: Graph, symbols: dict[sympy.Symbol, Node], meta: Meta, arrays: dict[str, Node]):
        self.graph = graph
        self.symbols = symbols
        self.meta = meta
        self.memo: dict[sympy.Basic, Node] = {}
        self.loops = Loops(graph, arrays, self.lower, symbols, _label, meta)

    def lower(self, expr: sympy.Basic) -> Node:
        node = self.memo.get(expr)
        if node is None:
            node = self._lower(expr)
            self.meta.label(node, _label(expr))
            self.memo[expr] = node
        return node

    def _labelled(self, node: Node, expr: Callable[[], sympy.Basic]) -> Node:
        """Give an unlabelled intermediate (a partial sum or product) the text of what it computes."""
        if not node.is_leaf and node not in self.meta.labels:
            self.meta.labels[node] = _label(expr())
        return node

    def _lower(self, expr: sympy.Basic) -> Node:
        g = self.graph
        if isinstance(expr, sympy.Symbol):
            if expr not in self.symbols:
                twin = [s for s in self.symbols if s.name == expr.name]
                why = (f"; args has a symbol named {expr.name!r} with other assumptions "
                       f"({twin[0].assumptions0} vs {expr.assumptions0}): use the same symbol" if twin else "")
                raise GradcError(f"symbol {expr.name!r} appears in the expression but not in args "
                                 f"({', '.join(s.name for s in self.symbols)}){why}")
            return self.symbols[expr]
        if isinstance(expr, (sympy.Indexed, MatrixElement)):
            return self.loops.element(expr)
        if isinstance(expr, (sympy.Sum, sympy.Product)):
            return self.loops.reduction(expr)
        if expr is sympy.true or expr is sympy.false:
            return g.const(1.0 if expr is sympy.true else 0.0)
        if expr.is_Number or expr.is_NumberSymbol or expr in (sympy.oo, -sympy.oo, sympy.nan):
            if not expr.is_real and expr is not sympy.nan:
                raise UnsupportedError(f"gradc compiles real expressions; {expr} is not real")
            return g.const(float(expr))
        if isinstance(expr, sympy.Expr) and not expr.free_symbols:
            constant = self._constant(expr)
            if constant is not None:
                return constant
        if isinstance(expr, sympy.Add):   # constant terms last and as one: fold them together
            constant, rest = expr.as_independent(*expr.free_symbols, as_Add=True)
            return self._sum(rest.as_ordered_terms() + ([constant] if constant != 0 else []))
        if isinstance(expr, sympy.Mul):
            return self._product(expr)
        if isinstance(expr, sympy.Pow):
            return self._power(expr)
        if isinstance(expr, sympy.Piecewise):
            return self._piecewise(expr)
        if isinstance(expr, _SigmoidOf):
            return self._sigmoid(expr.args[0])
        if isinstance(expr, sympy.polygamma):
            return self._polygamma(expr)
        compose = COMPOSED.get(type(expr))
        if compose is not None:   # (_lower: the statement's comment is the function as the user wrote it)
            return self._lower(compose(*expr.args))
        op = SYMPY_OPS.get(type(expr))
        if op is None and isinstance(expr, BooleanFunction):   # Xor, ITE, Implies, ...: and/or/not
            return self.lower(expr.to_nnf(simplify=False))
        if op is None:
            raise _unsupported(expr)
        args = [self.lower(a) for a in expr.args]
        arity = OPS[op].arity
        if arity == 2 and len(args) > 2:   # SymPy's Max, Min, And, Or are n-ary: fold them left
            node = args[0]
            for k, a in enumerate(args[1:], 2):
                node = self._labelled(g.apply(op, node, a), lambda k=k: type(expr)(*expr.args[:k]))
            return node
        if arity is not None and len(args) != arity:
            raise UnsupportedError(f"gradc cannot compile {type(expr).__name__} of {len(args)} arguments "
                                   f"(in {_label(expr)})")
        return g.apply(op, *args)

    def _sum(self, terms: Sequence[sympy.Expr]) -> Node:
        """a + b - c: a negated term (coefficient < 0) becomes a subtraction, as a reader writes it.
        Partial sums are labelled with the terms they add, so every staged value has a comment."""
        positive = [t for t in terms if not t.as_coeff_Mul()[0].is_negative]
        if positive and positive[0] is not terms[0]:   # 2 - x*y, not -x*y + 2
            terms = [positive[0], *(t for t in terms if t is not positive[0])]
        node: Node | None = None
        for k, term in enumerate(terms, 1):
            coeff, rest = term.as_coeff_Mul()
            negative = coeff.is_negative and node is not None
            value = self.lower(-term if negative else term)
            node = value if node is None else (node - value if negative else node + value)
            if k < len(terms):
                self._labelled(node, lambda k=k: sympy.Add(*terms[:k], evaluate=False))
        assert node is not None
        return node

    def _product(self, expr: sympy.Mul) -> Node:
        """Numerator factors times constants, divided by the product of factors with negative powers.
        A factor 1/(1+exp(t))**k is the sigmoid gate σ(-t)**k (x/(1+exp(-y)) = x·σ(y) stays finite where
        exp overflows), and exp(t)/(1+exp(t))**k is σ(t)·σ(-t)**(k-1)."""
        coeff, rest = expr.as_independent(*expr.free_symbols, as_Add=False)   # constant factors as one
        factors = list(sympy.Mul.make_args(rest))
        for f in list(factors):
            t = _logistic_arg(f.base) if f.is_Pow and f.exp.is_Number and f.exp <= -1 else None
            if t is not None and sympy.exp(t) in factors:
                factors[factors.index(sympy.exp(t))] = _SigmoidOf(t)
                factors[factors.index(f)] = f.base ** (f.exp + 1)
        factors = [f for f in factors if f != sympy.S.One]
        numer = [f for f in factors if not (f.is_Pow and f.exp.is_negative) or _logistic_arg(f.base) is not None]
        denom = [1 / f for f in factors if f not in numer]
        node: Node | None = None
        for k, f in enumerate(numer, 1):
            node = self.lower(f) if node is None else node * self.lower(f)
            self._labelled(node, lambda k=k: sympy.Mul(*numer[:k], evaluate=False))
        if denom:
            den = self.lower(sympy.Mul(*denom))
            node = self.graph.const(1.0) / den if node is None else node / den
            self._labelled(node, lambda: rest)
        if coeff == -1:
            return -node
        if coeff != 1:
            return self.lower(coeff) * node
        return node

    def _power(self, expr: sympy.Pow) -> Node:
        base, exponent = expr.args
        t = _logistic_arg(base)
        if t is not None and exponent.is_Number and exponent.is_negative:   # 1/(1+exp(t))**k = σ(-t)**k
            return self._sigmoid(-t) ** self.lower(-exponent)
        if exponent == sympy.S.Half:
            return self.graph.apply("sqrt", self.lower(base))
        if base == sympy.E:
            return self.graph.apply("exp", self.lower(exponent))
        if exponent.is_Number and exponent.is_negative:   # u**-k is 1/u**k: the division the reader wrote
            return self.graph.const(1.0) / self.lower(base ** -exponent)
        return self.lower(base) ** self.lower(exponent)

    def _constant(self, expr: sympy.Expr) -> Node | None:
        """A constant sub-expression folded to the float nearest its exact value (SymPy may spell a real
        constant with I, as atan2(2, c) = -I*log(...)); UnsupportedError if it is complex."""
        try:
            value = complex(expr.evalf(40))
        except (TypeError, ValueError):
            return None   # not a number (an undefined function of no arguments, ...): lowered as usual
        if expr.has(sympy.zoo) or (value.imag != 0 and not abs(value.imag) <= 1e-30 * max(1.0, abs(value.real))):
            raise UnsupportedError(f"gradc compiles real expressions; {_label(expr)} is complex")
        return self.graph.const(value.real)

    def _polygamma(self, expr: sympy.polygamma) -> Node:
        """polygamma(n, x) for a constant integer order n >= 0: digamma (n = 0) or the polygamma op of order n."""
        n, x = expr.args
        if not (n.is_Integer and n >= 0):
            raise UnsupportedError(f"gradc compiles polygamma(n, x) for a constant integer n >= 0, not n = {n} "
                                   f"(in {_label(expr)})")
        if n == 0:
            return self.graph.apply("digamma", self.lower(x))
        return self.graph.apply("polygamma", self.lower(x), n=int(n))

    def _sigmoid(self, u: sympy.Expr) -> Node:
        return self.meta.label(self.graph.apply("sigmoid", self.lower(u)), f"σ({_label(u)})")

    def _piecewise(self, expr: sympy.Piecewise) -> Node:
        """Piecewise((e1, c1), (e2, c2), ...) -> select(c1, e1, select(c2, e2, ... nan)).
        Where no condition holds (or the branch that does is nan) SymPy's value is nan, and so is the gradient:
        that nan is written nan + u + ... over the expression's inputs u, which the select's VJP sends nan."""
        node = self.graph.const(float("nan"))
        for s in sorted(expr.free_symbols, key=lambda s: s.name):
            if s in self.symbols:
                node = node + self.lower(s)
        if not node.is_leaf:
            self.meta.label(node, "nan where no branch holds")
        for value, cond in reversed(expr.args):
            if cond is sympy.true and value is sympy.nan:
                continue
            if cond is sympy.true:
                node = self.lower(value)
            else:
                node = self.graph.apply("select", self.lower(cond), self.lower(value), node)
        return node


def lower_exprs(exprs: Sequence[sympy.Expr], args: Sequence[sympy.Symbol], dtype: str,
                meta: Meta) -> tuple[Graph, list[Node]]:
    """Lower `exprs` over the input symbols `args` into a fresh graph, labelling its nodes in `meta`;
    returns (graph, outputs)."""
    graph = Graph(dtype)
    symbols = {s: graph.input(s.name) for s in args if not isinstance(s, ARRAY_TYPES)}
    arrays = {input_name(a): graph.input(input_name(a), array_shape(a)) for a in args if isinstance(a, ARRAY_TYPES)}
    lowering = _Lowering(graph, symbols, meta, arrays)
    outputs = []
    for e in exprs:
        if not isinstance(e, sympy.Basic):
            e = sympy.sympify(e, strict=True)   # numbers only: strict refuses strings
        for sub in _innermost_first(e):   # so that lowering `e` recurses one level at a time
            with contextlib.suppress(GradcError):
                lowering.lower(sub)   # a part may lower only in its context (2*I of a real constant): there
        outputs.append(lowering.lower(e))
    return graph, outputs


def _innermost_first(expr: sympy.Basic) -> list[sympy.Basic]:
    """The sub-expressions of `expr` that lower on their own (expressions and conditions), each after its
    arguments, `expr` excluded; found without recursion, however deep `expr` is nested."""
    order: list[sympy.Basic] = []
    seen: set[sympy.Basic] = set()
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            if not isinstance(node, _BINDING):   # their variables are bound: not the expression's
                stack.extend((a, False) for a in reversed(node.args))
    return [n for n in order[:-1] if isinstance(n, (sympy.Expr, sympy.core.relational.Relational, BooleanFunction))
            and not isinstance(n, ExprCondPair) and not n.is_Atom]




def _unused(name: str, symbols: Sequence[sympy.Symbol]) -> str:
    """An input name no user symbol has (graph inputs are keyed by name)."""
    taken = {s.name for s in symbols}
    while name in taken:
        name += "'"
    return name


def lower_program(exprs: Sequence[sympy.Expr], args: Sequence[sympy.Symbol], wrt: Sequence[sympy.Symbol], *,
                  name: str, dtype: str, weighted: bool) -> Program:
    """The program of `exprs` over the inputs `args` (in that order), to be differentiated w.r.t. `wrt`.

    Its objective is the sum of the outputs: with `weighted` (a sequence of expressions), Σ_k c_k·f_k,
    where each cotangent c_k is an input after `args`; else the one output (seed 1). `origin` holds
    the outputs' SymPy text."""
    meta = Meta()
    graph, outputs = lower_exprs(exprs, args, dtype, meta)
    inputs = tuple(graph.input(input_name(s)) for s in args)
    if weighted:
        seeds = tuple(graph.input(_unused(f"\x00cotangent{k}", args)) for k in range(len(outputs)))
    else:
        seeds = (graph.const(1.0),)
    return Program(name, graph, inputs, tuple(outputs), tuple(outputs), seeds,
                   tuple(graph.input(input_name(s)) for s in wrt), meta=meta,
                   origin=tuple(_label(e, 200) for e in exprs))

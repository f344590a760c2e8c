"""SymPy's arrays and loops -> IR: `IndexedBase` and `MatrixSymbol` arguments (per-point arrays), their
elements (`x[i + 1]`, `X[r, c]`), and `Sum`/`Product` over integer bounds, lowered as loops (core/loops.py),
never unrolled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy
from sympy.matrices.expressions.matexpr import MatrixElement

from gradc.core import loops
from gradc.core.graph import Graph
from gradc.core.ir import Node
from gradc.core.program import Meta
from gradc.errors import GradcError, UnsupportedError

ARRAY_TYPES = (sympy.IndexedBase, sympy.MatrixSymbol)


def array_shape(arg: Any) -> tuple[int, ...]:
    """The per-point shape of an IndexedBase or MatrixSymbol argument; GradcError if it is not made of
    integers (the loops and the kernels' arrays are sized when compiled)."""
    shape = arg.shape
    name = _name(arg)
    if shape is None:
        raise GradcError(f"IndexedBase {name!r} has no shape: declare it, IndexedBase({name!r}, shape=(n,))")
    if not all(sympy.sympify(s).is_Integer and int(s) > 0 for s in shape):
        raise GradcError(f"{type(arg).__name__} {name!r} must have a shape of positive integers, got "
                         f"{tuple(shape)}: substitute numbers for its sizes before compiling")
    return tuple(int(s) for s in shape)


def _name(arg: Any) -> str:
    return str(arg.label) if isinstance(arg, sympy.IndexedBase) else str(arg.name)


def input_name(arg: Any) -> str:
    """The input name of a Symbol, IndexedBase or MatrixSymbol argument."""
    return _name(arg) if isinstance(arg, ARRAY_TYPES) else arg.name


def free_inputs(expr: sympy.Basic) -> set[Any]:
    """The arguments `expr` reads: its free symbols (not an IndexedBase's label), IndexedBases, MatrixSymbols."""
    arrays = expr.atoms(*ARRAY_TYPES)
    labels = {a.label for a in arrays if isinstance(a, sympy.IndexedBase)}
    symbols = {s for s in expr.free_symbols if isinstance(s, sympy.Symbol) and s not in labels}
    return symbols | arrays


class _Index(sympy.Dummy):
    """A Sum's bound variable, renamed apart from every other symbol but printed as the user named it."""

    def _sympystr(self, printer) -> str:
        return self.name


class Loops:
    """The part of one lowering that handles arrays and loops: which index each bound variable of an
    enclosing Sum is and over what range, to check and build the elements the body reads."""

    def __init__(self, graph: Graph, arrays: dict[str, Node], lower: Callable[[sympy.Basic], Node],
                 symbols: dict[Any, Node], label: Callable[[sympy.Basic], str], meta: Meta):
        self.graph = graph
        self.meta = meta
        self.arrays = arrays            # input name -> the array input's node
        self.lower = lower
        self.symbols = symbols          # the lowering's symbol table; bound indices are added to it
        self.label = label
        self.ranges: dict[sympy.Symbol, tuple[int, int]] = {}   # bound index -> (first, last)

    def element(self, expr: sympy.Basic) -> Node:
        """x[i + 1] or X[r, c]: the element, at a position affine in the bound indices, checked in range."""
        if isinstance(expr, MatrixElement):
            indices, name = expr.indices, str(expr.parent.name)
        else:
            indices, name = expr.indices, str(expr.base.label)
        array = self.arrays.get(name)
        if array is None:
            raise GradcError(f"{self.label(expr)} reads {name!r}, which is not one of args")
        if len(indices) != len(array.shape):
            raise GradcError(f"{self.label(expr)} has {len(indices)} indices; {name!r} has shape {array.shape}")
        used = sorted({s for i in indices for s in sympy.sympify(i).free_symbols if s in self.ranges},
                      key=lambda s: s.name)
        at = tuple(self._affine(sympy.sympify(i), used, expr) for i in indices)
        for axis, ((offset, coeffs), size) in enumerate(zip(at, array.shape)):
            lo = offset + sum(min(c * self.ranges[s][0], c * self.ranges[s][1]) for c, s in zip(coeffs, used))
            hi = offset + sum(max(c * self.ranges[s][0], c * self.ranges[s][1]) for c, s in zip(coeffs, used))
            if lo < 0 or hi >= size:
                raise GradcError(f"{self.label(expr)} reads outside {name!r} (axis {axis} has {size} entries, "
                                 f"the index runs from {lo} to {hi})")
        return self.graph.apply("element", array, *(self.symbols[s] for s in used), at=at)

    def _affine(self, index: sympy.Expr, used: Sequence[sympy.Symbol], expr: sympy.Basic) -> loops.Position:
        unbound = [s for s in index.free_symbols if s not in self.ranges]
        coeffs = tuple(index.coeff(s) for s in used)
        offset = index.subs({s: 0 for s in used})
        rest = sympy.expand(index - sum(c * s for c, s in zip(coeffs, used)) - offset)
        if unbound or rest != 0 or not offset.is_Integer or not all(c.is_Integer for c in coeffs):
            why = f"{unbound[0]} is not the index of an enclosing Sum" if unbound else "it is not affine in the indices"
            raise UnsupportedError(f"gradc cannot compile the index {index} of {self.label(expr)}: {why}")
        return int(offset), tuple(int(c) for c in coeffs)

    def reduction(self, expr: sympy.Sum | sympy.Product) -> Node:
        """Σ or Π over integer bounds as a loop per limit (the first limit innermost), each index a fresh
        variable so that a name reused by another Sum (or an argument) never meets it."""
        kind = "sum" if isinstance(expr, sympy.Sum) else "product"
        fresh = {}
        limits = []
        for var, first, last in expr.limits:
            if not (sympy.sympify(first).is_Integer and sympy.sympify(last).is_Integer):
                raise UnsupportedError(f"gradc compiles a {type(expr).__name__} over integer bounds; {var} runs "
                                       f"from {first} to {last} (in {self.label(expr)}): give the bounds "
                                       "numbers, or call .doit() for a closed form")
            dummy = _Index(str(var), integer=True)
            fresh[var] = dummy
            limits.append((dummy, int(first), int(last)))
        body = expr.function.xreplace(fresh)
        for dummy, first, last in limits:
            self.ranges[dummy] = (first, last)
            self.symbols[dummy] = self.graph.index(self._index_name(dummy.name))
        node = self.lower(body)
        for k, (dummy, first, last) in enumerate(limits, 1):
            node = loops.build(kind, self.symbols[dummy], first, last + 1, node)
            if k < len(limits):   # an inner loop: labelled with the Sum over its limits
                self.meta.label(node, self.label(type(expr)(expr.function, *expr.limits[:k])))
        return node

    def _index_name(self, stem: str) -> str:
        """A name no other index of this graph has (indices are leaves keyed by name)."""
        taken = {n.name for n in self.symbols.values() if n.op == "index"}
        name, k = stem, 1
        while name in taken:
            k += 1
            name = f"{stem}{k}"
        return name

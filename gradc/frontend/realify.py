"""Real forms of SymPy expressions written with I, re, im, conjugate or arg. gradc's inputs are real arrays: where
an expression is real for real arguments ((exp(I*x) + exp(-I*x))/2, re(y*exp(I*x)), im(x) of a plain symbol, ...)
gradc compiles its real form, and where not (x + I*y) refuses it. Any other expression passes unchanged."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import sympy

from gradc.errors import GradcWarning, UnsupportedError
from gradc.frontend.sympy import _UNEVALUATED, _label  # print and skip as the lowering does (it refuses Integral...)

_MARKERS = (sympy.re, sympy.im, sympy.conjugate, sympy.arg)
_SIMPLIFY_NODES = 300   # simplify's cost grows fast with size: a larger imaginary part is not tried (refused)
_Scan = tuple[set[int], set[int], list[sympy.Basic]]   # what _scan finds


def real_forms(exprs: Sequence[sympy.Expr], args: Sequence[sympy.Symbol]) -> list[sympy.Expr]:
    """The expressions as gradc compiles them, the symbols `args` taken as real. An expression without I, re,
    im, conjugate or arg is returned as the same object; another becomes its real form over the same symbols,
    or raises UnsupportedError (one line) if it is complex for real arguments. Where SymPy wrote re, im,
    conjugate or arg of an argument not declared real, a GradcWarning hints to declare it real=True."""
    plain = [s for s in args if isinstance(s, sympy.Symbol) and s.is_real is not True]
    done = [_real_form(e, plain) for e in exprs]
    _hint([node for _, found in done for node in found], plain)
    return [form for form, _ in done]


def _scan(expr: sympy.Basic) -> _Scan:
    """(ids of the nodes holding I or re/im/conjugate/arg, ids of the nodes holding a symbol, the re/im/conjugate/
    arg nodes): each distinct node visited once, children first, without recursion (any depth, linear time)."""
    marked, symbolic, done = set(), set(), set()
    found: list[sympy.Basic] = []
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if not expanded:
            if id(node) not in done:
                done.add(id(node))
                stack.append((node, True))
                stack.extend((a, False) for a in ([] if isinstance(node, _UNEVALUATED) else node.args))
            continue
        if node.is_Symbol or isinstance(node, _UNEVALUATED) or any(id(a) in symbolic for a in node.args):
            symbolic.add(id(node))
        if isinstance(node, _MARKERS):
            found.append(node)
        if node is sympy.I or isinstance(node, _MARKERS) or any(id(a) in marked for a in node.args):
            marked.add(id(node))
    return marked, symbolic, found


def _real_form(expr: sympy.Expr, plain: list[sympy.Symbol]) -> tuple[sympy.Expr, list[sympy.Basic]]:
    """(`expr` or its real form, the re/im/conjugate/arg nodes it had); UnsupportedError if it is complex."""
    scan = _scan(expr)
    if id(expr) not in scan[0]:
        return expr, []
    skeleton, reals, back = _skeleton(expr, scan, plain)
    real, imag = _parts(skeleton)
    # the imaginary part over the real dummies, for simplify (undoing only the atoms in it: all cost the whole expr)
    imag = _simplified(imag.xreplace({a: back[a].xreplace(reals) for a in imag.free_symbols if a in back}))
    if imag != 0:
        raise UnsupportedError(f"gradc compiles real expressions; {_label(expr)} is complex "
                               f"(imaginary part {_label(imag.xreplace(back))})")
    left, _, kept = _scan(real)
    if id(real) in left:   # SymPy could not split a part (re(gamma(x + I*y)), ...)
        raise UnsupportedError(f"gradc compiles real expressions; SymPy finds no real form of {_label(expr)} "
                               f"(it keeps {_label((kept or [sympy.I])[0].xreplace(back))})")
    return real.xreplace(back), scan[2]


def _skeleton(expr: sympy.Expr, scan: _Scan, plain: list[sympy.Symbol]
              ) -> tuple[sympy.Basic, dict[sympy.Symbol, sympy.Dummy], dict[sympy.Basic, sympy.Basic]]:
    """(`expr` over real stand-ins, which SymPy splits into real and imaginary parts without looking inside them,
    {plain argument: its real dummy}, {dummy or atom: what it stands for over the user's symbols}). An atom stands
    for each largest part gradc computes as a real function of real inputs: one without I, re, im, conjugate, arg,
    or none left once SymPy evaluated re(x), ... of real x (sqrt(re(x)) is sqrt(x), not a complex root)."""
    marked, symbolic, _ = scan
    reals = {s: sympy.Dummy(s.name, real=True) for s in plain}
    back: dict[sympy.Basic, sympy.Basic] = {d: s for s, d in reals.items()}

    def stand_in(node: sympy.Basic) -> sympy.Basic:
        if id(node) not in symbolic:   # a constant: one written with I is split into re + I*im
            return _split_constant(node) if id(node) in marked and node is not sympy.I else node
        part = node   # what an atom for it stands for
        if id(node) in marked:
            node = node.func(*(stand_in(a) for a in node.args))
            if isinstance(node, sympy.arg):   # arg(u) = atan2(im(u), re(u)), which gradc compiles
                node = sympy.atan2(sympy.im(node.args[0]), sympy.re(node.args[0]))
            if id(node) in _scan(node)[0]:   # (the scan sees the stand-ins below it only: atoms are leaves)
                return node
            part = node.xreplace(back)
        if not isinstance(node, sympy.Expr) or node.is_Atom:
            return node.xreplace(reals)   # a plain argument, a number, a condition such as x > 0
        atom = sympy.Dummy(real=True)
        back[atom] = part
        return atom

    return stand_in(expr), reals, back


def _split_constant(constant: sympy.Expr) -> sympy.Expr:
    """A constant as re + I*im, each part exact where SymPy writes it without I, else its value to 40 digits (arg(c +
    2*I) = -I*log(...)), 0 where it is 0 to 30 digits of the constant's size; as it is if it has no numeric value."""
    approx = constant.evalf(40).as_real_imag()
    if not all(p.is_Float or p == 0 for p in approx):
        return constant
    tolerance = 1e-30 * max(1.0, abs(complex(*approx)))
    real, imag = (0 if abs(a) <= tolerance else e if not e.has(sympy.I, *_MARKERS) else a
                  for e, a in zip(constant.as_real_imag(), approx))
    return real + sympy.I * imag


def _parts(skeleton: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
    """(real part, imaginary part) of `skeleton` by as_real_imag, else by expand_complex (as_real_imag keeps some
    parts whole: re(exp(I*x)*exp(I*y))); re and im of a Piecewise taken in each branch (SymPy keeps them whole)."""
    branches = (lambda n: isinstance(n, (sympy.re, sympy.im)) and isinstance(n.args[0], sympy.Piecewise),
                lambda n: sympy.Piecewise(*((n.func(e), c) for e, c in n.args[0].args)))
    real, imag = (p.replace(*branches) for p in skeleton.as_real_imag())
    if id(real) in _scan(real)[0] or id(imag) in _scan(imag)[0]:
        real, imag = (p.replace(*branches) for p in sympy.expand_complex(skeleton).as_real_imag())
    return real, imag


def _simplified(part: sympy.Expr) -> sympy.Expr:
    """An imaginary part, 0 where it vanishes: a constant to 30 digits, a small expression by simplify."""
    if part == 0 or not part.free_symbols:
        return part if _split_constant(part) != 0 else sympy.S.Zero
    small = sum(1 for _ in zip(range(_SIMPLIFY_NODES + 1), sympy.preorder_traversal(part))) <= _SIMPLIFY_NODES
    return sympy.simplify(part) if small else part


def _hint(found: list[sympy.Basic], plain: list[sympy.Symbol]) -> None:
    """Warn where SymPy wrote re/im/conjugate/arg of plain arguments, which gradc read as real."""
    names = [s.name for s in plain if any(s in f.free_symbols for f in found)]
    if not names:
        return
    example = min((f for f in found if f.free_symbols & set(plain)), key=lambda f: not f.args[0].is_Symbol)
    declare = f"Symbol({names[0]!r}, real=True)" if len(names) == 1 else f"symbols({' '.join(names)!r}, real=True)"
    warnings.warn(f"gradc treats {', '.join(names)} as real; declare {declare} so SymPy does not write "
                  f"{_label(example)}", GradcWarning, stacklevel=3)   # real_forms' caller

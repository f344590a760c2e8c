"""Codegen does bounded work per IR operation: the provenance labels print a bounded piece of each
sub-expression, and names are handed out without rescanning. Counted (nodes printed, names probed), not timed,
on pendulum Lagrangians of 8 and 16 links (IR of ~300 and ~940 operations; with labels printed whole up to
300 nodes, as before, the printing per operation doubled between them)."""

from __future__ import annotations

import sympy
from corpus_exprs import _pendulum_chain, _plain

import gradc
from gradc.backend import names
from gradc.frontend import sympy as frontend


def _work_per_op(n_links: int, monkeypatch) -> tuple[float, float]:
    """(SymPy nodes printed for labels, name candidates probed) per IR operation of the n-link Lagrangian's
    gradient module."""
    printed, probed = [0], [0]
    sstr, unusable = sympy.sstr, names._unusable

    def counting_sstr(expr, **kw):
        printed[0] += sum(1 for _ in frontend._preorder(expr))
        return sstr(expr, **kw)

    def counting_unusable(name):
        probed[0] += 1
        return unusable(name)

    monkeypatch.setattr(sympy, "sstr", counting_sstr)
    monkeypatch.setattr(names, "_unusable", counting_unusable)
    L, qs, thetas, omegas, masses, lengths, g = _pendulum_chain(n_links)
    m = gradc.compile_expr(_plain(L, qs, thetas, omegas), [*thetas, *omegas, *masses, *lengths, g],
                           wrt=[*thetas, *omegas])
    assert "def hessian(" in m.source   # the derivative kernels too (emitted when first asked for)
    monkeypatch.undo()
    ops = m.op_counts["forward"] + m.op_counts["backward"]
    return printed[0] / ops, probed[0] / ops


def test_codegen_work_per_operation_does_not_grow_with_the_expression(monkeypatch):
    small, large = _work_per_op(8, monkeypatch), _work_per_op(16, monkeypatch)
    assert large[0] <= 1.5 * small[0], f"label printing per op: {small[0]:.1f} -> {large[0]:.1f}"
    assert large[1] <= 1.5 * small[1], f"name probes per op: {small[1]:.1f} -> {large[1]:.1f}"


def test_derivative_kernels_are_emitted_only_when_first_asked_for():
    x, y = sympy.symbols("x y")
    f = sympy.sin(x) * sympy.exp(x * y)
    m = gradc.compile_expr(f)
    at = {x: 0.5, y: 2.0}
    value, (gx, gy) = m.value_and_grad(0.5, 2.0)
    assert not isinstance(m._source, str) and not hasattr(m.module, "hessian")   # nothing derived yet
    assert abs(gy - float(sympy.diff(f, y).subs(at))) < 1e-12
    h = m.hessian(0.5, 2.0)
    assert isinstance(m._source, str) and "def _hessian_kernel(" in m.source   # now emitted, and written whole
    expected = [[float(sympy.diff(f, a, b).subs(at)) for b in (x, y)] for a in (x, y)]
    assert abs(h - expected).max() < 1e-12 * abs(h).max()

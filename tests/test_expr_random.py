"""Random SymPy expressions over the op table, compiled and checked against sympy.diff + lambdify.

Every construction keeps the expression defined on the sampled points: logs and roots of positive
forms (exp(u), 1 + u², 2 + sin u), asin/acos of tanh(u)/2, division by 1 + u², exp of bounded values.
GRADC_FUZZ_EXAMPLES sets the number of expressions (default 50 in the fast suite, derandomized, compiled
FAST_BATCH to a module; the slow `make fuzz` test defaults to 2000 fresh ones, compiled BATCH to a module:
a Numba compilation is most of the cost of a check). Each failure hypothesis finds becomes a REGRESSIONS entry.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sympy.codegen import cfunctions

import gradc

x, y, z = SYMBOLS = sp.symbols("x y z", real=True)
RTOL = 1e-8


def _examples(default: int) -> int:
    return int(os.environ.get("GRADC_FUZZ_EXAMPLES", default))


# -- the expression strategy ----------------------------------------------------------------------------
def sig(u):
    return 1 / (1 + sp.exp(-u))


BOUNDED = [sp.sin, sp.cos, sp.tanh, sp.atan, sp.erf, sig, lambda u: sp.tanh(u) / 2]
UNARY = [
    *BOUNDED,
    lambda u: sp.exp(sp.tanh(u)),                 # exp of a bounded value: never overflows
    lambda u: sp.sinh(sp.sin(u)),
    lambda u: sp.cosh(sp.atan(u)),
    lambda u: sp.log(1 + u**2),                   # log1p gate
    lambda u: sp.log(1 + sp.exp(u)),              # softplus gate
    lambda u: sp.log(2 + sp.sin(u)),
    lambda u: sp.sqrt(1 + u**2),
    lambda u: sp.sqrt(sp.exp(sp.tanh(u))),
    lambda u: sp.asin(sp.tanh(u) / 2),
    lambda u: sp.acos(sp.tanh(u) / 2),
    lambda u: sp.tan(sp.tanh(u)),                 # |tanh| < 1 < π/2
    lambda u: u**2,
    lambda u: u**3,
    lambda u: -u,
    lambda u: 3 * u,
    lambda u: sp.Abs(u),
    lambda u: 1 / (1 + u**2),
    lambda u: (1 + u**2) ** sp.Rational(-3, 2),
    lambda u: sp.exp(-(u**2)),
    lambda u: sp.log(sig(u)),                     # log-sigmoid: -softplus(-u)
    lambda u: sp.log(1 - sig(u)),
    sp.asinh, sp.erfc, sp.sinc, sp.acot,
    lambda u: sp.acosh(2 + u**2),
    lambda u: sp.atanh(sp.tanh(u) / 2),
    lambda u: sp.sec(sp.tanh(u)),                 # cos(tanh u) > 0.5
    lambda u: sp.cot(1 + sp.tanh(u) / 2),         # sin of (0.5, 1.5) > 0.4
    lambda u: cfunctions.expm1(sp.tanh(u)),
    lambda u: cfunctions.exp2(sp.tanh(u)),
    lambda u: cfunctions.log10(2 + sp.sin(u)),
    lambda u: sp.frac(u) * u,
    lambda u: sp.Heaviside(u) * u,
    lambda u: sp.real_root(u, 3) * u**2,          # differentiable at 0 once multiplied by u**2
]
BINARY = [
    lambda u, v: u + v,
    lambda u, v: u - v,
    lambda u, v: u * v,
    lambda u, v: u / (1 + v**2),
    lambda u, v: u / (2 + sp.cos(v)),
    lambda u, v: sp.atan2(u, 1 + v**2),
    lambda u, v: sp.Max(u, v),
    lambda u, v: sp.Min(u, v),
    lambda u, v: sp.log(sp.exp(u) + sp.exp(v)),   # logsumexp gate
    lambda u, v: sp.Piecewise((u, v > 0), (u * v, True)),
    lambda u, v: sp.Piecewise((u, u < v), (v**2, True)),
    lambda u, v: (1 + u**2) ** sp.tanh(v),
    lambda u, v: sig(u - v),
    lambda u, v: u / (1 + sp.exp(-v)),            # a sigmoid factor of a product
    lambda u, v: u * sp.exp(v) / (1 + sp.exp(v)),
    lambda u, v: sp.Piecewise((u, sp.And(u > 0, v > 0, u < v)), (v, sp.Or(u < -1, v > 1)), (u * v, True)),
    lambda u, v: cfunctions.hypot(1 + u**2, v),
    lambda u, v: sp.Mod(u, 1 + v**2),
    lambda u, v: sp.Max(u, v, u * v),
    lambda u, v: sp.Min(u, v, 1 - u),
]
CONSTANTS = [sp.Integer(2), sp.Rational(1, 3), sp.Rational(-3, 2), sp.pi, sp.E, sp.Float(0.25)]

leaves = st.sampled_from(SYMBOLS) | st.sampled_from(CONSTANTS)


def _extend(children):
    return (st.builds(lambda f, u: f(u), st.sampled_from(UNARY), children)
            | st.builds(lambda f, u, v: f(u, v), st.sampled_from(BINARY), children, children))


expressions = st.recursive(leaves, _extend, max_leaves=6)


# -- the oracle -------------------------------------------------------------------------------------------
def _no_distributions(d: sp.Expr) -> sp.Expr:
    """sympy.diff of sign/floor/... gives DiracDelta/Derivative: zero off the (measure-zero) jumps."""
    return d.replace(lambda e: isinstance(e, (sp.Derivative, sp.DiracDelta)), lambda e: sp.S.Zero)


def _diff(expr: sp.Expr, s: sp.Symbol) -> sp.Expr:
    """sympy.diff, with Mod and frac written as SymPy defines them (it leaves their derivatives unevaluated)."""
    expr = expr.replace(sp.Mod, lambda a, b: a - b * sp.floor(a / b)).replace(sp.frac, lambda a: a - sp.floor(a))
    return _no_distributions(sp.diff(expr, s))


def _close(got, want, what):
    want = np.asarray(want)
    if np.iscomplexobj(want):   # SymPy may spell a real constant with I (atan2 of numbers)
        assert np.all(np.abs(want.imag) <= 1e-12 * (1 + np.abs(want.real))), what
        want = want.real
    want = np.broadcast_to(want.astype(float), np.shape(got))
    scale = 1.0 + float(np.max(np.abs(want), initial=0.0))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * 1e-2 * scale, err_msg=what)


def _heaviside(v: float, h0: float = 0.5) -> float:
    return 1.0 if v > 0 else 0.0 if v < 0 else h0


def evaluate(expr: sp.Expr, points: list[np.ndarray]) -> np.ndarray:
    """`expr` at the points by sympy.lambdify: vectorised, or point by point with Python's math where
    NumPy's printer fails (np.select refuses some printed Piecewise conditions), or with mpmath where a
    real expression has complex intermediates as SymPy writes it (tan(I*y) for I*tanh(y)), its real part, or
    with SymPy's evalf where mpmath refuses them too."""
    with np.errstate(all="ignore"):
        try:
            return sp.lambdify(SYMBOLS, expr, ["scipy", "numpy"])(*points)
        except (TypeError, ValueError):
            pass
        f = sp.lambdify(SYMBOLS, expr, [{"Heaviside": _heaviside}, "math"])
        try:
            return np.array([f(*map(float, point)) for point in zip(*points)])
        except TypeError:   # math refuses a complex intermediate
            pass
        f = sp.lambdify(SYMBOLS, expr, [{"Heaviside": _heaviside}, "mpmath"])
        try:
            return np.array([complex(f(*map(float, point))).real for point in zip(*points)])
        except (TypeError, AttributeError):   # mpmath refuses some too (hypot of a complex number): SymPy's evalf
            return np.array([complex(expr.evalf(subs=dict(zip(SYMBOLS, map(float, point))))).real
                             for point in zip(*points)])


def _points(seed: int, n: int) -> list[np.ndarray]:
    return list(np.random.default_rng(seed).uniform(-2.0, 2.0, (3, n)))


def _compare(expr: sp.Expr, value: np.ndarray, grads: tuple[np.ndarray, ...], points: list[np.ndarray]) -> None:
    """gradc's value and gradient of `expr` against SymPy's at `points`."""
    _close(value, evaluate(expr, points), f"value of {expr}")
    for s, got in zip(SYMBOLS, grads):
        _close(got, evaluate(_diff(expr, s), points), f"d/d{s} of {expr}")


def check_expression(expr: sp.Expr, seed: int = 0, n: int = 16) -> None:
    """Value and gradient of the compiled `expr` over (x, y, z) against SymPy at n random points."""
    points = _points(seed, n)
    _compare(expr, *gradc.compile_expr(expr, args=list(SYMBOLS)).value_and_grad(*points), points)


def check_batch(exprs: list[sp.Expr], seed: int, n: int = 64) -> None:
    """`check_expression` for many expressions compiled as one module (one Numba compilation, which
    is most of the cost of a check): each output's value, and each one's own gradient through a one-hot
    cotangent, against SymPy."""
    points = _points(seed, n)
    module = gradc.compile_expr(exprs, args=list(SYMBOLS))
    for k, expr in enumerate(exprs):
        values, grads = module.value_and_grad(*points, cotangents=[float(j == k) for j in range(len(exprs))])
        _compare(expr, values[k], grads, points)


def check_second_order(exprs: list[sp.Expr], seed: int, n: int = 32) -> None:
    """The module's jacobian and hessian of each expression against SymPy's first and second derivatives
    (the upper triangle; the Hessian's exact symmetry is checked as such)."""
    points = _points(seed, n)
    module = gradc.compile_expr(exprs, args=list(SYMBOLS))
    J, H = module.jacobian(*points), module.hessian(*points)
    assert np.array_equal(H, H.swapaxes(-1, -2), equal_nan=True)
    for k, expr in enumerate(exprs):
        for a, s in enumerate(SYMBOLS):
            first = _diff(expr, s)
            _close(J[:, k, a], evaluate(first, points), f"d/d{s} of {expr}")
            for b in range(a, len(SYMBOLS)):
                _close(H[:, k, a, b], evaluate(_diff(first, SYMBOLS[b]), points), f"d²/d{s}d{SYMBOLS[b]} of {expr}")


BATCH = 20   # expressions per compiled module in the slow fuzz job

FAST_BATCH = 25   # expressions per compiled module in the fast suite: 2 modules check 50 expressions
_FAST = settings(max_examples=-(-_examples(50) // FAST_BATCH), deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_FUZZ = settings(max_examples=-(-_examples(2000) // BATCH), deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_FAST
@given(exprs=st.lists(expressions, min_size=FAST_BATCH, max_size=FAST_BATCH), seed=st.integers(0, 2**16))
def test_random_expressions(exprs, seed):
    check_batch(exprs, seed)


@pytest.mark.slow
@_FUZZ
@given(exprs=st.lists(expressions, min_size=BATCH, max_size=BATCH), seed=st.integers(0, 2**32 - 1))
def test_random_expressions_fuzz(exprs, seed):
    check_batch(exprs, seed)


@settings(max_examples=1, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(exprs=st.lists(expressions, min_size=12, max_size=12), seed=st.integers(0, 2**16))
def test_random_jacobians_and_hessians(exprs, seed):
    check_second_order(exprs, seed)


@pytest.mark.slow
@settings(max_examples=-(-int(os.environ.get("GRADC_FUZZ_HESSIANS", 200)) // BATCH), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(exprs=st.lists(expressions, min_size=BATCH, max_size=BATCH), seed=st.integers(0, 2**32 - 1))
def test_random_jacobians_and_hessians_fuzz(exprs, seed):
    check_second_order(exprs, seed)


# -- failures found by the strategy above (and by hand), kept as explicit cases ------------------------------
REGRESSIONS = [
    # a Piecewise inside a condition: SymPy rewrites the condition to ITE(...), which was UnsupportedError
    sp.Piecewise((x, sp.Piecewise((x, x > 0), (x * x, True)) > 0), (x * y, True)),
    # n-ary And/Or were emitted as `{0} and {1}`: the third condition was silently dropped
    sp.Piecewise((x * y, sp.And(x > 0, y > 0, z > 0)), (z, True)) + sp.Piecewise((x, sp.Or(x > 1, y > 1, z > 1)),
                                                                                (y, True)),
    sp.Piecewise((x, sp.Xor(x > 0, y > 0)), (y, sp.Implies(y > 0, z > 0)), (z, True)),
    # a sigmoid factor inside a product (x·σ(y), SiLU) was differentiated by the quotient rule
    x / (1 + sp.exp(-y)) + y / (1 + sp.exp(-y)) ** 2 + sp.exp(z) / (1 + sp.exp(z))
    + x * sp.exp(y) / (1 + sp.exp(y)) ** 2,
    sp.log(sig(x)) + sp.log(1 - sig(y)),
    # SymPy writes the real constant atan2(2, c) as -I*log(...): refused as complex; constants now fold
    sp.atan2(2, 1 + sp.tan(sp.tanh(2)) ** 2) * x + sp.atan2(y, 1 + sp.tan(sp.tanh(2)) ** 2),
    # (an oracle failure: lambdify's np.select refused the conditions of this derivative)
    (sp.Min(sp.Piecewise((x, (x > 1) | (x < -1)), (x**2, True)),
            sp.Piecewise((x, (x > 0) & (z > 0) & (x < z)), (z, (z > 1) | (x < -1)), (x * z, True))), 1105267),
    # the printer: a ** 2 printed as `a * a` with pow's precedence, σ(u) printed without parentheses
    z / (x - y) ** 2 + y / sig(x - y) + 1 / (x * y + 3) ** -1,
    # the oracle: mpmath's hypot refused the complex intermediate of tan(I*tan(2*I)/2 + 1); SymPy's evalf now
    cfunctions.hypot(sp.atan(5 / x) ** 2 + 1, 1 / sp.tan(
        sp.Mul(-sp.Rational(1, 2), sp.I, sp.tan(2 * sp.I, evaluate=False), evaluate=False) + 1)),
]


CASES = [case if isinstance(case, tuple) else (case, 0) for case in REGRESSIONS]   # (expression, point seed)


@pytest.mark.parametrize("expr, seed", CASES, ids=[sp.sstr(e)[:80] for e, _ in CASES])
def test_regression(expr, seed):
    check_expression(expr, seed)

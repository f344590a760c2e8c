"""Semantics of compiled expression modules, against SymPy (lambdify + diff) and NumPy as oracles:
broadcasting and shared scalars, dtypes, args/wrt, multiple outputs, piecewise and non-smooth ops,
constants, numerical stability, the shape of the generated source, and the on-disk Numba cache."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap

import numba as nb
import numpy as np
import pytest
import sympy as sp
from sympy.codegen import cfunctions

import gradc
from gradc.backend.forms import FORMS

x, y, z = sp.symbols("x y z", real=True)
RNG = np.random.default_rng(20240607)


def sig(u):
    return 1 / (1 + sp.exp(-u))


def _lambdify(expr, args):   # (Cbrt and fma: SymPy's C functions NumPy's printer does not know)
    return sp.lambdify(args, expr, [{"Cbrt": np.cbrt, "fma": lambda a, b, c: a * b + c}, "scipy", "numpy"])


def oracle_value(expr, args, *inputs):
    inputs = [np.asarray(v, dtype=float) for v in inputs]
    shape = np.broadcast_shapes(*(np.shape(v) for v in inputs))
    return np.broadcast_to(_lambdify(expr, args)(*inputs), shape)


def reduce_to(full: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a full-shape gradient over the axes along which an input of `shape` was broadcast."""
    extra = full.ndim - len(shape)
    full = full.sum(axis=tuple(range(extra))) if extra else full
    axes = tuple(k for k, n in enumerate(shape) if n == 1 and full.shape[k] != 1)
    return full.sum(axis=axes, keepdims=True) if axes else full


def oracle_grads(expr, args, wrt, *inputs, cotangent=1.0):
    """d sum(cotangent * f) / d input, shaped like each input: from sympy.diff, independent of gradc."""
    inputs = [np.asarray(v, dtype=float) for v in inputs]
    shape = np.broadcast_shapes(*(np.shape(v) for v in inputs), np.shape(cotangent))
    out = []
    for s in wrt:
        k = list(args).index(s)
        full = np.broadcast_to(_lambdify(sp.diff(expr, s), args)(*inputs), shape) * cotangent
        out.append(reduce_to(np.asarray(full, dtype=float), np.shape(inputs[k])))
    return out


def assert_grads(got, want, rtol=1e-10, atol=1e-12):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.shape(g) == np.shape(w), (np.shape(g), np.shape(w))
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


# -- broadcasting and shared parameters --------------------------------------------------------------
EXPR = x * sp.sin(y) + sp.exp(x * y) / 3 + y**2


@pytest.fixture(scope="module")
def f_xy():
    return gradc.compile_expr(EXPR)


def _check(module, expr, args, *inputs, rtol=1e-10, forward=False):
    """value_and_grad (and grad; forward too when asked: each new mix of array and scalar inputs costs
    a kernel compile) against SymPy."""
    value, grads = module.value_and_grad(*inputs)
    np.testing.assert_allclose(value, oracle_value(expr, args, *inputs), rtol=rtol, atol=1e-12)
    assert np.shape(value) == np.broadcast_shapes(*(np.shape(v) for v in inputs))
    assert_grads(grads, oracle_grads(expr, args, args, *inputs), rtol=rtol)
    if forward:
        np.testing.assert_array_equal(module.forward(*inputs), value)
    for a, b in zip(module.grad(*inputs), grads):
        np.testing.assert_array_equal(a, b)
    return value, grads


def test_points_of_equal_shape(f_xy):
    _check(f_xy, EXPR, (x, y), RNG.normal(size=50), RNG.normal(size=50), forward=True)


def test_outer_broadcast_of_column_and_row(f_xy):
    col, row = RNG.normal(size=(7, 1)), RNG.normal(size=(1, 5))
    value, (dx, dy) = _check(f_xy, EXPR, (x, y), col, row)
    assert value.shape == (7, 5) and dx.shape == (7, 1) and dy.shape == (1, 5)


def test_shared_scalar_parameter_gets_the_sum_over_points(f_xy):
    xs = RNG.normal(size=10_000)   # more than one parallel chunk
    value, (dx, dy) = _check(f_xy, EXPR, (x, y), xs, 0.7)
    assert np.ndim(dy) == 0 and isinstance(dy, np.floating)
    per_point = _lambdify(sp.diff(EXPR, y), (x, y))(xs, 0.7)
    assert dy == pytest.approx(per_point.sum(), rel=1e-12)


def test_scalars_0d_arrays_and_python_ints(f_xy):
    _check(f_xy, EXPR, (x, y), 0.3, RNG.normal(size=4))
    _check(f_xy, EXPR, (x, y), np.array(0.3), np.array(-1.25))
    value, (dx, dy) = _check(f_xy, EXPR, (x, y), 1, 2, forward=True)
    assert np.shape(value) == () and np.ndim(dx) == 0 and np.ndim(dy) == 0
    _check(f_xy, EXPR, (x, y), np.arange(5), 2)            # an int array is converted, not rejected


def test_matrix_shaped_inputs_and_non_contiguous_views(f_xy):
    a = RNG.normal(size=(6, 8))
    _check(f_xy, EXPR, (x, y), a[:, ::2], a[::2, 1::2][:1])


def test_size_one_axes_and_empty_batches(f_xy):
    _check(f_xy, EXPR, (x, y), RNG.normal(size=(1,)), RNG.normal(size=(9,)))
    value, (dx, dy) = f_xy.value_and_grad(np.zeros(0), 0.5)
    assert value.shape == (0,) and dx.shape == (0,) and dy == 0.0


def test_ready_inputs_take_the_short_way_to_the_same_kernel():
    """C-ordered float64 arrays of one shape skip the broadcasting (runtime_expr._ready_as_is); the
    kernel still sees read-only arrays, so it is compiled once for both ways, and gives the same bits."""
    m = gradc.compile_expr(EXPR * x)   # a module of its own: its kernel's signatures are counted
    a, b = RNG.normal(size=(30, 4)), RNG.normal(size=(30, 4))
    assert m.module._ready_as_is((a, b), np.dtype("float64"))
    assert not any(m.module._ready_as_is(v, np.dtype("float64")) for v in
                   [(a, b[:, :1]), (a, b.T.copy().T), (a, b.astype(np.float32)), (a, b.tolist()), (a, 0.5),
                    (np.array(1.0), np.array(2.0)), ()])
    short = _check(m, EXPR * x, (x, y), a, b, forward=True)
    broadcast = m.value_and_grad(a, np.asfortranarray(b))   # Fortran-ordered: the long way
    for got, want in zip([short[0], *short[1]], [broadcast[0], *broadcast[1]]):
        np.testing.assert_array_equal(got, want)
    assert len(m.module._serial_twin(m.module._value_and_grad_kernel).signatures) == 1   # 120 points: the twin
    assert a.flags.writeable and b.flags.writeable   # the read-only views are the module's own


def test_lists_are_arrays(f_xy):
    _check(f_xy, EXPR, (x, y), [0.1, 0.2], [[1.0], [2.0], [3.0]])


def test_float32_module():
    m = gradc.compile_expr(EXPR, dtype="float32")
    xs, ys = RNG.normal(size=200), RNG.normal(size=200)
    value, (dx, dy) = m.value_and_grad(xs, ys)
    assert value.dtype == np.float32 and dx.dtype == np.float32 and dy.dtype == np.float32
    assert m.forward(xs, ys).dtype == np.float32
    np.testing.assert_allclose(value, oracle_value(EXPR, (x, y), xs, ys), rtol=1e-5, atol=1e-5)
    assert_grads((dx, dy), oracle_grads(EXPR, (x, y), (x, y), xs, ys), rtol=1e-5, atol=1e-5)
    _, (dx, dy) = m.value_and_grad(xs.astype(np.float32), 0.5)
    assert isinstance(dy, np.float32)
    assert dy == pytest.approx(oracle_grads(EXPR, (x, y), (y,), xs, 0.5)[0], rel=1e-5)


# -- args and wrt ---------------------------------------------------------------------------------------
def test_args_order_is_the_call_order():
    m = gradc.compile_expr(x - 2 * y, args=[y, x])
    assert m.args == ("y", "x")
    value, (dy, dx) = m.value_and_grad(np.array([1.0, 2.0]), np.array([10.0, 20.0]))
    np.testing.assert_allclose(value, [8.0, 16.0])
    np.testing.assert_allclose(dy, [-2.0, -2.0])
    np.testing.assert_allclose(dx, [1.0, 1.0])


def test_default_args_are_the_free_symbols_sorted_by_name():
    b, a = sp.symbols("b a", real=True)
    m = gradc.compile_expr(b / a)
    assert m.args == ("a", "b") and m.wrt == ("a", "b")


def test_wrt_subset_in_wrt_order():
    m = gradc.compile_expr(x * y * z, args=[x, y, z], wrt=[z, x])
    xs, ys, zs = RNG.normal(size=(3, 6))
    value, grads = m.value_and_grad(xs, ys, zs)
    assert m.wrt == ("z", "x") and len(grads) == 2
    np.testing.assert_allclose(value, xs * ys * zs)
    assert_grads(grads, [xs * ys, ys * zs])


def test_constant_expression():
    m = gradc.compile_expr(sp.Integer(3), args=[x])
    value, (dx,) = m.value_and_grad(np.arange(4.0))
    np.testing.assert_array_equal(value, [3.0] * 4)
    np.testing.assert_array_equal(dx, np.zeros(4))
    no_args = gradc.compile_expr(sp.pi)
    assert no_args.forward() == pytest.approx(np.pi)
    assert no_args.grad() == ()


def test_wrt_argument_the_expression_does_not_use_gets_zeros():
    m = gradc.compile_expr(sp.cos(y), args=[x, y])
    xs, ys = RNG.normal(size=(2, 5))
    _, (dx, dy) = m.value_and_grad(xs, ys)
    np.testing.assert_array_equal(dx, np.zeros(5))
    np.testing.assert_allclose(dy, -np.sin(ys))
    _, (dx, dy) = m.value_and_grad(1.5, ys)
    assert dx == 0.0 and np.ndim(dx) == 0


def test_identity_and_input_outputs():
    m = gradc.compile_expr(x)
    value, (dx,) = m.value_and_grad(np.array([1.0, -2.0]))
    np.testing.assert_array_equal(value, [1.0, -2.0])
    np.testing.assert_array_equal(dx, [1.0, 1.0])


# -- several outputs and cotangents -------------------------------------------------------------------
EXPRS = [x * y, sp.sin(x) + y**2, x, sp.Integer(2)]


@pytest.fixture(scope="module")
def multi():
    return gradc.compile_expr(EXPRS, args=[x, y])


def test_several_outputs_default_cotangents_are_ones(multi):
    xs, ys = RNG.normal(size=(2, 8))
    values, grads = multi.value_and_grad(xs, ys)
    assert isinstance(values, tuple) and len(values) == 4
    for v, e in zip(values, EXPRS):
        np.testing.assert_allclose(v, oracle_value(e, (x, y), xs, ys))
    total = sum(EXPRS)
    assert_grads(grads, oracle_grads(total, (x, y), (x, y), xs, ys))
    for a, b in zip(multi.forward(xs, ys), values):
        np.testing.assert_array_equal(a, b)


def test_several_outputs_with_cotangent_arrays_and_scalars(multi):
    xs, ys = RNG.normal(size=(2, 8))
    cts = [RNG.normal(size=8), 2.0, np.array(-1.5), RNG.normal(size=8)]
    grads = multi.grad(xs, ys, cotangents=cts)
    want = [sum(oracle_grads(e, (x, y), (x, y), xs, ys, cotangent=c)[k] for e, c in zip(EXPRS, cts))
            for k in range(2)]
    assert_grads(grads, want)
    _, grads2 = multi.value_and_grad(xs, ys, cotangents=cts)
    assert_grads(grads2, want)


def test_cotangents_are_checked(multi):
    with pytest.raises(ValueError, match="4 cotangents"):
        multi.grad(1.0, 2.0, cotangents=[1.0])
    with pytest.raises(ValueError, match="cotangent of"):
        multi.grad(np.ones(3), 2.0, cotangents=[np.ones(4), 1.0, 1.0, 1.0])


# -- piecewise, non-smooth ops, constants ---------------------------------------------------------------
def _no_distributions(d):
    return d.replace(lambda e: isinstance(e, (sp.Derivative, sp.DiracDelta)), lambda e: sp.S.Zero)


def _diff(expr, s):
    """sympy.diff, with Mod and frac written as SymPy defines them (it leaves their derivatives unevaluated)."""
    expr = expr.replace(sp.Mod, lambda a, b: a - b * sp.floor(a / b)).replace(sp.frac, lambda a: a - sp.floor(a))
    return _no_distributions(sp.diff(expr, s))


def _check_against_sympy(expr, args, inputs, rtol=1e-10):
    m = gradc.compile_expr(expr, args=list(args))
    value, grads = m.value_and_grad(*inputs)
    np.testing.assert_allclose(value, oracle_value(expr, args, *inputs), rtol=rtol, atol=1e-12)
    for s, g in zip(args, grads):
        d = _diff(expr, s)
        want = np.broadcast_to(_lambdify(d, args)(*inputs), np.shape(g))
        np.testing.assert_allclose(g, want, rtol=rtol, atol=1e-12, err_msg=f"d/d{s} of {expr}")
    return m


def test_piecewise_with_relational_conditions():
    expr = sp.Piecewise((x**2 * y, x < y), (sp.sin(x) * y, (x < 2 * y) & (y > 0)), (x + 3 * y, sp.Ge(x, 1)),
                        (sp.exp(y), True))
    xs = RNG.uniform(-2, 2, 400)
    ys = RNG.uniform(-2, 2, 400)
    m = _check_against_sympy(expr, (x, y), (xs, ys))
    assert " if " in m.source


def test_piecewise_without_otherwise_is_nan_outside():
    m = gradc.compile_expr(sp.Piecewise((x, x > 0)))
    value = m.forward(np.array([-1.0, 2.0]))
    assert np.isnan(value[0]) and value[1] == 2.0


def test_piecewise_gradient_is_nan_where_sympy_value_is_undefined():
    """No branch holds (or the one that does is nan): the value is nan, and so is every input's derivative
    (as sympy.diff + lambdify give it); a branch not taken passes back 0, not 0 * nan."""
    xs, ys = np.array([-1.0, 0.5, 2.0]), np.array([1.0, -1.0, 3.0])
    for expr in (sp.Piecewise((x * y, x > 1), (y**2, x > 0)), sp.Piecewise((x * y, x > 0), (sp.nan, True)),
                 sp.Piecewise((2.0, x > 0))):
        m = gradc.compile_expr(expr, args=[x, y])
        value, (dx, dy) = m.value_and_grad(xs, ys)
        assert np.isnan(value[0]) and np.all(np.isfinite(value[1:])), expr
        assert np.isnan(dx[0]) and np.all(np.isfinite(dx[1:])), expr
        assert np.isnan(dy[0]) == expr.has(y) and np.all(np.isfinite(dy[1:])), expr
    nested = sp.Piecewise((x, x > 0), (sp.Piecewise((y**2, y > 0)), True))   # inner nan never selected: 0
    _, (dx, dy) = gradc.compile_expr(nested, args=[x, y]).value_and_grad(np.array([1.0, -1.0]), np.array([-1.0, 2.0]))
    np.testing.assert_array_equal(dx, [1.0, 0.0])
    np.testing.assert_array_equal(dy, [0.0, 4.0])


_FUNCTIONS = {   # issue 17: SymPy's functions as people write them, a few per module
    "reciprocal trig": sp.sec(x) + sp.csc(y) * z + sp.cot(x * y) + sp.asec(z) + sp.acsc(2 * z) + sp.acot(x - y),
    "hyperbolic": sp.asinh(x * y) + sp.acosh(z) + sp.atanh(x / 3) + sp.acoth(z + 1) + sp.asech(z / 3)
    + sp.acsch(x + 3),
    "C functions": cfunctions.exp2(x) + cfunctions.log2(z) + cfunctions.log10(z * y + 8) + cfunctions.expm1(x * y)
    + cfunctions.log1p(z) + cfunctions.hypot(x, y) + cfunctions.Sqrt(z) + cfunctions.Cbrt(z) + cfunctions.fma(x, y, z)
    + sp.erfc(x),
    "steps": sp.Heaviside(x) * y + sp.Heaviside(y, z) + sp.frac(x * z) * y + sp.Mod(x * 3, y) + sp.Mod(y, x - 3)
    + sp.sign(x) + sp.floor(y) * z + sp.ceiling(x),
    "roots and n-ary": sp.real_root(x, 3) * y + sp.real_root(y - 2, 5) + sp.root(z, 4) + sp.sinc(x * 3)
    + sp.Max(x, y, z, 0.5) + sp.Min(x, y * 2, z - 1, -x),
}


@pytest.mark.parametrize("name", _FUNCTIONS)
def test_sympy_functions_as_people_write_them(name):
    """Each against sympy.diff + lambdify, on points where it is defined (z > 1 for acosh, asec, ...)."""
    n = 200
    xs = RNG.uniform(-2.5, 2.5, n)
    ys = RNG.uniform(-2.5, 2.5, n)
    zs = RNG.uniform(1.1, 3.0, n)
    _check_against_sympy(_FUNCTIONS[name], (x, y, z), (xs, ys, zs), rtol=1e-9)


def test_readme_lists_the_supported_functions_and_expression_strings_accept_them():
    from pathlib import Path

    from gradc.frontend.functions import TEXT_CONSTANTS, supported_functions, text_functions
    from gradc.frontend.parse import parse_expr

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("<!-- supported functions: begin -->")[1].split("<!-- supported functions: end -->")[0]
    assert re.findall(r"`([^`]+)`", block) == supported_functions(), \
        "README's Supported SymPy list differs from gradc.frontend.functions.supported_functions(): regenerate it"
    assert set(supported_functions()) - {"Piecewise"} <= set(text_functions())
    got = parse_expr("sec(x) + Heaviside(x, 0) + Mod(x, 2) + real_root(x, 3) + log10(y) + Max(x, y, z) + sinc(x)",
                     text_functions(), TEXT_CONSTANTS)
    assert got == (sp.sec(x) + sp.Heaviside(x, 0) + sp.Mod(x, 2) + sp.real_root(x, 3) + cfunctions.log10(y)
                   + sp.Max(x, y, z) + sp.sinc(x))


def test_sinc_is_one_at_zero_with_slope_zero_and_accurate_near_it():
    m = gradc.compile_expr(sp.sinc(x), args=[x])
    points = np.array([0.0, -0.0, 1e-300, 1e-8, -1e-3, 0.3, 0.49, 0.51, -2.0, np.pi])
    value, (dx,) = m.value_and_grad(points)
    assert value[0] == value[1] == value[2] == 1.0 and dx[0] == dx[1] == 0.0
    for p, v, d in zip(points[2:], value[2:], dx[2:]):
        want_v = sp.sinc(sp.Float(p, 50)).evalf(30)
        want_d = sp.diff(sp.sinc(x), x).subs(x, sp.Float(p, 50)).evalf(30)
        assert v == pytest.approx(float(want_v), rel=1e-15, abs=1e-300)
        assert d == pytest.approx(float(want_d), rel=1e-14, abs=1e-300), p


def test_heaviside_at_zero_is_its_second_argument_one_half_by_default():
    m = gradc.compile_expr([sp.Heaviside(x), sp.Heaviside(x, 0), sp.Heaviside(x, 1), sp.Heaviside(x, y)], args=[x, y])
    values = m.forward(np.array([-1.0, 0.0, 2.0]), 0.25)
    np.testing.assert_array_equal(values, [[0, 0.5, 1], [0, 0, 1], [0, 1, 1], [0, 0.25, 1]])
    _, (dx, dy) = m.value_and_grad(np.array([-1.0, 0.0, 2.0]), np.array([0.25] * 3))
    np.testing.assert_array_equal(dx, [0, 0, 0])
    np.testing.assert_array_equal(dy, [0, 1, 0])


def test_mod_takes_the_sign_of_the_divisor_like_python():
    m = gradc.compile_expr(sp.Mod(x, y), args=[x, y])
    a = np.array([5.5, -5.5, 5.5, -5.5, 1e17, 3.0])
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 1.5])
    value, (da, db) = m.value_and_grad(a, b)
    np.testing.assert_array_equal(value, [p % q for p, q in zip(a, b)])
    np.testing.assert_array_equal(da, np.ones(6))
    np.testing.assert_array_equal(db, -np.floor(a / b))


def test_max_min_abs_sign_floor_ceiling_gradients():
    expr = (sp.Max(x, y) * z + sp.Min(x**2, y) + sp.Abs(x - y) * z + sp.sign(x) * y**2
            + sp.floor(x) * y + sp.ceiling(y) * x + sp.Max(x, y, z, 0))
    xs, ys, zs = (RNG.uniform(-3, 3, 300) for _ in range(3))
    _check_against_sympy(expr, (x, y, z), (xs, ys, zs))


def test_ties_send_the_gradient_to_the_first_argument_relu_prime_of_zero_is_zero():
    m = gradc.compile_expr([sp.Max(x, 0), sp.Abs(x), sp.Min(x, 0)], args=[x])
    (relu, absolute, neg_part), (dx,) = m.value_and_grad(np.array([-1.0, 0.0, 1.0]), cotangents=[1.0, 0.0, 0.0])
    np.testing.assert_array_equal(relu, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(dx, [0.0, 0.0, 1.0])
    _, (dx,) = m.value_and_grad(np.array([-1.0, 0.0, 1.0]), cotangents=[0.0, 1.0, 0.0])
    np.testing.assert_array_equal(dx, [-1.0, 0.0, 1.0])


def test_constants_pi_e_rationals():
    expr = sp.pi * x + sp.E**y + sp.Rational(1, 3) * x**2 + sp.sqrt(2) * y - sp.Rational(7, 2) + x ** sp.Rational(3, 2)
    m = _check_against_sympy(expr, (x, y), (RNG.uniform(0.1, 3, 20), RNG.normal(size=20)))
    value = m.forward(1.0, 0.0)
    assert value == pytest.approx(np.pi + 1 + 1 / 3 - 3.5 + 1.0, rel=1e-15)


def test_powers_and_roots():
    expr = x**3 / y**2 + sp.sqrt(x) / y + y ** (-3) + x**y + 2**x + x ** sp.Rational(-1, 2) + sp.cbrt(x)
    _check_against_sympy(expr, (x, y), (RNG.uniform(0.2, 3, 50), RNG.uniform(0.5, 2, 50)))


# -- numerical stability -----------------------------------------------------------------------------------
def test_sigmoid_of_plus_minus_1000():
    m = gradc.compile_expr(sig(x))
    value, (dx,) = m.value_and_grad(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(value, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(dx, [0.0, 0.25, 0.0])
    assert "sigmoid gate" in m.source


def test_softplus_of_plus_minus_1000():
    m = gradc.compile_expr(sp.log(1 + sp.exp(x)))
    value, (dx,) = m.value_and_grad(np.array([-1000.0, 0.0, 1000.0]))
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(dx))
    np.testing.assert_allclose(value, [0.0, np.log(2.0), 1000.0], rtol=1e-15)
    np.testing.assert_allclose(dx, [0.0, 0.5, 1.0], rtol=1e-15)


def test_softplus_is_accurate_across_its_range_and_shares_its_gradients_exp():
    """softplus(u) within a few ulp of NumPy's logaddexp(0, u) from u = -700 to 700 (exp(-|u|) is
    min(e, 1/e) of e = exp(-u)), and with its gradient σ(u) one exp per point is left after LLVM."""
    m = gradc.compile_expr(sp.log(1 + sp.exp(x)))
    us = np.concatenate([np.linspace(-700, 700, 20001), np.linspace(-1e-6, 1e-6, 101)])
    value, (dx,) = m.value_and_grad(us)
    np.testing.assert_allclose(value, np.logaddexp(0.0, us), rtol=4e-16 * 4)
    np.testing.assert_allclose(dx, 1.0 / (1.0 + np.exp(-us)), rtol=4e-16 * 4)
    namespace = {"np": np}   # the op's printed form and σ's, side by side in one function
    exec(f"def body(u):\n    return {FORMS['softplus'].emit.format('u')}, 1.0 / (1.0 + np.exp(-u))", namespace)
    kernel = nb.njit(namespace["body"])
    kernel(0.5)
    assert "\n".join(kernel.inspect_llvm().values()).count("call double @llvm.exp.f64(") == 1


def test_logsumexp_of_large_arguments():
    m = gradc.compile_expr(sp.log(sp.exp(1000 * x) + sp.exp(1000 * y)))
    xs = np.array([1.0, -1.0, 0.5, 2.0])
    ys = np.array([0.999, -1.0, 0.5005, -3.0])
    value, (dx, dy) = m.value_and_grad(xs, ys)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(dx)) and np.all(np.isfinite(dy))
    np.testing.assert_allclose(value, np.logaddexp(1000 * xs, 1000 * ys), rtol=1e-14)
    weight_x = 1 / (1 + np.exp(1000 * (ys - xs)))
    np.testing.assert_allclose(dx, 1000 * weight_x, rtol=1e-12)
    np.testing.assert_allclose(dy, 1000 * (1 - weight_x), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("expr", [x / (1 + sp.exp(-y)), x * y * sig(y), sp.exp(y) / (1 + sp.exp(y)) * x,
                                  x * sp.exp(y) / (1 + sp.exp(y)) ** 2, x / (1 + sp.exp(-y)) ** 2],
                         ids=["x/(1+exp(-y))", "x*y*sig(y)", "exp(y)/(1+exp(y))", "sig'(y)", "x*sig(y)**2"])
def test_sigmoid_factors_of_products_are_gates(expr):
    """A sigmoid inside a product (x·σ(y), SiLU) is recognised too: finite at y = ±1000."""
    m = gradc.compile_expr(expr, args=[x, y])
    ys = np.array([-1000.0, -1.0, 0.5, 1000.0])
    value, grads = m.value_and_grad(np.full(4, 1.5), ys)
    assert np.all(np.isfinite(value)) and all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(value[1:3], oracle_value(expr, (x, y), 1.5, ys[1:3]), rtol=1e-13)
    for g, s in zip(grads, (x, y)):
        np.testing.assert_allclose(g[1:3], _lambdify(sp.diff(expr, s), (x, y))(1.5, ys[1:3]), rtol=1e-12)
    for s, g in zip((x, y), grads):   # at ±1000 against arbitrary precision (where exp does not overflow)
        exact = sp.lambdify((x, y), sp.diff(expr, s), "mpmath")
        np.testing.assert_allclose(g[[0, 3]], [float(exact(1.5, v)) for v in ys[[0, 3]]], rtol=1e-12, atol=1e-12)
    assert "sigmoid gate" in m.source


def test_binary_cross_entropy_of_a_sigmoid_is_stable():
    """y·log σ(z) + (1-y)·log(1-σ(z)) becomes -softplus: finite and exact where σ rounds to 0 or 1."""
    m = gradc.compile_expr(y * sp.log(sig(x)) + (1 - y) * sp.log(1 - sig(x)), args=[x, y])
    zs = np.array([-1000.0, -2.0, 0.0, 3.0, 1000.0])
    value, (dz, dy) = m.value_and_grad(zs, 0.25)
    want = -(0.25 * np.logaddexp(0, -zs) + 0.75 * np.logaddexp(0, zs))
    np.testing.assert_allclose(value, want, rtol=1e-14)
    np.testing.assert_allclose(dz, 0.25 - 0.5 * (1 + np.tanh(zs / 2)), rtol=1e-14, atol=1e-300)
    assert dy == pytest.approx(np.sum(np.logaddexp(0, zs) - np.logaddexp(0, -zs)), rel=1e-14)


def test_log1p_of_tiny_arguments():
    m = gradc.compile_expr(sp.log(1 + x))
    value, (dx,) = m.value_and_grad(np.array([1e-18, -1e-12]))
    np.testing.assert_allclose(value, np.log1p([1e-18, -1e-12]), rtol=1e-15)
    np.testing.assert_allclose(dx, 1 / (1 + np.array([1e-18, -1e-12])), rtol=1e-15)


# -- the generated source ------------------------------------------------------------------------------
SEED_STAGED = (x + sig(y)) / (sig(x) + (x + y) ** 2)
SEED_NEURON = sig(sp.Symbol("w0") * sp.Symbol("x0") + sp.Symbol("w1") * sp.Symbol("x1") + sp.Symbol("w2"))
SEED_CIRCUIT = (x + y) * z


@pytest.mark.parametrize("expr", [SEED_STAGED, SEED_NEURON, SEED_CIRCUIT], ids=["staged", "neuron", "circuit"])
def test_gradient_graph_is_shared_with_the_forward_graph(expr):
    counts = gradc.compile_expr(expr).op_counts
    assert counts["backward"] <= 3 * counts["forward"], counts


def _kernel_body(source: str, kernel: str = "_value_and_grad_kernel") -> list[str]:
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == kernel)
    lines = source.splitlines()[fn.lineno - 1: fn.end_lineno]
    return [ln.strip() for ln in lines if ln.startswith(" " * 12)]


def test_staged_source_shape():
    m = gradc.compile_expr(SEED_STAGED)
    body = _kernel_body(m.source)
    statements = [ln for ln in body if not ln.startswith("#")]
    adjoints = [ln for ln in statements if ln.startswith("d_")]
    assert adjoints, body
    assert re.search(r"^d_x \+= ", "\n".join(statements), re.M), "x fans out: its adjoint accumulates with +="
    for ln in statements:   # every computed value says where it comes from, in one comment
        if re.match(r"\w+ (=|\+=|-=) ", ln) and "_load(" not in ln:
            assert ln.count("  # ") == 1, ln
    names = {ln.split(" ")[0] for ln in statements}
    assert {"sig_x", "sig_y", "d_x", "d_y"} <= names
    assert "sigmoid gate" in m.source


def test_every_backward_statement_has_a_provenance_comment():
    m = gradc.compile_expr(sp.Max(x, y) * sp.Abs(x) + sp.atan2(y, x) + sp.Piecewise((x**2, x < y), (y, True)))
    for ln in _kernel_body(m.source):
        if re.match(r"\w+ (=|\+=|-=) ", ln) and "_load(" not in ln:
            assert "  # " in ln, ln


def test_source_header_names_version_input_hash_and_regeneration():
    m = gradc.compile_expr(SEED_STAGED)
    head = m.source.splitlines()[:5]
    assert gradc.__version__ in head[0] and "sha256" in head[1] and "Regenerate" in head[2]


def test_same_input_same_source_and_changed_input_changed_source():
    a, b = gradc.compile_expr(SEED_STAGED), gradc.compile_expr(SEED_STAGED)
    assert a.source == b.source
    assert gradc.compile_expr(SEED_STAGED, dtype="float32").source != a.source


# -- the on-disk cache: a second process loads the kernels instead of compiling them ----------------------
_CACHED_RUN = textwrap.dedent("""
    import numpy as np, sympy as sp, gradc
    x, y = sp.symbols("x y", real=True)
    m = gradc.compile_expr(sp.tanh(x) * sp.exp(-y * y) + x * y / 7)
    v, (dx, dy) = m.value_and_grad(np.linspace(-1, 1, 5000), 0.25)   # more than a chunk: the parallel kernel
    k = m.module._value_and_grad_kernel
    print(sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()), repr(float(v.sum() + dx.sum() + dy)))
""")


def test_second_process_loads_kernels_from_the_numba_cache(tmp_path):
    env = {**os.environ, "GRADC_CACHE_DIR": str(tmp_path)}

    def run():
        done = subprocess.run([sys.executable, "-c", _CACHED_RUN], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        hits, misses, total = done.stdout.split()
        return int(hits), int(misses), total

    def index_files():
        return {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.nb*")}

    hits, misses, first = run()
    assert hits == 0 and misses >= 1
    after_first = index_files()
    assert any(p.suffix == ".nbi" for p in after_first) and any(p.suffix == ".nbc" for p in after_first)
    hits, misses, second = run()
    assert hits >= 1 and misses == 0
    assert index_files() == after_first, "the second process compiled again (new or rewritten cache files)"
    assert first == second


def test_float32_shared_parameter_sums_a_large_batch_accurately():
    """The gradient of a shared scalar is a sum over every point: accumulated in float64 and rounded
    to float32 once, it is as accurate as float32 allows even at a million points."""
    w = sp.Symbol("w", real=True)
    m = gradc.compile_expr(w * x + w**2 * sp.sin(x), args=[w, x], wrt=[w], dtype="float32")
    # a constant input makes float32 rounding systematic (no luck of cancelling errors)
    xs = np.full(1_000_000, 1 / 3, dtype=np.float32)
    (dw,) = m.grad(np.float32(0.5), xs)
    xs64 = xs.astype(np.float64)
    want = np.sum(xs64 + 2 * 0.5 * np.sin(xs64))
    assert isinstance(dw, np.float32)
    assert abs(float(dw) - want) <= 2 * np.spacing(np.float32(want)), (float(dw), want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_outputs_are_right(dtype):
    """Outputs of 4 MB and more (from the heap that runtime_heap keeps): same values, dtype and shape
    as the small ones."""
    m = gradc.compile_expr(sp.sin(x) * y, args=[x, y], dtype=dtype)
    for n in (1000, 2**20):   # below and above 4 MB for both dtypes
        xs, ys = np.linspace(-3, 3, n, dtype=dtype), np.linspace(1, 2, n, dtype=dtype)[::-1].copy()
        value, (dx, dy) = m.value_and_grad(xs.reshape(-1, 8), ys.reshape(-1, 8))
        for got, want in ((value, np.sin(xs) * ys), (dx, np.cos(xs) * ys), (dy, np.sin(xs))):
            assert got.dtype == dtype and got.shape == (n // 8, 8)
            np.testing.assert_allclose(got.reshape(n), want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


def test_kernel_loads_and_stores_consecutive_points_as_vectors():
    """The loop over a chunk's points reads and writes whole vectors of consecutive points: no gathers
    or scatters (which a signed index's wraparound check caused: 5.6 vs 4.2 ms on rosenbrock8)."""
    m = gradc.compile_expr((1 - x) ** 2 + 100 * (y - x**2) ** 2, args=[x, y])
    for n in (64, 5000):   # a chunk runs on the serial twin, more on the parallel kernel: both vectorise
        m.value_and_grad(np.linspace(-1, 1, n), np.linspace(0, 1, n))
    for kernel in (m.module._value_and_grad_kernel, m.module._serial_twin(m.module._value_and_grad_kernel)):
        asm = "\n".join(kernel.inspect_asm().values())
        assert "vgather" not in asm and "vscatter" not in asm
        assert re.search(r"vmovup[ds]\s[^\n]*%[yz]mm", asm), "no packed loads or stores of 4 or 8 points"

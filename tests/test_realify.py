"""Expressions written with I, re, im, conjugate or arg (frontend/realify.py): gradc compiles the real form of
a real one (values against NumPy, gradients against sympy.diff of the real form written out by hand), refuses a
complex one in one line, hints to declare real=True where SymPy wrote re/im of a plain symbol, and passes every
other expression through untouched."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp
from sympy import I

import gradc
from gradc.errors import GradcWarning
from gradc.frontend.realify import real_forms

x, y = sp.symbols("x y")                  # plain symbols, as most people write them
X, Y = sp.symbols("x y", real=True)       # the oracle's: its real forms differentiate as real functions
RNG = np.random.default_rng(20240611)
C = sp.atan2(2, 1 + sp.tan(sp.tanh(2)) ** 2)   # SymPy spells this real constant -I*log(...)

# (expression over plain x, y; its real form over real X, Y, written out independently of gradc)
SILENT = [
    ((sp.exp(I * x) + sp.exp(-I * x)) / 2, sp.cos(X)),
    ((sp.exp(I * x) - sp.exp(-I * x)) / (2 * I), sp.sin(X)),
    (sp.exp(I * x) * sp.exp(I * y) + sp.exp(-I * (x + y)), 2 * sp.cos(X + Y)),
    (sp.Abs(x + I * y), sp.sqrt(X**2 + Y**2)),
    ((x + I * y) * (x - I * y), X**2 + Y**2),
    ((x + I * y) ** 2 + (x - I * y) ** 2, 2 * X**2 - 2 * Y**2),
    (C * x + C, sp.N(C, 40) * (X + 1)),
    (sp.sin(x) * y, sp.sin(X) * Y),
]
HINTED = [   # SymPy writes re/im/conjugate/arg of the plain symbols here
    (sp.re(sp.exp(I * x) * y), Y * sp.cos(X)),
    (sp.Abs(sp.exp(I * x)) * y, Y),
    (sp.conjugate(x) * x, X**2),
    (sp.im(x + I * y), Y),
    (sp.re(x) + sp.im(x), X),
    (sp.Abs(x), sp.Abs(X)),
    (sp.real_root(x, 3), sp.Piecewise((X ** sp.Rational(1, 3), X > 0), (-((-X) ** sp.Rational(1, 3)), True))),
    (sp.arg(x + I * y), sp.atan2(Y, X)),
    (sp.re(sp.Piecewise((sp.exp(I * x), y > 0), (y, True))), sp.Piecewise((sp.cos(X), Y > 0), (Y, True))),
]


def test_real_expressions_written_with_i_compile_to_their_real_forms():
    """One module for all (each compile costs seconds): each output's value and gradient (one-hot cotangents)
    at 50 random points against its real form; one hint for the whole call, naming the plain symbols."""
    exprs, forms = zip(*(SILENT + HINTED))
    with pytest.warns(GradcWarning) as record:
        module = gradc.compile_expr(list(exprs), args=[x, y])
    assert [str(w.message) for w in record] == [
        "gradc treats x, y as real; declare symbols('x y', real=True) so SymPy does not write im(x)"]
    xs, ys = RNG.uniform(-3, 3, size=(2, 50))
    for k, form in enumerate(forms):
        one_hot = [1.0 if j == k else 0.0 for j in range(len(forms))]
        values, grads = module.value_and_grad(xs, ys, cotangents=one_hot)
        with np.errstate(invalid="ignore"):   # NumPy evaluates both branches of the cube root's Piecewise
            np.testing.assert_allclose(values[k], oracle(form, xs, ys), rtol=1e-13, atol=1e-14, err_msg=str(form))
            for grad, s in zip(grads, (X, Y)):
                np.testing.assert_allclose(grad, oracle(sp.diff(form, s), xs, ys), rtol=1e-12, atol=1e-13,
                                           err_msg=f"d({form})/d{s}")


def oracle(form: sp.Expr, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.broadcast_to(sp.lambdify((X, Y), form, "numpy")(xs, ys), xs.shape)


def test_no_hint_where_sympy_wrote_no_re_im_of_a_plain_symbol():
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradcWarning)
        forms = real_forms([e for e, _ in SILENT], [x, y])
    assert not any(f.has(I, sp.re, sp.im) for f in forms)


def test_the_hint_is_one_line_naming_what_sympy_wrote():
    with pytest.warns(GradcWarning) as record:
        assert real_forms([sp.real_root(x, 3) * y], [x, y]) == [sp.Abs(x) ** sp.Rational(1, 3) * sp.sign(x) * y]
    assert [str(w.message) for w in record] == [
        "gradc treats x as real; declare Symbol('x', real=True) so SymPy does not write im(x)"]


def test_real_forms_are_over_the_users_symbols():
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradcWarning)
        forms = real_forms([(sp.exp(I * x) + sp.exp(-I * x)) / 2, (x + I * Y) * (x - I * Y)], [x, Y])
    assert forms == [sp.cos(x), x**2 + Y**2] and set().union(*(f.free_symbols for f in forms)) == {x, Y}


def test_functions_of_parts_made_real_keep_gradcs_real_semantics():
    """sqrt(re(x)) is sqrt(x) (nan below 0, as gradc computes sqrt), not SymPy's complex root of a real x."""
    with pytest.warns(GradcWarning):
        assert real_forms([sp.sqrt(sp.re(x)) + sp.log(sp.re(sp.exp(I * y)))], [x, y]) == \
            [sp.sqrt(x) + sp.log(sp.cos(y))]


def test_unevaluated_integrals_are_left_to_the_lowerings_message():
    with pytest.raises(gradc.UnsupportedError, match=r"unevaluated Integral: call \.doit\(\)"):
        gradc.compile_expr(sp.Integral(sp.exp(I * x), (x, 0, y)), args=[y])


@pytest.mark.parametrize(("expr", "imaginary"), [
    (x + I * y, "y"), (sp.exp(I * x), "sin(x)"), (x + sp.log(-2), "pi"), (I * sp.sqrt(x), "sqrt(x)"),
    (sp.log(x + I * y), "arg(x + I*y)"), (y * sp.sign(x + I * y), ""),
], ids=["x+I*y", "exp(I*x)", "x+log(-2)", "I*sqrt(x)", "log(x+I*y)", "y*sign(x+I*y)"])
def test_complex_expressions_are_refused_in_one_line(expr, imaginary):
    with pytest.raises(gradc.UnsupportedError) as info:
        gradc.compile_expr(expr, args=[x, y])
    message = str(info.value)
    assert "\n" not in message and message.startswith("gradc compiles real expressions; ")
    assert f"is complex (imaginary part {imaginary}" in message, message


def test_the_refusal_names_the_exact_imaginary_part_and_cuts_long_expressions():
    with pytest.raises(gradc.UnsupportedError) as info:
        real_forms([x + I * y], [x, y])
    assert str(info.value) == "gradc compiles real expressions; x + I*y is complex (imaginary part y)"
    with pytest.raises(gradc.UnsupportedError, match="is complex") as info:
        real_forms([sum(sp.sin(k * x) for k in range(1, 40)) + I * y], [x, y])
    assert "…" in str(info.value) and len(str(info.value)) < 160


def test_a_part_sympy_cannot_split_is_refused_in_one_line():
    with pytest.raises(gradc.UnsupportedError, match=r"no real form of re\(gamma\(x \+ I\*y\)\)"):
        real_forms([sp.re(sp.gamma(X + I * Y))], [X, Y])


def test_an_ordinary_expression_is_the_same_object_without_a_hint():
    exprs = [sp.sin(x) * y + sp.Abs(x), sp.real_root(X, 3), sp.Integer(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradcWarning)
        out = real_forms(exprs, [x, y])
    assert all(a is b for a, b in zip(out, exprs))


def test_large_and_shared_expressions_pass_in_linear_time():
    """Not timed: a walk of the expression tree instead of its distinct nodes would not finish on `shared`
    (2**80 paths), nor would simplify on the 2,000 terms; where I appears, the parts without it stay as they are."""
    terms = sp.Add(*(k * x**k * sp.cos(y) + sp.sin(x) ** k / k for k in range(1, 2001)))   # 18,000 operations
    shared = x
    for _ in range(80):
        shared = sp.sin(shared) + shared * y
    assert real_forms([terms, shared], [x, y])[0] is terms
    assert real_forms([shared], [x, y])[0] is shared
    with pytest.warns(GradcWarning):
        (real,) = real_forms([terms + sp.real_root(x, 3) + shared * (sp.exp(I * x) + sp.exp(-I * x)) / 2], [x, y])
    assert set(real.args) == {*terms.args, sp.Abs(x) ** sp.Rational(1, 3) * sp.sign(x), shared * sp.cos(x)}

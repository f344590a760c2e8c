"""The special functions (gamma, loggamma, factorial, binomial, digamma, polygamma, beta, LambertW, erfinv,
erfcinv) against scipy.special on dense grids of their domains, values and derivatives, through one
compiled module (its value_and_grad, one output's derivative at a time by one-hot cotangents); where
scipy.special itself loses digits (loggamma near its zeros 1 and 2, LambertW near -1/e), against mpmath.
The written module imports neither scipy nor gradc (tests/test_standalone.py checks every module)."""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from scipy import special

import gradc
from gradc.errors import UnsupportedError
from gradc.frontend.functions import TEXT_CONSTANTS, text_functions
from gradc.frontend.parse import parse_expr

x, a, b, n, k, w, u, v = sp.symbols("x a b n k w u v", real=True)
ARGS = [x, a, b, n, k, w, u, v]
N = 12000
RNG = np.random.default_rng(17)
INV_E = math.exp(-1.0)


def _grid(*parts: np.ndarray) -> np.ndarray:
    """N points: the parts, then uniform fill from the first part's range (each grid has N points)."""
    points = np.concatenate(parts)
    assert len(points) <= N
    return np.concatenate([points, RNG.uniform(points.min(), points.max(), N - len(points))])


GRIDS = {
    "x": _grid(np.geomspace(1e-3, 160.0, 6000), np.linspace(0.5, 3.0, 5000)),        # gamma family, x > 0
    "a": _grid(np.geomspace(0.05, 30.0, 6000)),                                       # beta(a, b)
    "b": RNG.uniform(0.05, 30.0, N),
    "n": _grid(np.linspace(0.0, 60.0, 6000)),                                          # binomial(n, k), 0 <= k <= n
    "w": _grid(-INV_E + np.geomspace(1e-4, 0.3, 2000), np.linspace(-0.36, 3.0, 4000),
               np.geomspace(1e-300, 1e300, 4000), -np.geomspace(1e-300, 0.3, 1000)),  # LambertW, x >= -1/e
    "u": _grid(np.linspace(-1.0, 1.0, 6001)[1:-1], 1 - np.geomspace(1e-16, 0.5, 2000),
               -(1 - np.geomspace(1e-16, 0.5, 2000)), np.geomspace(1e-300, 0.5, 1000)),  # erfinv, |u| < 1
    "v": _grid(np.linspace(0.0, 2.0, 6001)[1:-1], np.geomspace(1e-300, 0.5, 3000),
               2 - np.geomspace(1e-16, 0.5, 2000)),                                    # erfcinv, 0 < v < 2
}
GRIDS["k"] = GRIDS["n"] * RNG.uniform(0.0, 1.0, N)
FUNCTIONS = {   # name: (expression, its input)
    "gamma": (sp.gamma(x), "x"), "loggamma": (sp.loggamma(x), "x"), "factorial": (sp.factorial(x), "x"),
    "digamma": (sp.digamma(x), "x"), "trigamma": (sp.polygamma(1, x), "x"), "polygamma3": (sp.polygamma(3, x), "x"),
    "beta": (sp.beta(a, b), "a"), "binomial": (sp.binomial(n, k), "n"), "LambertW": (sp.LambertW(w), "w"),
    "erfinv": (sp.erfinv(u), "u"), "erfcinv": (sp.erfcinv(v), "v"),
}
NAMES = list(FUNCTIONS)


def _lambertw_derivative(z):
    W = special.lambertw(z).real
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(z == 0.0, 1.0, W / (z * (1.0 + W)))


_HALF_SQRT_PI = math.sqrt(math.pi) / 2
G = GRIDS
#: scipy's value and derivative (w.r.t. the function's input) of each function on the grids
REFERENCE = {
    "gamma": (special.gamma(G["x"]), special.gamma(G["x"]) * special.digamma(G["x"])),
    "loggamma": (special.gammaln(G["x"]), special.digamma(G["x"])),
    "factorial": (special.gamma(G["x"] + 1), special.gamma(G["x"] + 1) * special.digamma(G["x"] + 1)),
    "digamma": (special.digamma(G["x"]), special.polygamma(1, G["x"])),
    "trigamma": (special.polygamma(1, G["x"]), special.polygamma(2, G["x"])),
    "polygamma3": (special.polygamma(3, G["x"]), special.polygamma(4, G["x"])),
    "beta": (special.beta(G["a"], G["b"]),
             special.beta(G["a"], G["b"]) * (special.digamma(G["a"]) - special.digamma(G["a"] + G["b"]))),
    "binomial": (special.binom(G["n"], G["k"]),
                 special.binom(G["n"], G["k"]) * (special.digamma(G["n"] + 1) - special.digamma(G["n"] - G["k"] + 1))),
    "LambertW": (special.lambertw(G["w"]).real, _lambertw_derivative(G["w"])),
    "erfinv": (special.erfinv(G["u"]), _HALF_SQRT_PI * np.exp(special.erfinv(G["u"]) ** 2)),
    "erfcinv": (special.erfcinv(G["v"]), -_HALF_SQRT_PI * np.exp(special.erfcinv(G["v"]) ** 2)),
}
#: where scipy.special itself is off by more than 1e-13 (checked against mpmath below instead)
SCIPY_LOSES = {
    "loggamma": (np.abs(G["x"] - 1) < 0.1) | (np.abs(G["x"] - 2) < 0.1),
    "LambertW": G["w"] + INV_E < 1e-3,
}
#: the size the rounding of each derivative is relative to: the derivative itself, except where its formula
#: cancels (beta, binomial: a difference of digammas, in scipy's reference too) or amplifies the rounding of
#: the value t (erfinv, erfcinv: exp(t²) moves 2t² ulps per ulp of t; t is 26.2 at erfcinv(1e-300))
DERIVATIVE_SCALE = {
    "beta": np.abs(special.beta(G["a"], G["b"])) * (np.abs(special.digamma(G["a"]))
                                                    + np.abs(special.digamma(G["a"] + G["b"]))),
    "binomial": np.abs(special.binom(G["n"], G["k"])) * (np.abs(special.digamma(G["n"] + 1))
                                                         + np.abs(special.digamma(G["n"] - G["k"] + 1))),
    "erfinv": np.abs(REFERENCE["erfinv"][1]) * (1 + 2 * REFERENCE["erfinv"][0] ** 2),
    "erfcinv": np.abs(REFERENCE["erfcinv"][1]) * (1 + 2 * REFERENCE["erfcinv"][0] ** 2),
}
#: relative tolerances (value, derivative): 1e-13, but W' = 1/((1+W) e^W) loses |W| ulps in e^W
#: (W up to 690 at x = 1e300)
RTOL = {"LambertW": (1e-13, 2e-13)}


@functools.cache
def module():
    return gradc.compile_expr([FUNCTIONS[name][0] for name in NAMES], ARGS)


@functools.cache
def value_and_derivative(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The module's value of `name` and its derivative w.r.t. the function's input, on the grids."""
    j = NAMES.index(name)
    cotangents = [1.0 if i == j else 0.0 for i in range(len(NAMES))]
    values, grads = module().value_and_grad(*(GRIDS[s.name] for s in ARGS), cotangents=cotangents)
    return values[j], grads[[s.name for s in ARGS].index(FUNCTIONS[name][1])]


def relative_error(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        err = np.abs(got - want) / np.abs(want)
    return np.where(got == want, 0.0, err)


@pytest.mark.parametrize("name", NAMES)
def test_value_and_derivative_match_scipy(name):
    value, derivative = value_and_derivative(name)
    want_value, want_derivative = REFERENCE[name]
    keep = np.isfinite(want_value) & np.isfinite(want_derivative) & ~SCIPY_LOSES.get(name, np.zeros(N, dtype=bool))
    assert keep.sum() > 0.9 * N
    rtol_value, rtol_derivative = RTOL.get(name, (1e-13, 1e-13))
    scales = (np.abs(want_value), DERIVATIVE_SCALE.get(name, np.abs(want_derivative)))
    for what, got, want, scale, rtol in (("value", value, want_value, scales[0], rtol_value),
                                         ("derivative", derivative, want_derivative, scales[1], rtol_derivative)):
        with np.errstate(invalid="ignore"):
            err = np.where(got == want, 0.0, np.abs(got - want) / scale)[keep]
        worst = int(np.argmax(err))
        assert err[worst] <= rtol, (f"{name} {what}: relative error {err[worst]:.2e} at "
                                    f"{FUNCTIONS[name][1]} = {GRIDS[FUNCTIONS[name][1]][keep][worst]!r}")


def _forward_one(name: str, points: np.ndarray) -> np.ndarray:
    """The module's `name` at `points` (the other inputs held at 0.5: arrays, so that the kernel compiled for
    the grids runs, with no compile of its own)."""
    inputs = {s.name: np.full(len(points), 0.5) for s in ARGS}
    inputs[FUNCTIONS[name][1]] = points
    with np.errstate(all="ignore"):
        return module().value_and_grad(*(inputs[s.name] for s in ARGS))[0][NAMES.index(name)]


def test_loggamma_near_its_zeros_and_lambertw_near_the_branch_point_match_mpmath():
    """Where scipy.special loses digits (gammaln near 1 and 2: 1e-11; lambertw within 1e-4 of -1/e: 1e-10),
    the module keeps them: against mpmath at 50 digits."""
    mpmath.mp.dps = 50
    near = np.concatenate([1 + np.linspace(-0.1, 0.1, 101), 2 + np.linspace(-0.1, 0.1, 101),
                           1 + np.geomspace(1e-12, 1e-3, 20), 2 - np.geomspace(1e-12, 1e-3, 20)])
    near = near[(near != 1) & (near != 2)]
    want = np.array([float(mpmath.loggamma(p)) for p in near])
    assert relative_error(_forward_one("loggamma", near), want).max() <= 1e-14
    branch = -INV_E + np.geomspace(1e-15, 1e-3, 200)
    want = np.array([float(mpmath.lambertw(mpmath.mpf(p)).real) for p in branch])
    assert relative_error(_forward_one("LambertW", branch), want).max() <= 1e-13


def test_edges_as_scipy():
    """Ends and outside of each domain as scipy.special: poles, ±inf, nan."""
    gam = np.array([0.0, -1.0, np.inf, np.nan])
    np.testing.assert_array_equal(_forward_one("digamma", gam), special.digamma(gam))
    np.testing.assert_array_equal(_forward_one("trigamma", gam), special.polygamma(1, gam))
    np.testing.assert_array_equal(_forward_one("polygamma3", gam), special.polygamma(3, gam))
    edges = np.array([-1.0, 1.0, 1.5, -1.5, 0.0, np.nan])
    np.testing.assert_array_equal(_forward_one("erfinv", edges), special.erfinv(edges))
    edges = np.array([0.0, 2.0, -0.5, 2.5, 1.0, np.nan])
    np.testing.assert_array_equal(_forward_one("erfcinv", edges), special.erfcinv(edges))
    edges = np.array([0.0, np.inf, np.nan])
    np.testing.assert_array_equal(_forward_one("LambertW", edges), special.lambertw(edges).real)
    # below -1/e W is complex (scipy's real part is no value of a real function): nan
    assert np.isnan(_forward_one("LambertW", np.array([-0.5, -INV_E - 1e-3]))).all()
    # W'(0) = 1 (the formula W/(x(1+W)) is 0/0 there)
    _, grads = module().value_and_grad(*(np.zeros(1) if s.name == "w" else np.full(1, 0.5) for s in ARGS),
                                       cotangents=[1.0 if name == "LambertW" else 0.0 for name in NAMES])
    assert grads[ARGS.index(w)][0] == 1.0


def test_the_module_carries_the_special_functions_it_calls_and_not_scipy():
    source = module().source
    for helper in ("_loggamma", "_digamma", "_polygamma", "_lambertw", "_erfinv", "_erfcinv", "math.gamma("):
        assert helper in source
    assert not any(f"{verb} {name}" in source for verb in ("import", "from") for name in ("scipy", "gradc"))
    small = gradc.compile_expr(sp.erfinv(x), [x]).source
    assert "def _erfinv" in small and "def _lambertw" not in small and "def _hurwitz_zeta" not in small


@pytest.mark.parametrize("expr, name", [
    (sp.besselj(0, x), "besselj"), (sp.zeta(x), "zeta"), (sp.hyper([1], [2], x), "hyper"),
    (sp.polygamma(x, 2.5 + x), "polygamma"), (sp.polygamma(sp.Rational(1, 2), x), "polygamma"),
    (sp.LambertW(x, -1), "LambertW"), (sp.uppergamma(x, 2), "uppergamma"), (sp.Ei(x), "Ei"),
])
def test_other_special_functions_are_unsupported_naming_the_function(expr, name):
    with pytest.raises(UnsupportedError, match=name) as error:
        gradc.compile_expr(expr, [x])
    assert "\n" not in str(error.value)


def test_expression_strings_accept_the_special_functions():
    text = "gamma(x) + loggamma(x) + factorial(x) + digamma(x) + trigamma(x) + polygamma(2, x) + beta(x, 2)" \
           " + binomial(x, 1) + LambertW(x) + erfinv(x / 4) + erfcinv(x / 4)"
    expr = parse_expr(text, text_functions(), TEXT_CONSTANTS)
    assert expr.has(sp.gamma, sp.loggamma, sp.factorial, sp.polygamma, sp.beta, sp.binomial, sp.LambertW,
                    sp.erfinv, sp.erfcinv)

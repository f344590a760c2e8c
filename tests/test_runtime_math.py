"""The vectorisable exp, tanh and log1p of gradc/runtime/vector_math.py against NumPy's: ulps over their whole
ranges, the special values, and that a loop calling them is vectorised (the reason they exist)."""

from __future__ import annotations

import re

import numba as nb
import numpy as np
import pytest

from gradc.core import ir
from gradc.core.graph import Graph
from gradc.runtime.vector_math import _exp, _log1p, _tanh


@nb.njit(error_model="numpy")
def _map_exp(z, out):
    for k in range(z.shape[0]):
        out[k] = _exp(z[k])


@nb.njit(error_model="numpy")
def _map_tanh(z, out):
    for k in range(z.shape[0]):
        out[k] = _tanh(z[k])


@nb.njit(error_model="numpy")
def _map_log1p(z, out):
    for k in range(z.shape[0]):
        out[k] = _log1p(z[k])


def _ulps(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| in units of want's last place (equal values and NaN pairs count 0)."""
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    got, want = np.where(same, 0.0, got), np.where(same, 0.0, want)   # no inf - inf below
    spacing = np.spacing(np.abs(want))
    return float(np.max(np.where(same, 0.0, np.abs(got - want) / np.maximum(spacing, 5e-324)), initial=0.0))


def _apply(kernel, z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    kernel(z, out)
    return out


@pytest.mark.parametrize("lo, hi", [(-1e-8, 1e-8), (-1, 1), (-30, 30), (-745.5, 709.78), (-760, -700)])
def test_exp_is_within_one_ulp_of_numpy(lo, hi):
    z = np.random.default_rng(0).uniform(lo, hi, 200_000)   # the last range gives subnormals and zeros
    with np.errstate(under="ignore"):
        assert _ulps(_apply(_map_exp, z), np.exp(z)) <= 1.0


@pytest.mark.parametrize("lo, hi", [(-1e-300, 1e-300), (-1e-6, 1e-6), (-0.7, 0.7), (-3, 3), (-30, 30), (15, 23)])
def test_tanh_is_within_three_ulp_of_numpy(lo, hi):
    z = np.random.default_rng(1).uniform(lo, hi, 200_000)
    assert _ulps(_apply(_map_tanh, z), np.tanh(z)) <= 3.0


@pytest.mark.parametrize("lo, hi", [(-1e-300, 1e-300), (-1e-8, 1e-8), (-0.3, 0.42), (-1, -0.2), (-1, -1 + 1e-10),
                                    (0.4, 3), (1, 1e3)])
def test_log1p_is_within_one_ulp_of_numpy(lo, hi):
    z = np.random.default_rng(2).uniform(lo, hi, 200_000)   # k = 0 (f = x), k < 0 and k > 0 all taken
    assert _ulps(_apply(_map_log1p, z), np.log1p(z)) <= 1.0


def test_log1p_is_within_one_ulp_of_numpy_across_all_magnitudes():
    z = 10.0 ** np.random.default_rng(3).uniform(-320, 308, 200_000)
    assert _ulps(_apply(_map_log1p, z), np.log1p(z)) <= 1.0


def test_log1p_special_values_are_numpys():
    z = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, -1.5, -1 + 2**-53, 2**-60, -(2**-60), 1e308,
                  1.7976931348623157e308, 5e-324, -5e-324, 2.0**53, 2.0**60, np.sqrt(2) - 1, 1 / np.sqrt(2) - 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        got, want = _apply(_map_log1p, z), np.log1p(z)
    assert _ulps(got, want) == 0.0, (got, want)
    number = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[number]), np.signbit(want[number]))


def test_special_values_are_numpys():
    z = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 709.78, 709.79, 710.0, -745.2, -800.0, 1e-320, -1e-320,
                  0.3466, 0.625, 19.1, 22.5, -22.5])
    with np.errstate(over="ignore", under="ignore"):
        for kernel, reference in ((_map_exp, np.exp), (_map_tanh, np.tanh)):
            got, want = _apply(kernel, z), reference(z)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
            assert _ulps(got, want) <= 5.0, (kernel, got, want)


@nb.njit(error_model="numpy")
def _map_libm_tanh(z, out):
    for k in range(z.shape[0]):
        out[k] = np.tanh(z[k])


def _assembly(kernel) -> str:
    _apply(kernel, np.linspace(-3, 3, 64))
    return "\n".join(kernel.inspect_asm().values())


def test_a_loop_over_them_calls_no_libm_and_is_vectorised():
    libm = _assembly(_map_libm_tanh)
    assert "$tanh" in libm   # the check below can see a libm call (its address is loaded by name)
    for kernel, name in ((_map_tanh, "$tanh"), (_map_exp, "$exp"), (_map_log1p, "$log1p")):
        asm = _assembly(kernel)
        assert name not in asm
        assert "pd\t%ymm" in asm or "pd\t%zmm" in asm, "no packed double arithmetic on 4 or 8 lanes"


def _kernel_text(source: str) -> str:
    return source.split("def _value_and_grad_kernel", 1)[1].split("\ndef ", 1)[0]


def test_loops_that_can_vectorise_get_the_vector_forms_and_others_keep_numpys():
    import sympy as sp

    import gradc
    x, y = sp.symbols("x y", real=True)
    sig = 1 / (1 + sp.exp(-y))
    vector = _kernel_text(gradc.compile_expr(x * sig + sp.tanh(x) ** 2 + sp.sqrt(1 + x**2) + sp.log(1 + x**2)).source)
    assert "_exp(" in vector and "_tanh(" in vector and "np.exp(" not in vector and "np.tanh(" not in vector
    assert "_log1p(" in vector and "np.log1p(" not in vector
    # sin, log, pow, tan... are LLVM intrinsics: the loop vectorises around them (called lane by lane)
    lanes_expr = x * sig + sp.tanh(x) * sp.sin(y) * sp.log(x) + y ** sp.Rational(1, 3) + sp.tan(y)
    lanes = _kernel_text(gradc.compile_expr(lanes_expr).source)
    assert "_exp(" in lanes and "_tanh(" in lanes and "np.sin(" in lanes and "np.log(" in lanes
    scalar = _kernel_text(gradc.compile_expr(x * sig + sp.tanh(x) * sp.erf(y)).source)   # erf: a libm call
    assert "np.exp(" in scalar and "np.tanh(" in scalar and "_exp(" not in scalar
def test_negative_integer_powers_keep_the_loop_scalar_and_other_powers_do_not():
    from gradc.backend.printer import vectorises
    graph = Graph()
    x, y = graph.input("x"), graph.input("y")
    for exponent, vector in ((-3.0, False), (-64.0, False), (3.0, True), (-0.5, True), (y, True)):
        power = x ** (exponent if isinstance(exponent, ir.Node) else graph.const(exponent))
        assert power.op == "pow" and vectorises([x, y, power]) is vector, exponent


def test_each_op_with_a_vector_form_names_a_runtime_math_function():
    """A vector form calls what runtime/vector_math.py defines (and is printed where the op's scalar form
    would be)."""
    from gradc.backend.forms import FORMS
    from gradc.backend.names import defined_names
    from gradc.backend.printer import runtime_source
    defined = defined_names(runtime_source("vector_math"))
    for name, form in FORMS.items():
        if form.vector is not None:
            args = ["a", "b", "c"]
            text = form.vector(args, None) if callable(form.vector) else form.vector.format(*args)
            called = set(re.findall(r"(_\w+)\(", text))
            assert called and called <= defined, (name, called)

"""Bad input fails loudly with a gradc error (or TypeError/ValueError at call time) naming the culprit,
and hostile symbol names can neither break nor inject into the generated source."""

from __future__ import annotations

import ast
import io
import keyword
import tokenize

import numpy as np
import pytest
import sympy as sp

import gradc
from gradc import GradcError, UnsupportedError

x, y = sp.symbols("x y", real=True)


# -- compile-time errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("expr, culprit", [
    (sp.Function("f")(x), "f"),
    (sp.Function("mystery")(x, y) + x, "mystery"),
    (sp.Integral(x * y, x), "Integral"),
    (sp.Derivative(sp.Function("g")(x), x), "Derivative"),
    (sp.airyai(x), "airyai"),
    (sp.besselj(0, x), "besselj"),
    (sp.zeta(x), "zeta"),
    (sp.Ei(x) + sp.sec(y), "Ei"),
    (sp.Sum(x, (y, 1, x)), "Sum"),   # a Sum over integer bounds compiles as a loop
    (x + sp.zoo, "zoo"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_unsupported_construct_is_named(expr, culprit):
    with pytest.raises(UnsupportedError, match=culprit):
        gradc.compile_expr(expr, args=[x, y])


def test_unsupported_error_is_a_gradc_error_and_not_implemented():
    with pytest.raises(GradcError) as err:
        gradc.compile_expr(sp.airyai(x))
    assert isinstance(err.value, NotImplementedError)


@pytest.mark.parametrize("expr", [sp.I * x, x + sp.I, sp.exp(sp.I * x), sp.sqrt(-1) * x,
                                  x * sp.Integer(-8) ** sp.Rational(1, 3), x + sp.log(-2)],
                         ids=["I*x", "x+I", "exp(I*x)", "sqrt(-1)*x", "cbrt(-8) principal root", "log(-2)"])
def test_complex_expressions_are_refused(expr):
    with pytest.raises(UnsupportedError, match="complex|real"):
        gradc.compile_expr(expr, args=[x])


def test_real_constants_spelled_with_i_are_accepted():
    c = sp.atan2(2, 1 + sp.tan(sp.tanh(2)) ** 2)   # SymPy: -I*log((c + 2*I)/sqrt(...)), a real number
    assert c.has(sp.I)
    m = gradc.compile_expr(c * x + c, args=[x])
    assert m.forward(1.0) == pytest.approx(2 * float(sp.N(c, 30)), rel=1e-15)


def test_symbol_missing_from_args_is_named():
    with pytest.raises(GradcError, match="'y'"):
        gradc.compile_expr(x * y, args=[x])


def test_same_name_different_assumptions_is_explained():
    plain = sp.Symbol("x")
    with pytest.raises(GradcError, match="'x'.*assumptions"):
        gradc.compile_expr(plain * 2, args=[x])


def test_wrt_not_in_args():
    q = sp.Symbol("q")
    with pytest.raises(GradcError, match="'q'"):
        gradc.compile_expr(x * y, args=[x, y], wrt=[q])


def test_duplicate_arg_names():
    with pytest.raises(GradcError, match="'x'"):
        gradc.compile_expr(x * y, args=[x, y, x])
    with pytest.raises(GradcError, match="'x'"):
        gradc.compile_expr(x * y, args=[x, y, sp.Symbol("x", positive=True)])
    with pytest.raises(GradcError, match="'x'"):
        gradc.compile_expr(x * sp.Dummy("x"))


@pytest.mark.parametrize("dtype", ["float16", "int32", "complex128", np.float64, None])
def test_bad_dtype(dtype):
    with pytest.raises(GradcError, match="dtype"):
        gradc.compile_expr(x, dtype=dtype)


@pytest.mark.parametrize("expr", ["x*y", ["x*y"], None, b"x", [sp.Matrix([x, y])], object()],
                         ids=["str", "list-of-str", "None", "bytes", "Matrix-in-a-list", "object"])
def test_non_sympy_expression_is_a_type_error(expr):
    with pytest.raises(TypeError):
        gradc.compile_expr(expr)


def test_args_must_be_symbols():
    with pytest.raises(GradcError, match="symbols"):
        gradc.compile_expr(x, args=["x"])
    with pytest.raises(GradcError, match="symbols"):
        gradc.compile_expr(x, args=[sp.Function("f")(x)])


def test_empty_expression_list():
    with pytest.raises(GradcError):
        gradc.compile_expr([])


# -- call-time errors --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def module():
    return gradc.compile_expr(x * sp.exp(y), args=[x, y])


def test_wrong_number_of_inputs(module):
    with pytest.raises(TypeError, match=r"2 inputs.*'x'.*'y'.*got 1"):
        module.forward(np.ones(3))
    with pytest.raises(TypeError, match="got 3"):
        module.grad(1.0, 2.0, 3.0)
    with pytest.raises(TypeError, match="got 0"):
        module.value_and_grad()


def test_non_broadcastable_shapes_name_arguments_and_shapes(module):
    with pytest.raises(ValueError, match=r"x: \(3,\).*y: \(4,\)"):
        module.forward(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"x: \(2, 3\).*y: \(2,\)"):
        module.value_and_grad(np.ones((2, 3)), np.ones(2))


@pytest.mark.parametrize("bad", [np.array(["a", "b"]), np.array([object(), 1.0]), "1.0", None,
                                 np.array([1 + 2j]), 1j, np.array(["2020-01-01"], dtype="datetime64[D]"),
                                 2**80, {"x": 1}],
                         ids=["str-array", "object-array", "str", "None", "complex-array", "complex",
                              "datetime", "huge-int", "dict"])
def test_non_real_inputs_are_type_errors_naming_the_argument(module, bad):
    with pytest.raises(TypeError, match="'y'"):
        module.forward(np.ones(2), bad)
    with pytest.raises(TypeError, match="'x'"):
        module.value_and_grad(bad, 1.0)


@pytest.mark.parametrize("odd", [np.array([True, False]), np.float16(2.0), np.arange(3, dtype=np.uint8),
                                 np.longdouble(1.5), np.ma.masked_array([1.0, 2.0]), np.ones((2, 1, 3))],
                         ids=["bool", "float16", "uint8", "longdouble", "masked", "3-d"])
def test_odd_but_real_inputs_work(module, odd):
    value, (dx, dy) = module.value_and_grad(odd, 0.5)
    a = np.asarray(odd, dtype=float)
    np.testing.assert_allclose(value, a * np.exp(0.5))
    assert dx.shape == np.shape(odd) and np.ndim(dy) == 0
    assert dy == pytest.approx(np.sum(a * np.exp(0.5)))


def test_no_numba_internals_reach_the_user(module):
    """Errors from bad inputs are short gradc/NumPy-level messages, never a Numba typing dump."""
    attempts = [(np.ones(3), "x"), (np.ones(3), np.ones(4)), (np.array([1j]), 1.0), ([[1.0], [2.0, 3.0]], 1.0),
                (np.ones(2), np.array(["s"]))]
    for inputs in attempts:
        with pytest.raises((TypeError, ValueError)) as err:
            module.value_and_grad(*inputs)
        text = f"{type(err.value).__module__} {err.value}"
        assert "numba" not in text.lower() and "nopython" not in text and len(str(err.value)) < 300, text


# -- hostile names -------------------------------------------------------------------------------------
HOSTILE = ["lambda", "class", "def", "None", "a b", "a.b", "q'uote", 'd"quote', "new\nline", "cr\rret",
           "sep\u2028x", "θ", "x²", "__import__(\"os\").system(\"x\")", 'x"); import os; ("', "\nimport os\n",
           "# comment", "\\", "1abc", "", " ", "_", "np", "nb", "i", "c", "n", "f", "f_out", "d_x_out", "CHUNK",
           "_load", "_store", "_prepare", "x_i", "math", "min", "max", "abs", "range", "print", "WRT_INDEX",
           "ARGS", "DTYPE", "forward", "grad", "value_and_grad", "cotangents", "args", "shape", "outs",
           "_KERNEL_LOCK", "_value_and_grad_kernel", "sum1", "d_x", "sig_x", "match", "\x00cotangent0"]


def _identifier_like(name: str) -> bool:
    """Plain ASCII word characters: such a name may legitimately survive sanitising (1abc -> v1abc)."""
    return all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in name)


def _code_tokens(source: str) -> list[str]:
    return [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE)]


def assert_safe_source(source: str, raw_names: list[str]) -> None:
    ast.parse(source)
    # one physical line per line: no name smuggled a line break (\r, \x0b, \u2028, ...) into a comment
    assert source.splitlines() == source.split("\n")[:-1]
    code = "\n".join(_code_tokens(source))
    for raw in raw_names:
        if not _identifier_like(raw) and len(raw.strip()) > 1:
            assert raw not in code, f"{raw!r} reached the code outside comments"
    for node in ast.walk(ast.parse(source)):
        for ident in ([node.id] if isinstance(node, ast.Name) else [node.arg] if isinstance(node, ast.arg)
                      else [node.name] if isinstance(node, ast.FunctionDef) else []):
            assert ident.isascii() and ident.isidentifier() and not keyword.iskeyword(ident), ident
    for line in source.splitlines():
        if "#" in line:
            assert all(ch.isprintable() for ch in line), repr(line)


@pytest.mark.parametrize("name", HOSTILE, ids=[repr(n) for n in HOSTILE])
def test_hostile_name_source_is_safe(name):
    s, other = sp.Symbol(name, real=True), sp.Symbol("x" if name != "x" else "w", real=True)
    m = gradc.compile_expr([s * other + sp.sin(s), sp.log(1 + s**2)], args=[s, other])
    assert_safe_source(m.source, [name])
    assert m.args == (name, other.name)


@pytest.mark.parametrize("name", ["a\nb", "f\"); import os; (\"", "θ", "lambda", "np", "", "x\u2028y"],
                         ids=repr)
def test_hostile_module_name_is_safe(name):
    m = gradc.compile_expr(x * y, name=name) if name else None
    if m is None:
        with pytest.raises(GradcError, match="name"):
            gradc.compile_expr(x * y, name=name)
        return
    assert_safe_source(m.source, [name])


GROUPS = {
    "keywords-punctuation": ["lambda", "class", "def", "a b", "a.b", "q'uote", "new\nline", "sep\u2028x"],
    "code-looking": ["θ", "__import__(\"os\").system(\"x\")", 'x"); import os; ("', "\nimport os\n", "\\"],
    "internals": ["np", "nb", "i", "c", "n", "f_out", "d_x_out", "CHUNK", "_load", "x_i", "x"],
    "runtime-and-builtins": ["_store", "_prepare", "min", "max", "abs", "range", "WRT_INDEX", "_KERNEL_LOCK",
                             "cotangents", "shape", "args", "\x00cotangent0"],
}


@pytest.mark.parametrize("group", list(GROUPS))
def test_hostile_names_give_correct_numbers(group):
    """All names of a group in one module (so they must also not collide with each other): values and
    gradients of Σ_k (k+1)·s_k·t + sin(s_k) against NumPy, plus a second output."""
    names = GROUPS[group]
    t = sp.Symbol("t_param", real=True)
    syms = [sp.Symbol(n, real=True) for n in names]
    f = sum((k + 1) * s * t + sp.sin(s) for k, s in enumerate(syms))
    m = gradc.compile_expr([f, syms[0] * syms[-1]], args=[*syms, t])
    assert_safe_source(m.source, names)
    rng = np.random.default_rng(len(names))
    points = [rng.normal(size=5) for _ in syms]
    tv = rng.normal(size=5)
    (value, second), grads = m.value_and_grad(*points, tv, cotangents=[1.0, 0.0])
    np.testing.assert_allclose(value, sum((k + 1) * p * tv + np.sin(p) for k, p in enumerate(points)))
    np.testing.assert_allclose(second, points[0] * points[-1])
    for k, (p, g) in enumerate(zip(points, grads)):
        np.testing.assert_allclose(g, (k + 1) * tv + np.cos(p), err_msg=repr(names[k]))
    np.testing.assert_allclose(grads[-1], sum((k + 1) * p for k, p in enumerate(points)))

"""Errors that help: one line, naming the offending sub-expression and saying what to do."""

from __future__ import annotations

import pytest
import sympy as sp

import gradc

x, y = sp.symbols("x y", real=True)


@pytest.mark.parametrize(("expr", "error", "fragments"), [
    (sp.Function("f")(x) + y, gradc.UnsupportedError, ["f(x) is an undefined function", ".subs()"]),
    (sp.Derivative(x * sp.sin(x), x), gradc.UnsupportedError, ["unevaluated Derivative", ".doit()"]),
    (y * sp.Integral(x**2, (x, 0, y)), gradc.UnsupportedError, ["unevaluated Integral", ".doit()"]),
    (sp.Sum(x**2, (x, 1, y)), gradc.UnsupportedError, ["Sum over integer bounds", ".doit()"]),
    ([x, sp.Matrix([[x, 1], [2, y]])], TypeError, ["shape (2, 2)", "inside a sequence", "list(M)"]),
    (sp.zeta(x), gradc.UnsupportedError, ["zeta"]),
])
def test_unsupported_input_gets_one_line_that_says_what_to_do(expr, error, fragments):
    with pytest.raises(error) as info:
        gradc.compile_expr(expr)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_multi_line_repr_is_folded_into_one_line():
    class Shape:
        def __repr__(self) -> str:
            return "Shape(\n  1,\n  2)"

    with pytest.raises(TypeError) as info:
        gradc.compile_expr(Shape())
    assert "\n" not in str(info.value) and "Shape( 1, 2)" in str(info.value)

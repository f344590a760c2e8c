"""Tests for gradc.frontend.parse: faithful translation of allowed syntax, rejection of everything else."""

import os
import time

import pytest
import sympy

from gradc.errors import SpecError
from gradc.frontend.parse import parse_expr

x, y, z = sympy.symbols("x y z", real=True)
CONSTANTS = {"pi": sympy.pi, "E": sympy.E}


@pytest.fixture
def F():
    return {
        "exp": sympy.exp,
        "log": sympy.log,
        "tanh": sympy.tanh,
        "sin": sympy.sin,
        "atan2": sympy.atan2,
        "Max": sympy.Max,
        "sigmoid": lambda u: 1 / (1 + sympy.exp(-u)),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x*tanh(log(1+exp(x)))", x * sympy.tanh(sympy.log(1 + sympy.exp(x)))),
        ("42", sympy.Integer(42)),
        ("2.5", sympy.Float(2.5)),
        ("1/3", sympy.Rational(1, 3)),
        ("-x", -x),
        ("+x", x),
        ("--x", x),
        ("x - -y", x + y),
        ("x**2 + y**-1", x**2 + 1 / y),
        ("x**(1/2)", sympy.sqrt(x)),
        ("2**3**2", sympy.Integer(512)),  # right-associative, like Python
        ("(x + y) * (x - y) / z", (x + y) * (x - y) / z),
        ("sin(exp(sin(x)))", sympy.sin(sympy.exp(sympy.sin(x)))),
        ("atan2(y, x)", sympy.atan2(y, x)),
        ("Max(0, x)", sympy.Max(0, x)),
        ("sigmoid(z)", 1 / (1 + sympy.exp(-z))),
        ("pi * x + E", sympy.pi * x + sympy.E),
        ("exp(-x**2/2) / (2*pi)**(1/2)", sympy.exp(-(x**2) / 2) / sympy.sqrt(2 * sympy.pi)),
        ("  x + 1  ", x + 1),
        ("(x\n + 1)", x + 1),
        ("2**1000", sympy.Integer(2) ** 1000),
        ("x**-1000", x**-1000),
        ("10**300 * x", sympy.Integer(10) ** 300 * x),
    ],
)
def test_round_trip(F, text, expected):
    got = parse_expr(text, F, CONSTANTS)
    assert got == expected or sympy.simplify(got - expected) == 0


def test_result_types(F):
    assert isinstance(parse_expr("7", F), sympy.Integer)
    assert isinstance(parse_expr("0.5", F), sympy.Float)
    sym = parse_expr("w", F)
    assert isinstance(sym, sympy.Symbol) and sym.name == "w" and sym.is_real
    assert parse_expr("pi", F, CONSTANTS) is sympy.pi
    assert parse_expr("pi", F).name == "pi"  # not a constant unless mapped


def test_unicode_identifier(F):
    got = parse_expr("θ + 1", F)
    theta = sympy.Symbol("θ", real=True)
    assert got == theta + 1
    assert {s.name for s in got.free_symbols} == {"θ"}


def test_symbols_restrict_free_names(F):
    assert parse_expr("z * pi", F, CONSTANTS, symbols={"z"}) == z * sympy.pi
    with pytest.raises(SpecError, match="'w'"):
        parse_expr("z + w", F, symbols={"z"})
    with pytest.raises(SpecError, match="unknown name 'alpah'; did you mean 'alpha'"):
        parse_expr("alpah + 1", F, symbols={"alpha", "beta"})
    with pytest.raises(SpecError, match="valid names: E, beta, pi"):
        parse_expr("q", F, CONSTANTS, symbols={"beta"})


def test_what_appears_in_messages(F):
    with pytest.raises(SpecError, match=r"layers\[1\]\.activation"):
        parse_expr("x.real", F, what="layers[1].activation")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("__import__('os').system('echo hi')", "attribute access '.system'"),
        ("().__class__.__bases__[0].__subclasses__()", "attribute access '.__subclasses__'"),
        ("exec('1')", "unknown function 'exec'"),
        ("eval('1')", "unknown function 'eval'"),
        ("__import__('os')", "unknown function '__import__'"),
        ("open('f')", "unknown function 'open'"),
        ("lambda: 1", "lambda"),
        ("[x for x in y]", "list comprehension"),
        ("(x for x in y)", "generator expression"),
        ("x if y else z", "conditional expression"),
        ("x.real", "attribute access '.real'"),
        ("x[0]", "subscript"),
        ('f"{x}"', "f-string"),
        ("x==y", "comparison"),
        ("x < y", "comparison"),
        ("x and y", "operator 'and'"),
        ("not x", "operator 'not'"),
        ("x // 2", "operator '//'"),
        ("x % 2", "operator '%'"),
        ("x @ y", "operator '@'"),
        ("x ^ y", "operator '^'"),
        ("~x", "operator '~'"),
        ("x << 1", "operator '<<'"),
        ("(x := 1)", "walrus"),
        ("[x, y]", "list display"),
        ("x, y", "tuple"),
        ("{1: 2}", "dict display"),
        ('"z"', "string literal"),
        ("b'z'", "bytes literal"),
        ("True", "boolean literal"),
        ("None", "NoneType literal"),
        ("1j", "complex literal"),
        ("sin(*x)", "starred argument"),
        ("atan2(y=1, x=2)", "keyword arguments"),
        ("sin(**x)", "keyword arguments"),
        ("sin", "function 'sin' used without a call"),
        ("sin(x)(y)", "call of Call"),
        ("x(1)", "unknown function 'x'"),
        ("sigmod(z)", "did you mean 'sigmoid'?"),
        ("z; import os", "syntax error"),
        ("x +", "syntax error at line 1"),
        ("import os", "syntax error"),
        ("", "empty"),
        ("   \n ", "empty"),
        ("9**9**9**9", "exponent"),
        ("x**1001", "exponent"),
        ("x**-2000.0", "exponent"),
        ("2**(10*200)", "exponent"),
        ("999**999", "too large"),
        ("(2**900)**5 + 1", "too large"),
        ("(1/1000)**-999 * x", "too large"),
        ("2**999 * 2**999", "exceeds"),
        ("x * 2**999 * 2**999", "exceeds"),  # coefficient of a product
        ("(x * 2**999 + y) * 2**999", "exceeds"),  # SymPy distributes the number into the sum
        ("(2**999 + 1)**(1/2) * (2**999 + 3)**(1/2)", "exceeds"),  # SymPy merges the radicands
        ("1" * 101, "more than 100 digits"),
        ("1e999", "overflows"),
        ("x\0", "null bytes"),
    ],
)
def test_rejected(F, text, fragment):
    with pytest.raises(SpecError) as info:
        parse_expr(text, F, CONSTANTS, what="the field")
    message = str(info.value)
    assert "the field" in message
    assert fragment in message


def test_unknown_function_lists_valid_names_when_nothing_is_close(F):
    with pytest.raises(SpecError, match="valid names: Max, atan2, exp, log, sigmoid, sin, tanh"):
        parse_expr("qqqq(x)", F)


def test_bad_arity_becomes_spec_error(F):
    with pytest.raises(SpecError, match="function 'sigmoid' rejected its arguments"):
        parse_expr("sigmoid(x, y)", F)


def test_non_expression_result_rejected():
    with pytest.raises(SpecError, match="not a SymPy expression"):
        parse_expr("f(x)", {"f": lambda u: "oops"})


def test_non_string_rejected(F):
    with pytest.raises(SpecError, match="expected a string"):
        parse_expr(3, F)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x+" * 10_000 + "x", "chars long"),
        ("(" * 500 + "x" + ")" * 500, "syntax error"),
        ("-" * 300 + "x", "deeper than 200"),
        ("-" * 9_000 + "x", "too deeply nested"),
        ("x**" * 3_000 + "x", "too deeply nested"),
        ("+".join(["x"] * 3_000), "too deeply nested"),
        ("+".join(["x"] * 250), "deeper than 200"),
        ("sin(" * 199 + "x" + ")" * 199, "deeper than 200"),
        # wide rather than deep: ~8,400 nodes in under 10,000 chars
        ("Max(" + ",".join(["-" * 20 + "x"] * 400) + ")", "more than 5000"),
    ],
)
def test_resource_guards(F, text, fragment):
    start = time.perf_counter()
    with pytest.raises(SpecError, match=fragment):
        parse_expr(text, F)
    assert time.perf_counter() - start < 5


def test_merging_many_roots_is_cut_off_quickly(F):
    text = "*".join(f"(2**127+{2 * k + 1})**(1/2)" for k in range(40))
    start = time.perf_counter()
    with pytest.raises(SpecError, match="exceeds 1100 bits"):
        parse_expr(text, F)
    assert time.perf_counter() - start < 5


def test_sizes_just_under_the_limits_parse(F):
    assert parse_expr("-" * 150 + "x", F) == x
    assert parse_expr("sin(" * 90 + "x" + ")" * 90, F).free_symbols == {x}
    assert parse_expr("1" * 100, F) == sympy.Integer("1" * 100)


def test_hostile_strings_run_nothing(F, monkeypatch, tmp_path, capfd):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    monkeypatch.chdir(tmp_path)
    spy = {**F, "spy": lambda *a: calls.append(a) or sympy.Integer(0)}
    for text in [
        "__import__('os').system('echo hi')",
        "exec('print(1)')",
        "open('f', 'w')",
        "spy(x.real)",  # the argument is rejected before the whitelisted function is called
        "spy(x, k=1)",
    ]:
        with pytest.raises(SpecError):
            parse_expr(text, spy)
    assert calls == []
    assert not list(tmp_path.iterdir())
    assert capfd.readouterr().out == ""

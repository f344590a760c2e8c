"""The SymPy functions gradc compiles, in one place: the classes that lower one-to-one to an op of the
table (`SYMPY_OPS`), the ones lowered as a composition of others (`COMPOSED`), and the names expression
strings may use (`text_functions`, `TEXT_CONSTANTS`)."""

from __future__ import annotations

from collections.abc import Callable

import sympy
from sympy.codegen import cfunctions
from sympy.logic.boolalg import BooleanFunction

#: SymPy classes that lower one-to-one to an op of the table (core/ops.py)
SYMPY_OPS: dict[type, str] = {
    sympy.Add: "add", sympy.Mul: "mul", sympy.Pow: "pow",
    sympy.exp: "exp", sympy.log: "log", sympy.sin: "sin", sympy.cos: "cos", sympy.tan: "tan",
    sympy.asin: "asin", sympy.acos: "acos", sympy.atan: "atan", sympy.atan2: "atan2",
    sympy.sinh: "sinh", sympy.cosh: "cosh", sympy.tanh: "tanh", sympy.erf: "erf",
    sympy.Abs: "abs", sympy.sign: "sign", sympy.floor: "floor", sympy.ceiling: "ceil",
    sympy.Max: "max", sympy.Min: "min", sympy.Piecewise: "select",
    sympy.StrictGreaterThan: "gt", sympy.GreaterThan: "ge", sympy.StrictLessThan: "lt", sympy.LessThan: "le",
    sympy.Eq: "eq", sympy.Ne: "ne", sympy.And: "and", sympy.Or: "or", sympy.Not: "not",
    sympy.erfc: "erfc", sympy.asinh: "asinh", sympy.acosh: "acosh", sympy.atanh: "atanh", sympy.sinc: "sinc",
    sympy.Mod: "mod", cfunctions.expm1: "expm1", cfunctions.log1p: "log1p", cfunctions.hypot: "hypot",
    cfunctions.Sqrt: "sqrt", cfunctions.Cbrt: "cbrt",
    sympy.gamma: "gamma", sympy.loggamma: "loggamma", sympy.LambertW: "lambertw", sympy.erfinv: "erfinv",
    sympy.erfcinv: "erfcinv",
}


def _heaviside(u: sympy.Expr, h0: sympy.Expr = sympy.S.Half) -> sympy.Expr:
    return sympy.Piecewise((0, u < 0), (1, u > 0), (h0, True))


#: SymPy classes that are numerically fine as a composition of other functions: lowered as that expression
COMPOSED: dict[type, Callable[..., sympy.Expr]] = {
    sympy.sec: lambda u: 1 / sympy.cos(u), sympy.csc: lambda u: 1 / sympy.sin(u),
    sympy.cot: lambda u: sympy.cos(u) / sympy.sin(u),
    sympy.asec: lambda u: sympy.acos(1 / u), sympy.acsc: lambda u: sympy.asin(1 / u),
    sympy.acot: lambda u: sympy.atan(1 / u),   # SymPy's real branch: acot(-1) = -pi/4
    sympy.acoth: lambda u: sympy.atanh(1 / u), sympy.asech: lambda u: sympy.acosh(1 / u),
    sympy.acsch: lambda u: sympy.asinh(1 / u),
    cfunctions.exp2: lambda u: 2**u, cfunctions.log2: lambda u: sympy.log(u) / sympy.log(2),
    cfunctions.log10: lambda u: sympy.log(u) / sympy.log(10), cfunctions.fma: lambda a, b, c: a * b + c,
    sympy.Heaviside: _heaviside, sympy.frac: lambda u: u - sympy.floor(u),
    # Γ(n+1)/(Γ(k+1)Γ(n-k+1)): exact to rounding while Γ(n+1) is finite (n <= 170), nan at Γ's poles (k > n
    # integers, where SymPy gives 0). B(a, b) for a, b > 0 by ln Γ: no overflow for large a, b
    sympy.factorial: lambda u: sympy.gamma(u + 1),
    sympy.binomial: lambda n, k: sympy.gamma(n + 1) / (sympy.gamma(k + 1) * sympy.gamma(n - k + 1)),
    sympy.beta: lambda a, b: sympy.exp(sympy.loggamma(a) + sympy.loggamma(b) - sympy.loggamma(a + b)),
    sympy.re: lambda u: u, sympy.im: lambda u: sympy.S.Zero,   # gradc's inputs are real
}


def supported_functions() -> list[str]:
    """The SymPy functions gradc compiles (README's "Supported SymPy" lists them)."""
    names = {cls.__name__ for cls in [*SYMPY_OPS, *COMPOSED]
             if issubclass(cls, sympy.Function) and not issubclass(cls, BooleanFunction)}
    return sorted(names | {"Max", "Min", "sqrt", "real_root", "root", "polygamma", "digamma", "trigamma"},
                  key=lambda name: (name.lower(), name))


def _gate_constructors() -> dict[str, object]:
    """Gates as users write them in text; passes.py recognises the expansions again."""
    return {
        "sigmoid": lambda u: 1 / (1 + sympy.exp(-u)),
        "softplus": lambda u: sympy.log(1 + sympy.exp(u)),
        "log1p": lambda u: sympy.log(1 + u),
        "logsumexp": lambda *us: sympy.log(sum(sympy.exp(u) for u in us)),
    }


def text_functions() -> dict[str, object]:
    """Function names allowed in expression strings (specs, CLI), each mapped to its SymPy builder:
    every SymPy function class of the op table, lower-case aliases, and the gates."""
    table: dict[str, object] = {cls.__name__: cls for cls in [*SYMPY_OPS, *COMPOSED]
                                if issubclass(cls, sympy.Function) and cls is not sympy.Piecewise}
    table.update({"Max": sympy.Max, "Min": sympy.Min, "abs": sympy.Abs, "max": sympy.Max, "min": sympy.Min,
                  "sqrt": sympy.sqrt, "ceil": sympy.ceiling, "real_root": sympy.real_root, "root": sympy.root,
                  **_gate_constructors()})
    table.update({"polygamma": sympy.polygamma, "digamma": sympy.digamma, "trigamma": sympy.trigamma})
    return table


TEXT_CONSTANTS = {"pi": sympy.pi, "E": sympy.E}

"""Tests generated from the op table (gradc.core.ops.OPS): a new record is tested the day it is added.

For every record:
  * `eval` against an independent oracle (Python's `math`, written-out NumPy) at points of its `domain`;
  * its VJP, built by `autodiff.backward` on a graph `op(a0, a1, ...)` and run by `interpret.evaluate`,
    against central finite differences of `eval`;
  * its emit template inside other expressions (precedence: the printed text evaluates to the IR value);
  * the emitted + jitted kernel of a SymPy expression using it, against `interpret` on the same program
    and against `sympy.lambdify` / `sympy.diff` (gates are written as their expansions and must appear).
A record without a row here fails `test_every_record_has_a_row`.
"""

from __future__ import annotations

import functools
import inspect
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy.codegen import cfunctions

import gradc
from gradc import pipeline
from gradc.backend.forms import FORMS
from gradc.backend.printer import Naming, Printer, vectorises
from gradc.core import autodiff, interpret, ir
from gradc.core.graph import Graph
from gradc.core.ops import OPS, Op, broadcast
from gradc.core.program import Meta
from gradc.errors import UnsupportedError
from gradc.frontend.functions import SYMPY_OPS
from gradc.frontend.mlp import compile_activation
from gradc.runtime import special as runtime_special

DEFAULT_SHAPE = Op.__dataclass_fields__["shape"].default


def scalarwise(fn: Callable[..., float]) -> Callable[..., np.ndarray]:
    """An oracle applied point by point with Python scalars (independent of NumPy's ufuncs)."""
    return np.vectorize(lambda *xs: fn(*(float(x) for x in xs)), otypes=[float])


def _lse(shift: float, *terms: float) -> float:
    return math.log(math.fsum(math.exp(t) for t in terms))   # the shift only guards overflow


@dataclass(frozen=True)
class Row:
    """How to test one elementwise record: an oracle and a SymPy expression whose lowering uses it."""

    ref: Callable[..., Any]                    # oracle of eval, same inputs as the record
    expr: Callable[..., sp.Basic] | None       # SymPy builder over real symbols (None: no SymPy spelling)
    gate: bool = False                         # written as its expansion; passes.py must recognise it
    boolean: bool = False                      # comparison / logic: no derivative to test
    why_no_expr: str = ""


def _pw(cond: sp.Basic) -> sp.Basic:
    return sp.Piecewise((1, cond), (0, True))


ROWS: dict[str, Row] = {
    "add": Row(scalarwise(lambda a, b: a + b), lambda x, y: x + y),
    "sub": Row(scalarwise(lambda a, b: a - b), lambda x, y: x - y),
    "mul": Row(scalarwise(lambda a, b: a * b), lambda x, y: x * y),
    "div": Row(scalarwise(lambda a, b: a / b), lambda x, y: x / y),
    "neg": Row(scalarwise(lambda a: -a), lambda x: -x),
    "pow": Row(scalarwise(math.pow), lambda x, y: x**y),
    "exp": Row(scalarwise(math.exp), sp.exp),
    "log": Row(scalarwise(math.log), sp.log),
    "sqrt": Row(scalarwise(math.sqrt), sp.sqrt),
    "sin": Row(scalarwise(math.sin), sp.sin),
    "cos": Row(scalarwise(math.cos), sp.cos),
    "tan": Row(scalarwise(math.tan), sp.tan),
    "asin": Row(scalarwise(math.asin), sp.asin),
    "acos": Row(scalarwise(math.acos), sp.acos),
    "atan": Row(scalarwise(math.atan), sp.atan),
    "atan2": Row(scalarwise(math.atan2), lambda y, x: sp.atan2(y, x)),
    "sinh": Row(scalarwise(math.sinh), sp.sinh),
    "cosh": Row(scalarwise(math.cosh), sp.cosh),
    "tanh": Row(scalarwise(math.tanh), sp.tanh),
    "erf": Row(scalarwise(math.erf), sp.erf),
    "erfc": Row(scalarwise(math.erfc), sp.erfc),
    "asinh": Row(scalarwise(math.asinh), sp.asinh),
    "acosh": Row(scalarwise(math.acosh), sp.acosh),
    "atanh": Row(scalarwise(math.atanh), sp.atanh),
    "expm1": Row(scalarwise(math.expm1), cfunctions.expm1),
    "hypot": Row(scalarwise(math.hypot), lambda x, y: cfunctions.hypot(x, y)),
    "cbrt": Row(scalarwise(math.cbrt), cfunctions.Cbrt),
    "sinc": Row(scalarwise(lambda a: math.sin(a) / a if a else 1.0), sp.sinc),
    "mod": Row(scalarwise(lambda a, b: a % b), lambda x, y: sp.Mod(x, y)),
    "gamma": Row(scalarwise(math.gamma), sp.gamma),
    "loggamma": Row(scalarwise(lambda a: float(mpmath.loggamma(a))), sp.loggamma),
    "digamma": Row(scalarwise(lambda a: float(mpmath.digamma(a))), sp.digamma),
    "polygamma": Row(scalarwise(lambda a: float(mpmath.polygamma(1, a))), lambda x: sp.polygamma(1, x)),
    "lambertw": Row(scalarwise(lambda a: float(mpmath.lambertw(a).real)), sp.LambertW),
    "erfinv": Row(scalarwise(lambda a: float(mpmath.erfinv(a))), sp.erfinv),
    "erfcinv": Row(scalarwise(lambda a: float(mpmath.erfinv(1 - mpmath.mpf(a)))), sp.erfcinv),
    "abs": Row(scalarwise(abs), sp.Abs),
    "sign": Row(scalarwise(lambda a: float((a > 0) - (a < 0))), sp.sign),
    "floor": Row(scalarwise(math.floor), sp.floor),
    "ceil": Row(scalarwise(math.ceil), sp.ceiling),
    "max": Row(scalarwise(max), lambda x, y: sp.Max(x, y)),
    "min": Row(scalarwise(min), lambda x, y: sp.Min(x, y)),
    "select": Row(scalarwise(lambda c, a, b: a if c else b),
                  lambda c, a, b: sp.Piecewise((a, sp.Ne(c, 0)), (b, True))),
    "gt": Row(scalarwise(lambda a, b: a > b), lambda x, y: _pw(sp.Gt(x, y)), boolean=True),
    "ge": Row(scalarwise(lambda a, b: a >= b), lambda x, y: _pw(sp.Ge(x, y)), boolean=True),
    "lt": Row(scalarwise(lambda a, b: a < b), lambda x, y: _pw(sp.Lt(x, y)), boolean=True),
    "le": Row(scalarwise(lambda a, b: a <= b), lambda x, y: _pw(sp.Le(x, y)), boolean=True),
    "eq": Row(scalarwise(lambda a, b: a == b), lambda x, y: _pw(sp.Eq(x, y)), boolean=True),
    "ne": Row(scalarwise(lambda a, b: a != b), lambda x, y: _pw(sp.Ne(x, y)), boolean=True),
    "and": Row(scalarwise(lambda a, b: bool(a) and bool(b)),
               lambda x, y: _pw(sp.And(sp.Ne(x, 0), sp.Ne(y, 0))), boolean=True),
    "or": Row(scalarwise(lambda a, b: bool(a) or bool(b)),
              lambda x, y: _pw(sp.Or(sp.Ne(x, 0), sp.Ne(y, 0))), boolean=True),
    # SymPy folds Not(relation) into the opposite relation; Not(And(...)) stays a Not
    "not": Row(scalarwise(lambda a: not a), lambda x: _pw(sp.Not(sp.And(sp.Ne(x, 0), x < 10))), boolean=True),
    # gates: written as the expansions users write; passes.py must find them
    "sigmoid": Row(scalarwise(lambda a: 1.0 / (1.0 + math.exp(-a))), lambda x: 1 / (1 + sp.exp(-x)), gate=True),
    "softplus": Row(scalarwise(lambda a: math.log1p(math.exp(a))), lambda x: sp.log(1 + sp.exp(x)), gate=True),
    "log1p": Row(scalarwise(math.log1p), lambda x: sp.log(1 + x), gate=True),
    "logsumexp": Row(scalarwise(_lse), lambda x, y, z: sp.log(sp.exp(x) + sp.exp(y) + sp.exp(z)), gate=True),
}


# -- matrix ops (MLP programs): shapes and attributes the domain cannot express ------------------------
def _one_hot(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return np.eye(k)[rng.integers(0, k, size=n)]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class MatrixRow:
    """A non-elementwise record: how to sample its inputs (and attrs) and an oracle of `eval`.
    `wrt` lists the inputs whose VJP is checked against finite differences."""

    sample: Callable[[np.random.Generator], tuple[list[np.ndarray], dict[str, Any]]]
    ref: Callable[..., Any]
    wrt: tuple[int, ...] = (0,)
    note: str = ""


def _pair(rng, lo=-2.0, hi=2.0, y="real"):
    a = rng.uniform(lo, hi, (5, 3))
    target = {"real": lambda: rng.uniform(0.0, 1.0, (5, 3)), "onehot": lambda: _one_hot(rng, 5, 3)}[y]()
    return [a, target], {}


_TANH = compile_activation("tanh", "tanh(z)", "float64", "test")
_SOFTPLUS = compile_activation("sp", "log(1 + exp(z))", "float64", "test")


def _bce(a, y):
    return -np.mean(np.sum(y * np.log(a) + (1 - y) * np.log1p(-a), axis=1))


def _hinge(a, y):
    correct = np.take_along_axis(a, y.argmax(1)[:, None], axis=1)
    margins = np.maximum(0.0, a - correct + 1.0)
    margins[y.astype(bool)] = 0.0
    return margins.sum() / a.shape[0]


MATRIX_ROWS: dict[str, MatrixRow] = {
    "matmul": MatrixRow(lambda r: ([r.uniform(-1, 1, (4, 3)), r.uniform(-1, 1, (3, 2))], {}),
                        lambda a, b: np.einsum("ik,kj->ij", a, b), wrt=(0, 1)),
    "sum": MatrixRow(lambda r: ([r.uniform(-2, 2, (4, 3))], {"axes": (0,), "keep_shape": (1, 3)}),
                     lambda a, axes, keep_shape: np.add.reduce(a, axis=0, keepdims=True), wrt=()),
    "sumsq": MatrixRow(lambda r: ([r.uniform(-2, 2, (4, 3))], {}), lambda a: float(np.einsum("ij,ij->", a, a))),
    "act": MatrixRow(lambda r: ([r.uniform(-2, 2, (4, 3))], {"fn": _TANH}), lambda z, fn: np.tanh(z)),
    "act_deriv": MatrixRow(lambda r: ([r.uniform(-2, 2, (4, 3))], {"fn": _SOFTPLUS}),
                           lambda z, fn: 1 / (1 + np.exp(-z)), wrt=()),
    "mse": MatrixRow(_pair, lambda a, y: np.sum(np.square(a - y)) / (2 * a.shape[0])),
    "mse_grad": MatrixRow(_pair, lambda a, y: (a - y) / a.shape[0], wrt=()),
    "sum_squared": MatrixRow(_pair, lambda a, y: np.sum(np.square(a - y))),
    "sum_squared_grad": MatrixRow(_pair, lambda a, y: 2 * (a - y), wrt=()),
    "softmax_ce": MatrixRow(lambda r: _pair(r, y="onehot"),
                            lambda z, y: -np.mean(np.sum(y * np.log(_softmax(z)), axis=1)),
                            note="targets are one-hot rows (the domain's (0, 1) does not say so)"),
    "softmax_ce_grad": MatrixRow(lambda r: _pair(r, y="onehot"), lambda z, y: (_softmax(z) - y) / z.shape[0],
                                 wrt=()),
    "bce": MatrixRow(lambda r: _pair(r, 0.05, 0.95), _bce,
                     note="activations in (0, 1): the domain's (-2, 2) puts log() out of its domain"),
    "bce_grad": MatrixRow(lambda r: _pair(r, 0.05, 0.95), lambda a, y: (a - y) / (a * (1 - a)) / a.shape[0],
                          wrt=()),
    "bce_logits": MatrixRow(_pair, lambda z, y: _bce(1 / (1 + np.exp(-z)), y)),
    "bce_logits_grad": MatrixRow(_pair, lambda z, y: (1 / (1 + np.exp(-z)) - y) / z.shape[0], wrt=()),
    "hinge": MatrixRow(lambda r: _pair(r, y="onehot"), _hinge, note="targets are one-hot rows"),
    "hinge_grad": MatrixRow(lambda r: _pair(r, y="onehot"),
                            lambda a, y: _fd_grad(lambda v: _hinge(v, y), a), wrt=()),
}


def _fd_grad(f: Callable[[np.ndarray], float], a: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (f(up) - f(down)) / (2 * h)
    return grad


# elementwise: the default broadcasting shape rule and no attributes (activations carry a program)
LEAVES = [name for name, r in OPS.items() if r.eval is None]   # input, const, index: values no statement computes
LOOPS = ["element", "scatter", "loop"]   # a loop's body and its arrays: tests/test_loops.py
MATRIX = [name for name, r in OPS.items()
          if name not in LEAVES and name not in LOOPS and (r.shape is not DEFAULT_SHAPE or name in MATRIX_ROWS)]
ELEMENTWISE = [name for name in OPS if name not in MATRIX and name not in LEAVES and name not in LOOPS]


def _backward(outputs: list[ir.Node], seeds: list[ir.Node], wrt: list[ir.Node]) -> list[ir.Node]:
    """Reverse mode over the forward pass of `outputs` (its primal set)."""
    return autodiff.backward(outputs, seeds, wrt, ir.topological_order(outputs), Meta())


def _arity(record: Op) -> int:
    return record.arity if record.arity is not None else len(record.domain)


def _rng(name: str, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()) + salt)


def sample(record: Op, n: int = 24, salt: int = 0) -> list[np.ndarray]:
    """n points per input, uniform in the record's domain, kept 1e-3 away from the interval ends."""
    rng = _rng(record.name, salt)
    out = []
    for lo, hi in record.domain[: _arity(record)]:
        pad = 1e-3 * (hi - lo)
        out.append(rng.uniform(lo + pad, hi - pad, n))
    return out


def _row_param(name: str):
    return pytest.param(name, id=name)


# -- the table is complete and its domains are usable ---------------------------------------------------
def test_the_table_holds_its_leaves_and_every_op_has_one_record_per_concern():
    """input, const and a loop's index are records like any op; every op the backends can meet has a printed
    form, and every SymPy class the frontend lowers one-to-one names an op of the table."""
    assert LEAVES == ["input", "const", "index"]
    assert sorted(set(OPS) - set(LEAVES) - set(FORMS)) == [], "ops without a printed form in backend/forms.py"
    assert sorted(set(FORMS) - set(OPS)) == [], "printed forms of ops the table does not have"
    assert sorted(set(SYMPY_OPS.values()) - set(OPS)) == []
    assert all(isinstance(name, str) and OPS[name].name == name for name in OPS)


def test_every_record_has_a_row():
    missing = sorted(set(ELEMENTWISE) - set(ROWS)) + sorted(set(MATRIX) - set(MATRIX_ROWS))
    assert not missing, (f"op records without a test row in tests/test_ops_table.py: {missing}; "
                         "add an oracle (and a SymPy spelling) for each")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_domain_is_valid(name):
    record = OPS[name]
    assert record.arity is None or len(record.domain) == record.arity, \
        f"{name}: domain has {len(record.domain)} intervals for {record.arity} inputs"
    assert all(lo < hi for lo, hi in record.domain), f"{name}: empty interval in {record.domain}"
    with np.errstate(all="raise"):
        values = np.asarray(record.eval(*sample(record)), dtype=float)
    assert np.all(np.isfinite(values)), f"{name}: eval is not finite on its domain {record.domain}"


# -- eval vs an independent oracle -----------------------------------------------------------------------
def _with_ties(record: Op, points: list[np.ndarray]) -> list[np.ndarray]:
    """Append points where the first two inputs are equal (when both domains allow it): the edge cases of
    comparisons, max/min, division and subtraction."""
    if len(points) < 2:
        return points
    (lo0, hi0), (lo1, hi1) = record.domain[:2]
    lo, hi = max(lo0, lo1), min(hi0, hi1)
    if lo >= hi:
        return points
    tie = np.linspace(lo, hi, 7)[1:-1]
    extra = [tie, tie] + [p[: len(tie)] for p in points[2:]]
    return [np.concatenate([p, e]) for p, e in zip(points, extra)]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_eval_matches_oracle(name):
    record, row = OPS[name], ROWS[name]
    points = _with_ties(record, sample(record))
    got = np.asarray(record.eval(*points), dtype=float)
    want = np.asarray(row.ref(*points), dtype=float)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", MATRIX)
def test_matrix_eval_matches_oracle(name):
    row = MATRIX_ROWS[name]
    inputs, attrs = row.sample(_rng(name))
    got = np.asarray(OPS[name].eval(*inputs, **attrs), dtype=float)
    want = np.asarray(row.ref(*inputs, **attrs), dtype=float)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


# -- VJP (as IR, interpreted) vs central finite differences of eval ------------------------------------
def _central_differences(f: Callable[..., np.ndarray], points: list[np.ndarray], k: int) -> np.ndarray:
    h = 1e-6 * np.maximum(1.0, np.abs(points[k]))
    up = [p + h if j == k else p for j, p in enumerate(points)]
    down = [p - h if j == k else p for j, p in enumerate(points)]
    return (np.asarray(f(*up), dtype=float) - np.asarray(f(*down), dtype=float)) / (2 * h)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_vjp_matches_finite_differences(name):
    """Every VJP against central differences; a comparison or logic op (a step function of its inputs)
    must pass back exactly zero."""
    record = OPS[name]
    g = Graph()
    inputs = [g.input(f"a{k}") for k in range(_arity(record))]
    out = g.apply(name, *inputs)
    assert out.op == name, f"building {name} on distinct inputs simplified it to {out!r}"
    adjoints = _backward([out], [g.const(1.0)], inputs)
    points = sample(record, salt=1)
    feed = {f"a{k}": p for k, p in enumerate(points)}
    values = interpret.evaluate(adjoints, feed)
    if ROWS.get(name, Row(None, None)).boolean:
        assert all(np.all(np.asarray(v) == 0.0) for v in values), f"{name}: a boolean op passed back {values}"
        return
    for k, got in enumerate(values):
        want = _central_differences(record.eval, points, k)
        np.testing.assert_allclose(np.broadcast_to(got, want.shape), want, rtol=2e-6, atol=2e-7,
                                   err_msg=f"d {name} / d input {k}")


@pytest.mark.parametrize("name", MATRIX)
def test_matrix_vjp_matches_finite_differences(name):
    record, row = OPS[name], MATRIX_ROWS[name]
    inputs, attrs = row.sample(_rng(name, 1))
    g = Graph()
    nodes = [g.input(f"a{k}", shape=v.shape) for k, v in enumerate(inputs)]
    out = g.apply(name, *nodes, **attrs)
    feed = {f"a{k}": v for k, v in enumerate(inputs)}
    if record.vjp is None:
        with pytest.raises(UnsupportedError, match=name):
            _backward([out], [g.const(1.0)], nodes[:1])
        return
    seed = np.asarray(_rng(name, 2).uniform(0.5, 1.5, np.shape(record.eval(*inputs, **attrs))))
    cotangent = g.input("seed", shape=seed.shape)
    adjoints = _backward([out], [cotangent], nodes)
    values = interpret.evaluate(adjoints, {**feed, "seed": seed})
    for k in row.wrt:
        def weighted(v, k=k):
            args = [v if j == k else x for j, x in enumerate(inputs)]
            return float(np.sum(seed * record.eval(*args, **attrs)))
        want = _fd_grad(weighted, inputs[k])
        np.testing.assert_allclose(values[k], want, rtol=1e-6, atol=1e-7, err_msg=f"d {name} / d input {k}")


# -- the emit template reads right inside any other expression (operator precedence) ---------------------
# Each input of the op is itself a compound expression (so the template must parenthesise it) and the op's
# result is used as an operand of every arithmetic operator (so its own text must be parenthesised).
_WRAPS = ("sub", "add", "mul", "div", "neg")


def _compound(g: Graph, kind: str, k: int, value: np.ndarray, feed: dict, boolean: bool) -> ir.Node:
    p, q = g.input(f"p{k}"), g.input(f"q{k}")
    if boolean:   # a truth value spelled as a comparison
        feed[f"p{k}"], feed[f"q{k}"] = value, np.zeros_like(value)
        return ir.call("ne", p, q)
    half = 0.5 + np.zeros_like(value)
    if kind == "sub":
        feed[f"p{k}"], feed[f"q{k}"] = value + half, half
        return p - q
    if kind == "add":
        feed[f"p{k}"], feed[f"q{k}"] = value - half, half
        return p + q
    if kind == "mul":
        feed[f"p{k}"], feed[f"q{k}"] = value * 2.0, half
        return p * q
    if kind == "div":
        feed[f"p{k}"], feed[f"q{k}"] = value * 0.5, half
        return p / q
    feed[f"p{k}"], feed[f"q{k}"] = -value, half
    return -p


def _contexts(g: Graph, node: ir.Node, feed: dict, n: int) -> list[ir.Node]:
    w = g.input("w")
    feed["w"] = np.linspace(1.5, 2.5, n)
    if node.dtype == "bool":
        return [ir.select(node, w, -w), ir.call("not", node), ir.call("and", ir.call("gt", w, node * 0.0), node)]
    powers = [node ** g.const(e) for e in (2.0, -1.0, 0.5, 3.0, -2.0, 1.5)]   # pow prints these specially
    return [w - node, node - w, w / node, node / w, -node, w * node, node * w, node**w, w**node, node * node,
            ir.select(ir.call("gt", w, g.const(0.0)), node, w),
            *powers, *(w / t for t in powers), *(-t for t in powers), *(t ** w for t in powers)]


# the emitted modules' globals; math.erf wrapped so that a ** b of a negative base is nan as in Numba
# (Python floats would go complex)
_PRINTED_GLOBALS = {"np": np, "math": SimpleNamespace(erf=lambda v: np.float64(math.erf(v)),
                                                     erfc=lambda v: np.float64(math.erfc(v)))}
# the special functions: math.gamma, and the support functions of runtime/special.py they print as calls of
_PRINTED_GLOBALS["math"].gamma = lambda v: np.float64(math.gamma(v))
def _as_numpy_float(function: Callable[..., float]) -> Callable[..., np.float64]:
    return lambda *v: np.float64(function(*v))


_PRINTED_GLOBALS.update({name: _as_numpy_float(getattr(runtime_special, name))
                         for name in ("_loggamma", "_digamma", "_polygamma", "_lambertw", "_erfinv", "_erfcinv")})


def _bool_input(record: Op, k: int) -> bool:
    return record.name in ("and", "or", "not") or (record.name == "select" and k == 0)


@pytest.mark.parametrize("kind", _WRAPS)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_emitted_text_respects_precedence(name, kind):
    record = OPS[name]
    points = sample(record, n=6, salt=2)
    g = Graph()
    feed: dict[str, np.ndarray] = {}
    args = [_compound(g, kind, k, v, feed, _bool_input(record, k)) for k, v in enumerate(points)]
    node = g.apply(name, *args)
    exprs = [node, *_contexts(g, node, feed, len(points[0]))]
    naming = Naming({id(x): x.name for x in ir.topological_order(exprs) if x.is_input}, set(), Meta())
    printer = Printer(naming)
    want = interpret.evaluate(exprs, feed)
    for expr, expected in zip(exprs, want):
        text = printer.text(expr)
        for j in range(len(points[0])):
            scope = {k: np.float64(v[j]) for k, v in feed.items()}
            with np.errstate(all="ignore"):
                got = eval(text, _PRINTED_GLOBALS, scope)   # noqa: S307 - our own printed text
            assert np.asarray(got, dtype=float) == pytest.approx(float(np.asarray(expected)[j]), rel=1e-12,
                                                                  nan_ok=True), f"{text!r} at point {j}"


# -- emitted + jitted kernels of each op, through compile_expr ----------------------------------------
def _kernel_params():
    for name in ELEMENTWISE:
        row = ROWS.get(name)
        if row is not None and row.expr is None:
            yield pytest.param(name, id=f"{name}-skipped-{row.why_no_expr}", marks=pytest.mark.skip(row.why_no_expr))
        else:
            yield pytest.param(name, id=name)


_SYMBOLS = sp.symbols("x y z", real=True)


def _no_distributions(d: sp.Expr) -> sp.Expr:
    """sympy.diff of floor/sign gives Derivative/DiracDelta: zero away from the jumps the points avoid."""
    return d.replace(lambda e: isinstance(e, (sp.Derivative, sp.DiracDelta)), lambda e: sp.S.Zero)


def sympy_diff(expr: sp.Expr, s: sp.Symbol) -> sp.Expr:
    """sympy.diff, with Mod and frac written as SymPy defines them (it leaves their derivatives unevaluated)."""
    expr = expr.replace(sp.Mod, lambda a, b: a - b * sp.floor(a / b)).replace(sp.frac, lambda a: a - sp.floor(a))
    return _no_distributions(sp.diff(expr, s))


#: lambdify's modules: SymPy's C functions NumPy's printer does not know
LAMBDIFY_MODULES = [{"Cbrt": np.cbrt, "fma": lambda a, b, c: a * b + c}, "scipy", "numpy"]


@dataclass
class Compiled:
    name: str
    expr: sp.Basic
    symbols: tuple[sp.Symbol, ...]
    program: Any
    module: Any
    points: list[np.ndarray] = field(default_factory=list)


def _expr_points(record: Op, nargs: int) -> list[np.ndarray]:
    points = sample(record, n=40, salt=3)
    if len(points) != nargs:
        rng = _rng(record.name, 4)
        lo, hi = record.domain[0]
        points = [rng.uniform(lo, hi, 40) for _ in range(nargs)]
    return points


def _arg_count(build: Callable[..., sp.Basic]) -> int:
    """Symbols a row's SymPy builder takes: its parameters without defaults (a SymPy class: one)."""
    if isinstance(build, type):
        return 1
    params = inspect.signature(build).parameters.values()
    return sum(1 for p in params if p.default is inspect.Parameter.empty)


_compiled: dict[str, Compiled] = {}


def compiled(name: str) -> Compiled:
    """The op's tiny module, compiled once per session."""
    if name not in _compiled:
        build = ROWS[name].expr
        nargs = _arg_count(build)
        symbols = _SYMBOLS[:nargs]
        expr = build(*symbols)
        program = pipeline.expr_program(expr, list(symbols))
        module = gradc.compile_expr(expr, list(symbols))
        _compiled[name] = Compiled(name, expr, symbols, program, module, _expr_points(OPS[name], nargs))
    return _compiled[name]


@pytest.mark.parametrize("name", list(_kernel_params()))
def test_sympy_expression_lowers_to_the_op(name):
    c = compiled(name)
    ops = {n.op for n in ir.topological_order([*c.program.outputs, *c.program.grads])}
    assert name in ops, f"{c.expr} did not lower to {name!r} (ops: {sorted(ops)})"
    if ROWS[name].gate:
        form = FORMS[name]
        if form.note:
            assert form.note in c.module.source
        else:
            point_names = [f"{s.name}_i" for s in c.symbols]
            forms = [t.format(*point_names) for t in (form.emit, form.vector) if isinstance(t, str)]
            assert any(form in c.module.source for form in forms)


@pytest.mark.parametrize("name", list(_kernel_params()))
def test_kernel_matches_interpreter_and_sympy(name):
    c = compiled(name)
    points = c.points
    value, grads = c.module.value_and_grad(*points)   # (forward kernels: test_expr.py; one compile per op here)
    feed = {s.name: p for s, p in zip(c.symbols, points)}
    want_value, *want_grads = interpret.evaluate([*c.program.outputs, *c.program.grads], feed)
    np.testing.assert_allclose(value, np.broadcast_to(want_value, value.shape), rtol=1e-12, atol=1e-14)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-12, atol=1e-14)
    # and the program is the expression's: values and derivatives against SymPy itself
    oracle = sp.lambdify(c.symbols, c.expr, LAMBDIFY_MODULES)
    np.testing.assert_allclose(value, np.broadcast_to(oracle(*points), value.shape), rtol=1e-12, atol=1e-14)
    for s, got in zip(c.symbols, grads):
        d = sp.lambdify(c.symbols, sympy_diff(c.expr, s), LAMBDIFY_MODULES)
        np.testing.assert_allclose(got, np.broadcast_to(d(*points), got.shape), rtol=1e-10, atol=1e-12,
                                   err_msg=f"d/d{s}")


def test_broadcast_rule_of_the_table():
    assert broadcast((), ("N",)) == ("N",)
    assert broadcast(("N", 1), (1, 3)) == ("N", 3)
    with pytest.raises(ValueError):
        broadcast((2,), (3,))


# -- each op's `vectorises` flag is what LLVM does with its printed form -----------------------------
@functools.cache
def _runtime_math_scope() -> dict:
    """The runtime's vector math and special functions (imported as the ordinary modules they also are: their
    functions are cached on disk, which needs a file), shared by the loops below (compiled once each)."""
    import numba as nb

    from gradc.runtime import special, vector_math
    return {**vars(vector_math), **vars(special), "nb": nb, "np": np, "math": math}


def _loop_ir(record: Op) -> tuple[str, ir.Node]:
    """LLVM IR of a loop computing the op's vector form (exp beside it, so the loop has work to vectorise)."""
    g = Graph()
    args = [g.input(f"x{k}") for k in range(_arity(record))]
    node = g.apply(record.name, *args)
    text = Printer(Naming({id(x): f"a{k}" for k, x in enumerate(args)}, set(), Meta()), vector=True).text(node)
    loads = [f"a{k} = x{k}[np.uint64(i)]" + (" > 0.0" if _bool_input(record, k) else "") for k in range(len(args))]
    params = ", ".join(f"x{k}" for k in range(len(args)))
    source = "\n".join([
        "@nb.njit(error_model='numpy')",
        f"def loop({params}, out):",
        "    for i in range(out.shape[0]):",
        *(f"        {line}" for line in loads),
        f"        out[np.uint64(i)] = np.float64({text}) + _exp(x0[np.uint64(i)])"])
    scope = dict(_runtime_math_scope())
    exec(source, scope)   # noqa: S102 - our own printed text
    loop = scope["loop"]
    points = [np.linspace(0.1, 0.9, 64) for _ in args]
    loop(*points, np.empty(64))
    return loop.inspect_llvm(loop.signatures[0]), node


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_an_ops_vectorises_flag_is_what_llvm_does_with_its_loop(name):
    record = OPS[name]
    llvm_ir, node = _loop_ir(record)
    packed = "<4 x double>" in llvm_ir or "<8 x double>" in llvm_ir
    flag = vectorises([node])   # the emitter's answer for a loop of this one op
    assert packed is flag, f"{name}: vectorises={flag}, packed loop={packed}"

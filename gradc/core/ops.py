"""THE op table: one `Op` record per primitive, and nothing about an op lives anywhere else.

A record says how the op evaluates (NumPy reference semantics), how its shape and dtype follow from
its inputs, how it differentiates (a VJP written with IR builders), how it is printed in generated
code, which SymPy class lowers to it, and where tests may sample its inputs. Tests are generated
from this table, so a new op is tested the day it is added.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
from scipy import special

from gradc.core import ir
from gradc.core.ir import Node

Domain = tuple[tuple[float, float], ...]   # per input: the interval tests sample from


@dataclass(frozen=True)
class Op:
    """One primitive. `vjp(g, out, *inputs, **attrs)` returns one adjoint (or None = zero) per input;
    `vjp=None` means the op is not differentiable and autodiff raises. `emit` is a template over the
    printed inputs (`{0}`, `{1}`, ...) or a callable `(args, node) -> str | (str, prec)` for the rare odd
    case (a tuple when the printed form binds less tightly than `prec`, as `a * a` does for `a ** 2`).
    Inputs are parenthesised to bind at least as tightly as `prec`: a template that applies an operator
    to an input (`-{0}`) needs a `prec` of that operator's strength, not the atom's.

    Kernel loops vectorise (LLVM computes 4 points per instruction) when every op in them allows it:
    `vectorises` is False (or a per-node test) for an op printed as a libm call LLVM cannot vectorise
    (erf; tan, arcsin... before LLVM 20); sin, cos, log and pow are LLVM intrinsics, which a vectorised
    loop calls lane by lane, and so are tan, arcsin, ... from LLVM 20 on (tests/test_ops_table.py
    checks each flag against the LLVM IR of a loop). `vector` is the op's form in such a loop where it
    differs from `emit`: runtime_math's libm-free functions, which vectorise (a loop that stays scalar
    keeps `emit`: libm is faster one value at a time)."""

    name: str
    eval: Callable[..., Any]
    vjp: Callable[..., tuple[Node | None, ...]] | None
    emit: str | Callable[[list[str], Node], str]
    arity: int | None = 1                 # None: variadic
    sympy: type | None = None             # SymPy class lowering one-to-one to this op
    domain: Domain = ((-2.0, 2.0),)
    prec: int = 100                       # printing precedence of the emitted expression
    hint: str = "t"                       # name stem of emitted values
    shape: Callable[..., tuple] = lambda *xs, **_: broadcast(*(x.shape for x in xs))
    dtype_rule: Callable[..., str] = lambda dtype, *xs: dtype
    simplify: Callable[..., Node | None] | None = None   # algebraic identities applied while building
    foldable: bool = True                 # all-constant inputs fold to a constant
    note: str = ""                        # what the generated backward comment says of this gate
    vector: str | Callable[[list[str], Node], str] | None = None   # form in a loop that vectorises
    vectorises: bool | Callable[[Node], bool] = True                  # a loop calling it can vectorise


def broadcast(*shapes: tuple) -> tuple:
    """NumPy broadcasting of shapes whose dimensions may be symbolic (the batch size "N")."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for k in range(rank):
        dims = {s[len(s) - rank + k] for s in shapes if len(s) - rank + k >= 0} - {1}
        if len(dims) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _zero_vjp(g, out, *inputs, **_):
    return (None,) * len(inputs)


def _is(node: Node, value: float) -> bool:
    return node.is_const and node.value == value


# -- simplifiers: identities that hold for every float the kernels meet (x*0 -> 0 as in every AD system)
def _simplify_add(a, b):
    if _is(a, 0.0):
        return b
    if _is(b, 0.0):
        return a
    if b.op == "neg":
        return a - b.inputs[0]
    return None


def _simplify_sub(a, b):
    if _is(b, 0.0):
        return a
    if _is(a, 0.0):
        return -b
    return a.graph.const(0.0) if a is b else None


def _simplify_mul(a, b):
    for x, y in ((a, b), (b, a)):
        if _is(x, 1.0):
            return y
        if _is(x, 0.0):
            return x
        if _is(x, -1.0):
            return -y
    return None


def _simplify_div(a, b):
    return a if _is(b, 1.0) else None


def _simplify_neg(a):
    return a.inputs[0] if a.op == "neg" else None


def _simplify_pow(a, b):
    if _is(b, 1.0):
        return a
    if _is(b, 0.0):
        return a.graph.const(1.0)
    return None


def _simplify_select(c, a, b):
    if a is b:
        return a
    return (a if c.value else b) if c.is_const else None


def _emit_pow(args: list[str], node: Node) -> str | tuple[str, int]:
    base, exponent = node.inputs
    if exponent.is_const and exponent.value == 2.0:
        return f"{args[0]} * {args[0]}", _MUL_PREC
    if exponent.is_const and exponent.value == -1.0:
        return f"1.0 / {args[0]}", _MUL_PREC
    if exponent.is_const and exponent.value == 0.5:
        return f"np.sqrt({args[0]})"
    if exponent.is_const and exponent.value.is_integer() and abs(exponent.value) <= 64:
        return f"{args[0]} ** {int(exponent.value)}"   # an int literal lets Numba multiply, not call pow
    return f"{args[0]} ** {args[1]}"


def _libm_vectorises(node: Node) -> bool:
    """LLVM 20 and later (llvmlite >= 0.45) vectorise a loop calling tan, arcsin, arccos, arctan, arctan2,
    sinh or cosh, calling libm lane by lane; LLVM 15 keeps such a loop scalar."""
    from llvmlite import binding
    return binding.llvm_version_info >= (20,)


def _pow_vectorises(node: Node) -> bool:
    """`a ** -3` makes Numba branch (for a = 0), which keeps the loop scalar; other powers multiply or
    call LLVM's pow intrinsic."""
    exponent = node.inputs[1]
    return not (exponent.is_const and exponent.value.is_integer() and -64 <= exponent.value < -1)


def _vjp_pow(g, out, a, b):
    d_b = None if b.is_const else g * out * ir.log(a)
    return g * b * a ** (b - 1.0), d_b


def _vjp_max(g, out, a, b):
    first = ir.ge(a, b)   # ties go to the first argument (SymPy orders Max(z, 0) as Max(0, z): relu'(0) = 0)
    zero = g.graph.const(0.0)
    return ir.select(first, g, zero), ir.select(first, zero, g)


def _vjp_min(g, out, a, b):
    first = ir.ge(b, a)
    zero = g.graph.const(0.0)
    return ir.select(first, g, zero), ir.select(first, zero, g)


def _eval_logsumexp(shift, *terms):
    return shift + np.log(sum(np.exp(t - shift) for t in terms))


def _emit_logsumexp(args: list[str], node: Node, exp: str = "np.exp") -> str:
    shift, terms = args[0], args[1:]
    return f"{shift} + np.log({' + '.join(f'{exp}({t} - {shift})' for t in terms)})"


def _vector_logsumexp(args: list[str], node: Node) -> str:
    return _emit_logsumexp(args, node, exp="_exp")


def _vjp_logsumexp(g, out, shift, *terms):
    return (None, *(g * ir.exp(t - out) for t in terms))   # softmax weights; the shift cancels


def _bool(dtype, *xs):
    return "bool"


_POS = ((0.2, 4.0),)
_UNIT = ((-0.9, 0.9),)
_ADD_PREC, _MUL_PREC, _NEG_PREC, _POW_PREC, _CMP_PREC = 11, 12, 13, 14, 6

_RECORDS = [
    # arithmetic
    Op("add", np.add, lambda g, out, a, b: (g, g), "{0} + {1}", 2, sympy.Add, ((-2, 2),) * 2,
       _ADD_PREC, "sum", simplify=_simplify_add),
    Op("sub", np.subtract, lambda g, out, a, b: (g, -g), "{0} - {1}", 2, None, ((-2, 2),) * 2,
       _ADD_PREC, "diff", simplify=_simplify_sub),
    Op("mul", np.multiply, lambda g, out, a, b: (g * b, g * a), "{0} * {1}", 2, sympy.Mul, ((-2, 2),) * 2,
       _MUL_PREC, "prod", simplify=_simplify_mul),
    Op("div", np.divide, lambda g, out, a, b: (g / b, -g * out / b), "{0} / {1}", 2, None,
       ((-2, 2), (0.5, 3)), _MUL_PREC, "quot", simplify=_simplify_div),
    Op("neg", np.negative, lambda g, out, a: (-g,), "-{0}", 1, None, ((-2, 2),), _NEG_PREC, "neg",
       simplify=_simplify_neg),
    Op("pow", np.power, _vjp_pow, _emit_pow, 2, sympy.Pow, ((0.2, 3), (-2, 2)), _POW_PREC, "pow",
       simplify=_simplify_pow, vectorises=_pow_vectorises),
    # elementary functions
    Op("exp", np.exp, lambda g, out, a: (g * out,), "np.exp({0})", sympy=sympy.exp, hint="exp",
       vector="_exp({0})"),
    Op("log", np.log, lambda g, out, a: (g / a,), "np.log({0})", sympy=sympy.log, domain=_POS, hint="log"),
    Op("sqrt", np.sqrt, lambda g, out, a: (g * 0.5 / out,), "np.sqrt({0})", domain=_POS, hint="sqrt"),
    Op("sin", np.sin, lambda g, out, a: (g * ir.cos(a),), "np.sin({0})", sympy=sympy.sin, hint="sin"),
    Op("cos", np.cos, lambda g, out, a: (-(g * ir.sin(a)),), "np.cos({0})", sympy=sympy.cos, hint="cos"),
    Op("tan", np.tan, lambda g, out, a: (g * (1.0 + out * out),), "np.tan({0})", sympy=sympy.tan,
       domain=((-1.2, 1.2),), hint="tan", vectorises=_libm_vectorises),
    Op("asin", np.arcsin, lambda g, out, a: (g / ir.sqrt(1.0 - a * a),), "np.arcsin({0})", sympy=sympy.asin,
       domain=_UNIT, hint="asin", vectorises=_libm_vectorises),
    Op("acos", np.arccos, lambda g, out, a: (-g / ir.sqrt(1.0 - a * a),), "np.arccos({0})",
       sympy=sympy.acos, domain=_UNIT, hint="acos", vectorises=_libm_vectorises),
    Op("atan", np.arctan, lambda g, out, a: (g / (1.0 + a * a),), "np.arctan({0})", sympy=sympy.atan,
       hint="atan", vectorises=_libm_vectorises),
    Op("atan2", np.arctan2, lambda g, out, y, x: (g * x / (x * x + y * y), -g * y / (x * x + y * y)),
       "np.arctan2({0}, {1})", 2, sympy.atan2, ((0.3, 2), (0.3, 2)), hint="atan2", vectorises=_libm_vectorises),
    Op("sinh", np.sinh, lambda g, out, a: (g * ir.cosh(a),), "np.sinh({0})", sympy=sympy.sinh, hint="sinh",
       vectorises=_libm_vectorises),
    Op("cosh", np.cosh, lambda g, out, a: (g * ir.sinh(a),), "np.cosh({0})", sympy=sympy.cosh, hint="cosh",
       vectorises=_libm_vectorises),
    Op("tanh", np.tanh, lambda g, out, a: (g * (1.0 - out * out),), "np.tanh({0})", sympy=sympy.tanh,
       hint="tanh", vector="_tanh({0})"),
    Op("erf", special.erf, lambda g, out, a: (g * (2.0 / math.sqrt(math.pi)) * ir.exp(-(a * a)),),
       "math.erf({0})", sympy=sympy.erf, hint="erf", vectorises=False),
    # piecewise-smooth
    Op("abs", np.abs, lambda g, out, a: (g * ir.sign(a),), "abs({0})", sympy=sympy.Abs, hint="abs"),
    Op("sign", np.sign, _zero_vjp, "np.sign({0})", sympy=sympy.sign, hint="sign"),
    Op("floor", np.floor, _zero_vjp, "np.floor({0})", sympy=sympy.floor, hint="floor"),
    Op("ceil", np.ceil, _zero_vjp, "np.ceil({0})", sympy=sympy.ceiling, hint="ceil"),
    Op("max", np.maximum, _vjp_max, "max({0}, {1})", 2, sympy.Max, ((-2, 2),) * 2, hint="max",
       note="max gate: routes to the larger"),
    Op("min", np.minimum, _vjp_min, "min({0}, {1})", 2, sympy.Min, ((-2, 2),) * 2, hint="min",
       note="min gate: routes to the smaller"),
    Op("select", np.where, lambda g, out, c, a, b: (None, ir.select(c, g, 0.0 * g), ir.select(c, 0.0 * g, g)),
       "{1} if {0} else {2}", 3, sympy.Piecewise, ((0, 1), (-2, 2), (-2, 2)), 1, "sel",
       simplify=_simplify_select),
    # comparisons and logic (conditions of Piecewise); they carry no gradient
    Op("gt", np.greater, _zero_vjp, "{0} > {1}", 2, sympy.StrictGreaterThan, ((-2, 2),) * 2, _CMP_PREC, "gt",
       dtype_rule=_bool),
    Op("ge", np.greater_equal, _zero_vjp, "{0} >= {1}", 2, sympy.GreaterThan, ((-2, 2),) * 2, _CMP_PREC, "ge",
       dtype_rule=_bool),
    Op("lt", np.less, _zero_vjp, "{0} < {1}", 2, sympy.StrictLessThan, ((-2, 2),) * 2, _CMP_PREC, "lt",
       dtype_rule=_bool),
    Op("le", np.less_equal, _zero_vjp, "{0} <= {1}", 2, sympy.LessThan, ((-2, 2),) * 2, _CMP_PREC, "le",
       dtype_rule=_bool),
    Op("eq", np.equal, _zero_vjp, "{0} == {1}", 2, sympy.Eq, ((-2, 2),) * 2, _CMP_PREC, "eq", dtype_rule=_bool),
    Op("ne", np.not_equal, _zero_vjp, "{0} != {1}", 2, sympy.Ne, ((-2, 2),) * 2, _CMP_PREC, "ne",
       dtype_rule=_bool),
    Op("and", np.logical_and, _zero_vjp, "{0} and {1}", 2, sympy.And, ((0, 1),) * 2, 4, "both",
       dtype_rule=_bool),
    Op("or", np.logical_or, _zero_vjp, "{0} or {1}", 2, sympy.Or, ((0, 1),) * 2, 3, "either", dtype_rule=_bool),
    Op("not", np.logical_not, _zero_vjp, "not {0}", 1, sympy.Not, ((0, 1),), 5, "neither", dtype_rule=_bool),
    # gates: recognised by passes.py where the chain rule of their expansion is unstable or slow
    Op("sigmoid", special.expit, lambda g, out, a: (g * out * (1.0 - out),), "1.0 / (1.0 + np.exp(-{0}))",
       prec=_MUL_PREC, hint="sig", note="sigmoid gate: σ' = σ(1-σ)", vector="1.0 / (1.0 + _exp(-{0}))"),
    Op("softplus", lambda a: np.logaddexp(0.0, a), lambda g, out, a: (g * ir.sigmoid(a),),
       # exp(-|u|) as min(e, 1/e) of e = exp(-u): the σ(u) of its gradient, 1/(1 + exp(-u)), then calls
       # the same exp, which LLVM computes once (mixed3's kernel, libm calls per point: 68.5 -> 62.6 ms);
       # below u = -709.78 it gives 0 where e**u is subnormal, as σ(u) does
       "max({0}, 0.0) + np.log1p(min(np.exp(-{0}), 1.0 / np.exp(-{0})))", prec=_ADD_PREC, hint="softplus",
       note="softplus gate: d/du = σ(u)", vector="max({0}, 0.0) + _log1p(min(_exp(-{0}), 1.0 / _exp(-{0})))"),
    Op("log1p", np.log1p, lambda g, out, a: (g / (1.0 + a),), "np.log1p({0})", domain=((-0.5, 3),),
       hint="log1p", vector="_log1p({0})"),
    Op("logsumexp", _eval_logsumexp, _vjp_logsumexp, _emit_logsumexp, None, domain=((-2, 2),) * 3,
       prec=_ADD_PREC, hint="lse", note="logsumexp gate: softmax weights", vector=_vector_logsumexp),
]

OPS: dict[str, Op] = {record.name: record for record in _RECORDS}

# SymPy class -> op name, for the classes that lower one-to-one.
SYMPY_OPS: dict[type, str] = {r.sympy: r.name for r in _RECORDS if r.sympy is not None}


# -- matrix ops of MLP programs (batch-major; "N" is the symbolic batch size) ------------------------
def _matmul_shape(a, b, ta=False, tb=False):
    rows = a.shape[1] if ta else a.shape[0]
    cols = b.shape[0] if tb else b.shape[1]
    return (rows, cols)


def _eval_matmul(a, b, ta=False, tb=False):
    return (a.T if ta else a) @ (b.T if tb else b)


def short_side_first(rows: int | str, cols: int | str) -> bool:
    """Whether a weight gradient `a.T @ g` of shape (fan_in, fan_out) = (rows, cols) is printed
    `_matmul(g.T, a).T`: when fan_out <= fan_in / 4, OpenBLAS runs the product with the short side first at
    0.62-1.00 of the time (0.87 at 64x1000x100, 0.63 at 10x784x30), where with fan_out >= fan_in / 3
    that is 0.94-1.18 (benchmarks/README). The gradient is then a Fortran-ordered array, which NumPy
    updates like any other."""
    return isinstance(rows, int) and isinstance(cols, int) and 4 * cols <= rows


def _emit_matmul(args: list[str], node: Node) -> str:
    """`_matmul(a, b)` (runtime_blas: the BLAS chosen at import) with `.T` on a transposed operand
    (BLAS reads the transpose: no copy), or a narrowing layer's weight gradient short side first
    (`short_side_first`)."""
    ta, tb = node.attr("ta", False), node.attr("tb", False)
    if ta and not tb and short_side_first(*node.shape):
        return f"_matmul({args[1]}.T, {args[0]}).T"
    return f"_matmul({args[0]}{'.T' if ta else ''}, {args[1]}{'.T' if tb else ''})"


def _vjp_matmul(g, out, a, b, ta=False, tb=False):
    if ta or tb:
        return None, None   # transposed products only appear in backward passes; no second derivatives
    return ir.call("matmul", g, b, tb=True), ir.call("matmul", a, g, ta=True)


def _emit_sum(args: list[str], node: Node) -> str:
    """A bias gradient: the adjoint of a (N, n) pre-activation summed over the batch axis."""
    if node.attr("axes") != (0,) or len(node.inputs[0].shape) != 2:
        raise NotImplementedError(f"sum over axes {node.attr('axes')} of shape {node.inputs[0].shape}")
    return f"_column_sums({args[0]})"


def _scalar(*xs, **_):
    return ()


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _hinge_margins(a, y):
    correct = (a * y).sum(axis=1, keepdims=True)
    return np.maximum(0.0, a - correct + 1.0) * (1.0 - y)


def _hinge_grad(a, y):
    hit = (_hinge_margins(a, y) > 0).astype(a.dtype)
    return (hit - y * hit.sum(axis=1, keepdims=True)) / a.shape[0]


def _loss(name: str, value, grad) -> list[Op]:
    """A loss L(a, y) -> scalar and its gradient dL/da; emitted as calls of the runtime's fused loops
    `_<name>` and `_<name>_grad` (no temporaries, one pass over the batch each)."""
    return [
        Op(name, value, lambda g, out, a, y: (g * ir.call(f"{name}_grad", a, y), None),
           f"_{name}({{0}}, {{1}})", 2, domain=((-2, 2), (0, 1)), hint="L", shape=_scalar),
        Op(f"{name}_grad", grad, None, f"_{name}_grad({{0}}, {{1}})", 2, domain=((-2, 2), (0, 1)),
           hint="d_a", shape=lambda a, y, **_: a.shape),
    ]


_RECORDS += [
    Op("matmul", _eval_matmul, _vjp_matmul, _emit_matmul, 2, domain=((-1, 1),) * 2,
       hint="mm", shape=_matmul_shape, foldable=False),
    Op("sum", lambda a, axes, keep_shape: np.sum(a, axis=axes).reshape(keep_shape), None, _emit_sum, 1,
       hint="sum", shape=lambda a, axes, keep_shape: keep_shape, foldable=False),
    Op("sumsq", lambda a: np.sum(a * a), lambda g, out, a: (2.0 * g * a,), "np.sum({0} * {0})",
       hint="sumsq", shape=_scalar, foldable=False),
    # an activation: attrs fn is a frontend.mlp.Activation, a scalar program compiled by gradc itself
    Op("act", lambda z, fn: fn.value(z), lambda g, out, z, fn: (g * ir.call("act_deriv", z, fn=fn),),
       lambda args, node: f"{node.attr('fn').helper}({args[0]})", hint="h", foldable=False),
    Op("act_deriv", lambda z, fn: fn.deriv(z), None,
       lambda args, node: f"{node.attr('fn').helper}_deriv({args[0]})", hint="dh", foldable=False),
    *_loss("mse", lambda a, y: 0.5 * np.sum((a - y) ** 2) / a.shape[0], lambda a, y: (a - y) / a.shape[0]),
    *_loss("sum_squared", lambda a, y: np.sum((a - y) ** 2), lambda a, y: 2.0 * (a - y)),
    *_loss("softmax_ce",
           lambda z, y: np.mean(np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - (z * y).sum(1)),
           lambda z, y: (_softmax(z) - y) / z.shape[0]),
    *_loss("bce", lambda a, y: -np.sum(y * np.log(a) + (1 - y) * np.log(1 - a)) / a.shape[0],
           lambda a, y: (a - y) / (a * (1 - a)) / a.shape[0]),
    *_loss("bce_logits", lambda z, y: np.sum(np.logaddexp(0, z) - y * z) / z.shape[0],
           lambda z, y: (special.expit(z) - y) / z.shape[0]),
    *_loss("hinge", lambda a, y: np.sum(_hinge_margins(a, y)) / a.shape[0], _hinge_grad),
]
OPS.update({record.name: record for record in _RECORDS})

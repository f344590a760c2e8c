"""THE op table: what each primitive means, one `Op` record per primitive.

A record says how the op evaluates (NumPy reference semantics), how its shape and dtype follow from
its inputs, which algebraic identities it obeys while being built, and how it differentiates (a VJP
written with IR builders). How an op is printed for Numba is the backend's (backend/forms.py), and
which SymPy class lowers to it is the SymPy frontend's (frontend/functions.py): one record per concern.
Records are made by family constructors (`unary`, `binary`, `comparison`, ...), so each reads as the
few facts that set it apart. Tests are generated from this table, so a new op is tested the day it
is added.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from gradc.core import ir, loops
from gradc.core.ir import Node

Domain = tuple[tuple[float, float], ...]   # per input: the interval tests sample from
Vjp = Callable[..., tuple[Node | None, ...]]


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


def _broadcast_shape(*xs: Node, **_: Any) -> tuple:
    return broadcast(*(x.shape for x in xs))


def _same_dtype(dtype: str, *xs: Node) -> str:
    return dtype


def _bool(dtype: str, *xs: Node) -> str:
    return "bool"


def _scalar(*xs: Node, **_: Any) -> tuple:
    return ()


@dataclass(frozen=True, kw_only=True)
class Op:
    """One primitive. `vjp(g, out, *inputs, **attrs)` returns one adjoint (or None = zero) per input;
    `vjp=None` means the op is not differentiable and autodiff raises naming it."""

    name: str
    eval: Callable[..., Any] | None              # NumPy reference semantics (None: a leaf)
    vjp: Vjp | None
    arity: int | None = 1                        # None: variadic
    shape: Callable[..., tuple] = _broadcast_shape
    dtype_rule: Callable[..., str] = _same_dtype
    simplify: Callable[..., Node | None] | None = None   # algebraic identities applied while building
    foldable: bool = True                        # all-constant inputs fold to a constant
    domain: Domain = ((-2.0, 2.0),)              # where tests sample each input
    vjp_meta: bool = False                       # vjp also takes the program's `meta` (a loop's body pass)


# -- family constructors ----------------------------------------------------------------------------
def leaf(name: str) -> Op:
    """A value no statement computes: a program input or a constant."""
    return Op(name=name, eval=None, vjp=None, arity=0, shape=_scalar, foldable=False, domain=())


def unary(name: str, eval: Callable, vjp: Vjp | None, *, domain: Domain = ((-2.0, 2.0),), **kw: Any) -> Op:
    """An elementwise function of one value."""
    return Op(name=name, eval=eval, vjp=vjp, arity=1, domain=domain, **kw)


def binary(name: str, eval: Callable, vjp: Vjp | None, *, domain: Domain = ((-2.0, 2.0),) * 2, **kw: Any) -> Op:
    """An elementwise function of two values, broadcasting like NumPy."""
    return Op(name=name, eval=eval, vjp=vjp, arity=2, domain=domain, **kw)


def _zero_vjp(g: Node, out: Node, *inputs: Node, **_: Any) -> tuple[None, ...]:
    return (None,) * len(inputs)


def step(name: str, eval: Callable) -> Op:
    """A piecewise-constant function: its derivative is zero almost everywhere."""
    return unary(name, eval, _zero_vjp)


def comparison(name: str, eval: Callable) -> Op:
    """A comparison (a condition of Piecewise): boolean, carries no gradient."""
    return binary(name, eval, _zero_vjp, dtype_rule=_bool)


def logic(name: str, eval: Callable, arity: int) -> Op:
    """A connective of conditions: boolean, carries no gradient."""
    return Op(name=name, eval=eval, vjp=_zero_vjp, arity=arity, dtype_rule=_bool, domain=((0, 1),) * arity)


def loss(name: str, value: Callable, grad: Callable) -> list[Op]:
    """A loss L(a, y) -> scalar of an MLP, and its gradient dL/da as an op of its own (its VJP)."""
    def vjp(g: Node, out: Node, a: Node, y: Node) -> tuple[Node | None, ...]:
        return g * ir.call(f"{name}_grad", a, y), None
    domain = ((-2.0, 2.0), (0.0, 1.0))
    return [binary(name, value, vjp, domain=domain, shape=_scalar),
            binary(f"{name}_grad", grad, None, domain=domain, shape=lambda a, y, **_: a.shape)]


# -- simplifiers: identities that hold for every float the kernels meet (x*0 -> 0 as in every AD system)
def _is(node: Node, value: float) -> bool:
    return node.is_const and node.value == value


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


# -- derivative rules longer than a line -------------------------------------------------------------
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


def _undefined(node: Node) -> bool:
    """nan, or nan + u + ...: the value of a Piecewise where no branch holds (the frontend adds the inputs)."""
    return (node.is_const and math.isnan(node.value)) or (node.op == "add" and _undefined(node.inputs[0]))


def _vjp_select(g, out, c, a, b):
    if _undefined(b):   # undefined where c is false, and so is the gradient (nan where g != 0, so 0 * nan is 0)
        nan = ir.select(ir.eq(g, 0.0 * g), 0.0 * g, g.graph.const(math.nan))
        return None, ir.select(c, g, 0.0 * g), ir.select(c, 0.0 * g, nan)
    return None, ir.select(c, g, 0.0 * g), ir.select(c, 0.0 * g, g)


def _eval_logsumexp(shift, *terms):
    return shift + np.log(sum(np.exp(t - shift) for t in terms))


def _vjp_logsumexp(g, out, shift, *terms):
    return (None, *(g * ir.exp(t - out) for t in terms))   # softmax weights; the shift cancels


def _vjp_atan2(g, out, y, x):
    r2 = x * x + y * y
    return g * x / r2, -g * y / r2


def _eval_sinc(a):
    """sin(a)/a, and 1 at a = 0 (SymPy's sinc)."""
    a = np.asarray(a, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(a == 0.0, 1.0, np.sin(a) / a)


# sinc'(a) = Σ_k (-1)^k 2k a^(2k-1) / (2k+1)!  (k = 1..6) for |a| < 1/2, where (cos a - sinc a)/a cancels
_SINC_SERIES = [(-1) ** k * 2 * k / math.factorial(2 * k + 1) for k in range(1, 7)]


def _vjp_sinc(g, out, a):
    a2 = a * a
    series = g.graph.const(_SINC_SERIES[-1])
    for c in reversed(_SINC_SERIES[:-1]):
        series = c + a2 * series
    near = ir.gt(a.graph.const(0.5), ir.call("abs", a))
    return (g * ir.select(near, a * series, (ir.cos(a) - out) / a),)


def _vjp_mod(g, out, a, b):
    return g, -g * ir.call("floor", a / b)


# -- matrix ops of MLP programs (batch-major; "N" is the symbolic batch size) ------------------------
def _matmul_shape(a, b, ta=False, tb=False):
    rows = a.shape[1] if ta else a.shape[0]
    cols = b.shape[0] if tb else b.shape[1]
    return (rows, cols)


def _eval_matmul(a, b, ta=False, tb=False):
    return (a.T if ta else a) @ (b.T if tb else b)


def _vjp_matmul(g, out, a, b, ta=False, tb=False):
    if ta or tb:
        return None, None   # transposed products only appear in backward passes; no second derivatives
    return ir.call("matmul", g, b, tb=True), ir.call("matmul", a, g, ta=True)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _hinge_margins(a, y):
    correct = (a * y).sum(axis=1, keepdims=True)
    return np.maximum(0.0, a - correct + 1.0) * (1.0 - y)


def _hinge_grad(a, y):
    hit = (_hinge_margins(a, y) > 0).astype(a.dtype)
    return (hit - y * hit.sum(axis=1, keepdims=True)) / a.shape[0]


# -- special functions (printed as calls of gradc/runtime/special.py, or math.gamma) ------------------
def _vjp_polygamma(g, out, a, n=1):
    return (g * ir.call("polygamma", a, n=n + 1),)


def _vjp_lambertw(g, out, a):
    # W' = W / (x (1 + W)) = 1 / ((1 + W) e^W) (as x = W e^W): finite at x = 0, where W'(0) = 1
    return (g / ((1.0 + out) * ir.exp(out)),)


_HALF_SQRT_PI = math.sqrt(math.pi) / 2


_POS = ((0.2, 4.0),)
_UNIT = ((-0.9, 0.9),)

_RECORDS: list[Op] = [
    leaf("input"),
    leaf("const"),
    leaf("index"),   # a loop's integer index (core/loops.py)
    # arithmetic
    binary("add", np.add, lambda g, out, a, b: (g, g), simplify=_simplify_add),
    binary("sub", np.subtract, lambda g, out, a, b: (g, -g), simplify=_simplify_sub),
    binary("mul", np.multiply, lambda g, out, a, b: (g * b, g * a), simplify=_simplify_mul),
    binary("div", np.divide, lambda g, out, a, b: (g / b, -g * out / b), domain=((-2, 2), (0.5, 3)),
           simplify=_simplify_div),
    unary("neg", np.negative, lambda g, out, a: (-g,), simplify=_simplify_neg),
    binary("pow", np.power, _vjp_pow, domain=((0.2, 3), (-2, 2)), simplify=_simplify_pow),
    # elementary functions
    unary("exp", np.exp, lambda g, out, a: (g * out,)),
    unary("log", np.log, lambda g, out, a: (g / a,), domain=_POS),
    unary("sqrt", np.sqrt, lambda g, out, a: (g * 0.5 / out,), domain=_POS),
    unary("sin", np.sin, lambda g, out, a: (g * ir.cos(a),)),
    unary("cos", np.cos, lambda g, out, a: (-(g * ir.sin(a)),)),
    unary("tan", np.tan, lambda g, out, a: (g * (1.0 + out * out),), domain=((-1.2, 1.2),)),
    unary("asin", np.arcsin, lambda g, out, a: (g / ir.sqrt(1.0 - a * a),), domain=_UNIT),
    unary("acos", np.arccos, lambda g, out, a: (-g / ir.sqrt(1.0 - a * a),), domain=_UNIT),
    unary("atan", np.arctan, lambda g, out, a: (g / (1.0 + a * a),)),
    binary("atan2", np.arctan2, _vjp_atan2, domain=((0.3, 2), (0.3, 2))),
    unary("sinh", np.sinh, lambda g, out, a: (g * ir.cosh(a),)),
    unary("cosh", np.cosh, lambda g, out, a: (g * ir.sinh(a),)),
    unary("tanh", np.tanh, lambda g, out, a: (g * (1.0 - out * out),)),
    unary("erf", special.erf, lambda g, out, a: (g * (2.0 / math.sqrt(math.pi)) * ir.exp(-(a * a)),)),
    unary("erfc", special.erfc, lambda g, out, a: (g * (-2.0 / math.sqrt(math.pi)) * ir.exp(-(a * a)),)),
    # inverse hyperbolic functions, expm1, hypot, cbrt: NumPy's own, where the composition loses accuracy
    unary("asinh", np.arcsinh, lambda g, out, a: (g / ir.call("hypot", a, a.graph.const(1.0)),)),   # a² may overflow
    unary("acosh", np.arccosh, lambda g, out, a: (g / (ir.sqrt(a - 1.0) * ir.sqrt(a + 1.0)),), domain=((1.1, 4.0),)),
    unary("atanh", np.arctanh, lambda g, out, a: (g / ((1.0 - a) * (1.0 + a)),), domain=_UNIT),
    unary("expm1", np.expm1, lambda g, out, a: (g * (out + 1.0),)),
    binary("hypot", np.hypot, lambda g, out, a, b: (g * a / out, g * b / out)),
    unary("cbrt", np.cbrt, lambda g, out, a: (g / (3.0 * out * out),), domain=((0.2, 3.0),)),
    unary("sinc", _eval_sinc, _vjp_sinc, domain=((-4.0, 4.0),)),
    # special functions: gamma' = gamma psi, loggamma' = psi, psi^(n)' = psi^(n+1) (polygamma's order n >= 1 is
    # an int attribute; order 0 is the digamma record), erfinv' = sqrt(pi)/2 exp(erfinv^2)
    unary("gamma", special.gamma, lambda g, out, a: (g * out * ir.call("digamma", a),), domain=_POS),
    unary("loggamma", special.gammaln, lambda g, out, a: (g * ir.call("digamma", a),), domain=_POS),
    unary("digamma", special.digamma, lambda g, out, a: (g * ir.call("polygamma", a, n=1),), domain=_POS),
    unary("polygamma", lambda a, n=1: special.polygamma(n, a)[()], _vjp_polygamma, domain=_POS),
    unary("lambertw", lambda a: special.lambertw(a).real, _vjp_lambertw, domain=((-0.3, 4.0),)),
    unary("erfinv", special.erfinv, lambda g, out, a: (g * _HALF_SQRT_PI * ir.exp(out * out),), domain=_UNIT),
    unary("erfcinv", special.erfcinv, lambda g, out, a: (-(g * _HALF_SQRT_PI) * ir.exp(out * out),),
          domain=((0.1, 1.9),)),
    # piecewise-smooth
    unary("abs", np.abs, lambda g, out, a: (g * ir.sign(a),)),
    step("sign", np.sign),
    step("floor", np.floor),
    step("ceil", np.ceil),
    binary("mod", np.mod, _vjp_mod, domain=((-3.0, 3.0), (0.7, 2.0))),
    binary("max", np.maximum, _vjp_max),
    binary("min", np.minimum, _vjp_min),
    Op(name="select", eval=np.where, vjp=_vjp_select, arity=3, domain=((0, 1), (-2, 2), (-2, 2)),
       simplify=_simplify_select),
    # comparisons and logic (conditions of Piecewise); they carry no gradient
    comparison("gt", np.greater),
    comparison("ge", np.greater_equal),
    comparison("lt", np.less),
    comparison("le", np.less_equal),
    comparison("eq", np.equal),
    comparison("ne", np.not_equal),
    logic("and", np.logical_and, 2),
    logic("or", np.logical_or, 2),
    logic("not", np.logical_not, 1),
    # gates: recognised by passes.py where the chain rule of their expansion is unstable or slow
    unary("sigmoid", special.expit, lambda g, out, a: (g * out * (1.0 - out),)),
    unary("softplus", lambda a: np.logaddexp(0.0, a), lambda g, out, a: (g * ir.sigmoid(a),)),
    unary("log1p", np.log1p, lambda g, out, a: (g / (1.0 + a),), domain=((-0.5, 3),)),
    Op(name="logsumexp", eval=_eval_logsumexp, vjp=_vjp_logsumexp, arity=None, domain=((-2, 2),) * 3),
    # loops (core/loops.py): Sum and Product over an index, and the elements of per-point arrays they read
    Op(name="element", eval=loops.eval_element, vjp=loops.vjp_element, arity=None, shape=_scalar, foldable=False,
       domain=()),
    Op(name="scatter", eval=loops.eval_scatter, vjp=loops.vjp_scatter, arity=None,
       shape=lambda value, *index, at, shape: shape, foldable=False, domain=()),
    Op(name="loop", eval=loops.eval_unbound, vjp=loops.vjp, arity=None, shape=loops.loop_shape, foldable=False,
       domain=(), vjp_meta=True),
    # MLP programs: products, the bias gradient's batch sum, the L2 penalty, activations, losses
    binary("matmul", _eval_matmul, _vjp_matmul, domain=((-1, 1),) * 2, shape=_matmul_shape, foldable=False),
    unary("sum", lambda a, axes, keep_shape: np.sum(a, axis=axes).reshape(keep_shape), None,
          shape=lambda a, axes, keep_shape: keep_shape, foldable=False),
    unary("sumsq", lambda a: np.sum(a * a), lambda g, out, a: (2.0 * g * a,), shape=_scalar, foldable=False),
    # an activation: attr fn is a frontend.mlp.Activation, a scalar program compiled by gradc itself
    unary("act", lambda z, fn: fn.value(z), lambda g, out, z, fn: (g * ir.call("act_deriv", z, fn=fn),),
          foldable=False),
    unary("act_deriv", lambda z, fn: fn.deriv(z), None, foldable=False),
    *loss("mse", lambda a, y: 0.5 * np.sum((a - y) ** 2) / a.shape[0], lambda a, y: (a - y) / a.shape[0]),
    *loss("sum_squared", lambda a, y: np.sum((a - y) ** 2), lambda a, y: 2.0 * (a - y)),
    *loss("softmax_ce",
          lambda z, y: np.mean(np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - (z * y).sum(1)),
          lambda z, y: (_softmax(z) - y) / z.shape[0]),
    *loss("bce", lambda a, y: -np.sum(y * np.log(a) + (1 - y) * np.log(1 - a)) / a.shape[0],
          lambda a, y: (a - y) / (a * (1 - a)) / a.shape[0]),
    *loss("bce_logits", lambda z, y: np.sum(np.logaddexp(0, z) - y * z) / z.shape[0],
          lambda z, y: (special.expit(z) - y) / z.shape[0]),
    *loss("hinge", lambda a, y: np.sum(_hinge_margins(a, y)) / a.shape[0], _hinge_grad),
]

OPS: dict[str, Op] = {record.name: record for record in _RECORDS}

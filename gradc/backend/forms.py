"""How each op of the table (core/ops.py) is printed in generated Numba code: one `Form` per op.

A form is a template over the printed inputs (`{0}`, `{1}`, ...) or a callable `(args, node) -> str |
(str, prec)` for the rare odd case (a tuple when the printed form binds less tightly than `prec`, as
`a * a` does for `a ** 2`). Inputs are parenthesised to bind at least as tightly as `prec`: a template
that applies an operator to an input (`-{0}`) needs a `prec` of that operator's strength, not the atom's.

Kernel loops vectorise (LLVM computes several points per instruction) when every op in them allows it:
`vectorises` is False (or a per-node test) for an op printed as a libm call LLVM cannot vectorise
(erf; tan, arcsin... before LLVM 20); sin, cos, log and pow are LLVM intrinsics, which a vectorised
loop calls lane by lane, and so are tan, arcsin, ... from LLVM 20 on (tests/test_ops_table.py checks
each flag against the LLVM IR of a loop). `vector` is the op's form in such a loop where it differs
from `emit`: runtime/vector_math.py's libm-free functions, which vectorise (a loop that stays scalar
keeps `emit`: libm is faster one value at a time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gradc.backend.loops import emit_element
from gradc.core.ir import Node

Template = str | Callable[[list[str], Node], "str | tuple[str, int]"]

ATOM = 100
ADD_PREC, MUL_PREC, NEG_PREC, POW_PREC, CMP_PREC = 11, 12, 13, 14, 6


@dataclass(frozen=True, kw_only=True)
class Form:
    """The printed form of one op."""

    emit: Template
    prec: int = ATOM                      # printing precedence of the emitted expression
    hint: str = "t"                       # name stem of emitted values
    note: str = ""                        # what the generated backward comment says of this gate
    vector: Template | None = None        # form in a loop that vectorises, where it differs
    vectorises: bool | Callable[[Node], bool] = True   # a loop calling it can vectorise
    staged: bool = True                   # a forward value gets a statement of its own (else: where it is used)
    block: bool = False                   # printed as statements (backend/loops.py), never inline


def infix(template: str, prec: int, hint: str) -> Form:
    """An operator: `{0} + {1}`, `-{0}`, `{0} > {1}`."""
    return Form(emit=template, prec=prec, hint=hint)


def numpy_call(function: str, hint: str, **kw) -> Form:
    """A call of one NumPy function on one value: `np.exp({0})`."""
    return Form(emit=f"{function}({{0}})", hint=hint, **kw)


def runtime_call(helper: str, arity: int, hint: str) -> Form:
    """A call of a support function of the runtime (an MLP loss, `_mse(a, y)`)."""
    return Form(emit=f"{helper}({', '.join(f'{{{k}}}' for k in range(arity))})", hint=hint)


def _libm_vectorises(node: Node) -> bool:
    """LLVM 20 and later (llvmlite >= 0.45) vectorise a loop calling tan, arcsin, arccos, arctan, arctan2,
    sinh, cosh or cbrt, calling libm lane by lane; LLVM 15 keeps such a loop scalar (cbrt: not checked)."""
    from llvmlite import binding
    return binding.llvm_version_info >= (20,)


def _emit_pow(args: list[str], node: Node) -> str | tuple[str, int]:
    base, exponent = node.inputs
    if exponent.is_const and exponent.value == 2.0:
        return f"{args[0]} * {args[0]}", MUL_PREC
    if exponent.is_const and exponent.value == -1.0:
        return f"1.0 / {args[0]}", MUL_PREC
    if exponent.is_const and exponent.value == 0.5:
        return f"np.sqrt({args[0]})"
    if exponent.is_const and exponent.value.is_integer() and abs(exponent.value) <= 64:
        return f"{args[0]} ** {int(exponent.value)}"   # an int literal lets Numba multiply, not call pow
    return f"{args[0]} ** {args[1]}"


def _pow_vectorises(node: Node) -> bool:
    """`a ** -3` makes Numba branch (for a = 0), which keeps the loop scalar; other powers multiply or
    call LLVM's pow intrinsic."""
    exponent = node.inputs[1]
    return not (exponent.is_const and exponent.value.is_integer() and -64 <= exponent.value < -1)


def _emit_sinc(args: list[str], node: Node) -> tuple[str, int]:
    """SymPy's sinc: sin(a)/a, 1 at a = 0 (the input printed as an operand of `/`, `prec` = POW_PREC)."""
    return f"(np.sin({args[0]}) / {args[0]} if {args[0]} != 0.0 else 1.0)", ATOM


def _emit_logsumexp(args: list[str], node: Node, exp: str = "np.exp") -> str:
    shift, terms = args[0], args[1:]
    return f"{shift} + np.log({' + '.join(f'{exp}({t} - {shift})' for t in terms)})"


def _vector_logsumexp(args: list[str], node: Node) -> str:
    return _emit_logsumexp(args, node, exp="_exp")


def short_side_first(rows: int | str, cols: int | str) -> bool:
    """Whether a weight gradient `a.T @ g` of shape (fan_in, fan_out) = (rows, cols) is printed
    `_matmul(g.T, a).T`: when fan_out <= fan_in / 4, BLAS runs the product faster with the short side
    first, where for wider outputs it is no faster (benchmarks/README). The gradient is then a
    Fortran-ordered array, which NumPy updates like any other."""
    return isinstance(rows, int) and isinstance(cols, int) and 4 * cols <= rows


def _emit_matmul(args: list[str], node: Node) -> str:
    """`_matmul(a, b)` (runtime/blas.py: the BLAS chosen at import) with `.T` on a transposed operand
    (BLAS reads the transpose: no copy), or a narrowing layer's weight gradient short side first
    (`short_side_first`)."""
    ta, tb = node.attr("ta", False), node.attr("tb", False)
    if ta and not tb and short_side_first(*node.shape):
        return f"_matmul({args[1]}.T, {args[0]}).T"
    return f"_matmul({args[0]}{'.T' if ta else ''}, {args[1]}{'.T' if tb else ''})"


def _emit_sum(args: list[str], node: Node) -> str:
    """A bias gradient: the adjoint of a (N, n) pre-activation summed over the batch axis."""
    if node.attr("axes") != (0,) or len(node.inputs[0].shape) != 2:
        raise NotImplementedError(f"sum over axes {node.attr('axes')} of shape {node.inputs[0].shape}")
    return f"_column_sums({args[0]})"


def _losses(*names: str) -> dict[str, Form]:
    """An MLP loss and its gradient: calls of the runtime's fused loops `_<name>` and `_<name>_grad`."""
    forms = {}
    for name in names:
        forms[name] = runtime_call(f"_{name}", 2, "L")
        forms[f"{name}_grad"] = runtime_call(f"_{name}_grad", 2, "d_a")
    return forms


FORMS: dict[str, Form] = {
    # arithmetic
    "add": infix("{0} + {1}", ADD_PREC, "sum"),
    "sub": infix("{0} - {1}", ADD_PREC, "diff"),
    "mul": infix("{0} * {1}", MUL_PREC, "prod"),
    "div": infix("{0} / {1}", MUL_PREC, "quot"),
    "neg": infix("-{0}", NEG_PREC, "neg"),
    "pow": Form(emit=_emit_pow, prec=POW_PREC, hint="pow", vectorises=_pow_vectorises),
    # elementary functions
    "exp": numpy_call("np.exp", "exp", vector="_exp({0})"),
    "log": numpy_call("np.log", "log"),
    "sqrt": numpy_call("np.sqrt", "sqrt"),
    "sin": numpy_call("np.sin", "sin"),
    "cos": numpy_call("np.cos", "cos"),
    "tan": numpy_call("np.tan", "tan", vectorises=_libm_vectorises),
    "asin": numpy_call("np.arcsin", "asin", vectorises=_libm_vectorises),
    "acos": numpy_call("np.arccos", "acos", vectorises=_libm_vectorises),
    "atan": numpy_call("np.arctan", "atan", vectorises=_libm_vectorises),
    "atan2": Form(emit="np.arctan2({0}, {1})", hint="atan2", vectorises=_libm_vectorises),
    "sinh": numpy_call("np.sinh", "sinh", vectorises=_libm_vectorises),
    "cosh": numpy_call("np.cosh", "cosh", vectorises=_libm_vectorises),
    "tanh": numpy_call("np.tanh", "tanh", vector="_tanh({0})"),
    "erf": numpy_call("math.erf", "erf", vectorises=False),
    "erfc": numpy_call("math.erfc", "erfc", vectorises=False),
    "asinh": numpy_call("np.arcsinh", "asinh", vectorises=False),
    "acosh": numpy_call("np.arccosh", "acosh", vectorises=False),
    "atanh": numpy_call("np.arctanh", "atanh", vectorises=False),
    "expm1": numpy_call("np.expm1", "expm1", vectorises=False),
    "hypot": Form(emit="np.hypot({0}, {1})", hint="hypot", vectorises=False),
    "cbrt": numpy_call("np.cbrt", "cbrt", vectorises=_libm_vectorises),
    "sinc": Form(emit=_emit_sinc, prec=POW_PREC, hint="sinc"),
    # special functions: Numba's math.gamma, and runtime/special.py (loops and branches: no vector forms)
    "gamma": numpy_call("math.gamma", "gamma", vectorises=False),
    "loggamma": numpy_call("_loggamma", "lgamma", vectorises=False),
    "digamma": numpy_call("_digamma", "psi", vectorises=False),
    "polygamma": Form(emit=lambda args, node: f"_polygamma({node.attr('n', 1)}, {args[0]})", hint="psi_n",
                      vectorises=False),
    "lambertw": numpy_call("_lambertw", "W", vectorises=False),
    "erfinv": numpy_call("_erfinv", "erfinv", vectorises=False),
    "erfcinv": numpy_call("_erfcinv", "erfcinv", vectorises=False),
    # piecewise-smooth
    "abs": numpy_call("abs", "abs"),
    "sign": numpy_call("np.sign", "sign"),
    "floor": numpy_call("np.floor", "floor"),
    "ceil": numpy_call("np.ceil", "ceil"),
    "mod": infix("{0} % {1}", MUL_PREC, "mod"),
    "max": Form(emit="max({0}, {1})", hint="max", note="max gate: routes to the larger"),
    "min": Form(emit="min({0}, {1})", hint="min", note="min gate: routes to the smaller"),
    "select": infix("{1} if {0} else {2}", 1, "sel"),
    # comparisons and logic
    "gt": infix("{0} > {1}", CMP_PREC, "gt"),
    "ge": infix("{0} >= {1}", CMP_PREC, "ge"),
    "lt": infix("{0} < {1}", CMP_PREC, "lt"),
    "le": infix("{0} <= {1}", CMP_PREC, "le"),
    "eq": infix("{0} == {1}", CMP_PREC, "eq"),
    "ne": infix("{0} != {1}", CMP_PREC, "ne"),
    "and": infix("{0} and {1}", 4, "both"),
    "or": infix("{0} or {1}", 3, "either"),
    "not": infix("not {0}", 5, "neither"),
    # gates
    "sigmoid": Form(emit="1.0 / (1.0 + np.exp(-{0}))", prec=MUL_PREC, hint="sig", note="sigmoid gate: σ' = σ(1-σ)",
                    vector="1.0 / (1.0 + _exp(-{0}))"),
    # exp(-|u|) as min(e, 1/e) of e = exp(-u): the σ(u) of its gradient, 1/(1 + exp(-u)), then calls the
    # same exp, which LLVM computes once; below u = -709.78 it gives 0 where e**u is subnormal, as σ(u) does
    "softplus": Form(emit="max({0}, 0.0) + np.log1p(min(np.exp(-{0}), 1.0 / np.exp(-{0})))", prec=ADD_PREC,
                     hint="softplus", note="softplus gate: d/du = σ(u)",
                     vector="max({0}, 0.0) + _log1p(min(_exp(-{0}), 1.0 / _exp(-{0})))"),
    "log1p": numpy_call("np.log1p", "log1p", vector="_log1p({0})"),
    "logsumexp": Form(emit=_emit_logsumexp, prec=ADD_PREC, hint="lse", note="logsumexp gate: softmax weights",
                      vector=_vector_logsumexp),
    # loops (printed as blocks by backend/loops.py; an element inline, like a value)
    "element": Form(emit=emit_element, hint="elem", staged=False),   # x_i[j + 1]: named only when read twice
    "scatter": Form(emit="", hint="d_elem", vectorises=False, block=True),
    "loop": Form(emit="", hint="sum", vectorises=False, block=True),
    # MLP programs
    "matmul": Form(emit=_emit_matmul, hint="mm"),
    "sum": Form(emit=_emit_sum, hint="sum"),
    "sumsq": Form(emit="np.sum({0} * {0})", hint="sumsq"),
    "act": Form(emit=lambda args, node: f"{node.attr('fn').helper}({args[0]})", hint="h"),
    "act_deriv": Form(emit=lambda args, node: f"{node.attr('fn').helper}_deriv({args[0]})", hint="dh"),
    **_losses("mse", "sum_squared", "softmax_ce", "bce", "bce_logits", "hinge"),
}

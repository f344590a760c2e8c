"""The pipeline: validate -> lower (frontend) -> differentiate (core) -> emit (backend) -> module objects."""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import sympy

from gradc import __version__
from gradc.backend.expr import emit_expr_module
from gradc.backend.mlp import emit_mlp_module
from gradc.backend.printer import content_hash
from gradc.core.derivatives import derive
from gradc.core.program import Program, differentiate
from gradc.errors import GradcError
from gradc.frontend.indexed import ARRAY_TYPES, free_inputs, input_name
from gradc.frontend.mlp import lower_mlp
from gradc.frontend.realify import real_forms
from gradc.frontend.spec import load_spec
from gradc.frontend.sympy import lower_program
from gradc.module import ExprModule, MLPModule

DTYPES = ("float32", "float64")


def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise GradcError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def _as_exprs(expr: Any) -> tuple[list[sympy.Expr], bool, tuple[int, ...] | None]:
    """(expressions, is_sequence, layout): a Matrix (or matrix expression) gives its entries row by row and
    its shape as the layout; numbers become SymPy numbers; anything else is refused."""
    layout = None
    if isinstance(expr, sympy.MatrixExpr) and not isinstance(expr, sympy.MatrixBase):
        expr = expr.as_explicit()
    if isinstance(expr, sympy.MatrixBase):
        layout = tuple(int(d) for d in expr.shape)
        expr = list(expr)
    many = isinstance(expr, (list, tuple))
    items = list(expr) if many else [expr]
    if many and not items:
        raise GradcError("compile_expr needs at least one expression, got an empty sequence or matrix")
    out = []
    for e in items:
        if isinstance(e, (sympy.MatrixBase, sympy.MatrixExpr)):
            raise TypeError(f"compile_expr takes SymPy expressions or one Matrix, got a {type(e).__name__} of "
                            f"shape {e.shape} inside a sequence: pass the Matrix itself, or its entries (list(M))")
        if isinstance(e, bool) or not isinstance(e, (sympy.Basic, int, float)):
            shown = " ".join(repr(e).split())   # one line, however the object prints itself
            raise TypeError(f"compile_expr takes SymPy expressions, got {type(e).__name__}: {shown:.60}"
                            " (parse text with `gradc compile --expr` or build the expression with sympy)")
        out.append(sympy.Float(e) if isinstance(e, float) else sympy.Integer(e) if isinstance(e, int) else e)
    return out, many, layout


def _symbols(value: Any, what: str) -> list[sympy.Symbol]:
    items = [value] if isinstance(value, (sympy.Symbol, *ARRAY_TYPES)) else list(value)
    for s in items:
        if not isinstance(s, (sympy.Symbol, *ARRAY_TYPES)):
            raise GradcError(f"{what} must be SymPy symbols (or IndexedBase, MatrixSymbol), got {s!r:.60}")
    names = [input_name(s) for s in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GradcError(f"{what} has more than one symbol named {duplicates[0]!r}")
    return items


_STACK_BYTES = 512 << 20   # a thread's stack for SymPy's recursive walks of deeply nested expressions
_RECURSION_LIMIT = 200_000
_deep_lock = threading.Lock()


def _deep(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) in a thread with a 512 MiB stack and Python's recursion limit raised to match:
    SymPy walks expressions recursively (printing, assumptions, free_symbols), so an expression nested
    thousands deep needs both. The limit is the process's: it is raised only while fn runs, one call at
    a time. Whatever fn raises is raised here."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as exc:   # handed to the caller below
            result["error"] = exc

    with _deep_lock:
        old_limit, old_stack = sys.getrecursionlimit(), threading.stack_size(_STACK_BYTES)
        sys.setrecursionlimit(max(old_limit, _RECURSION_LIMIT))
        try:
            worker = threading.Thread(target=run, name="gradc-compile")
            worker.start()
            worker.join()
        finally:
            threading.stack_size(old_stack)
            sys.setrecursionlimit(old_limit)
    if "error" in result:
        raise result["error"]
    return result["value"]


def compile_expr(expr: Any, args: Sequence[sympy.Symbol] | None = None, wrt: Sequence[sympy.Symbol] | None = None,
                 *, name: str = "f", dtype: str = "float64", debug: bool = False) -> ExprModule:
    """Compile a SymPy expression (or a sequence of them) to batched forward and gradient kernels.

    args: ordered input symbols (default: the free symbols sorted by name); wrt: the subset of args
    to differentiate (default: all). Raises UnsupportedError for constructs gradc cannot compile and
    GradcError for symbols missing from args. debug=True emits the same code in serial loops with a
    check after every named intermediate that raises FloatingPointError(naming it, its source
    sub-expression, and the first bad point index).
    """
    return _deep(_compile_expr, expr, args, wrt, name=name, dtype=dtype, debug=debug)


def _compile_expr(expr: Any, args: Sequence[sympy.Symbol] | None, wrt: Sequence[sympy.Symbol] | None, *,
                  name: str, dtype: str, debug: bool) -> ExprModule:
    program = expr_program(expr, args, wrt, name=name, dtype=dtype)
    exprs, many, layout = _as_exprs(expr)
    arg_names = [x.name for x in program.inputs]
    wrt_names = [x.name for x in program.wrt]
    described = ", ".join(program.origin)
    emit = functools.partial(
        emit_expr_module, program,
        source_hash=content_hash(__version__, *(sympy.srepr(e) for e in exprs), repr(arg_names),
                                 repr([arg_names.index(w) for w in wrt_names]), name, program.dtype, repr(debug)),
        regenerate=(f"gradc.compile_expr({_written(described, many, layout)}, "
                    f"args={arg_names}, wrt={wrt_names}, name={name!r}, "
                    f"dtype={program.dtype!r}{', debug=True' if debug else ''}).write(path)"),
        debug=debug)
    # The derivative kernels are most of a large expression's code: derived and emitted when first asked for
    # (the standalone text, the Jacobian, ...). Deep expressions recurse: that emission runs in _deep too.
    return ExprModule(lambda: _deep(lambda: emit(derivatives=derive(program))), program.op_counts(), arg_names,
                      wrt_names, len(program.outputs), gradient_source=emit(), program=program, exprs=exprs)


def expr_program(expr: Any, args: Sequence[sympy.Symbol] | None = None, wrt: Sequence[sympy.Symbol] | None = None,
                 *, name: str = "f", dtype: str = "float64") -> Program:
    """The program `compile_expr` emits (validated, lowered, differentiated), before emission: its outputs
    and gradients are IR that `interpret.evaluate` runs (the tests' oracle)."""
    exprs, many, layout = _as_exprs(expr)
    dtype = _check_dtype(dtype)
    if not isinstance(name, str) or not name:
        raise GradcError(f"name must be a non-empty string, got {name!r:.60}")
    free = set().union(*(free_inputs(e) for e in exprs))
    arg_list = _symbols(sorted(free, key=input_name) if args is None else args, "args")
    wrt_list = arg_list if wrt is None else _symbols(wrt, "wrt")
    missing = [input_name(s) for s in wrt_list if s not in arg_list]
    if missing:
        raise GradcError(f"wrt symbol {missing[0]!r} is not one of args ({', '.join(map(input_name, arg_list))})")
    exprs = real_forms(exprs, arg_list)
    program = lower_program(exprs, arg_list, wrt_list, name=name, dtype=dtype, weighted=many)
    return differentiate(replace(program, layout=layout))


def _written(described: str, many: bool, layout: tuple[int, ...] | None) -> str:
    """How the compiled expression is written in the regenerate line: one, a list, a Matrix."""
    if layout is not None:
        return f"Matrix({layout[0]}, {layout[1]}, [{described}])"
    return f"[{described}]" if many else described


def compile(target: Any, **kwargs: Any):  # noqa: A001 - the public name is gradc.compile
    """Compile a SymPy expression (or a sequence of them) or an MLP spec (dict, path or MLPSpec)."""
    if isinstance(target, (sympy.Basic, int, float)) or (
            isinstance(target, (list, tuple)) and target and all(isinstance(t, sympy.Basic) for t in target)):
        return compile_expr(target, **kwargs)
    if isinstance(target, (dict, str, os.PathLike)) or type(target).__name__ == "MLPSpec":
        return compile_mlp(target, **kwargs)
    raise TypeError(f"gradc.compile takes a SymPy expression or an MLP spec, got {type(target).__name__}")


def compile_mlp(spec: Any, *, name: str | None = None, debug: bool = False) -> MLPModule:
    """Compile an MLP spec (dict, .yaml/.yml/.json/.toml path, or MLPSpec) to an MLPModule.
    Raises SpecError naming the field of any problem in the spec. debug=True checks every named
    intermediate and raises FloatingPointError naming it, its layer, and the first bad index."""
    parsed = load_spec(spec)
    if name is not None:
        parsed = load_spec({**parsed.to_dict(), "name": name})
    program = differentiate(lower_mlp(parsed))
    source = emit_mlp_module(program, content_hash(__version__, parsed.fingerprint(), repr(debug)),
                             f"gradc compile SPEC -o OUT.py  (spec fingerprint {parsed.fingerprint()[:16]})",
                             debug)
    return MLPModule(source, program.op_counts(), parsed)

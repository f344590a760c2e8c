"""Safe parsing of SymPy-syntax math strings (spec fields, CLI arguments) into SymPy expressions.

Nothing is evaluated: ``ast.parse`` output is walked with a strict whitelist and SymPy objects are built
directly; resource guards stop hostile input (huge numbers, deep nesting) from hanging the machine.
"""

from __future__ import annotations

import ast
import difflib
import math
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import sympy

from gradc.errors import GradcError, SpecError

MAX_TEXT_CHARS = 10_000
MAX_AST_DEPTH = 200
MAX_AST_NODES = 5_000
MAX_INT_DIGITS = 100
MAX_EXPONENT = 1_000
# Exact numbers above ~10**330 are rejected: SymPy factors radicands and multiplies coefficients
# eagerly, which gets slow fast (roots of big integers especially, without gmpy).
MAX_NUMBER_BITS = 1_100

_ARITHMETIC = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: sympy.Pow,  # only after _check_power
}  # fmt: skip
_OP_SYMBOLS = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
    ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~", ast.Not: "not", ast.And: "and", ast.Or: "or",
}  # fmt: skip
_CONSTRUCTS = {
    ast.Subscript: "subscript", ast.Lambda: "lambda", ast.IfExp: "conditional expression",
    ast.Compare: "comparison", ast.JoinedStr: "f-string", ast.NamedExpr: "walrus assignment",
    ast.ListComp: "list comprehension", ast.SetComp: "set comprehension", ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression", ast.Starred: "starred argument", ast.List: "list display",
    ast.Tuple: "tuple", ast.Set: "set display", ast.Dict: "dict display",
    # types of rejected ast.Constant values
    str: "string literal", bytes: "bytes literal", bool: "boolean literal", complex: "complex literal",
}  # fmt: skip


def parse_expr(
    text: str,
    functions: Mapping[str, Callable[..., sympy.Expr]],
    constants: Mapping[str, sympy.Expr] = MappingProxyType({}),
    symbols: Collection[str] | None = None,
    *,
    what: str = "expression",
) -> sympy.Expr:
    """Parse ``text`` into a SymPy expression without evaluating any Python code.

    Allowed: int/float literals, names, unary ``+ -``, binary ``+ - * / **``, parentheses and positional
    calls ``f(a, ...)`` where ``f`` is a key of ``functions``. A name resolves to ``constants[name]``,
    else to ``Symbol(name, real=True)`` -- if ``symbols`` is given the name must be in it. Anything else
    (and any resource-guard violation) raises ``SpecError`` whose message contains ``what``.
    """
    if not isinstance(text, str):
        raise SpecError(f"invalid {what}: expected a string, got {type(text).__name__}")
    source = text.strip()  # leading blanks would be an IndentationError in eval mode
    if not source:
        raise SpecError(f"invalid {what}: empty expression")
    if len(source) > MAX_TEXT_CHARS:
        raise SpecError(f"invalid {what}: expression is {len(source)} chars long (limit {MAX_TEXT_CHARS})")
    builder = _Builder(source, functions, constants, None if symbols is None else frozenset(symbols), what)
    tree = builder.parse()
    try:
        return builder.build(tree.body)
    except (RecursionError, MemoryError) as exc:  # SymPy itself may recurse deeply on nested input
        raise builder.error("expression is too deeply nested") from exc


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class _Builder:
    """Translates one whitelisted AST into SymPy; holds the context needed for error messages."""

    source: str
    functions: Mapping[str, Callable[..., sympy.Expr]]
    constants: Mapping[str, sympy.Expr]
    symbols: frozenset[str] | None
    what: str

    def error(self, detail: str) -> SpecError:
        return SpecError(f"invalid {self.what} {_clip(self.source)!r}: {detail}")

    def parse(self) -> ast.Expression:
        """``ast.parse`` in eval mode plus the size/depth guards; syntax errors become ``SpecError``."""
        try:
            tree = ast.parse(self.source, mode="eval")
        except SyntaxError as exc:
            where = f" at line {exc.lineno}, column {exc.offset}" if exc.lineno is not None else ""
            raise self.error(f"syntax error{where}: {exc.msg}") from exc
        except (RecursionError, MemoryError) as exc:  # CPython's parser gives up on very deep nesting
            raise self.error("expression is too deeply nested to parse") from exc
        except ValueError as exc:  # null bytes, on Pythons that do not report them as SyntaxError
            raise self.error(f"cannot parse: {exc}") from exc
        self._check_size(tree)
        return tree

    def _check_size(self, tree: ast.AST) -> None:
        # Iterative walk, so that checking depth cannot itself overflow the stack.
        count, stack = 0, [(tree, 1)]
        while stack:
            node, depth = stack.pop()
            count += 1
            if depth > MAX_AST_DEPTH:
                raise self.error(f"expression nests deeper than {MAX_AST_DEPTH} levels")
            if count > MAX_AST_NODES:
                raise self.error(f"expression has more than {MAX_AST_NODES} syntax nodes")
            children = ast.iter_child_nodes(node)
            stack.extend((c, depth + 1) for c in children if not isinstance(c, ast.expr_context))

    def describe(self, node: ast.AST) -> str:
        """A short human name for a rejected construct, quoting its source text."""
        if isinstance(node, ast.Attribute):
            return f"attribute access '.{node.attr}'"
        segment = _clip(ast.get_source_segment(self.source, node) or "")
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.BoolOp)):
            return f"operator '{_OP_SYMBOLS.get(type(node.op), type(node.op).__name__)}' in {segment!r}"
        if isinstance(node, ast.Constant):
            return f"{_CONSTRUCTS.get(type(node.value), f'{type(node.value).__name__} literal')} {segment!r}"
        return f"{_CONSTRUCTS.get(type(node), type(node).__name__)} {segment!r}"

    def build(self, node: ast.AST) -> sympy.Expr:
        """Dispatch on the whitelisted node types; everything else is rejected by name."""
        if isinstance(node, ast.Constant):
            return self._number(node)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            operand = self.build(node.operand)
            return operand if isinstance(node.op, ast.UAdd) else self._sized(-operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            left, right = self.build(node.left), self.build(node.right)
            if isinstance(node.op, ast.Pow):
                self._check_power(left, right)
            return self._sized(_ARITHMETIC[type(node.op)](left, right))
        if isinstance(node, ast.Call):
            return self._call(node)
        raise self.error(f"{self.describe(node)} is not allowed")

    def _number(self, node: ast.Constant) -> sympy.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"{self.describe(node)} is not allowed")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.error(f"{self.describe(node)} overflows to infinity")
            return sympy.Float(value)
        if abs(value) >= 10**MAX_INT_DIGITS:
            raise self.error(f"integer literal with more than {MAX_INT_DIGITS} digits")
        return sympy.Integer(value)

    def _name(self, name: str) -> sympy.Expr:
        if name in self.constants:
            return self.constants[name]
        if name in self.functions:
            raise self.error(f"function '{name}' used without a call")
        if self.symbols is not None and name not in self.symbols:
            raise self.error(f"unknown name '{name}'{_hint(name, [*self.symbols, *self.constants])}")
        return sympy.Symbol(name, real=True)

    def _call(self, node: ast.Call) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.error(f"call of {self.describe(node.func)} is not allowed")
        name = node.func.id
        if name not in self.functions:
            raise self.error(f"unknown function '{name}'{_hint(name, self.functions)}")
        if node.keywords:  # checked before the arguments are built: reject early, run nothing
            raise self.error(f"keyword arguments in call to '{name}' are not allowed")
        args = [self.build(arg) for arg in node.args]
        try:
            result = self.functions[name](*args)
        except GradcError:
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise self.error(f"function '{name}' rejected its arguments: {exc}") from exc
        if not isinstance(result, sympy.Expr):
            raise self.error(f"function '{name}' returned {type(result).__name__}, not a SymPy expression")
        return self._sized(result)

    def _check_power(self, base: sympy.Expr, exp: sympy.Expr) -> None:
        """Reject ``base**exp`` before SymPy builds it if the exponent or an exact result would be huge."""
        magnitude = _abs_value(exp)
        if magnitude is not None and magnitude > MAX_EXPONENT:
            raise self.error(f"exponent {_clip(str(exp), 30)} exceeds {MAX_EXPONENT} in absolute value")
        if base.is_Rational and exp.is_Rational and base != 0:
            # SymPy evaluates rational powers exactly: bound the result's size before computing it.
            bits = abs(float(exp) * (math.log2(abs(base.p)) - math.log2(base.q)))
            if bits > MAX_NUMBER_BITS:
                raise self.error(f"power {_clip(str(base), 30)}**{exp} is too large (~{int(bits)} bits)")

    def _sized(self, expr: sympy.Expr) -> sympy.Expr:
        """Reject exact numbers above ``MAX_NUMBER_BITS`` in ``expr`` and its first two levels of args.

        That is where SymPy gathers numbers (coefficients, coefficients of sum terms, radicands); deeper
        numbers were checked when their subexpression was built."""
        for term in (expr, *expr.args):
            for atom in (term, *term.args):
                if atom.is_Rational and max(atom.p.bit_length(), atom.q.bit_length()) > MAX_NUMBER_BITS:
                    raise self.error(f"a number exceeds {MAX_NUMBER_BITS} bits")
        return expr


def _abs_value(expr: sympy.Expr) -> float | None:
    """|expr| as a float (inf if it overflows) if ``expr`` is a number; None if symbolic or undefined."""
    if not expr.is_number:
        return None
    try:
        return abs(complex(expr.evalf(15)))
    except OverflowError:
        return math.inf
    except (TypeError, ValueError):  # zoo, nan and friends
        return None


def _hint(name: str, valid: Collection[str]) -> str:
    """'; did you mean ...?' for a near miss, else the list of valid names."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; valid names: {', '.join(sorted(valid))}" if valid else "; none are allowed here"

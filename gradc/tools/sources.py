"""What the command line asks to compile: a spec file, or expressions given with --expr, parsed and
validated into a `Source` (nothing compiled yet). Every problem is a one-line UsageError."""

from __future__ import annotations

import argparse
import keyword
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradc.errors import GradcError

SPEC_SUFFIXES = (".yaml", ".yml", ".json", ".toml")


class UsageError(GradcError):
    """A bad command line (argparse's complaints included)."""


@dataclass
class Source:
    """What the command line asked to compile: a spec, or expressions with their symbols."""

    spec: Any = None                # a validated MLPSpec
    exprs: Any = None               # one SymPy expression, or a list of several
    args: list[Any] | None = None   # SymPy symbols, in order
    wrt: list[Any] | None = None
    name: str = "f"
    dtype: str = "float64"

    def compile(self) -> Any:
        import gradc

        if self.spec is not None:
            return gradc.compile_mlp(self.spec)
        return gradc.compile_expr(self.exprs, self.args, self.wrt, name=self.name, dtype=self.dtype)

    @property
    def title(self) -> str:
        if self.spec is not None:
            from gradc.tools.bench import describe

            return f"MLP {describe(self.spec)}"
        exprs = self.exprs if isinstance(self.exprs, list) else [self.exprs]
        return "; ".join(_clip(str(e), 70) for e in exprs)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def names(text: str, option: str) -> list[str]:
    """'x, y' -> ['x', 'y']; each must be an identifier, and none repeated."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise UsageError(f"{option}: expected comma-separated names, got {text!r}")
    for name in parts:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise UsageError(f"{option}: {name!r} is not a valid name (letters, digits and _, not a keyword)")
    seen = set()
    for name in parts:
        if name in seen:
            raise UsageError(f"{option}: {name!r} is given twice")
        seen.add(name)
    return parts


def _safe_name(name: str | None, default: str | None) -> str | None:
    from gradc.backend.names import sanitize

    if name is None:
        return default
    if not name.strip():
        raise UsageError("--name: expected a non-empty name")
    safe = sanitize(name)
    if safe != name:
        print(f"gradc: note: --name {_clip(repr(name), 60)} is used as {safe!r}", file=sys.stderr)
    return safe


def load_source(ns: argparse.Namespace) -> Source:
    """The spec or expressions named on the command line, parsed and validated (nothing compiled)."""
    if ns.spec is not None and ns.expr:
        raise UsageError("give either a SPEC file or --expr, not both")
    if ns.spec is None and not ns.expr:
        raise UsageError("nothing to compile: give a SPEC file (" + ", ".join(SPEC_SUFFIXES) + ") or --expr EXPR")
    if ns.spec is not None:
        return _spec_source(ns)
    return _expr_source(ns)


def _spec_source(ns: argparse.Namespace) -> Source:
    from gradc.frontend.spec import load_spec

    for option in ("args", "wrt"):
        if getattr(ns, option) is not None:
            raise UsageError(f"--{option} applies to --expr only, not to a spec")
    path = Path(ns.spec)
    if path.suffix.lower() not in SPEC_SUFFIXES:
        raise UsageError(f"SPEC must be a {', '.join(SPEC_SUFFIXES)} file, got {ns.spec!r}"
                         + (" (for an expression use --expr)" if not path.suffix else ""))
    if not path.is_file():
        raise UsageError(f"spec file not found: {ns.spec}" if not path.exists() else f"not a file: {ns.spec}")
    spec = load_spec(path)
    name, dtype = _safe_name(ns.name, None), ns.dtype
    if name is not None or (dtype is not None and dtype != spec.dtype):
        spec = load_spec({**spec.to_dict(), **({"name": name} if name else {}), **({"dtype": dtype} if dtype else {})})
    return Source(spec=spec, name=spec.name, dtype=spec.dtype)


def _expr_source(ns: argparse.Namespace) -> Source:
    import sympy

    from gradc.frontend.functions import TEXT_CONSTANTS, text_functions
    from gradc.frontend.parse import parse_expr

    functions = text_functions()
    arg_names = names(ns.args, "--args") if ns.args is not None else None
    for name in arg_names or ():
        if name in functions or name in TEXT_CONSTANTS:
            kind = "a function" if name in functions else "a constant"
            raise UsageError(f"--args: {name!r} is {kind} name, not a variable")
    many = len(ns.expr) > 1
    exprs = [parse_expr(text, functions, TEXT_CONSTANTS, arg_names,
                        what=f"expression {k + 1}" if many else "expression")
             for k, text in enumerate(ns.expr)]
    found = {s.name: s for e in exprs for s in e.free_symbols}
    if arg_names is None:
        arg_names = sorted(found)
    args = [found.get(n) or sympy.Symbol(n, real=True) for n in arg_names]
    wrt = None
    if ns.wrt is not None:
        wrt = []
        for name in names(ns.wrt, "--wrt"):
            if name not in arg_names:
                listed = ", ".join(arg_names) or "none"
                raise UsageError(f"--wrt: {name!r} is not an argument (arguments: {listed})")
            wrt.append(args[arg_names.index(name)])
    return Source(exprs=exprs if many else exprs[0], args=args, wrt=wrt, name=_safe_name(ns.name, "f"),
                  dtype=ns.dtype or "float64")

"""Support code shared between the modules of one machine.

A written module carries its copy of gradc's runtime (the vector math, the BLAS binding, the loss loops, ...),
so it runs alone. Imported in-process, each copy would be compiled by Numba again for every new expression or
spec, although its text is the same every time: most of a new MLP's first call was spent there. So a module
compiled in-process imports instead, from one shared support module, every runtime definition that reads
nothing of a particular module (`shared_support`); Numba caches those once per machine (next to the shared
file) and each new module compiles only its own kernels and the runtime functions that read its constants.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

from gradc.backend.printer import RUNTIME_MARKER, SUPPORT_MARKER, runtime_source


def _defined(stmt: ast.stmt) -> set[str]:
    """The names a top-level statement binds (a def or class, assignment targets, imports)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    return set()


def _first_line(stmt: ast.stmt) -> int:
    """A statement's first line: its first decorator's, if it has any."""
    decorators = getattr(stmt, "decorator_list", None)
    return decorators[0].lineno if decorators else stmt.lineno


def _loaded(stmt: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _per_module(runtime: str) -> set[str]:
    """What a runtime file's code reads of the module it is copied into: the names its lines above the RUNTIME
    marker stand in for (constants and kernels; not its imports, nor the _PARALLEL setting)."""
    path = Path(__file__).parent.parent / "runtime" / f"{runtime}.py"
    above = path.read_text(encoding="utf-8").split(RUNTIME_MARKER, 1)[0]
    names: set[str] = set()
    for stmt in ast.parse(above).body:
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names |= _defined(stmt)
    return names - {"_PARALLEL"}


#: The loops that may split across threads are compiled able to, whatever a module's _PARALLEL says (which
#: spares a small network's standalone file that compile time; shared, it is paid once): they split only
#: arrays of runtime_threads' _SPLIT_MIN elements, summing each column in the same order either way.
_SETTINGS = "_PARALLEL = True\n"


@functools.cache
def shared_support(runtimes: tuple[str, ...]) -> tuple[str, frozenset[str]]:
    """(the text of the support module shared by every module drawing on `runtimes`, the names it defines):
    the runtimes' imports, the settings, and each statement that reads nothing of a particular module,
    directly or through another statement, in the runtimes' order."""
    per_module = set().union(*(_per_module(r) for r in runtimes))
    statements = []   # (statement, its text)
    for runtime in runtimes:
        text = runtime_source(runtime)
        lines = text.splitlines(keepends=True)
        statements += [(stmt, "".join(lines[_first_line(stmt) - 1:stmt.end_lineno])) for stmt in ast.parse(text).body]
    private = set(per_module)
    changed = True
    while changed:   # a statement reading a module's name, or a statement that does, is the module's own
        changed = False
        for stmt, _ in statements:
            names = _defined(stmt)
            if not isinstance(stmt, (ast.Import, ast.ImportFrom)) and not names <= private \
                    and _loaded(stmt) & private:
                private |= names
                changed = True
    imports = [text for stmt, text in statements if isinstance(stmt, (ast.Import, ast.ImportFrom))]
    shared = [text for stmt, text in statements if not isinstance(stmt, (ast.Import, ast.ImportFrom))
              and not _defined(stmt) & private and not _loaded(stmt) & private]
    names = frozenset(n for stmt, _ in statements if not isinstance(stmt, (ast.Import, ast.ImportFrom))
                      for n in _defined(stmt) if n not in private)
    header = "# gradc's support code shared by the modules compiled in this process (see gradc/backend/support.py)\n"
    return header + "".join(imports) + _SETTINGS + "\n\n" + "\n\n".join(t.strip("\n") + "\n" for t in shared), names


def link(source: str, runtimes: Sequence[str]) -> tuple[str, str, str] | None:
    """(the module `source` with the runtime definitions that the shared support module has replaced by one
    import from it, that module's name, its text), or None for a source without a support section."""
    head, marker, support = source.partition(SUPPORT_MARKER)
    if not marker:
        return None
    shared_text, shared_names = shared_support(tuple(runtimes))
    name = f"gradc_support_{hashlib.sha256(shared_text.encode('utf-8')).hexdigest()[:24]}"
    lines = support.splitlines(keepends=True)
    kept, imported = [], set()
    for stmt in ast.parse(support).body:
        names = _defined(stmt)
        start = _first_line(stmt) - 1
        if names and names <= shared_names and not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            imported |= names
        elif not names and not isinstance(stmt, (ast.Import, ast.ImportFrom)) and _loaded(stmt) <= shared_names:
            continue   # an import-time call of the shared code (e.g. a malloc setting): the shared module runs it
        else:
            kept.append("".join(lines[start:stmt.end_lineno]))
    importing = f"from {name} import {', '.join(sorted(imported))}\n" if imported else ""
    return head + marker + "\n" + importing + "\n".join(kept), name, shared_text

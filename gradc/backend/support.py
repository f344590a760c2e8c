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
import builtins
import functools
import hashlib
import re
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


def _free(function: ast.FunctionDef) -> set[str]:
    """The global names a function reads: what it loads, less its arguments, its locals and the builtins."""
    local = {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
    local |= {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    return _loaded(function) - local - set(dir(builtins))


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


def link(source: str, runtimes: Sequence[str]) -> tuple[str, list[tuple[str, str]]] | None:
    """(the module `source` with the definitions that shared modules have replaced by imports from them, those
    modules as (name, text) in import order), or None for a source without a support section. The first shared
    module is the runtime support of `runtimes`; then one per activation whose loops the module defines (the
    same formula gives the same text in every network, so a new network compiles none of them again)."""
    head, marker, support = source.partition(SUPPORT_MARKER)
    if not marker:
        return None
    shared_text, shared_names = shared_support(tuple(runtimes))
    support_name = _module_name("gradc_support_", shared_text)
    head, activations = _share_activations(head, support_name, shared_names)
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
    importing = f"from {support_name} import {', '.join(sorted(imported))}\n" if imported else ""
    return head + marker + "\n" + importing + "\n".join(kept), [(support_name, shared_text), *activations]


def _module_name(stem: str, text: str) -> str:
    """A shared module's name: `stem` and its text's digest (content-addressed, like its cache file)."""
    return f"{stem}{hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]}"


#: The MLP backend's activation loops: `_act_<name>`, `_act_<name>_both` and `_act_<name>_gate` (backend/mlp.py).
_ACTIVATION = re.compile(r"^(_act_\w+?)(?:_both|_gate)?$")


def _share_activations(head: str, support_name: str, shared_names: frozenset[str]) -> tuple[str, list[tuple[str, str]]]:
    """`head` with each activation's loops replaced by an import from a module of their own, and those modules
    (name, text). An activation's module holds its functions, the imports they read and, from the support
    module, the runtime functions they call; a group reading anything else of `head` stays where it is."""
    tree = ast.parse(head)
    lines = head.splitlines(keepends=True)
    imports = {name: stmt for stmt in tree.body if isinstance(stmt, (ast.Import, ast.ImportFrom))
               for name in _defined(stmt)}
    groups: dict[str, list[ast.stmt]] = {}
    for stmt in tree.body:
        match = _ACTIVATION.match(stmt.name) if isinstance(stmt, ast.FunctionDef) else None
        if match:
            groups.setdefault(match.group(1), []).append(stmt)
    modules, replaced = [], {}   # replaced: first line of each moved statement -> (last line, its import or "")
    for group in groups.values():
        own = {stmt.name for stmt in group}
        read = set().union(*(_free(stmt) for stmt in group)) - own
        settings = "_PARALLEL = True\n" if "_PARALLEL" in read else ""   # a group able to split: see _SETTINGS
        if not read - {"_PARALLEL"} <= set(imports) | shared_names:
            continue
        imported = sorted({ast.unparse(imports[n]) for n in read if n in imports and n not in shared_names})
        from_support = sorted(read & shared_names)
        text = "".join([
            "# an activation's loops, shared by the modules compiled in this process (see gradc/backend/support.py)\n",
            *(line + "\n" for line in imported),
            f"from {support_name} import {', '.join(from_support)}\n" if from_support else "",
            settings, "\n\n",
            "\n\n".join("".join(lines[_first_line(s) - 1:s.end_lineno]) for s in group)])
        name = _module_name("gradc_act_", text)
        modules.append((name, text))
        for k, stmt in enumerate(group):
            importing = f"from {name} import {', '.join(sorted(own))}\n" if k == 0 else ""
            replaced[_first_line(stmt) - 1] = (stmt.end_lineno, importing)
    if not replaced:
        return head, []
    out, i = [], 0
    while i < len(lines):
        if i in replaced:
            end, importing = replaced[i]
            out.append(importing)
            i = end
        else:
            out.append(lines[i])
            i += 1
    return "".join(out), modules

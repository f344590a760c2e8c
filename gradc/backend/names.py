"""Safe names and safe comments for generated code.

Nothing a user wrote reaches generated source except as an identifier made by `sanitize` (ASCII
letters, digits and underscores only) or inside a comment made by `comment` (one line, printable).
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
import unicodedata

# Names the generated modules use for themselves (module globals, wrapper locals and keyword
# parameters); a user's name never shadows them. Emitters add the names their runtime defines
# (`defined_names`), and Python's builtins are never handed out either.
RESERVED = frozenset({"np", "nb", "math", "os", "i", "c", "n", "lo", "hi", "CHUNK", "DTYPE", "ARGS", "WRT",
                      "WRT_INDEX", "OUTPUTS", "forward", "grad", "value_and_grad", "loss", "loss_and_grad",
                      "sgd_step", "init_params", "params", "overload", "cotangents", "shape", "arrays", "args",
                      "outs", "buffers", "grads", "_forward_kernel", "_row_kernel", "_value_and_grad_kernel"})
_MAX_LEN = 40


def sanitize(name: str) -> str:
    """A Python identifier derived from `name`: ASCII [A-Za-z][A-Za-z0-9_]*, not a keyword, builtin or
    reserved name. Non-ASCII letters become their Unicode names' last word (θ -> theta)."""
    parts = []
    for ch in str(name):
        if ch.isascii() and (ch.isalnum() or ch == "_"):
            parts.append(ch)
        elif ch.isalpha():
            word = unicodedata.name(ch, "").split(" ")[-1].lower()
            parts.append(f"_{word}_" if word.isascii() and word.isalpha() else "_")
        else:
            parts.append("_")
    text = re.sub(r"_+", "_", "".join(parts)).strip("_")[:_MAX_LEN].strip("_") or "v"
    if text[0].isdigit():
        text = "v" + text
    if keyword.iskeyword(text) or keyword.issoftkeyword(text) or hasattr(builtins, text) or text in RESERVED:
        text += "_"
    return text


def comment(text: str, limit: int = 72) -> str:
    """`text` made safe to stand after a `#`: one line of printable characters, at most `limit` long."""
    safe = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def defined_names(source: str) -> set[str]:
    """The names a module's top level binds (functions, classes, assignments, imports)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _unusable(name: str) -> bool:
    return keyword.iskeyword(name) or keyword.issoftkeyword(name) or hasattr(builtins, name)


class Namer:
    """Hands out unique identifiers within one scope: never a taken name, keyword or builtin (generated
    code calls min, max, abs and range inside kernels)."""

    def __init__(self, taken: set[str] | frozenset[str] = RESERVED):
        self.taken = set(taken)
        self._tried: dict[str, int] = {}   # stem -> the last k of stem{k} found taken: the search resumes there

    def fresh(self, stem: str) -> str:
        """`stem` if it is free, else the first free stem2, stem3, ... (constant time per name: names are only
        ever added, so the candidates tried before are still taken)."""
        stem = sanitize(stem) if not stem.isidentifier() or not stem.isascii() else stem
        k = self._tried.get(stem, 1)
        name = stem if k == 1 else f"{stem}{k}"
        while name in self.taken or _unusable(name):
            k += 1
            name = f"{stem}{k}"
        self._tried[stem] = k
        self.taken.add(name)
        return name

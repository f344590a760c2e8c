"""Cut pieces out of a generated module's source for printing (shared by the examples)."""

from __future__ import annotations


def function(source: str, name: str) -> str:
    """The text of ``def name(`` in ``source``, from that line to the function's last line."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(f"def {name}("))
    indent = _indent(lines[start])
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent
                                or lines[end].lstrip().startswith(")")):
        end += 1
    return "\n".join(lines[start:end]).rstrip()


def header(source: str) -> str:
    """The comment block at the top of a generated module (what made it, from what, how to regenerate)."""
    lines = []
    for line in source.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())

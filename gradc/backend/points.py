"""The shape every expression kernel has: one function whose loop over the points is split into fixed
chunks run in parallel (`prange`), or serial in the debug build (which checks every value)."""

from __future__ import annotations

from collections.abc import Sequence

_DECORATOR = '@nb.njit(parallel=True, error_model="numpy", cache=True)'
_DEBUG_DECORATOR = '@nb.njit(error_model="numpy", cache=True)  # debug build: serial, checks every value'
_INDENT = " " * 12


def point_kernel(name: str, params: Sequence[str], length: str, body: Sequence[str], debug: bool) -> list[str]:
    """`def name(params)`: `body` (lines, at point i of chunk c) for every point i < `length`."""
    return [_DEBUG_DECORATOR if debug else _DECORATOR, f"def {name}({', '.join(params)}):",
            f"    for c in {'range' if debug else 'nb.prange'}(({length} + CHUNK - 1) // CHUNK):",
            f"        for i in range(c * CHUNK, min({length}, (c + 1) * CHUNK)):",
            *(_INDENT + line for line in body)]

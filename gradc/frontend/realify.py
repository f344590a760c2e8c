"""Real forms of SymPy expressions written with I (placeholder until implemented)."""

from __future__ import annotations

from collections.abc import Sequence

import sympy


def real_forms(exprs: Sequence[sympy.Expr], args: Sequence[sympy.Symbol]) -> list[sympy.Expr]:
    """The expressions as gradc compiles them: unchanged for now."""
    return list(exprs)

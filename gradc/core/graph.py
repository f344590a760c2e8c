"""The builder of the IR: a `Graph` makes every node through `apply`, which folds constants, applies
the op's algebraic simplifications and returns the existing node when an identical one exists (so
common sub-expressions are shared as they are built: CSE is a property of the builder)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradc.core.ir import Node
from gradc.core.ops import OPS


@dataclass
class Graph:
    """Owner and builder of nodes. `dtype` is the floating type of every real-valued node."""

    dtype: str = "float64"
    _table: dict[tuple, Node] = field(default_factory=dict)

    def input(self, name: str, shape: tuple = ()) -> Node:
        """The program input called `name` (a SymPy symbol, a weight matrix, ...)."""
        key = ("input", name)
        if key not in self._table:
            self._table[key] = Node(self, "input", (), (("name", name),), shape, self.dtype)
        return self._table[key]

    def index(self, name: str) -> Node:
        """The integer index called `name` of a loop (core/loops.py)."""
        key = ("index", name)
        if key not in self._table:
            self._table[key] = Node(self, "index", (), (("name", name),), (), "int64")
        return self._table[key]

    def const(self, value: float) -> Node:
        value = float(value)
        key = ("const", value if not math.isnan(value) else "nan")
        if key not in self._table:
            self._table[key] = Node(self, "const", (), (("value", value),), (), self.dtype)
        return self._table[key]

    def apply(self, op: str, *inputs: Node, **attrs: Any) -> Node:
        """Build (or find) `op(*inputs)`; folds constants and applies the op's simplifier first."""
        record = OPS[op]
        if record.simplify is not None:
            simpler = record.simplify(*inputs, **attrs)
            if simpler is not None:
                return simpler
        if inputs and record.foldable and all(x.is_const for x in inputs):
            return self.const(record.eval(*(np.float64(x.value) for x in inputs), **attrs))
        attr_items = tuple(sorted(attrs.items()))
        key = (op, tuple(id(x) for x in inputs), attr_items)
        node = self._table.get(key)
        if node is None:
            node = Node(self, op, tuple(inputs), attr_items, record.shape(*inputs, **attrs),
                        record.dtype_rule(self.dtype, *inputs))
            self._table[key] = node
        return node

"""Reference evaluator of the IR with NumPy: the oracle that emitted and jitted code is tested against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gradc.core import ir, loops
from gradc.core.ir import Node
from gradc.core.ops import OPS


def evaluate(outputs: Sequence[Node], inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Values of `outputs`, given input arrays by input name (NumPy broadcasting between them; an array
    input's own axes trail its batch axes)."""
    with np.errstate(all="ignore"):   # inf/nan propagate as they do in the compiled kernels
        return _run(list(outputs), {}, inputs)


def _run(outputs: list[Node], known: dict[int, Any], inputs: Mapping[str, np.ndarray]) -> list[Any]:
    """Values of `outputs` where the nodes of `known` (by id: a loop's closure and index) have their values."""
    values = dict(known)
    for node in ir.topological_order(outputs):
        if id(node) in values:
            continue
        if node.is_input:
            values[id(node)] = np.asarray(inputs[node.name], dtype=node.dtype)
        elif node.is_const:
            values[id(node)] = np.asarray(node.value, dtype=node.dtype)
        elif node.op == "loop":
            values[id(node)] = loops.evaluate(node, values, lambda out, env: _run(out, env, inputs))
        else:
            args = [values[id(x)] for x in node.inputs]
            values[id(node)] = np.asarray(OPS[node.op].eval(*args, **dict(node.attrs)))
    return [values[id(x)] for x in outputs]

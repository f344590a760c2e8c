"""Reference evaluator of the IR with NumPy: the oracle that emitted and jitted code is tested against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gradc.core import ir
from gradc.core.ir import Node
from gradc.core.ops import OPS


def evaluate(outputs: Sequence[Node], inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Values of `outputs`, given input arrays by input name (NumPy broadcasting between them)."""
    values: dict[int, np.ndarray] = {}
    with np.errstate(all="ignore"):   # inf/nan propagate as they do in the compiled kernels
        for node in ir.topological_order(outputs):
            if node.is_input:
                values[id(node)] = np.asarray(inputs[node.name], dtype=node.dtype)
            elif node.is_const:
                values[id(node)] = np.asarray(node.value, dtype=node.dtype)
            else:
                args = [values[id(x)] for x in node.inputs]
                values[id(node)] = np.asarray(OPS[node.op].eval(*args, **dict(node.attrs)))
    return [values[id(x)] for x in outputs]

"""MLP training-step benchmarks: loss + every parameter gradient of one batch, float64.

The cases of issue 4; the reference of the ratio column is the hand-written NumPy backprop
(``gradc.tools.reference``). The contestants and the timing loop are ``gradc.tools.peers`` (shared with
``gradc bench SPEC``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from gradc.tools.peers import REFERENCE, run_mlp_benchmark

from .report import format_table, target_status


def _spec(name: str, sizes: list[int], hidden: str, output: str, loss: str, bias: bool = True) -> dict[str, Any]:
    layers = [{"units": u, "activation": hidden, "bias": bias} for u in sizes[1:-1]]
    layers.append({"units": sizes[-1], "activation": output, "bias": bias})
    return {"name": name, "input": sizes[0], "layers": layers, "loss": loss, "l2": 0.0, "dtype": "float64"}


#: name -> (spec dict, batch size, issue 4's target for gradc: see report.target_status).
MLP_CASES: dict[str, tuple[dict[str, Any], int, dict[str, Any]]] = {
    "seed000": (_spec("seed000_cs231n", [1000, 100, 10], "sigmoid", "identity", "sum_squared", bias=False), 64,
                {"max_ratio": 0.8}),
    "seed002": (_spec("seed002_nielsen", [784, 30, 10], "sigmoid", "sigmoid", "mse"), 10, {"max_ratio": 0.4}),
    "relu784": (_spec("relu_784_256_128_10", [784, 256, 128, 10], "relu", "identity", "softmax_cross_entropy"),
                128, {"max_ratio": 0.8}),
    "tanh1024": (_spec("tanh_1024x3", [1024, 1024, 1024, 10], "tanh", "identity", "softmax_cross_entropy"), 512,
                 {"beat": ["torch"]}),
    "tiny2": (_spec("tiny_2_16_1", [2, 16, 1], "tanh", "identity", "mse"), 32, {"max_ratio": 0.2}),
}


def case_label(name: str) -> str:
    spec, batch, _ = MLP_CASES[name]
    sizes = "-".join(str(n) for n in [spec["input"], *(layer["units"] for layer in spec["layers"])])
    return f"{name} {sizes} b{batch} {spec['layers'][0]['activation']} {spec['loss']}"


def run_mlp_case(name: str, *, contestants: Iterable[str] | None = None, repeat: int = 30, warmup: int = 3,
                 budget_s: float = 60.0, passes: int = 3, gap_s: float = 0.2,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One MLP case for every contestant (reference first); see :func:`gradc.tools.peers.run_mlp_benchmark`."""
    spec, batch, target = MLP_CASES[name]
    result = run_mlp_benchmark(spec, batch, contestants=contestants, repeat=repeat, warmup=warmup,
                               budget_s=budget_s, passes=passes, gap_s=gap_s, progress=progress)
    return {"kind": "mlp", "name": name, "label": case_label(name), "target": target, **result}


if __name__ == "__main__":  # python -m benchmarks.mlp_cases [case]: a quick look at one case
    which = sys.argv[1] if len(sys.argv) > 1 else "seed000"
    result = run_mlp_case(which, repeat=5)
    print(format_table([result]))
    print("target:", target_status(result), "| reference:", REFERENCE)

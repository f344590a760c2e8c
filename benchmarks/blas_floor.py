"""The BLAS floor of each MLP case: the matrix products alone of one training step.

Forward `H_{i-1} @ W_i`, backward `H_{i-1}.T @ dZ_i` and `dZ_i @ W_i.T`, timed twice: through NumPy's
`@` (its own OpenBLAS: the hand-written NumPy step's floor) and from Numba through gradc's `_matmul` in
the orientations gradc prints (the BLAS a generated module binds, MKL or SciPy's OpenBLAS: see
gradc/runtime/blas.py; weight gradients of narrowing layers short side first: gradc's floor).
Nothing a step does around its products can make it take less than they do, so these floors, next to
issue 4's target, say how close a target is to possible on this machine. Where torch is installed, the
same products through torch (its own BLAS) and torch's full step are timed in the same run: when gradc's
products alone take longer than torch's whole step, "<= torch" cannot be met with this BLAS.

    python benchmarks/blas_floor.py [--repeat 30]        # prints a table; writes nothing
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.mlp_cases import MLP_CASES  # noqa: E402
from gradc.core.ops import short_side_first  # noqa: E402
from gradc.frontend.spec import load_spec  # noqa: E402
from gradc.tools.peers import build_mlp_contestant, make_batch  # noqa: E402
from gradc.tools.timing import Skip, import_peer, time_interleaved  # noqa: E402


def products(sizes: list[int], batch: int, rng: np.random.Generator,
             array: Callable[[np.ndarray], Any] = np.asarray) -> Callable[[], None]:
    """One step's matrix products for layer widths `sizes` and `batch` rows, on random data made into
    `array`s (NumPy's by default: NumPy's OpenBLAS; `torch.from_numpy`: torch's BLAS)."""
    H = [array(rng.standard_normal((batch, n))) for n in sizes]
    W = [array(rng.standard_normal((a, b))) for a, b in zip(sizes, sizes[1:])]

    def step() -> None:
        for i, w in enumerate(W):
            H[i] @ w                       # forward
        for i, w in enumerate(W):
            H[i].T @ H[i + 1]              # d_W_i
            if i:
                H[i + 1] @ w.T             # d_H_{i-1} (not needed for the input)
    return step


@functools.cache
def _numba_products() -> Callable[..., float]:
    """One step's products in a Numba function, through gradc's `_matmul` in the orientations gradc
    prints (`short_side_first[i]` for layer i's weight gradient, as `gradc.core.ops.short_side_first` decides)."""
    import numba as nb

    from gradc.runtime.blas import _matmul

    @nb.njit
    def step(H, W, short_side_first):   # H, W: typed lists of C-ordered arrays
        total = 0.0
        for i in range(len(W)):
            total += _matmul(H[i], W[i])[0, 0]
        for i in range(len(W)):
            if short_side_first[i]:
                total += _matmul(H[i + 1].T, H[i]).T[0, 0]
            else:
                total += _matmul(H[i].T, H[i + 1])[0, 0]
            if i:
                total += _matmul(H[i + 1], W[i].T)[0, 0]
        return total
    return step


def numba_products(sizes: list[int], batch: int, rng: np.random.Generator) -> Callable[[], float]:
    """`products`, from Numba with gradc's orientations."""
    from numba.typed import List
    H = List([rng.standard_normal((batch, n)) for n in sizes])
    W = List([rng.standard_normal((a, b)) for a, b in zip(sizes, sizes[1:])])
    flags = np.array([short_side_first(a, b) for a, b in zip(sizes, sizes[1:])])
    step = _numba_products()
    return lambda: step(H, W, flags)


def _step(name: str, spec: Any, params: dict, X: np.ndarray, Y: np.ndarray) -> Callable[[], object] | None:
    """The benchmark's own contestant `name` on this batch; None where it cannot run (torch missing)."""
    try:
        return build_mlp_contestant(name, spec, params, X, Y).run
    except Skip:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    ns = parser.parse_args(argv)
    from gradc.runtime.blas import _BLAS
    print(f"gradc's products call {_BLAS['name']} ({_BLAS['path']}); NumPy's, its own OpenBLAS")
    print(f"{'case':10} {'NumPy products':>15} {'hand NumPy ms':>14} {'gradc products':>15} {'gradc step':>11} "
          f"{'floor ratio':>12} {'target':>8} {'torch products':>15} {'torch step ms':>14}")
    for name, (spec, batch, target) in MLP_CASES.items():
        sizes = [spec["input"], *(layer["units"] for layer in spec["layers"])]
        s = load_spec(spec)
        params, X, Y = make_batch(s, batch, seed=0)
        torch = _step("torch", s, params, X, Y)
        fns = {"numpy": products(sizes, batch, np.random.default_rng(0)),
               "hand": _step("hand_numpy", s, params, X, Y),
               "gradc_products": numba_products(sizes, batch, np.random.default_rng(0)),
               "gradc": _step("gradc", s, params, X, Y),
               "torch_products": torch and products(sizes, batch, np.random.default_rng(0),
                                                    import_peer("torch").from_numpy),
               "torch": torch}
        # interleaved blocks, each after a pause: the columns of a row share the machine's state
        ms = {k: t.median_ms for k, t in time_interleaved({k: f for k, f in fns.items() if f},
                                                          repeat=ns.repeat, passes=5, gap_s=0.3).items()}
        torch_cols = (f"{ms['torch_products']:15.3f} {ms['torch']:14.3f}" if "torch" in ms
                      else f"{'(no torch)':>15} {'(no torch)':>14}")
        goal = f"<= {target['max_ratio']}" if "max_ratio" in target else "< torch"
        print(f"{name:10} {ms['numpy']:15.3f} {ms['hand']:14.3f} {ms['gradc_products']:15.3f} {ms['gradc']:11.3f} "
              f"{ms['gradc_products'] / ms['hand']:12.2f} {goal:>8} {torch_cols}", flush=True)
    print("floor ratio = gradc's products alone / the hand NumPy step: gradc's ratio cannot go below it.\n"
          "gradc products >= torch step: no gradc step can beat torch's with this BLAS (torch's products"
          " use its own).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

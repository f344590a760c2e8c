"""The BLAS floor of each MLP case: the matrix products alone of one training step.

Forward `H_{i-1} @ W_i`, backward `H_{i-1}.T @ dZ_i` and `dZ_i @ W_i.T`, timed twice: through NumPy's
`@` (its own OpenBLAS: the hand-written NumPy step's floor) and from Numba with the orientations gradc
prints (SciPy's OpenBLAS, weight gradients of narrowing layers short side first: gradc's floor).
Nothing a step does around its products can make it take less than they do, so these floors, next to
issue 4's target, say how close a target is to possible on this machine. torch's full step is timed in
the same run where torch is installed.

    python benchmarks/blas_floor.py [--repeat 30]        # prints a table; writes nothing
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.mlp_cases import MLP_CASES  # noqa: E402
from benchmarks.peers import make_batch  # noqa: E402
from gradc import reference  # noqa: E402
from gradc.frontend.spec import load_spec  # noqa: E402
from gradc.ops import short_side_first  # noqa: E402


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    time.sleep(0.3)   # the other OpenBLAS's threads (NumPy's or Numba's) stop spinning on the cores first
    fn()
    calls = max(1, int(0.005 / max(_once(fn), 1e-7)))   # a sample lasts >= 5 ms
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(samples)


def _once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def products(sizes: list[int], batch: int, rng: np.random.Generator) -> Callable[[], None]:
    """One step's matrix products for layer widths `sizes` and `batch` rows, on random data."""
    H = [rng.standard_normal((batch, n)) for n in sizes]
    W = [rng.standard_normal((a, b)) for a, b in zip(sizes, sizes[1:])]

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
    """One step's products in a Numba function, in the orientations gradc prints (`short_side_first[i]`
    for layer i's weight gradient, as `gradc.ops.short_side_first` decides)."""
    import numba as nb

    @nb.njit
    def step(H, W, short_side_first):   # H, W: typed lists of C-ordered arrays
        total = 0.0
        for i in range(len(W)):
            total += (H[i] @ W[i])[0, 0]
        for i in range(len(W)):
            if short_side_first[i]:
                total += (H[i + 1].T @ H[i]).T[0, 0]
            else:
                total += (H[i].T @ H[i + 1])[0, 0]
            if i:
                total += (H[i + 1] @ W[i].T)[0, 0]
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


def _torch_step(spec: dict, batch: int) -> Callable[[], object] | None:
    try:
        from benchmarks.peers import build_mlp_contestant
        params, X, Y = make_batch(load_spec(spec), batch, seed=0)
        return build_mlp_contestant("torch", load_spec(spec), params, X, Y).run
    except Exception:   # torch not installed (or failed): the column says so
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    ns = parser.parse_args(argv)
    print(f"{'case':10} {'NumPy products':>15} {'hand NumPy ms':>14} {'gradc products':>15} {'floor ratio':>12} "
          f"{'target':>8} {'torch step ms':>14}")
    for name, (spec, batch, target) in MLP_CASES.items():
        sizes = [spec["input"], *(layer["units"] for layer in spec["layers"])]
        floor = _median_ms(products(sizes, batch, np.random.default_rng(0)), ns.repeat)
        gradc_floor = _median_ms(numba_products(sizes, batch, np.random.default_rng(0)), ns.repeat)
        s = load_spec(spec)
        params, X, Y = make_batch(s, batch, seed=0)
        hand = _median_ms(functools.partial(reference.loss_and_grad, s, params, X, Y), ns.repeat)
        torch_step = _torch_step(spec, batch)
        torch_ms = f"{_median_ms(torch_step, ns.repeat):14.3f}" if torch_step else f"{'(no torch)':>14}"
        goal = f"<= {target['max_ratio']}" if "max_ratio" in target else "< torch"
        print(f"{name:10} {floor:15.3f} {hand:14.3f} {gradc_floor:15.3f} {gradc_floor / hand:12.2f} {goal:>8} "
              f"{torch_ms}")
    print("floor ratio = gradc's products alone / the hand NumPy step: gradc's ratio cannot go below it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

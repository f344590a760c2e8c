"""The Rosenbrock function of n variables written as ONE SymPy `Sum` over an `IndexedBase`, compiled by gradc
as a loop (not unrolled), against a hand-written Numba loop: value and full gradient of a batch of points.

    python benchmarks/indexed_sum.py [--n 5000] [--batch 1000] [--repeat 15]

Prints the median time of each, their ratio (target: gradc within 1.2x of the hand loop) and gradc's
compile time (SymPy -> first value and gradient, in a fresh process with an empty cache; and warm).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numba as nb
import numpy as np
import sympy as sp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gradc  # noqa: E402
from gradc.tools.timing import blocked, cold_warm, time_interleaved  # noqa: E402

TARGET_RATIO = 1.2


def rosenbrock_sum(n: int) -> tuple[sp.Expr, sp.IndexedBase]:
    """Σ_{j=0}^{n-2} 100 (x[j+1] - x[j]²)² + (1 - x[j])², as a user writes it."""
    x = sp.IndexedBase("x", shape=(n,))
    j = sp.Symbol("j", integer=True)
    return sp.Sum(100 * (x[j + 1] - x[j] ** 2) ** 2 + (1 - x[j]) ** 2, (j, 0, n - 2)), x


@nb.njit(parallel=True, error_model="numpy", cache=True)
def hand_rosenbrock(x):
    """The loop a Numba user writes: per point, one pass computing the value and the gradient (returned in
    new arrays, as gradc's are, and as the other hand-written loops of benchmarks/expr_cases.py do)."""
    value, grad = np.empty(x.shape[0]), np.empty_like(x)
    for p in nb.prange(x.shape[0]):
        row, g = x[p], grad[p]
        g[:] = 0.0
        total = 0.0
        for j in range(x.shape[1] - 1):
            t = row[j + 1] - row[j] * row[j]
            u = 1.0 - row[j]
            total += 100.0 * t * t + u * u
            g[j] += -400.0 * row[j] * t - 2.0 * u
            g[j + 1] += 200.0 * t
        value[p] = total
    return value, grad


_COMPILE_SNIPPET = """
import json, sys, time
sys.path.insert(0, sys.argv[2])
import numpy as np
import gradc
from benchmarks.indexed_sum import rosenbrock_sum
n = int(sys.argv[1])
expr, x = rosenbrock_sum(n)
t0 = time.perf_counter()
m = gradc.compile_expr(expr, [x])
t1 = time.perf_counter()
m.value_and_grad(np.full((4, n), 0.5))
t2 = time.perf_counter()
print(json.dumps({"codegen_s": t1 - t0, "load_s": t2 - t1, "total_s": t2 - t0, "lines": len(m.source.splitlines())}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)

    times = cold_warm(_COMPILE_SNIPPET, str(args.n), str(ROOT))
    expr, x = rosenbrock_sum(args.n)
    module = gradc.compile_expr(expr, [x])
    points = np.random.default_rng(0).uniform(-2, 2, (args.batch, args.n))
    value, grad = hand_rosenbrock(points)
    got_value, (got_grad,) = module.value_and_grad(points)
    np.testing.assert_allclose(got_value, value, rtol=1e-12)
    np.testing.assert_allclose(got_grad, grad, rtol=1e-12, atol=1e-9)

    result = time_interleaved({"hand_numba": lambda: hand_rosenbrock(points),
                               "gradc": lambda: module.value_and_grad(points)},
                              repeat=args.repeat, **blocked(args.repeat))
    hand, ours = result["hand_numba"], result["gradc"]
    ratio = ours.median_ms / hand.median_ms
    print(f"Rosenbrock as one Sum, n = {args.n}, batch = {args.batch}: value + gradient")
    print(f"  hand-written Numba loop  {hand.median_ms:9.3f} ms  (iqr {hand.iqr_ms:.3f})")
    print(f"  gradc                    {ours.median_ms:9.3f} ms  (iqr {ours.iqr_ms:.3f})  "
          f"ratio {ratio:.2f}  [{'met' if ratio <= TARGET_RATIO else 'MISSED'}: <= {TARGET_RATIO}]")
    for label in ("cold", "warm"):
        print(f"  compile, {label}: {json.dumps(times[label])}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())

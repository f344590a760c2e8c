"""Numba's own compile-time floors, which bound what any module compiled by Numba can reach.

1. Warm start: a fresh process's first call of a cached trivial ``@njit(cache=True)`` function (``import numba``
   done before the clock), and of the same function when nothing is cached (it compiles).
2. Front end per statement: a straight-line chain of n float assignments (a product and a subtraction each, a
   ``np.cos`` every 25th) in a loop over an array, compiled in this process without caching, for several n:
   seconds in all and Numba's own pass timings (type inference, lowering).

    .venv/bin/python benchmarks/numba_floor.py [--sizes 250,500,1000,2000] [--repeat 3]

benchmarks/README.md ("Compile time") reports a run and what it means for gradc's goals.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

_TRIVIAL = textwrap.dedent("""
    import time
    import numpy as np
    import numba as nb
    t0 = time.perf_counter()
    @nb.njit(cache=True)
    def f(x):
        return x * 2.0 + 1.0
    f(np.ones(3))
    print(time.perf_counter() - t0)
""")


def first_call(folder: Path) -> float:
    """Seconds to the first call of the trivial function in a fresh process whose script lives in `folder`
    (Numba caches next to the script)."""
    script = folder / "trivial.py"
    script.write_text(_TRIVIAL)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def chain_source(n: int) -> str:
    """A function of a loop over x whose body is n chained float assignments."""
    lines = ["def chain(x, out):", "    for i in range(x.shape[0]):", "        a0 = x[i]", "        a1 = x[i] * 2.0"]
    for j in range(2, n):
        rhs = f"np.cos(a{j - 1})" if j % 25 == 0 else f"a{j - 1} * a{j - 2} - a{(j * 7) % j}"
        lines.append(f"        a{j} = {rhs}")
    lines.append(f"        out[i] = a{n - 1}")
    return "\n".join(lines)


def compile_chain(n: int) -> dict[str, float]:
    """Seconds to compile (and call once) the n-statement chain, and its type inference and lowering passes."""
    import numba as nb
    import numpy as np

    namespace = {"np": np}
    exec(chain_source(n), namespace)
    kernel = nb.njit(error_model="numpy")(namespace["chain"])
    x, out = np.ones(10), np.empty(10)
    start = time.perf_counter()
    kernel(x, out)
    seconds = time.perf_counter() - start
    passes = next(iter(kernel.overloads.values())).metadata["pipeline_times"]["nopython"]
    timing = {name.split("_", 1)[1]: t.init + t.run + t.finalize for name, t in passes.items()}
    return {"total": seconds, "typing": timing["nopython_type_inference"], "lowering": timing["native_lowering"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250,500,1000,2000", help="statements per chain, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes for the warm-start figure")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cold = first_call(Path(tmp))
        warm = [first_call(Path(tmp)) for _ in range(args.repeat)]
    print(f"first call of a trivial njit function in a fresh process: cached {statistics.median(warm):.3f} s "
          f"(runs: {', '.join(f'{w:.3f}' for w in warm)}), compiling {cold:.3f} s")
    print("straight-line chain of n statements: compile s, type inference s, lowering s, ms per statement")
    for n in (int(s) for s in args.sizes.split(",")):
        t = compile_chain(n)
        print(f"  n={n:5d}  {t['total']:.3f}  {t['typing']:.3f}  {t['lowering']:.3f}  {1000 * t['total'] / n:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

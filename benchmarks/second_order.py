"""Second order: the per-point Hessian of three expression cases at N float64 points, gradc against JAX,
SymEngine, SymPy and CasADi; then the cost of ONE point per call (an optimiser's hot path).

    python benchmarks/second_order.py [--n 1000000] [--repeat 15] [--only rosenbrock8,mixed3,sigmoid_ratio]
                                      [--threads 1]

Every contestant returns a fresh (N, n, n) float64 array (one (n, n) for a single point) and is checked
against gradc's (rtol 1e-9, `max_error`) before the contestants of a case are timed together in blocked,
interleaved rounds (gradc.tools.timing). Each gets its inputs in its own layout, prepared once: gradc one
column per argument, JAX an (N, n) device array, SymEngine and CasADi an (N, n) C-contiguous array.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sympy as sp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gradc  # noqa: E402
from benchmarks.expr_cases import CASES, ExprCase, sympy_expr  # noqa: E402
from benchmarks.run import thread_env  # noqa: E402
from gradc.core import ir  # noqa: E402
from gradc.core.derivatives import hessians  # noqa: E402
from gradc.pipeline import expr_program  # noqa: E402
from gradc.tools.timing import blocked, cold_warm, max_error, time_interleaved  # noqa: E402

CASE_NAMES = ("rosenbrock8", "mixed3", "sigmoid_ratio")
PEERS = ("jax", "symengine", "sympy_cse", "casadi", "casadi_jit")
RTOL = 1e-9
Run = Callable[[], np.ndarray]


def op_counts(case: ExprCase) -> dict[str, int]:
    """IR operations per point of gradc's forward, value-and-gradient and Hessian kernels; count_ops of SymPy's
    Hessian (upper triangle) after cse; CasADi's SX instructions for its Hessian function."""
    expr, syms = sympy_expr(case)
    program = expr_program(expr, syms)
    entries = [node for h in hessians(program) for row in h for node in row]
    count = lambda nodes: ir.op_count(ir.topological_order(nodes))  # noqa: E731
    h = sp.hessian(expr, syms)
    replacements, reduced = sp.cse([h[a, b] for a in range(len(syms)) for b in range(a, len(syms))])
    out = {"forward": count(program.outputs), "value_and_grad": count([*program.outputs, *program.grads]),
           "hessian": count(entries), "sympy_cse": int(sp.count_ops([v for _, v in replacements] + reduced))}
    try:
        import casadi as ca

        x = ca.SX.sym("x", len(syms))
        out["casadi"] = ca.Function("h", [x], [ca.densify(ca.hessian(case.build(ca, *ca.vertsplit(x)), x)[0])]
                                    ).n_instructions()
    except ImportError:
        pass
    return out


def build(name: str, case: ExprCase, cols: list[np.ndarray], X: np.ndarray, x0: np.ndarray) -> tuple[Run, Run]:
    """(batched call on all points, call on the single point x0) of contestant `name`."""
    n, N = len(case.args), X.shape[0]
    if name == "gradc":
        expr, syms = sympy_expr(case)
        m = gradc.compile_expr(expr, syms)
        return (lambda: m.hessian(*cols)), (lambda: m.hessian(*x0))
    if name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        hess = jax.hessian(lambda v: case.build(jnp, *(v[i] for i in range(n))))
        batched, single, on_device = jax.jit(jax.vmap(hess)), jax.jit(hess), jax.device_put(X)
        return (lambda: batched(on_device).block_until_ready()), (lambda: np.asarray(single(x0)))
    if name == "symengine":
        import symengine as se

        syms = [se.Symbol(a) for a in case.args]
        f = case.build(se, *syms)
        fn = se.Lambdify(syms, se.Matrix([[f.diff(a).diff(b) for b in syms] for a in syms]), backend="llvm",
                         cse=True)
        return (lambda: fn(X)), (lambda: fn(x0))  # (N, n) in, (N, n, n) out: one C loop over the points
    if name == "sympy_cse":
        expr, syms = sympy_expr(case)
        h = sp.hessian(expr, syms)
        upper = [(a, b) for a in range(n) for b in range(a, n)]
        fn = sp.lambdify(syms, [h[a, b] for a, b in upper], modules="numpy", cse=True)

        def assemble(values: list, shape: tuple[int, ...]) -> np.ndarray:
            out = np.empty((*shape, n, n))
            for (a, b), v in zip(upper, values):   # constant entries come back as scalars: broadcast
                out[..., a, b] = out[..., b, a] = v
            return out

        return (lambda: assemble(fn(*cols), (N,))), (lambda: assemble(fn(*x0), ()))
    if name in ("casadi", "casadi_jit"):
        import casadi as ca

        x = ca.SX.sym("x", n)
        h = ca.densify(ca.hessian(case.build(ca, *ca.vertsplit(x)), x)[0])
        opts = {"jit": True, "compiler": "shell", "jit_options": {"flags": ["-O3"]}} if name == "casadi_jit" else {}
        F = ca.Function("h", [x], [h], opts)
        point = np.empty(n)

        def buffered(fn: ca.Function, inp: np.ndarray, shape: tuple[int, ...], fill: bool = False) -> Run:
            fb, evaluate = fn.buffer()   # documented low-overhead call on caller-owned buffers
            fb.set_arg(0, memoryview(inp))

            def run() -> np.ndarray:
                if fill:
                    inp[:] = x0     # a new point goes into the bound input buffer
                out = np.empty(shape)
                fb.set_res(0, memoryview(out))
                evaluate()
                if fb.ret():
                    raise RuntimeError(f"casadi returned {fb.ret()}")
                return out

            return run

        # (N, n) C order is the (n, N) column-major input of the map; its (n, n·N) output is (N, n, n)
        threads = int(os.environ.get("NUMBA_NUM_THREADS", 2))
        return buffered(F.map(N, "thread", threads), X, (N, n, n)), buffered(F, point, (n, n), fill=True)
    raise ValueError(f"unknown contestant {name!r}")


_COLD_SNIPPET = """
import json, sys, time
sys.path.insert(0, sys.argv[2])
import numpy as np
import gradc
from benchmarks.expr_cases import CASES, sympy_expr
expr, syms = sympy_expr(CASES[sys.argv[1]])
t0 = time.perf_counter()
m = gradc.compile_expr(expr, args=syms)
m.hessian(*[np.full(4, 0.5) for _ in syms])
print(json.dumps({"total_s": time.perf_counter() - t0}))
"""


def run_case(name: str, n_points: int, repeat: int) -> dict:
    case = CASES[name]
    cols = case.sample(np.random.default_rng(0), n_points)
    X = np.ascontiguousarray(np.column_stack(cols))
    x0 = X[n_points // 2].copy()
    result: dict = {"case": case, "n": n_points, "ops": op_counts(case), "batch": {}, "single": {}, "notes": {},
                    "setup": {}}
    runs: dict[str, tuple[Run, Run]] = {}
    want = want1 = None
    for who in ("gradc", *PEERS):
        try:
            t0 = time.perf_counter()
            batched, single = build(who, case, cols, X, x0)
            got, got1 = np.asarray(batched()), np.asarray(single())
            result["setup"][who] = time.perf_counter() - t0
            if who == "gradc":
                want, want1 = got, got1
            elif want is None:
                raise RuntimeError("gradc, the reference, failed")
            err = max(max_error(got, want), max_error(got1, want1))
            if not err <= RTOL:
                raise AssertionError(f"differs from gradc by {err:.3g} (rtol {RTOL:g})")
            runs[who] = (batched, single)
        except Exception as exc:  # noqa: BLE001 - a peer that breaks must not take the others down
            result["notes"][who] = f"{type(exc).__name__}: {str(exc).strip()[:160]}"
        got = got1 = None
    for part, k in (("batch", 0), ("single", 1)):
        timings = time_interleaved({who: pair[k] for who, pair in runs.items()}, repeat=repeat, budget_s=120.0,
                                   **blocked(repeat))
        for who, t in timings.items():
            if isinstance(t, Exception):
                result["notes"][who] = f"while timing: {t}"[:160]
            else:
                result[part][who] = t
    result["cold_warm"] = cold_warm(_COLD_SNIPPET, name, str(ROOT))
    return result


def report(result: dict) -> str:
    case, n, ops = result["case"], result["n"], result["ops"]
    k = len(case.args)
    lines = [f"{case.name}: {case.title}. Hessian ({k}x{k}) at N = {n:,} float64 points",
             f"  {'contestant':<12}{'median ms':>11}{'IQR ms':>9}{'ns/point':>10}{'/ gradc':>9}"
             f"{'1 point µs':>12}{'/ gradc':>9}{'setup s':>9}"]
    ref, ref1 = result["batch"].get("gradc"), result["single"].get("gradc")
    for who in ("gradc", *PEERS):
        t, t1 = result["batch"].get(who), result["single"].get(who)
        if t is None or t1 is None:
            lines.append(f"  {who:<12}  -- {result['notes'].get(who, 'not timed')}")
            continue
        ratio = f"{t.median_ms / ref.median_ms:9.2f}" if ref else f"{'?':>9}"
        ratio1 = f"{t1.median_ms / ref1.median_ms:9.2f}" if ref1 else f"{'?':>9}"
        lines.append(f"  {who:<12}{t.median_ms:11.2f}{t.iqr_ms:9.2f}{1e6 * t.median_ms / n:10.1f}{ratio}"
                     f"{1e3 * t1.median_ms:12.1f}{ratio1}{result['setup'][who]:9.2f}")
    cw = result["cold_warm"]
    lines.append(f"  ops/point: gradc forward {ops['forward']}, value+grad {ops['value_and_grad']}, Hessian "
                 f"{ops['hessian']}; SymPy hessian+cse count_ops {ops['sympy_cse']}"
                 + (f"; CasADi SX instructions {ops['casadi']}" if "casadi" in ops else ""))
    lines.append("  gradc compile_expr + first hessian, fresh process: "
                 + ", ".join(f"{label} {cw[label].get('total_s', float('nan')):.2f} s" for label in ("cold", "warm")))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--only", default=",".join(CASE_NAMES), help="comma-separated case names")
    parser.add_argument("--threads", type=int, help="cap every thread pool (Numba, XLA, CasADi's map); "
                        "steadier on a busy machine")
    args = parser.parse_args(argv)
    if args.threads and os.environ.get("NUMBA_NUM_THREADS") != str(args.threads):   # pools size at import
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **thread_env(args.threads)})
    names = [s for s in args.only.split(",") if s]
    unknown = [s for s in names if s not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; expected some of {', '.join(CASES)}")
    print(f"second order: median of {args.repeat} samples, threads {args.threads or 'all'}; "
          f"load average (1 min): {os.getloadavg()[0]:.2f}")
    failed = False
    for name in names:
        result = run_case(name, args.n, args.repeat)
        failed |= "gradc" not in result["batch"]
        print(report(result), f"  load average after: {os.getloadavg()[0]:.2f}", sep="\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

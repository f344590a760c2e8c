"""Batched expression benchmarks: value + full gradient at N points (default 1,000,000, float64).

Each case is written once against an array library's vocabulary (``exp, log, sin, cos, tanh, sqrt``)
so SymPy, JAX, torch and PyTensor evaluate the same formula; σ(t) is written out as 1/(1 + exp(-t))
everywhere, as in the SymPy expression gradc compiles. The reference of the ratio column is a
hand-fused Numba loop per case (below): one ``prange`` loop computing the value and every gradient
from shared intermediates, parallel=True, fastmath off, error_model="numpy" -- the practical limit.
Every contestant is checked against SymPy's lambdify (cse=False) at rtol 1e-9 before it is timed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np
import sympy as sp

from gradc.tools.timing import Contestant, add_ratios, cold_warm, import_peer, run_contestants

N_FULL = 1_000_000
N_QUICK = 20_000
REFERENCE = "hand_numba"
EXPR_CONTESTANTS = ("hand_numba", "gradc", "sympy", "sympy_cse", "pytensor_c", "pytensor_numba", "jax", "torch")
RTOL = 1e-9
TARGET = {"max_ratio": 1.2, "beat": "all"}   # issue 4: <= 1.2x the hand loop, faster than every peer


def _sig(ops: Any, t: Any) -> Any:
    return 1 / (1 + ops.exp(-t))


@dataclass(frozen=True)
class ExprCase:
    """``build(ops, *args)`` is the formula; ``sample(rng, n)`` the inputs (one array per arg);
    ``hand(*arrays) -> (value, (grad per arg))`` the hand-fused Numba loop."""

    name: str
    title: str
    args: tuple[str, ...]
    build: Callable[..., Any]
    sample: Callable[[np.random.Generator, int], list[np.ndarray]]
    hand: Callable[..., Any]


# ---------------------------------------------------------------- hand-fused Numba loops (the reference)

_HAND = {"parallel": True, "fastmath": False, "error_model": "numpy", "cache": True}


@nb.njit(**_HAND)
def hand_sigmoid_ratio(x, y):
    """f = (x + σ(y)) / (σ(x) + (x+y)²)."""
    n = x.shape[0]
    f, dx, dy = np.empty(n), np.empty(n), np.empty(n)
    for i in nb.prange(n):
        xi, yi = x[i], y[i]
        sx = 1.0 / (1.0 + np.exp(-xi))
        sy = 1.0 / (1.0 + np.exp(-yi))
        u = xi + yi
        inv = 1.0 / (sx + u * u)
        fi = (xi + sy) * inv
        g_den = -fi * inv                     # ∂f/∂denominator
        f[i] = fi
        dx[i] = inv + g_den * (sx * (1.0 - sx) + 2.0 * u)
        dy[i] = inv * sy * (1.0 - sy) + g_den * 2.0 * u
    return f, (dx, dy)


@nb.njit(**_HAND)
def hand_neuron(x0, x1, w0, w1, w2):
    """f = σ(w0·x0 + w1·x1 + w2), gradient in all five."""
    n = x0.shape[0]
    f, dx0, dx1, dw0, dw1, dw2 = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for i in nb.prange(n):
        a0, a1, v0, v1 = x0[i], x1[i], w0[i], w1[i]
        s = 1.0 / (1.0 + np.exp(-(v0 * a0 + v1 * a1 + w2[i])))
        ds = s * (1.0 - s)
        f[i] = s
        dx0[i] = ds * v0
        dx1[i] = ds * v1
        dw0[i] = ds * a0
        dw1[i] = ds * a1
        dw2[i] = ds
    return f, (dx0, dx1, dw0, dw1, dw2)


@nb.njit(**_HAND)
def hand_mixed3(x, y, z):
    """f = log(1 + exp(sin x·cos y))·tanh(xyz) + sqrt(x²+y²+z²+1)·σ(z)."""
    n = x.shape[0]
    f, dx, dy, dz = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for i in nb.prange(n):
        xi, yi, zi = x[i], y[i], z[i]
        sx, cx, sy, cy = np.sin(xi), np.cos(xi), np.sin(yi), np.cos(yi)
        e = np.exp(sx * cy)
        soft = np.log(1.0 + e)
        t = np.tanh(xi * yi * zi)
        r = np.sqrt(xi * xi + yi * yi + zi * zi + 1.0)
        sz = 1.0 / (1.0 + np.exp(-zi))
        f[i] = soft * t + r * sz
        g_u = t * e / (1.0 + e)               # ∂f/∂(sin x cos y)
        g_p = soft * (1.0 - t * t)            # ∂f/∂(xyz)
        g_r = sz / r                          # ∂f/∂r · 1/r
        dx[i] = g_u * cx * cy + g_p * yi * zi + g_r * xi
        dy[i] = -g_u * sx * sy + g_p * xi * zi + g_r * yi
        dz[i] = g_p * xi * yi + g_r * zi + r * sz * (1.0 - sz)
    return f, (dx, dy, dz)


@nb.njit(**_HAND)
def hand_rosenbrock8(x0, x1, x2, x3, x4, x5, x6, x7):
    """f = Σ_{i<7} 100(x_{i+1} − x_i²)² + (1 − x_i)²."""
    n = x0.shape[0]
    f = np.empty(n)
    g0, g1, g2, g3, g4, g5, g6, g7 = (np.empty(n), np.empty(n), np.empty(n), np.empty(n),
                                      np.empty(n), np.empty(n), np.empty(n), np.empty(n))
    for i in nb.prange(n):
        a0, a1, a2, a3, a4, a5, a6, a7 = x0[i], x1[i], x2[i], x3[i], x4[i], x5[i], x6[i], x7[i]
        t0, t1, t2, t3 = a1 - a0 * a0, a2 - a1 * a1, a3 - a2 * a2, a4 - a3 * a3
        t4, t5, t6 = a5 - a4 * a4, a6 - a5 * a5, a7 - a6 * a6
        u0, u1, u2, u3, u4, u5, u6 = 1.0 - a0, 1.0 - a1, 1.0 - a2, 1.0 - a3, 1.0 - a4, 1.0 - a5, 1.0 - a6
        f[i] = (100.0 * (t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3 + t4 * t4 + t5 * t5 + t6 * t6)
                + u0 * u0 + u1 * u1 + u2 * u2 + u3 * u3 + u4 * u4 + u5 * u5 + u6 * u6)
        g0[i] = -400.0 * a0 * t0 - 2.0 * u0
        g1[i] = 200.0 * t0 - 400.0 * a1 * t1 - 2.0 * u1
        g2[i] = 200.0 * t1 - 400.0 * a2 * t2 - 2.0 * u2
        g3[i] = 200.0 * t2 - 400.0 * a3 * t3 - 2.0 * u3
        g4[i] = 200.0 * t3 - 400.0 * a4 * t4 - 2.0 * u4
        g5[i] = 200.0 * t4 - 400.0 * a5 * t5 - 2.0 * u5
        g6[i] = 200.0 * t5 - 400.0 * a6 * t6 - 2.0 * u6
        g7[i] = 200.0 * t6
    return f, (g0, g1, g2, g3, g4, g5, g6, g7)


# ---------------------------------------------------------------- the cases


def _uniform(k: int, low: float = -2.0, high: float = 2.0) -> Callable[[np.random.Generator, int], list]:
    return lambda rng, n: [rng.uniform(low, high, n) for _ in range(k)]


def _rosenbrock(ops: Any, *x: Any) -> Any:
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


CASES: dict[str, ExprCase] = {c.name: c for c in (
    ExprCase("sigmoid_ratio", "(x+σ(y))/(σ(x)+(x+y)²)", ("x", "y"),
             lambda ops, x, y: (x + _sig(ops, y)) / (_sig(ops, x) + (x + y) ** 2), _uniform(2), hand_sigmoid_ratio),
    ExprCase("neuron", "σ(w0·x0+w1·x1+w2), 5 inputs", ("x0", "x1", "w0", "w1", "w2"),
             lambda ops, x0, x1, w0, w1, w2: _sig(ops, w0 * x0 + w1 * x1 + w2),
             lambda rng, n: [rng.standard_normal(n) for _ in range(5)], hand_neuron),
    ExprCase("mixed3", "log(1+e^(sin x cos y))tanh(xyz)+√(r²+1)σ(z)", ("x", "y", "z"),
             lambda ops, x, y, z: (ops.log(1 + ops.exp(ops.sin(x) * ops.cos(y))) * ops.tanh(x * y * z)
                                   + ops.sqrt(x ** 2 + y ** 2 + z ** 2 + 1) * _sig(ops, z)),
             _uniform(3), hand_mixed3),
    ExprCase("rosenbrock8", "Rosenbrock, 8 variables", tuple(f"x{i}" for i in range(8)), _rosenbrock,
             _uniform(8), hand_rosenbrock8),
)}


def sympy_expr(case: ExprCase) -> tuple[sp.Expr, list[sp.Symbol]]:
    """The case as a SymPy expression and its ordered argument symbols."""
    syms = [sp.Symbol(a, real=True) for a in case.args]
    return case.build(sp, *syms), syms


# ---------------------------------------------------------------- contestants


def _as_numpy(out: Any) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    value, grads = out
    return np.asarray(value), tuple(np.asarray(g) for g in grads)


def build_expr_contestant(name: str, case: ExprCase, arrays: list[np.ndarray]) -> Contestant:
    """One contestant bound to the inputs; ``unpack(run())`` is ``(value, (grad per arg))``."""
    if name == "hand_numba":
        return Contestant(name, lambda: case.hand(*arrays), _as_numpy)
    if name == "gradc":
        import gradc

        expr, syms = sympy_expr(case)
        module = gradc.compile_expr(expr, args=syms)
        return Contestant(name, lambda: module.value_and_grad(*arrays), _as_numpy,
                          {"op_counts": dict(module.op_counts)})
    if name in ("sympy", "sympy_cse"):
        expr, syms = sympy_expr(case)
        fn = sp.lambdify(syms, [expr, *(sp.diff(expr, s) for s in syms)], modules="numpy",
                         cse=name == "sympy_cse")
        return Contestant(name, lambda: fn(*arrays), lambda out: _as_numpy((out[0], out[1:])))
    if name == "jax":
        jax = import_peer("jax")
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        step = jax.jit(jax.vmap(jax.value_and_grad(lambda *a: case.build(jnp, *a), argnums=tuple(range(len(arrays))))))
        on_device = [jax.device_put(a) for a in arrays]
        return Contestant(name, lambda: jax.block_until_ready(step(*on_device)), _as_numpy)
    if name == "torch":
        torch = import_peer("torch")
        leaves = [torch.from_numpy(a).requires_grad_(True) for a in arrays]

        def run_torch():
            value = case.build(torch, *leaves)
            return value.detach(), torch.autograd.grad(value.sum(), leaves)

        return Contestant(name, run_torch, lambda out: _as_numpy((out[0].numpy(), [g.numpy() for g in out[1]])),
                          {"threads": torch.get_num_threads()})
    if name in ("pytensor_c", "pytensor_numba"):
        pytensor = import_peer("pytensor")
        import pytensor.tensor as pt

        syms = [pt.vector(a, dtype="float64") for a in case.args]
        value = case.build(pt, *syms)
        fn = pytensor.function(syms, [value, *pytensor.grad(value.sum(), syms)],
                               mode="FAST_RUN" if name == "pytensor_c" else "NUMBA")
        fn.trust_input = True  # inputs are already float64 vectors: skip per-call checks
        return Contestant(name, lambda: fn(*arrays), lambda out: _as_numpy((out[0], out[1:])))
    raise ValueError(f"unknown expression contestant {name!r}; expected one of {', '.join(EXPR_CONTESTANTS)}")


def run_expr_case(name: str, *, n: int = N_FULL, contestants: Iterable[str] | None = None, repeat: int = 15,
                  warmup: int = 2, seed: int = 0, rtol: float = RTOL, budget_s: float = 90.0,
                  passes: int = 3, gap_s: float = 0.2, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Value + gradient of case ``name`` at ``n`` points for each contestant (reference first).

    Returns ``{"name", "label", "n", "reference", "contestants": [records with ms, ratio, error]}``.
    """
    case = CASES[name]
    arrays = case.sample(np.random.default_rng(seed), n)
    expr, syms = sympy_expr(case)
    oracle = sp.lambdify(syms, [expr, *(sp.diff(expr, s) for s in syms)], modules="numpy")
    out = oracle(*arrays)
    want = (np.asarray(out[0]), tuple(np.asarray(g) for g in out[1:]))
    order = [REFERENCE, *(c for c in (contestants or EXPR_CONTESTANTS) if c != REFERENCE)]
    records = run_contestants(order, lambda c: build_expr_contestant(c, case, arrays), want, rtol=rtol,
                              repeat=repeat, warmup=warmup, budget_s=budget_s, passes=passes, gap_s=gap_s,
                              progress=progress)
    add_ratios(records, REFERENCE)
    return {"kind": "expr", "name": name, "label": f"{case.title} N={n:,}", "n": n, "reference": REFERENCE,
            "rtol": rtol, "target": TARGET, "contestants": records}


# ---------------------------------------------------------------- gradc compile times (fresh processes)

_EXPR_COMPILE_SNIPPET = """
import json, sys, time
sys.path.insert(0, sys.argv[2])
import numpy as np
import gradc
from benchmarks.expr_cases import CASES, sympy_expr
expr, syms = sympy_expr(CASES[sys.argv[1]])
t0 = time.perf_counter()
m = gradc.compile_expr(expr, args=syms)
t1 = time.perf_counter()
m.value_and_grad(*[np.full(4, 0.5) for _ in syms])
t2 = time.perf_counter()
print(json.dumps({"codegen_s": t1 - t0, "load_s": t2 - t1, "total_s": t2 - t0}))
"""


# Numba's own floor for a warm load: the hand-fused loop (cache=True) loaded and called once in a fresh
# process, numba already imported (as in the gradc snippet, whose imports load it too).
_HAND_LOAD_SNIPPET = """
import json, sys, time
sys.path.insert(0, sys.argv[2])
import numpy as np
from benchmarks.expr_cases import CASES
case = CASES[sys.argv[1]]
t0 = time.perf_counter()
case.hand(*[np.full(4, 0.5) for _ in case.args])
print(json.dumps({"total_s": time.perf_counter() - t0}))
"""


def gradc_expr_compile_times(name: str, **kw: Any) -> dict[str, Any]:
    """Cold compile and warm load seconds of ``gradc.compile_expr`` + a first call on 4 points,
    each in a fresh process (imports excluded), the cold one with an empty GRADC_CACHE_DIR; and
    ``hand_warm``, the same warm load of the hand-fused Numba loop (what Numba itself costs)."""
    root = str(Path(__file__).resolve().parents[1])
    return {**cold_warm(_EXPR_COMPILE_SNIPPET, name, root, **kw),
            "hand_warm": cold_warm(_HAND_LOAD_SNIPPET, name, root, **kw)["warm"]}


if __name__ == "__main__":  # python -m benchmarks.expr_cases [case] : a quick look at one case
    from .report import format_table

    case_name = sys.argv[1] if len(sys.argv) > 1 else "sigmoid_ratio"
    result = run_expr_case(case_name, n=int(os.environ.get("N", N_QUICK)), repeat=5)
    print(format_table([result]))

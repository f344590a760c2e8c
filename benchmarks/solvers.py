"""Whole SciPy solves with gradc's SciPy adapters (gradc.scipy) against the same solves with callables built
by peers (SymEngine LLVM Lambdify, CasADi SX Functions, JAX jit, SymPy lambdify with cse):

* ``minimize(method="trust-exact")`` on the 2-D and 8-D Rosenbrock from x0 = 0, a = 1 and b = 100 via args=,
  with fun / jac / hess;
* ``solve_ivp(method="BDF")`` on Robertson's stiff kinetics (k1, k2, k3 via args=, t in (0, 1e5),
  rtol 1e-6, atol 1e-10), with fun / jac.

    python benchmarks/solvers.py [--repeat 15]

Every contestant's solve is verified first (same minimum and iteration count; same final state within rtol
1e-5), then the solves are timed interleaved. Also prints each callable's per-call cost at one point
(timeit, best of 7 x 2000 calls).
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

import casadi as ca
import jax
import jax.numpy as jnp
import numpy as np
import symengine as se
import sympy as sp
from scipy.integrate import solve_ivp
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gradc.scipy import objective, ode  # noqa: E402
from gradc.tools.timing import blocked, time_interleaved  # noqa: E402

jax.config.update("jax_enable_x64", True)

ROSEN_ARGS = (1.0, 100.0)
ROBER_ARGS = (0.04, 3e7, 1e4)
ROBER_Y0 = np.array([1.0, 0.0, 0.0])
ROBER_SPAN = (0.0, 1e5)


def rosen(x, a, b):
    """Σ b (x[i+1] - x[i]²)² + (a - x[i])², written once for SymPy symbols, CasADi SX and JAX arrays."""
    return sum(b * (x[i + 1] - x[i] ** 2) ** 2 + (a - x[i]) ** 2 for i in range(len(x) - 1))


def rober(y, k):
    """Robertson's right-hand side; y and k are sequences (symbols, SX elements or array entries)."""
    return [-k[0] * y[0] + k[2] * y[1] * y[2],
            k[0] * y[0] - k[1] * y[1] ** 2 - k[2] * y[1] * y[2],
            k[1] * y[1] ** 2]


# ----------------------------------------------------------------------------------------- objectives
def objective_callables(n: int) -> dict[str, tuple[Callable, Callable, Callable]]:
    """name -> (fun, jac, hess), each called as f(x, a, b)."""
    xs, (a, b) = sp.symbols(f"x0:{n}"), sp.symbols("a b")
    expr = rosen(xs, a, b)
    grad, hess = [sp.diff(expr, v) for v in xs], sp.hessian(expr, xs)
    out = {}
    obj = objective(expr, xs, params=(a, b))
    out["gradc"] = (obj.fun, obj.jac, obj.hess)

    args = [*xs, a, b]
    sf, sg, sh = (se.Lambdify(args, e, backend="llvm") for e in (expr, grad, se.Matrix(hess)))
    out["symengine"] = (lambda x, a, b: float(sf(np.concatenate((x, (a, b))))),
                        lambda x, a, b: sg(np.concatenate((x, (a, b)))),
                        lambda x, a, b: sh(np.concatenate((x, (a, b)))))

    X, P = ca.SX.sym("x", n), ca.SX.sym("p", 2)
    e = rosen([X[i] for i in range(n)], P[0], P[1])
    cf = ca.Function("f", [X, P], [e])
    cg = ca.Function("g", [X, P], [ca.gradient(e, X)])
    ch = ca.Function("h", [X, P], [ca.hessian(e, X)[0]])
    out["casadi"] = (lambda x, a, b: float(cf(x, np.array([a, b]))),
                     lambda x, a, b: cg(x, np.array([a, b])).full().ravel(),
                     lambda x, a, b: ch(x, np.array([a, b])).full())

    jf = jax.jit(rosen)
    jg, jh = jax.jit(jax.grad(rosen)), jax.jit(jax.hessian(rosen))
    out["jax"] = (lambda x, a, b: float(jf(x, a, b)),
                  lambda x, a, b: np.asarray(jg(x, a, b)),
                  lambda x, a, b: np.asarray(jh(x, a, b)))

    pf = sp.lambdify((xs, a, b), expr, cse=True)
    pg = sp.lambdify((xs, a, b), grad, cse=True)
    ph = sp.lambdify((xs, a, b), hess, cse=True)
    out["sympy_cse"] = (lambda x, a, b: float(pf(x, a, b)),
                        lambda x, a, b: np.array(pg(x, a, b), dtype=float),
                        lambda x, a, b: np.array(ph(x, a, b), dtype=float))
    return out


def ode_callables() -> dict[str, tuple[Callable, Callable]]:
    """name -> (fun, jac), each called as f(t, y, k1, k2, k3)."""
    t, ys, ks = sp.Symbol("t"), sp.symbols("y1:4"), sp.symbols("k1:4")
    rhs = rober(ys, ks)
    jac = sp.Matrix(rhs).jacobian(ys)
    out = {}
    sysm = ode(rhs, t, ys, params=ks)
    out["gradc"] = (sysm.fun, sysm.jac)

    args = [t, *ys, *ks]
    sf, sj = se.Lambdify(args, rhs, backend="llvm"), se.Lambdify(args, se.Matrix(jac), backend="llvm")
    out["symengine"] = (lambda t, y, *k: sf(np.concatenate(((t,), y, k))),
                        lambda t, y, *k: sj(np.concatenate(((t,), y, k))))

    T, Y, K = ca.SX.sym("t"), ca.SX.sym("y", 3), ca.SX.sym("k", 3)
    e = ca.vertcat(*rober([Y[i] for i in range(3)], [K[i] for i in range(3)]))
    cf, cj = ca.Function("f", [T, Y, K], [e]), ca.Function("j", [T, Y, K], [ca.jacobian(e, Y)])
    out["casadi"] = (lambda t, y, *k: cf(t, y, np.array(k)).full().ravel(),
                     lambda t, y, *k: cj(t, y, np.array(k)).full())

    def jrhs(t, y, k1, k2, k3):
        return jnp.stack(rober(y, (k1, k2, k3)))

    jf, jj = jax.jit(jrhs), jax.jit(jax.jacfwd(jrhs, argnums=1))
    out["jax"] = (lambda t, y, *k: np.asarray(jf(t, y, *k)), lambda t, y, *k: np.asarray(jj(t, y, *k)))

    pf = sp.lambdify((t, ys, *ks), rhs, cse=True)
    pj = sp.lambdify((t, ys, *ks), jac, cse=True)
    out["sympy_cse"] = (lambda t, y, *k: np.array(pf(t, y, *k), dtype=float),
                        lambda t, y, *k: np.array(pj(t, y, *k), dtype=float))
    return out


# ----------------------------------------------------------------------------------------- solves
def solve_min(n, fns):
    f, g, h = fns
    return minimize(f, np.zeros(n), args=ROSEN_ARGS, jac=g, hess=h, method="trust-exact")


def solve_rober(fns):
    f, j = fns
    return solve_ivp(f, ROBER_SPAN, ROBER_Y0, method="BDF", jac=j, args=ROBER_ARGS, rtol=1e-6, atol=1e-10)


def per_call_us(fn: Callable, *args) -> float:
    return min(timeit.repeat(lambda: fn(*args), number=2000, repeat=7)) / 2000 * 1e6


def run_case(title, contestants, solve, check, point, kinds, repeat):
    """Verify each contestant's solve, time all solves interleaved, and print one table."""
    stats = {}
    ref = solve(contestants["gradc"])
    for name, fns in contestants.items():
        res = solve(fns)
        stats[name] = check(ref, res)
    timings = time_interleaved({name: (lambda fns=fns: solve(fns)) for name, fns in contestants.items()},
                               repeat=repeat, **blocked(repeat))
    base = timings["gradc"].median_ms
    print(title)
    head = "  ".join(f"{k + ' µs':>9}" for k in kinds)
    print(f"  {'contestant':<11} {'solve ms':>9} {'IQR ms':>7} {'/ gradc':>7}  {head}  counts")
    for name, fns in contestants.items():
        tm = timings[name]
        calls = "  ".join(f"{per_call_us(fn, *point):9.1f}" for fn in fns)
        print(f"  {name:<11} {tm.median_ms:9.3f} {tm.iqr_ms:7.3f} {tm.median_ms / base:7.2f}  {calls}  {stats[name]}")
    return timings


def check_min(n):
    def check(ref, res):
        assert res.success, res.message
        np.testing.assert_allclose(res.x, np.ones(n), rtol=1e-6, atol=1e-6)
        assert res.nit == ref.nit, (res.nit, ref.nit)
        return f"nit {res.nit} nfev {res.nfev} njev {res.njev} nhev {res.nhev}"
    return check


def check_rober(ref, res):
    assert res.success, res.message
    np.testing.assert_allclose(res.y[:, -1], ref.y[:, -1], rtol=1e-5, atol=1e-12)
    return f"nfev {res.nfev} njev {res.njev} nlu {res.nlu} steps {res.t.size - 1}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    for n in (2, 8):
        point = (np.full(n, 0.5), *ROSEN_ARGS)
        run_case(f"minimize trust-exact, Rosenbrock n = {n}, x0 = 0 (fun/jac/hess per call at x = 0.5)",
                 objective_callables(n), lambda fns, n=n: solve_min(n, fns), check_min(n), point,
                 ("fun", "jac", "hess"), args.repeat)
    point = (1.0, np.array([0.9, 1e-5, 0.1]), *ROBER_ARGS)
    run_case("solve_ivp BDF, Robertson t in (0, 1e5), rtol 1e-6, atol 1e-10 (fun/jac per call)",
             ode_callables(), solve_rober, check_rober, point, ("fun", "jac"), args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())

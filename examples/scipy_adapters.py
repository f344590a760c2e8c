"""gradc.scipy: a compiled objective, ODE right-hand side and residual driving SciPy.

  1. Rosenbrock, f = b (y - x^2)^2 + (a - x)^2 with a = 1, b = 100 passed through minimize's args=:
     trust-exact with the compiled Hessian, Newton-CG with Hessian-vector products, BFGS with value_and_grad;
     each reaches (1, 1). With --timing, the per-call cost of fun / jac / hess / hessp / value_and_grad at one
     point (timeit, best of --rounds rounds), next to SciPy's NumPy rosen / rosen_der / rosen_hess.
  2. Robertson's stiff kinetics (k1 = 0.04, k2 = 3e7, k3 = 1e4 through args=) to t = 40 with BDF, with the
     compiled Jacobian and with SciPy's finite differences: the same solution, fewer rhs evaluations.
  3. y = A exp(-k t) + c fitted to 100 noisy points (passed through least_squares' args=) with the compiled
     Jacobian: A, k, c recovered.

Run:  python examples/scipy_adapters.py [--timing] [--rounds 20]
"""

from __future__ import annotations

import argparse
import timeit
from typing import Any

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares, minimize, rosen, rosen_der, rosen_hess

from gradc.scipy import Objective, objective, ode, residuals

ROSEN_ARGS = (1.0, 100.0)


def rosenbrock() -> Objective:
    x, y, a, b = sp.symbols("x y a b")
    return objective(b * (y - x ** 2) ** 2 + (a - x) ** 2, (x, y), params=(a, b))


def minimise(obj: Objective) -> dict[str, Any]:
    x0 = [-1.2, 1.0]
    runs = {
        "trust-exact": minimize(obj.fun, x0, args=ROSEN_ARGS, jac=obj.jac, hess=obj.hess, method="trust-exact"),
        "Newton-CG": minimize(obj.fun, x0, args=ROSEN_ARGS, jac=obj.jac, hessp=obj.hessp, method="Newton-CG"),
        "BFGS": minimize(obj.value_and_grad, x0, args=ROSEN_ARGS, jac=True, method="BFGS"),
    }
    return {name: {"x": r.x.tolist(), "nit": int(r.nit)} for name, r in runs.items()}


def per_call_us(obj: Objective, rounds: int) -> dict[str, float]:
    """Best time per call (µs) over `rounds` rounds of timeit, the calls interleaved round by round so that a
    busy machine slows them alike."""
    x, p = np.array([-1.2, 1.0]), np.array([1.0, 0.5])
    calls = {
        "fun": lambda: obj.fun(x, *ROSEN_ARGS), "jac": lambda: obj.jac(x, *ROSEN_ARGS),
        "hess": lambda: obj.hess(x, *ROSEN_ARGS), "hessp": lambda: obj.hessp(x, p, *ROSEN_ARGS),
        "value_and_grad": lambda: obj.value_and_grad(x, *ROSEN_ARGS),
        "scipy rosen": lambda: rosen(x), "scipy rosen_der": lambda: rosen_der(x),
        "scipy rosen_hess": lambda: rosen_hess(x),
    }
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            best[name] = min(best[name], timeit.timeit(call, number=2000) / 2000 * 1e6)
    return best


def robertson() -> dict[str, Any]:
    t, k1, k2, k3 = sp.symbols("t k1 k2 k3")
    y1, y2, y3 = sp.symbols("y1:4")
    system = ode([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k3 * y2 * y3 - k2 * y2 ** 2, k2 * y2 ** 2], t, (y1, y2, y3),
                 params=(k1, k2, k3))
    out = {}
    for label, jac in (("compiled jac", system.jac), ("finite differences", None)):
        calls = [0]

        def fun(t, y, *args, calls=calls):
            calls[0] += 1
            return system.fun(t, y, *args)
        sol = solve_ivp(fun, (0.0, 40.0), [1.0, 0.0, 0.0], method="BDF", jac=jac, args=(0.04, 3e7, 1e4),
                        rtol=1e-6, atol=1e-10)
        out[label] = {"y(40)": sol.y[:, -1].tolist(), "rhs evaluations": calls[0], "njev": int(sol.njev)}
    return out


def decay_fit(seed: int = 0) -> dict[str, Any]:
    A, k, c, t, y = sp.symbols("A k c t y")
    lsq = residuals(A * sp.exp(-k * t) + c - y, (A, k, c), data=(t, y))
    rng = np.random.default_rng(seed)
    ts = np.linspace(0.0, 5.0, 100)
    ys = 3.0 * np.exp(-1.3 * ts) + 0.5 + 0.01 * rng.standard_normal(ts.size)
    fit = least_squares(lsq.fun, [1.0, 1.0, 0.0], jac=lsq.jac, args=(ts, ys))
    return {"true": [3.0, 1.3, 0.5], "fitted": fit.x.tolist(), "nfev": int(fit.nfev)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", action="store_true", help="time one-point calls of the Rosenbrock objective")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    obj = rosenbrock()
    result = {"minimize": minimise(obj), "solve_ivp": robertson(), "least_squares": decay_fit()}
    if args.timing:
        result["per_call_us"] = per_call_us(obj, args.rounds)
    for section, value in result.items():
        print(f"{section}:")
        for name, numbers in value.items():
            print(f"  {name:20s} {numbers:.2f}" if isinstance(numbers, float) else f"  {name:20s} {numbers}")
    return result


if __name__ == "__main__":
    main()

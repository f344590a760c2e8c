"""Seed note 004 (CS231n backprop notes, "反向传播实践：分段计算"): staged backpropagation, gate by gate.

The notes work three examples by hand, each forward pass split into named intermediate values and the
backward pass into one adjoint ``d<name>`` per value, ``+=`` where a value fans out:
  1. f(x, y, z) = (x + y) z at (−2, 5, −4): q = 3, f = −12, ∂f/∂(x, y, z) = (−4, −4, 3);
  2. the sigmoid neuron f = σ(w0 x0 + w1 x1 + w2) with w = [2, −3, −3], x = [−1, −2]: f = 0.73,
     dw = [−0.20, −0.39, 0.20], dx = [0.39, −0.59] (σ' = σ(1 − σ) taken as one gate);
  3. f(x, y) = (x + σ(y)) / (σ(x) + (x + y)²), staged as sigy, num, sigx, xpy, xpysqr, den, invden.

What it shows: gradc finds the same staging by itself. Each expression is written in SymPy (σ spelled out
as 1/(1 + exp(−u)), as in the notes), compiled with ``gradc.compile_expr``, and its values and gradients
match the notes' numbers and ``sympy.diff``. For example 3 the generated kernel's staged body is printed.

Run:  python examples/seed004_staged.py [--points 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
from typing import Any

import excerpt
import numpy as np
import sympy as sp

import gradc


def sigma(u: sp.Expr) -> sp.Expr:
    """The notes' σ(u) = 1 / (1 + e^(−u)), as plain SymPy (gradc recognises the sigmoid gate)."""
    return 1 / (1 + sp.exp(-u))


def add_multiply() -> dict[str, Any]:
    """Example 1: f = (x + y) z at x = −2, y = 5, z = −4."""
    x, y, z = sp.symbols("x y z")
    module = gradc.compile_expr((x + y) * z, [x, y, z])
    value, grads = module.value_and_grad(-2.0, 5.0, -4.0)
    return {"f": float(value), "grad": [float(g) for g in grads]}


def sigmoid_neuron() -> dict[str, Any]:
    """Example 2: f = σ(w0 x0 + w1 x1 + w2) at w = [2, −3, −3], x = [−1, −2]."""
    w0, w1, w2, x0, x1 = sp.symbols("w0 w1 w2 x0 x1")
    module = gradc.compile_expr(sigma(w0 * x0 + w1 * x1 + w2), [w0, w1, w2, x0, x1])
    value, grads = module.value_and_grad(2.0, -3.0, -3.0, -1.0, -2.0)
    grads = [float(g) for g in grads]
    return {"f": float(value), "dw": grads[:3], "dx": grads[3:]}


def staged_expression(points: int, seed: int) -> dict[str, Any]:
    """Example 3: compile, print nothing yet; compare with sympy.diff at (3, −4) and at random points."""
    x, y = sp.symbols("x y")
    f = (x + sigma(y)) / (sigma(x) + (x + y) ** 2)
    module = gradc.compile_expr(f, [x, y])
    exact = sp.lambdify([x, y], [f, sp.diff(f, x), sp.diff(f, y)], "numpy")

    rng = np.random.default_rng(seed)
    xs, ys = np.append(3.0, rng.uniform(-3, 3, points)), np.append(-4.0, rng.uniform(-3, 3, points))
    value, (dx, dy) = module.value_and_grad(xs, ys)
    f_exact, dx_exact, dy_exact = (np.asarray(v, dtype=float) for v in exact(xs, ys))
    error = max(_relative_error(value, f_exact), _relative_error(dx, dx_exact), _relative_error(dy, dy_exact))
    return {"kernel": excerpt.function(module.source, "_value_and_grad_kernel"), "f": float(value[0]),
            "dx": float(dx[0]), "dy": float(dy[0]), "max_relative_error": error, "points": len(xs)}


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got − want| / max(1, |want|) over the points."""
    return float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1000, help="random points checked against sympy.diff")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random points")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    first = add_multiply()
    print("1. f = (x + y) z at (x, y, z) = (-2, 5, -4):")
    print(f"   f = {first['f']:g}, (df/dx, df/dy, df/dz) = ({', '.join(f'{g:g}' for g in first['grad'])})"
          "   [notes: -12, (-4, -4, 3)]")

    neuron = sigmoid_neuron()
    print("2. sigmoid neuron f = σ(w0 x0 + w1 x1 + w2), w = [2, -3, -3], x = [-1, -2]:")
    print(f"   f = {neuron['f']:.2f}, dw = [{', '.join(f'{g:.2f}' for g in neuron['dw'])}], "
          f"dx = [{', '.join(f'{g:.2f}' for g in neuron['dx'])}]"
          "   [notes: 0.73, [-0.20, -0.39, 0.20], [0.39, -0.59]]")

    staged = staged_expression(args.points, args.seed)
    print("3. f(x, y) = (x + σ(y)) / (σ(x) + (x + y)²); the generated kernel, staged like the notes:")
    print(staged["kernel"])
    print(f"   at (3, -4): f = {staged['f']:.6f}, df/dx = {staged['dx']:.6f}, df/dy = {staged['dy']:.6f}")
    print(f"   vs sympy.diff at {staged['points']} points: max relative error "
          f"{staged['max_relative_error']:.1e}")
    return {"add_multiply": first, "neuron": neuron, "staged": staged}


if __name__ == "__main__":
    main()

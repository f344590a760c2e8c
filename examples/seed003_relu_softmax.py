"""Seed note 003 (CMU 10-414/714, "Manual" Neural Networks / Backprop): the L-layer ReLU MLP.

The notes define the fully-connected network Z_{i+1} = σ_i(Z_i W_i), i = 1..L, h_θ(X) = Z_{L+1}, train it
with softmax cross-entropy, whose gradient at the logits is S − I_y, and compute the gradients by the
backward iteration
    G_{L+1} = ∂ℓ/∂Z_{L+1} = (S − I_y) / m,
    ∇_{W_i} ℓ = Z_i^T (G_{i+1} ∘ σ_i'(Z_i W_i)),
    G_i = (G_{i+1} ∘ σ_i'(Z_i W_i)) W_i^T,
reusing the Z_i cached by the forward pass. ``notes_backprop`` below writes that out in NumPy.

What it shows:
  * gradc compiles ``seed003.toml`` (20-64-64-64-5, ReLU, no biases, softmax cross-entropy, integer
    labels) and its gradients equal both the notes' G_i iteration and ``gradc.tools.reference`` to 1e-10;
  * a few full-batch SGD steps on a synthetic 5-class problem lower the loss.

Run:  python examples/seed003_relu_softmax.py [--rows 256] [--steps 50] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import gradc
from gradc.frontend.spec import load_spec
from gradc.tools import reference

SPEC = Path(__file__).resolve().with_name("seed003.toml")
TOLERANCE = 1e-10


def make_problem(spec: Any, rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs labelled by a random linear 'teacher' (integer labels 0..K-1, shape (rows,))."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, spec.input))
    teacher = rng.standard_normal((spec.input, spec.layers[-1].units))
    return X, np.argmax(X @ teacher, axis=1)


def relu_derivative(pre: np.ndarray) -> np.ndarray:
    return (pre > 0).astype(pre.dtype)


def notes_backprop(Ws: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Loss and [∇_{W_1} ℓ, ..., ∇_{W_L} ℓ] by the notes' forward pass and G_i iteration.

    ``Z[i]`` is the notes' Z_i (Z[1] = X; index 0 is unused so that the indices match the formulas).
    σ_i is ReLU for i < L and the identity for i = L (the logits)."""
    L, m = len(Ws), X.shape[0]
    W = [None, *Ws]  # W[i] is W_i, i = 1..L
    Z: list[Any] = [None, X]
    for i in range(1, L + 1):
        pre = Z[i] @ W[i]
        Z.append(np.maximum(pre, 0) if i < L else pre)

    logits = Z[L + 1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    S = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)  # softmax
    I_y = np.eye(logits.shape[1])[y]
    loss = np.mean(np.log(np.exp(shifted).sum(axis=1)) - np.sum(shifted * I_y, axis=1))

    G = (S - I_y) / m  # G_{L+1}
    grads: list[Any] = [None] * (L + 1)
    for i in range(L, 0, -1):
        sigma_prime = relu_derivative(Z[i] @ W[i]) if i < L else 1.0  # σ_i'(Z_i W_i)
        G_sigma = G * sigma_prime  # G_{i+1} ∘ σ_i'(Z_i W_i)
        grads[i] = Z[i].T @ G_sigma  # ∇_{W_i} ℓ = Z_i^T (G_{i+1} ∘ σ_i'(Z_i W_i))
        G = G_sigma @ W[i].T  # G_i
    return float(loss), grads[1:]


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def compare(net: Any, spec: Any, params: dict[str, np.ndarray], X: np.ndarray,
            y: np.ndarray) -> dict[str, float]:
    """Max |difference| of loss and gradients: gradc vs the notes' G_i iteration and vs gradc.tools.reference."""
    loss, grads = net.loss_and_grad(params, X, y)
    notes_loss, notes_grads = notes_backprop([params[k] for k in net.param_names], X, y)
    ref_loss, ref_grads = reference.loss_and_grad(spec, params, X, y)
    notes = dict(zip(net.param_names, notes_grads))
    return {"loss_notes": abs(loss - notes_loss), "grad_notes": max_abs_diff(grads, notes),
            "loss_reference": abs(loss - ref_loss), "grad_reference": max_abs_diff(grads, ref_grads),
            "grad_scale": max(float(np.max(np.abs(g))) for g in grads.values())}


def train(net: Any, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray, steps: int,
          lr: float = 0.5) -> list[float]:
    """Full-batch SGD; the loss before each step."""
    return [net.sgd_step(params, X, y, lr) for _ in range(steps)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=256, help="rows in the batch (default 256)")
    parser.add_argument("--steps", type=int, default=50, help="full-batch SGD steps (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the initial weights")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    spec = load_spec(SPEC)
    net = gradc.compile_mlp(spec)
    sizes = "-".join(str(n) for n in [spec.input, *(layer.units for layer in spec.layers)])
    print(f"compiled {SPEC.name}: {sizes}, {', '.join(layer.activation for layer in spec.layers)}; "
          f"{spec.loss} with integer labels")
    X, y = make_problem(spec, args.rows, args.seed)
    params = net.init_params(seed=args.seed)
    diffs = compare(net, spec, params, X, y)
    print(f"gradients on {args.rows} rows (largest entry {diffs['grad_scale']:.2e}), max |difference|:")
    print(f"  vs the notes' G_i iteration: loss {diffs['loss_notes']:.1e}, "
          f"gradients {diffs['grad_notes']:.1e}")
    print(f"  vs gradc.tools.reference:          loss {diffs['loss_reference']:.1e}, "
          f"gradients {diffs['grad_reference']:.1e}")
    worst = max(diffs["grad_notes"], diffs["grad_reference"])
    print(f"  equal to {TOLERANCE:g}: {'yes' if worst <= TOLERANCE else 'NO'}")

    losses = train(net, params, X, y, args.steps)
    acc = float(np.mean(np.argmax(net.forward(params, X), axis=1) == y))
    print(f"full-batch SGD, {args.steps} steps: loss {losses[0]:.4f} -> {net.loss(params, X, y):.4f}, "
          f"training accuracy {acc:.0%}")
    return {"diffs": diffs, "losses": losses, "accuracy": acc}


if __name__ == "__main__":
    main()

"""Seed note 000 (CS231n Lecture 4, "Neural Networks"): the two-layer network with hand-written backprop.

The notes train N = 64 random rows through 1000 → 100 (sigmoid) → 10 (linear), no biases, with the loss
Σ (y_pred − y)² and a backward pass written out by hand, gate by gate. ``notes_backprop`` below is that
code, literally (only its typo ``grad_d = ...`` is read as ``grad_h = ...``, the name used on the next line).

What it shows:
  * gradc compiles ``seed000.yaml`` (the same network) and its generated gradients equal the notes'
    hand-written ones, to rounding (relative difference ~1e-16);
  * SGD with lr 1e-4, stepped by gradc's ``sgd_step`` and by the notes' update side by side, follows the
    same loss trajectory, which goes down.

Run:  python examples/seed000_two_layer.py [--steps 10] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import gradc

SPEC = Path(__file__).resolve().with_name("seed000.yaml")
N, D_in, H, D_out = 64, 1000, 100, 10
LR = 1e-4


def make_problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The notes' ``x, y = randn(N, D_in), randn(N, D_out)`` and ``w1, w2 = randn(...)`` (seeded)."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((N, D_in)), rng.standard_normal((N, D_out))
    w1, w2 = rng.standard_normal((D_in, H)), rng.standard_normal((H, D_out))
    return x, y, w1, w2


def notes_backprop(x: np.ndarray, y: np.ndarray, w1: np.ndarray,
                   w2: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """One forward and backward pass, exactly as the notes write it."""
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    loss = np.square(y_pred - y).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2.T)  # printed as `grad_d = ...` in the notes: a typo
    grad_w1 = x.T.dot(grad_h * h * (1 - h))
    return float(loss), grad_w1, grad_w2


def relative_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / max |b|: how many digits two arrays share."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def compare_gradients(net: Any, x: np.ndarray, y: np.ndarray, w1: np.ndarray,
                      w2: np.ndarray) -> dict[str, float]:
    """Relative differences between gradc's loss and gradients and the notes' hand-written ones."""
    loss, grads = net.loss_and_grad({"W1": w1, "W2": w2}, x, y)
    notes_loss, grad_w1, grad_w2 = notes_backprop(x, y, w1, w2)
    return {"loss": abs(loss - notes_loss) / abs(notes_loss),
            "W1": relative_diff(grads["W1"], grad_w1), "W2": relative_diff(grads["W2"], grad_w2)}


def train_side_by_side(net: Any, x: np.ndarray, y: np.ndarray, w1: np.ndarray, w2: np.ndarray,
                       steps: int, lr: float = LR) -> list[tuple[float, float]]:
    """``steps`` SGD steps with gradc's ``sgd_step`` and with the notes' update; (loss, loss) per step."""
    params = {"W1": w1.copy(), "W2": w2.copy()}
    w1, w2 = w1.copy(), w2.copy()
    losses = []
    for _ in range(steps):
        ours = net.sgd_step(params, x, y, lr)
        notes, grad_w1, grad_w2 = notes_backprop(x, y, w1, w2)
        w1 -= lr * grad_w1
        w2 -= lr * grad_w2
        losses.append((ours, notes))
    return losses


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="SGD steps to take (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random data and weights")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    net = gradc.compile_mlp(SPEC)
    x, y, w1, w2 = make_problem(args.seed)
    print(f"compiled {SPEC.name}: {D_in}-{H}-{D_out}, sigmoid then linear, no biases; parameters "
          f"{', '.join(net.param_names)} = the notes' w1 {w1.shape}, w2 {w2.shape}")
    diffs = compare_gradients(net, x, y, w1, w2)
    print(f"gradc vs the notes' hand-written backprop (N = {N}): relative difference of the loss "
          f"{diffs['loss']:.1e}, of grad_w1 {diffs['W1']:.1e}, of grad_w2 {diffs['W2']:.1e}")

    losses = train_side_by_side(net, x, y, w1, w2, args.steps)
    print(f"SGD with lr {LR:g}, loss before each step:\n  step   gradc sgd_step   notes' update")
    for t, (ours, notes) in enumerate(losses):
        print(f"  {t:4d}   {ours:14.6f}   {notes:13.6f}")
    return {"diffs": diffs, "losses": losses}


if __name__ == "__main__":
    main()

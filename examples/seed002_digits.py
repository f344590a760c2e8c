"""Seed note 002 (Nielsen, *Neural Networks and Deep Learning*, chapters 1-2): the 784-30-10 network.

The book trains a sigmoid network with the quadratic cost C = 1/(2n) Σ_x ‖y(x) − a‖² by mini-batch SGD
(mini-batches of 10, η = 3.0) on MNIST. There is no MNIST here, so the same architecture is trained on
the real handwritten digits that scikit-learn ships (8×8 pixels → 64-30-10, 25% held out for testing).

What it shows:
  * gradc compiles ``seed002_digits.yaml`` to a training module; ``sgd_step(params, X, Y, 3.0)`` on a
    batch of 10 is exactly the book's update w → w − (η/m) Σ_x ∂C_x/∂w, because ``mse`` averages over the
    batch;
  * it reaches ≥ 95% test accuracy (a tqdm bar per epoch shows loss and accuracy; a PNG of the curves is
    written to examples/out/);
  * its gradients equal the book's four backprop equations BP1-BP4, written out below in NumPy;
  * gradc's ``loss_and_grad`` is timed against ``gradc.tools.reference`` (hand-written NumPy) on the same batch.

Run:  python examples/seed002_digits.py [--epochs 30] [--quick] [--out examples/out]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

import gradc
from gradc.frontend.spec import load_spec
from gradc.tools import reference

HERE = Path(__file__).resolve().parent
SPEC = HERE / "seed002_digits.yaml"
OUT = HERE / "out"
BATCH, ETA, EPOCHS, QUICK_EPOCHS = 10, 3.0, 30, 3


class Digits(NamedTuple):
    """scikit-learn's digits, pixels scaled to [0, 1], split 75/25 (stratified, fixed seed)."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray  # integer labels 0..9
    y_test: np.ndarray


def load_digits_split(seed: int = 0) -> Digits:
    """The 1797 8×8 digits as rows of 64 pixels in [0, 1]; 25% held out for testing."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = digits.data / 16.0  # pixel intensities are 0..16
    parts = train_test_split(X, digits.target, test_size=0.25, random_state=seed, stratify=digits.target)
    return Digits(*parts)


def one_hot(labels: np.ndarray, classes: int = 10) -> np.ndarray:
    """Nielsen's y(x): the unit vector with a 1 at the label (the quadratic cost needs vectors)."""
    return np.eye(classes)[labels]


def accuracy(net: Any, params: dict[str, np.ndarray], X: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose most active output neuron is the label."""
    return float(np.mean(np.argmax(net.forward(params, X), axis=1) == labels))


def train_epoch(net: Any, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray,
                rng: np.random.Generator, batch: int = BATCH, lr: float = ETA) -> float:
    """One pass of mini-batch SGD over a fresh shuffle; returns the mean loss of the batches."""
    order = rng.permutation(len(X))
    losses = [net.sgd_step(params, X[idx], Y[idx], lr) for idx in np.array_split(order, len(X) // batch)]
    return float(np.mean(losses))


def train(net: Any, params: dict[str, np.ndarray], data: Digits, epochs: int = EPOCHS, seed: int = 0,
          progress: bool = True) -> dict[str, list[float]]:
    """Train ``params`` in place (``net`` is an MLPModule or a written module); per-epoch history."""
    rng = np.random.default_rng(seed)
    Y_train, Y_test = one_hot(data.y_train), one_hot(data.y_test)
    history: dict[str, list[float]] = {"train_loss": [], "test_loss": [], "train_acc": [], "test_acc": []}
    bar = tqdm(range(1, epochs + 1), desc="training", unit="epoch", disable=not progress)
    for _ in bar:
        history["train_loss"].append(train_epoch(net, params, data.X_train, Y_train, rng))
        history["test_loss"].append(net.loss(params, data.X_test, Y_test))
        history["train_acc"].append(accuracy(net, params, data.X_train, data.y_train))
        history["test_acc"].append(accuracy(net, params, data.X_test, data.y_test))
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.4f}", test_acc=f"{history['test_acc'][-1]:.3f}")
    return history


def plot_history(history: dict[str, list[float]], path: Path,
                 title: str = f"64-30-10 sigmoid, mse, batch {BATCH}, η = {ETA}") -> Path:
    """Save the loss and accuracy curves side by side as a PNG (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["train_loss"], label="train (mean over mini-batches)")
    ax_loss.plot(epochs, history["test_loss"], label="test")
    ax_loss.set(xlabel="epoch", ylabel="quadratic cost", title="loss", yscale="log")
    ax_acc.plot(epochs, history["train_acc"], label="train")
    ax_acc.plot(epochs, history["test_acc"], label="test")
    low = min(0.8, *history["train_acc"], *history["test_acc"])
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(low - 0.01, 1.0))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"digits: {title}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- the book's backprop, by hand


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def nielsen_backprop(params: dict[str, np.ndarray], X: np.ndarray,
                     Y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """The four fundamental equations, for a batch (rows are examples, so W acts from the right):

    BP1  δ^L = (a^L − y) ⊙ σ'(z^L)             BP3  ∂C/∂b^l = δ^l
    BP2  δ^l = (δ^{l+1} (W^{l+1})^T) ⊙ σ'(z^l)  BP4  ∂C/∂W^l = (a^{l-1})^T δ^l
    averaged over the batch (C = 1/(2N) Σ ‖a − y‖²), with σ'(z) = σ(z)(1 − σ(z)).
    """
    N = X.shape[0]
    z1 = X @ params["W1"] + params["b1"]
    a1 = sigmoid(z1)
    z2 = a1 @ params["W2"] + params["b2"]
    a2 = sigmoid(z2)
    cost = np.sum((a2 - Y) ** 2) / (2 * N)
    delta2 = (a2 - Y) / N * a2 * (1 - a2)  # BP1 (the 1/N of the mean folded in)
    delta1 = delta2 @ params["W2"].T * a1 * (1 - a1)  # BP2
    grads = {"W1": X.T @ delta1, "b1": delta1.sum(0),  # BP4, BP3
             "W2": a1.T @ delta2, "b2": delta2.sum(0)}
    return float(cost), grads


def numpy_sgd_step(params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, lr: float) -> float:
    """The hand-written counterpart of ``sgd_step``: BP1-BP4, then w → w − η ∂C/∂w in place."""
    cost, grads = nielsen_backprop(params, X, Y)
    for name, g in grads.items():
        params[name] -= lr * g
    return cost


def max_grad_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Largest absolute difference over all gradient entries (the two dicts have the same keys)."""
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def seconds_per_call(fn: Any, *args: Any, budget: float = 0.2) -> float:
    """Best-of-5 time per call, each timing running ``fn`` for about ``budget / 5`` seconds."""
    fn(*args)  # warm up (a JIT compile must not be timed)
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < budget / 25:
        fn(*args)
        calls += 1
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn(*args)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def speed_ratio(name: str, ours: float, theirs: float) -> str:
    """'<name> is 2.9x faster' (or slower), from two times per call."""
    if ours <= theirs:
        return f"{name} is {theirs / ours:.1f}x faster"
    return f"{name} is {ours / theirs:.1f}x slower"


def compare_with_reference(net: Any, params: dict[str, np.ndarray], X: np.ndarray,
                           Y: np.ndarray) -> dict[str, float]:
    """Gradient differences to BP1-BP4 and to gradc.tools.reference, and time per loss_and_grad call."""
    spec = load_spec(SPEC)
    _, ours = net.loss_and_grad(params, X, Y)
    _, book = nielsen_backprop(params, X, Y)
    _, ref = reference.loss_and_grad(spec, params, X, Y)
    t_gradc = seconds_per_call(net.loss_and_grad, params, X, Y)
    t_ref = seconds_per_call(reference.loss_and_grad, spec, params, X, Y)
    return {"diff_book": max_grad_diff(ours, book), "diff_reference": max_grad_diff(ours, ref),
            "t_gradc": t_gradc, "t_reference": t_ref}


def report_timing(net: Any, params: dict[str, np.ndarray], data: Digits) -> dict[str, dict[str, float]]:
    """Print the comparison for one training mini-batch and for the whole training set."""
    batches = {"mini-batch of 10": slice(0, BATCH), f"all {len(data.X_train)} training rows": slice(None)}
    results = {}
    for label, rows in batches.items():
        X, Y = data.X_train[rows], one_hot(data.y_train[rows])
        r = results[label] = compare_with_reference(net, params, X, Y)
        ratio = speed_ratio("gradc", r["t_gradc"], r["t_reference"])
        print(f"  {label}: max |grad diff| vs BP1-BP4 {r['diff_book']:.1e}, vs gradc.tools.reference "
              f"{r['diff_reference']:.1e}; loss_and_grad {r['t_gradc'] * 1e6:.0f} µs (gradc) vs "
              f"{r['t_reference'] * 1e6:.0f} µs (reference): {ratio}")
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs of SGD (default {EPOCHS})")
    parser.add_argument("--quick", action="store_true", help=f"train {QUICK_EPOCHS} epochs (a smoke test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the init and the shuffles")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNG (default examples/out)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS)
    data = load_digits_split(args.seed)
    print(f"digits: {len(data.X_train)} training / {len(data.X_test)} test images of 8x8 = 64 pixels")
    start = time.perf_counter()
    net = gradc.compile_mlp(SPEC)
    params = net.init_params(seed=args.seed)
    net.loss_and_grad(params, data.X_train[:BATCH], one_hot(data.y_train[:BATCH]))  # JIT-compile now
    print(f"compiled {SPEC.name} -> {net.param_names} in {time.perf_counter() - start:.1f} s")

    print(f"gradients at the initial parameters (loss_and_grad, {BATCH} rows and all rows):")
    timing = report_timing(net, params, data)

    print(f"training: {epochs} epochs of mini-batch SGD, batch {BATCH}, η = {ETA}")
    history = train(net, params, data, epochs, seed=args.seed, progress=not args.no_progress)
    png = plot_history(history, args.out / "seed002_digits.png")
    test_acc = history["test_acc"][-1]
    print(f"test accuracy after {epochs} epochs: {test_acc:.2%} ({round(test_acc * len(data.y_test))}/"
          f"{len(data.y_test)}); final training loss {history['train_loss'][-1]:.4f}")
    print(f"loss and accuracy curves: {png}")
    return {"test_acc": test_acc, "history": history, "timing": timing, "png": png}


if __name__ == "__main__":
    main()

"""What ``make demo`` runs: gradc end to end on a real (small) problem, in under a minute.

  1. compile the MLP spec examples/seed002_digits.yaml (Nielsen's sigmoid network, seed note 002) to a
     standalone Python module, examples/out/digits_mlp.py, that needs only numpy and numba;
  2. import that file with ``gradc.load`` and train it on scikit-learn's handwritten digits with the module's
     ``fit`` (Adam, the spec's optimizer; batch 10; each epoch one compiled call), with a progress bar; print
     the test accuracy and save the loss and accuracy curves as a PNG;
  3. check one training step against hand-written NumPy backprop (the book's equations BP1-BP4, in
     seed002_digits.py): the largest gradient difference, and the time per step of each;
  4. print the head of the generated code: its header and the ``_loss_and_grad`` function;
  5. see the gradient: the CS231n circuit (x + y)·z at x = -2, y = 5, z = -4 gate by gate (``gradc.explain``),
     and its picture, examples/out/cs231n_circuit.svg and .png, next to the training curves.

Run:  python examples/demo.py [--epochs 30] [--quick] [--out examples/out]
"""

from __future__ import annotations

import argparse
import copy
import inspect
import os
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import excerpt
import numpy as np
import seed002_digits as digits
import sympy

import gradc

RULE = "─" * 100


def section(number: int, title: str) -> None:
    print(f"\n{RULE}\n[{number}/5] {title}\n{RULE}")


def compile_and_write(out: Path) -> Path:
    """Step 1: spec -> generated module on disk; prints what was written."""
    print(f"spec {os.path.relpath(digits.SPEC)}:")
    spec_lines = digits.SPEC.read_text().splitlines()
    print("\n".join("    " + line for line in spec_lines if not line.startswith("#")))
    start = time.perf_counter()
    net = gradc.compile_mlp(digits.SPEC)
    path = net.write(out / "digits_mlp.py")
    print(f"gradc.compile_mlp(spec).write(...) took {time.perf_counter() - start:.2f} s and wrote "
          f"{os.path.relpath(path)}")
    print(f"  {len(net.source.splitlines())} lines of plain Python; imports only numpy and numba (not gradc);"
          f" {net.op_counts['forward']} forward + {net.op_counts['backward']} backward IR operations")
    return path


def describe(module: ModuleType) -> None:
    """The public functions and parameter shapes of a written module."""
    print("  its public functions (the same as gradc.compile_mlp(...) returns):")
    for name in ("init_params", "forward", "loss", "loss_and_grad", "sgd_step", "init_state", "step", "fit",
                 "predict", "save_params", "load_params"):
        fn = getattr(module, name)
        first = (inspect.getdoc(fn) or "").split(". ")[0].split(";")[0].split(":")[0].rstrip(".")
        doc = textwrap.shorten(first, 76, placeholder=" ...")
        call = f"    {name}{inspect.signature(fn)}"
        print(call.ljust(34) + doc if len(call) < 34 else f"{call}\n{'':34}{doc}")
    print(f"  parameters: {module.PARAM_SHAPES}")


def warm_up(module: ModuleType, params: dict[str, np.ndarray], data: digits.Digits) -> float:
    """Call each entry point once so that Numba compiles them (or loads them from its disk cache)."""
    start = time.perf_counter()
    X, Y = data.X_train[:digits.BATCH], digits.one_hot(data.y_train[:digits.BATCH])
    module.sgd_step(copy.deepcopy(params), X, Y, digits.ETA)
    module.fit(copy.deepcopy(params), X, Y, epochs=1, batch_size=digits.BATCH, progress=False)
    module.forward(params, X)
    module.loss(params, X, Y)
    return time.perf_counter() - start


def fit_with_curves(module: ModuleType, params: dict[str, np.ndarray], data: digits.Digits, epochs: int,
                    progress: bool) -> dict[str, list[float]]:
    """Train params in place with the module's fit (the spec's optimizer); the per-epoch history of
    digits.train's form (train/test loss and accuracy), the accuracies measured by fit's callback."""
    history: dict[str, list[float]] = {"train_acc": [], "test_acc": []}

    def accuracies(epoch: int, fitted: dict[str, list[float]]) -> bool:
        history["train_acc"].append(digits.accuracy(module, params, data.X_train, data.y_train))
        history["test_acc"].append(digits.accuracy(module, params, data.X_test, data.y_test))
        return False   # never stop early

    fitted = module.fit(params, data.X_train, digits.one_hot(data.y_train), epochs=epochs, batch_size=digits.BATCH,
                        seed=0, validation=(data.X_test, digits.one_hot(data.y_test)), progress=progress,
                        callback=accuracies)
    return {"train_loss": fitted["loss"], "test_loss": fitted["val_loss"], **history}


def load_and_train(path: Path, epochs: int, out: Path, progress: bool) -> tuple[ModuleType, dict, dict]:
    """Step 2: import the written file and train it; returns (module, trained params, results)."""
    module = gradc.load(path)
    describe(module)
    data = digits.load_digits_split(seed=0)
    params = module.init_params(seed=0)
    print(f"  first calls: {warm_up(module, params, data):.1f} s (Numba compiles the kernels once and caches "
          "them next to the file; later runs load them)")
    optimizer = ", ".join(f"{k} {v}" for k, v in module.OPTIMIZER.items() if k != "name")
    print(f"training on scikit-learn's digits: {len(data.X_train)} training / {len(data.X_test)} test images "
          f"of 8x8 pixels,\n  {epochs} epochs of {module.OPTIMIZER['name']} ({optimizer}), batch {digits.BATCH}, "
          "with the module's fit:\n  each epoch (shuffle, steps, running loss) is one compiled call")
    start = time.perf_counter()
    history = fit_with_curves(module, params, data, epochs, progress)
    print(f"  trained in {time.perf_counter() - start:.1f} s; test accuracy {history['test_acc'][-1]:.2%}")
    png = digits.plot_history(history, out / "digits_training.png",
                              title=f"64-30-10 sigmoid, mse, {module.OPTIMIZER['name']} lr "
                                    f"{module.OPTIMIZER['lr']}, batch {digits.BATCH}")
    print(f"  loss and accuracy curves: {png}")
    return module, params, {"data": data, "history": history, "png": png}


def one_step(module: ModuleType, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> dict:
    """Gradients, parameters after one SGD step, and time per step: generated vs hand-written."""
    _, ours = module.loss_and_grad(params, X, Y)
    _, book = digits.nielsen_backprop(params, X, Y)
    ours_p, book_p = copy.deepcopy(params), copy.deepcopy(params)
    module.sgd_step(ours_p, X, Y, digits.ETA)
    digits.numpy_sgd_step(book_p, X, Y, digits.ETA)
    return {"grad_diff": digits.max_grad_diff(ours, book), "step_diff": digits.max_grad_diff(ours_p, book_p),
            "t_gradc": digits.seconds_per_call(module.sgd_step, ours_p, X, Y, digits.ETA),
            "t_numpy": digits.seconds_per_call(digits.numpy_sgd_step, book_p, X, Y, digits.ETA)}


def compare_step(module: ModuleType, params: dict[str, np.ndarray], data: digits.Digits) -> dict[int, dict]:
    """Step 3: one SGD step on a training mini-batch and on the whole training set."""
    results = {}
    for rows in (digits.BATCH, len(data.X_train)):
        r = results[rows] = one_step(module, params, data.X_train[:rows], digits.one_hot(data.y_train[:rows]))
        ratio = digits.speed_ratio("generated", r["t_gradc"], r["t_numpy"])
        print(f"  batch of {rows:4d}: max |gradient difference| {r['grad_diff']:.1e} "
              f"(parameters after the step: {r['step_diff']:.1e})")
        print(f"                  time per SGD step: generated {r['t_gradc'] * 1e6:6.0f} µs, "
              f"NumPy {r['t_numpy'] * 1e6:6.0f} µs ({ratio})")
    return results


def show_code(path: Path) -> None:
    """Step 4: the header and the fused forward/backward function of the written module."""
    source = path.read_text(encoding="utf-8")
    print(excerpt.header(source))
    print("...\n")
    print(excerpt.function(source, "_loss_and_grad"))
    print(f"\n(the whole module: {path})")


def show_circuit(out: Path) -> dict[str, Path]:
    """Step 5: the lecture notes' circuit with its values and adjoints, as a table and as a picture."""
    x, y, z = sympy.symbols("x y z")
    explanation = gradc.explain((x + y) * z, at={x: -2, y: 5, z: -4})
    print(explanation)
    paths = {suffix: explanation.write(out / f"cs231n_circuit.{suffix}") for suffix in ("svg", "png")}
    print(f"\nthe circuit (values above the wires, adjoints below): {os.path.relpath(paths['svg'])} and .png")
    return paths


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs of SGD (default {digits.EPOCHS})")
    parser.add_argument("--quick", action="store_true", help=f"train {digits.QUICK_EPOCHS} epochs")
    parser.add_argument("--out", type=Path, default=digits.OUT, help="output folder (default examples/out)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    epochs = args.epochs or (digits.QUICK_EPOCHS if args.quick else digits.EPOCHS)
    start = time.perf_counter()
    print("gradc demo: an MLP spec -> a readable, Numba-compiled training module -> a digit classifier")

    section(1, "compile the spec to a standalone module")
    path = compile_and_write(args.out)

    section(2, "import the written module with gradc.load and train it")
    module, params, trained = load_and_train(path, epochs, args.out, not args.no_progress)

    section(3, "one training step: generated code vs hand-written NumPy backprop (BP1-BP4)")
    steps = compare_step(module, params, trained["data"])

    section(4, f"the head of the generated code ({path.name})")
    show_code(path)

    section(5, "see the gradient: the CS231n circuit (x + y)·z, gate by gate")
    circuit = show_circuit(args.out)

    elapsed = time.perf_counter() - start
    print(f"\n{RULE}\ndone in {elapsed:.1f} s. More examples, one per seed note: examples/README.md")
    return {"path": path, "test_acc": trained["history"]["test_acc"][-1], "png": trained["png"],
            "steps": steps, "circuit": circuit, "seconds": elapsed}


if __name__ == "__main__":
    main()

"""Time to train an MLP classifier end to end, at equal test accuracy: gradc's compiled ``fit`` against
scikit-learn's MLPClassifier, a plain PyTorch loop and a ``jax.jit`` step, side by side in one run.

    .venv-bench/bin/python benchmarks/training.py [--repeat 3] [--epochs-scale 1.0] [--only digits]
                                                  [--contestants gradc,sklearn,torch,jax] [--threads N]

Tasks (float64 everywhere, gradc's default; Adam lr 1e-3, betas 0.9/0.999, eps 1e-8, no weight decay;
softmax cross-entropy, mean over the batch; mini-batches reshuffled every epoch, the last one smaller):

* ``digits``: load_digits, X/16, stratified 75/25 split; 64-100-10 relu, batch 200, 200 epochs;
* ``classification``: make_classification, 200,000 train + 50,000 test rows, 40 features (20 informative),
  4 classes, standardised with the training mean/std; 40-64-64-4 relu, batch 256, 10 epochs.

What one timed training includes, for every contestant: from the NumPy training arrays (float64 X, int64
labels) to trained parameters: conversion into the library's arrays (gradc's one-hot labels, torch tensors,
JAX's transfer of each NumPy-gathered batch), building the network and initialising its parameters (each
library's own default initialisation, seeded), the optimiser state and every epoch. Excluded: compilation
and warm-up, measured apart in the ``warm-up s`` column (gradc: ``compile_mlp`` and a 1-epoch ``fit`` on a
slice, which compiles or loads its Numba kernels; JAX: tracing and XLA compilation of the step for both
batch shapes, by the same 1-epoch run on the slice; torch and sklearn: that run too), and the test
predictions (accuracy is scored after the clock).

The repeats are interleaved (repeat loop outside, contestant loop inside, a pause of timing.GAP_S before
each contestant so that the previous one's thread pools are idle), so that drifts of foreign load on a
shared machine hit all alike; repeat r trains from seed r. Thread pools are left at their defaults (torch's,
OpenBLAS's, XLA's: all cores) unless ``--threads N`` caps them all (through the environment, the script
restarting itself). On a machine another process keeps busy, a BLAS spinning on every core can make small
products many times slower: the load average is printed at the start and end of the run.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.run import thread_env  # noqa: E402
from gradc.tools.timing import GAP_S  # noqa: E402

CONTESTANTS = ("gradc", "sklearn", "torch", "jax")
#: the module each contestant needs; a missing one makes it "skipped (not installed)"
PACKAGES = {"gradc": "gradc", "sklearn": "sklearn", "torch": "torch", "jax": "jax"}
#: gradc's time / a peer's time that the task aims for (ratio of the medians)
TARGETS = {"sklearn": 0.1, "torch": 0.3}
LR, BETA1, BETA2, EPS = 0.001, 0.9, 0.999, 1e-8

Predictor = Callable[[np.ndarray], np.ndarray]          # test X -> predicted class indices
#: (X, y, seed, epochs=task's) -> predictor of the network trained on X, y from seed
Trainer = Callable[..., Predictor]


# ----------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Task:
    """One training problem: float64 X, int64 labels in [0, n_classes), the hidden layer widths, the batch
    size and the number of epochs (already scaled)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    hidden: tuple[int, ...]
    batch: int
    epochs: int

    def label(self) -> str:
        sizes = "-".join(str(n) for n in (self.X_train.shape[1], *self.hidden, self.n_classes))
        return (f"{self.name}: {sizes} relu, {len(self.X_train):,} train / {len(self.X_test):,} test rows, "
                f"batch {self.batch}, {self.epochs} epochs, Adam lr {LR:g}, float64")

    def warmup_slice(self) -> tuple[np.ndarray, np.ndarray]:
        """The first rows of the training set, enough for one full batch and one batch of the epoch's last
        (smaller) size, so that shape-specialising compilers see both shapes."""
        rows = self.batch + (len(self.X_train) % self.batch or self.batch)
        return self.X_train[:rows], self.y_train[:rows]


def _scaled(epochs: int, scale: float) -> int:
    """``epochs * scale`` rounded, at least 1."""
    return max(1, round(epochs * scale))


def load_digits_task(epochs_scale: float = 1.0) -> Task:
    """load_digits, X/16, stratified 75/25 split (random_state 0); 64-100-10, batch 200, 200 epochs."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    return Task("digits", *_arrays(X_tr, y_tr, X_te, y_te), n_classes=10, hidden=(100,), batch=200,
                epochs=_scaled(200, epochs_scale))


def load_classification_task(epochs_scale: float = 1.0) -> Task:
    """make_classification, 200,000 + 50,000 rows, 40 features, 20 informative, 4 classes (random_state 0),
    standardised with the training mean/std; 40-64-64-4, batch 256, 10 epochs."""
    from sklearn.datasets import make_classification

    n_train, n_test = 200_000, 50_000
    X, y = make_classification(n_samples=n_train + n_test, n_features=40, n_informative=20, n_classes=4,
                               random_state=0)
    mean, std = X[:n_train].mean(axis=0), X[:n_train].std(axis=0)
    X = (X - mean) / std
    return Task("classification", *_arrays(X[:n_train], y[:n_train], X[n_train:], y[n_train:]), n_classes=4,
                hidden=(64, 64), batch=256, epochs=_scaled(10, epochs_scale))


def _arrays(X_tr, y_tr, X_te, y_te) -> tuple[np.ndarray, ...]:
    """C-contiguous float64 X and int64 labels, as every contestant receives them."""
    as_x = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    as_y = lambda a: np.ascontiguousarray(a, dtype=np.int64)  # noqa: E731
    return as_x(X_tr), as_y(y_tr), as_x(X_te), as_y(y_te)


TASKS: dict[str, Callable[[float], Task]] = {"digits": load_digits_task,
                                             "classification": load_classification_task}


# ----------------------------------------------------------------------------------------- contestants
def build_gradc(task: Task) -> Trainer:
    """Compile the network (not timed by the caller's training clock); the trainer runs init_params + fit."""
    import gradc

    spec = {"input": task.X_train.shape[1],
            "layers": [*({"units": u, "activation": "relu"} for u in task.hidden), {"units": task.n_classes}],
            "loss": "softmax_cross_entropy", "optimizer": {"name": "adam", "lr": LR}}
    net = gradc.compile_mlp(spec)

    def train(X, y, seed, epochs=task.epochs):
        params = net.init_params(seed)
        net.fit(params, X, y, epochs=epochs, batch_size=task.batch, shuffle=True, seed=seed, progress=False)
        return lambda X_test: net.predict(params, X_test)
    return train


def build_sklearn(task: Task) -> Trainer:
    """MLPClassifier running exactly ``epochs`` epochs (tol 0, n_iter_no_change > epochs, no L2)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    def train(X, y, seed, epochs=task.epochs):
        clf = MLPClassifier(hidden_layer_sizes=task.hidden, activation="relu", solver="adam", alpha=0.0,
                            batch_size=task.batch, learning_rate_init=LR, max_iter=epochs, shuffle=True,
                            random_state=seed, tol=0.0, n_iter_no_change=epochs + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        return clf.predict
    return train


def build_torch(task: Task) -> Trainer:
    """A plain loop over in-memory float64 tensors: randperm per epoch, batches by index, nn.Sequential,
    CrossEntropyLoss, torch.optim.Adam; threads at torch's default."""
    import torch
    from torch import nn

    sizes = (task.X_train.shape[1], *task.hidden, task.n_classes)

    def train(X, y, seed, epochs=task.epochs):
        torch.manual_seed(seed)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out, dtype=torch.float64), nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS)
        loss_fn, n = nn.CrossEntropyLoss(), Xt.shape[0]
        for _ in range(epochs):
            perm = torch.randperm(n)
            for start in range(0, n, task.batch):
                idx = perm[start:start + task.batch]
                opt.zero_grad(set_to_none=True)
                loss_fn(model(Xt[idx]), yt[idx]).backward()
                opt.step()

        def predict(X_test):
            with torch.no_grad():
                return model(torch.from_numpy(X_test)).argmax(dim=1).numpy()
        return predict
    return train


def build_jax(task: Task) -> Trainer:
    """A ``jax.jit`` step (forward, value_and_grad, Adam by hand as torch.optim.Adam's) called from a Python
    loop over mini-batches gathered with NumPy (so the step's shapes are the batch's alone: the warm-up on a
    slice compiles both); float64 (jax_enable_x64). optax's Adam is used instead if installed."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    sizes = (task.X_train.shape[1], *task.hidden, task.n_classes)

    def logits(params, x):
        for i, (w, b) in enumerate(params):
            x = x @ w + b
            if i < len(params) - 1:
                x = jax.nn.relu(x)
        return x

    def loss_fn(params, x, y):
        logp = jax.nn.log_softmax(logits(params, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    update = _adam_update(jax, jnp)

    @jax.jit
    def step(params, opt_state, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        params, opt_state = update(params, grads, opt_state)
        return params, opt_state, loss

    predict_jit = jax.jit(lambda params, x: jnp.argmax(logits(params, x), axis=1))

    def train(X, y, seed, epochs=task.epochs):
        rng = np.random.default_rng(seed)
        uniform = lambda fan_in, shape: jnp.asarray(rng.uniform(-1, 1, shape) / np.sqrt(fan_in))  # noqa: E731
        params = [(uniform(a, (a, b)), uniform(a, b))   # torch's nn.Linear default, U(±1/sqrt(fan_in))
                  for a, b in zip(sizes[:-1], sizes[1:])]
        opt_state = _adam_init(jax, jnp, params)
        n = X.shape[0]
        for _ in range(epochs):
            perm = rng.permutation(n)
            for start in range(0, n, task.batch):
                idx = perm[start:start + task.batch]
                params, opt_state, _ = step(params, opt_state, X[idx], y[idx])
        jax.block_until_ready(params)
        return lambda X_test: np.asarray(predict_jit(params, X_test))
    return train


def _adam_init(jax, jnp, params) -> Any:
    """Adam's state for the parameter tree: optax's if installed, else (step, first moments, second moments)."""
    if importlib.util.find_spec("optax") is not None:
        import optax

        return optax.adam(LR, b1=BETA1, b2=BETA2, eps=EPS).init(params)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return jnp.zeros((), jnp.int64), zeros, zeros


def _adam_update(jax, jnp) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    """(params, grads, state) -> (new params, new state), traceable: optax.adam if installed, else torch's
    Adam by hand (bias-corrected step size, eps added to sqrt(v) / sqrt(1 - beta2^t))."""
    if importlib.util.find_spec("optax") is not None:
        import optax

        tx = optax.adam(LR, b1=BETA1, b2=BETA2, eps=EPS)

        def with_optax(params, grads, state):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state
        return with_optax
    tree_map = jax.tree_util.tree_map

    def by_hand(params, grads, state):
        t, m, v = state
        t = t + 1
        m = tree_map(lambda m, g: BETA1 * m + (1 - BETA1) * g, m, grads)
        v = tree_map(lambda v, g: BETA2 * v + (1 - BETA2) * g * g, v, grads)
        step_size = LR / (1 - BETA1 ** t)
        root = jnp.sqrt(1 - BETA2 ** t)
        params = tree_map(lambda p, m, v: p - step_size * m / (jnp.sqrt(v) / root + EPS), params, m, v)
        return params, (t, m, v)
    return by_hand


BUILDERS: dict[str, Callable[[Task], Trainer]] = {"gradc": build_gradc, "sklearn": build_sklearn,
                                                  "torch": build_torch, "jax": build_jax}


# ----------------------------------------------------------------------------------------- running
@dataclass
class Record:
    """One contestant on one task: ``status`` "ok", "skipped (not installed)" or "failed: ..."; the training
    wall times of the repeats (seconds), the test accuracy of the last repeat, the warm-up seconds."""

    name: str
    status: str = "ok"
    times: list[float] = field(default_factory=list)
    accuracy: float | None = None
    warmup_s: float | None = None

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times) if self.status == "ok" and self.times else None


def warm_up(name: str, task: Task) -> tuple[Trainer, float]:
    """Build contestant ``name`` and train it for one epoch on task.warmup_slice(); (trainer, seconds)."""
    started = time.perf_counter()
    trainer = BUILDERS[name](task)
    X, y = task.warmup_slice()
    trainer(X, y, 0, epochs=1)
    return trainer, time.perf_counter() - started


def time_training(trainer: Trainer, task: Task, seed: int) -> tuple[float, Predictor]:
    """(wall seconds of one training on the whole training set from ``seed``, the trained predictor)."""
    gc.collect()
    started = time.perf_counter()
    predictor = trainer(task.X_train, task.y_train, seed)
    return time.perf_counter() - started, predictor


def run_task(task: Task, contestants: Sequence[str], repeat: int,
             progress: Callable[[str], None] | None = None) -> list[Record]:
    """Warm up every installed contestant, then ``repeat`` rounds in which each trains once in turn (after a
    pause of GAP_S); a contestant that raises is marked failed and leaves the rounds. One Record each, in
    ``contestants``' order."""
    records = {name: Record(name) for name in contestants}
    trainers: dict[str, Trainer] = {}
    for name, record in records.items():
        if importlib.util.find_spec(PACKAGES[name]) is None:
            record.status = "skipped (not installed)"
            continue
        try:
            trainers[name], record.warmup_s = warm_up(name, task)
        except Exception as exc:  # noqa: BLE001 - a contestant that breaks must not take the others down
            record.status = _failure(exc)
    for r in range(repeat):
        for name in list(trainers):
            if progress:
                progress(f"{task.name}: repeat {r + 1}/{repeat}, {name}")
            time.sleep(GAP_S)
            try:
                seconds, predictor = time_training(trainers[name], task, seed=r)
                records[name].times.append(seconds)
                if r == repeat - 1:
                    records[name].accuracy = float(np.mean(predictor(task.X_test) == task.y_test))
            except Exception as exc:  # noqa: BLE001
                records[name].status = _failure(exc)
                del trainers[name]
    return list(records.values())


def _failure(exc: BaseException) -> str:
    return f"failed: {type(exc).__name__}: {str(exc).strip()[:200]}"


# ----------------------------------------------------------------------------------------- report
def format_table(task: Task, records: Iterable[Record]) -> str:
    """The task's label, then one row per contestant: median and min training seconds, median / gradc's
    median, test accuracy of the last repeat, warm-up seconds (or the status of one that did not run)."""
    records = list(records)
    base = next((r.median_s for r in records if r.name == "gradc"), None)
    lines = [task.label(),
             f"  {'contestant':<10} {'train s':>9} {'min s':>9} {'/ gradc':>8} {'test acc':>9} {'warm-up s':>10}"]
    for r in records:
        if r.median_s is None:
            lines.append(f"  {r.name:<10} {r.status}")
            continue
        ratio = f"{r.median_s / base:8.2f}" if base else f"{'-':>8}"
        acc = f"{r.accuracy:9.4f}" if r.accuracy is not None else f"{'-':>9}"
        lines.append(f"  {r.name:<10} {r.median_s:9.3f} {min(r.times):9.3f} {ratio} {acc} {r.warmup_s:10.2f}")
    return "\n".join(lines)


def target_line(records: Iterable[Record]) -> str:
    """'target: ...' and, for each peer of TARGETS that ran, gradc's ratio and whether it is met."""
    by_name = {r.name: r.median_s for r in records}
    verdicts = []
    for peer, limit in TARGETS.items():
        if by_name.get("gradc") and by_name.get(peer):
            ratio = by_name["gradc"] / by_name[peer]
            verdicts.append(f"{peer} {ratio:.3f}x {'met' if ratio <= limit else 'MISSED'}")
        else:
            verdicts.append(f"{peer} not measured")
    return "target: gradc <= 0.1x sklearn's time and <= 0.3x torch's -- " + "; ".join(verdicts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed trainings per contestant (median and min)")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiplies every task's epochs")
    parser.add_argument("--only", choices=list(TASKS), help="run this task alone")
    parser.add_argument("--contestants", default=",".join(CONTESTANTS), help="comma-separated subset")
    parser.add_argument("--threads", type=int, help="cap every thread pool (BLAS, OpenMP/torch, Numba, XLA); "
                                                    "default: each library's own")
    args = parser.parse_args(argv)
    if args.threads and os.environ.get("OMP_NUM_THREADS") != str(args.threads):   # pools size at import
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **thread_env(args.threads)})
    contestants = [c.strip() for c in args.contestants.split(",") if c.strip()]
    unknown = sorted(set(contestants) - set(CONTESTANTS))
    if unknown or args.repeat < 1 or args.epochs_scale <= 0:
        parser.error(f"unknown contestants {unknown}" if unknown else "--repeat and --epochs-scale must be > 0")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
          + f"; {os.cpu_count()} cores; threads: {args.threads or 'library defaults'}", flush=True)
    for name in [args.only] if args.only else TASKS:
        task = TASKS[name](args.epochs_scale)
        records = run_task(task, contestants, args.repeat,
                           progress=lambda msg: print(f"  ... {msg}", file=sys.stderr, flush=True))
        print(format_table(task, records))
        print(target_line(records), flush=True)
        print()
    print("load average at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training on dask arrays: MLPModule.fit with X and Y in row chunks.

The chunks are computed once and kept where they are made (on the workers of the current distributed
Client, else in this process by Dask's threaded scheduler); each step then sends tasks to them, never data.

strategy="sync" (the default): synchronous data-parallel steps, the trajectory of fit in memory. The rows
are shuffled as the compiled epoch shuffles them (the same generator and seed), each global mini-batch is
split by the chunks its rows lie in, every chunk computes its rows' partial loss and gradients, and the
client sums them (mean-weighted, L2 added once, as loss_and_grad does) and makes one optimiser update with
the runtime's update rules. Per step the parameters travel out and one gradient per chunk comes back.

strategy="local": each chunk trains its own copy of the parameters on its own rows, `sync_every` compiled
mini-batch steps at a time (default: its whole local epoch, one compiled call), then the client averages the
copies (and the optimiser moments), weighted by rows. Fewer round trips, a different trajectory: it pays when a
step computes in less time than a round trip takes, and suits large data and small learning rates.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import dask
import numba as nb
import numpy as np

from gradc.distributed import mlp
from gradc.distributed.remote import Kernel, kernel_of

STRATEGIES = ("sync", "local")


@nb.njit(cache=True)
def _order(n, shuffle, seed):
    """The row order of an epoch, as the compiled epoch (gradc/backend/mlp.py) makes it: Numba's generator
    seeded with `seed` shuffles np.arange(n)."""
    order = np.arange(n)
    if shuffle:
        np.random.seed(seed)
        np.random.shuffle(order)
    return order


def _current_client() -> Any:
    """The current distributed Client, or None (then Dask's threaded scheduler runs the tasks here): none where
    Dask's configuration names another scheduler (`dask.config.set(scheduler="threads")`), as for compute."""
    if "distributed" not in sys.modules or dask.config.get("scheduler", None) not in (None, "dask.distributed",
                                                                                        "distributed"):
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _same(value: Any) -> Any:
    return value


def _prepare(kernel: Kernel, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A chunk as the kernels take it: C-ordered arrays of the module's dtype, labels made one-hot."""
    m = kernel.module
    return m._batch((X, Y), m.INPUT, m.OUTPUT, m.DTYPE, m.LABELS_OK)


class Chunks:
    """The row chunks of (X, Y), computed once where the tasks will run, and a way to run a task on each."""

    def __init__(self, kernel: Kernel, X: Any, Y: Any):
        X, Y = mlp.rows_aligned(X, Y)
        self.sizes = np.array(X.chunks[0], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.rows = int(self.offsets[-1])
        self.client = _current_client()
        shared = dask.delayed(kernel, pure=True)
        pairs = [dask.delayed(_prepare, pure=True)(shared, x, y)
                 for x, y in zip(X.to_delayed().ravel(), Y.to_delayed().ravel())]
        if self.client is not None:
            self.kernel = self.client.submit(_same, kernel)   # recomputable, unlike scattered data
            self.data = self.client.compute(pairs)
        else:
            self.kernel = kernel
            self.data = list(dask.compute(*pairs, scheduler="threads"))

    def run(self, fn: Callable, calls: list[tuple[int, tuple]], shared: Any) -> list[Any]:
        """fn(kernel, chunk c, *args, shared) for each (c, args) of `calls`, on the chunks' workers; the
        results in the order of `calls`."""
        if self.client is None:
            tasks = [dask.delayed(fn, pure=False)(self.kernel, self.data[c], *args, shared) for c, args in calls]
            return list(dask.compute(*tasks, scheduler="threads"))
        # `shared` goes with each task: a future of it would cost the step a round trip more (a task to hold it,
        # then each worker fetching it) than its bytes, the parameters, cost to send again per chunk
        futures = [self.client.submit(fn, self.kernel, self.data[c], *args, shared, pure=False) for c, args in calls]
        return self.client.gather(futures)

    def split(self, rows: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """The rows (global indices) of a mini-batch by chunk: (chunk, local indices) for each chunk holding any."""
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        return [(int(c), rows[which == c] - self.offsets[c]) for c in np.unique(which)]


def _batch_partial(kernel: Kernel, chunk: tuple[np.ndarray, np.ndarray], rows: np.ndarray, weigh: bool,
                   params: dict[str, np.ndarray]) -> tuple[int, float, dict[str, np.ndarray]]:
    """The partial loss and gradients of some rows of a chunk (see mlp.partial)."""
    X, Y = chunk
    return mlp.partial(kernel, params, X[rows], Y[rows], weigh)


def _local_round(kernel: Kernel, chunk: tuple[np.ndarray, np.ndarray], seed: int, first: int, steps: int,
                 batch_size: int, shuffle: bool, shared: tuple) -> tuple[int, float, dict, dict]:
    """`steps` mini-batch steps of a chunk's local epoch (shuffled from `seed`), from its step `first`, as one
    compiled call on copies of the parameters and state: (rows, loss sum, params, state)."""
    params, state, options = shared
    m = kernel.module
    X, Y = chunk
    rows = _order(X.shape[0], shuffle, seed)[first * batch_size:(first + steps) * batch_size]
    params = {k: np.array(v, copy=True) for k, v in params.items()}
    state = {k: np.array(v, copy=True) for k, v in state.items()}
    t = int(state["step"])
    mean = m._epoch(X[rows], Y[rows], *m._trainable(params), *m._moments(state), m._rule(options), t,
                    batch_size, False, 0)
    state["step"][...] = t + steps
    return len(rows), float(mean) * len(rows), params, state


def _average(targets: dict[str, np.ndarray], copies: list[dict[str, np.ndarray]], weights: np.ndarray) -> None:
    """targets[k][...] = the weighted mean of the copies' k, in float64, for every array but "step"."""
    for name, target in targets.items():
        if name != "step":
            total = sum(w * np.asarray(c[name], np.float64) for c, w in zip(copies, weights))
            target[...] = total / weights.sum()


def _check(epochs: Any, batch_size: Any, strategy: str, sync_every: Any) -> None:
    """ValueError naming the first argument out of range (as fit in memory says it)."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0, got {epochs!r:.80}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r:.80}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r:.80}")
    if sync_every is not None and (isinstance(sync_every, bool) or not isinstance(sync_every, (int, np.integer))
                                   or sync_every < 1):
        raise ValueError(f"sync_every must be an integer >= 1 or None, got {sync_every!r:.80}")


def _validation_set(m, validation: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The validation pair in memory, converted as fit converts it (dask arrays are computed: a validation
    set is scored after every epoch on the client)."""
    if validation is None:
        return None
    if len(validation) != 2:
        raise ValueError("validation must be a pair (X_val, Y_val)")
    pair = dask.compute(*validation)
    return m._batch(tuple(pair), m.INPUT, m.OUTPUT, m.DTYPE, m.LABELS_OK)


def _sync_epoch(net, chunks: Chunks, arrays, moments, rule, t: int, batch_size: int, shuffle: bool,
                seed: int) -> tuple[float, int]:
    """One epoch of synchronous data-parallel steps: (the mean loss of its steps weighted by rows, the step)."""
    m = net.module
    names = net.param_names
    weigh = mlp.weighted(net)
    params = dict(zip(names, arrays))
    order = _order(chunks.rows, shuffle, seed)
    total = 0.0
    for start in range(0, chunks.rows, batch_size):
        rows = order[start:start + batch_size]
        t += 1
        parts = chunks.run(_batch_partial, [(c, (local, weigh)) for c, local in chunks.split(rows)], params)
        value, grads = mlp.finish(net, params, mlp.add(*parts))
        total += rows.shape[0] * value
        for k, (name, p) in enumerate(zip(names, arrays)):
            update = m._update_matrix if p.ndim == 2 else m._update_vector
            update(p, grads[name], moments[k], moments[len(names) + k], rule, t)
    return total / chunks.rows, t


def _local_epoch(net, chunks: Chunks, params, state, options, batch_size: int, shuffle: bool, seed: int,
                 sync_every: int | None) -> float:
    """One epoch of local training on every chunk, the copies averaged every `sync_every` steps (or once)."""
    steps = (chunks.sizes + batch_size - 1) // batch_size
    every = int(sync_every or steps.max())
    seeds = [(seed + 1_000_003 * c) % (2 ** 31 - 1) for c in range(len(steps))]
    rows, total = 0, 0.0
    for first in range(0, int(steps.max()), every):
        calls = [(c, (seeds[c], first, int(min(every, steps[c] - first)), batch_size, bool(shuffle)))
                 for c in range(len(steps)) if steps[c] > first]
        results = chunks.run(_local_round, calls, (dict(params), dict(state), options))
        weights = np.array([r[0] for r in results], dtype=np.float64)
        _average(params, [r[2] for r in results], weights)
        _average(state, [r[3] for r in results], weights)
        state["step"][...] = max(int(r[3]["step"]) for r in results)
        rows += sum(r[0] for r in results)
        total += sum(r[1] for r in results)
    return total / rows


def fit(net, params: dict[str, np.ndarray], X: Any, Y: Any, epochs: int = 10, batch_size: int = 32,
        shuffle: bool = True, seed: int = 0, validation: tuple[Any, Any] | None = None, progress: bool = True,
        callback: Callable[[int, dict[str, list[float]]], Any] | None = None,
        optimizer: Mapping[str, Any] | None = None, state: dict[str, np.ndarray] | None = None,
        strategy: str = "sync", sync_every: int | None = None) -> dict[str, list[float]]:
    """MLPModule.fit on dask X and Y (see the module docstring for the strategies); params and state are
    trained in place and the history is fit's in memory."""
    _check(epochs, batch_size, strategy, sync_every)
    m = net.module
    options = m.optimizer_options(m.OPTIMIZER if optimizer is None else optimizer)
    rule = m._rule(options)
    arrays = m._trainable(params)
    state = m.init_state(params) if state is None else state
    moments = m._moments(state)
    validation = _validation_set(m, validation)
    history: dict[str, list[float]] = m._history(validation)
    if epochs == 0:   # nothing to train: the data is not computed
        return history
    chunks = Chunks(mlp.data_kernel(net) if strategy == "sync" else kernel_of(net), X, Y)
    seeds = np.random.default_rng(seed).integers(0, 2 ** 31 - 1, size=epochs)
    bar = m._progress(epochs, progress)
    try:
        for epoch in range(epochs):
            if strategy == "sync":
                mean, t = _sync_epoch(net, chunks, arrays, moments, rule, int(state["step"]), batch_size, shuffle,
                                      int(seeds[epoch]))
                state["step"][...] = t
            else:
                mean = _local_epoch(net, chunks, params, state, options, batch_size, shuffle, int(seeds[epoch]),
                                    sync_every)
            m._record_epoch(history, mean, params, validation, bar)
            if callback is not None and callback(epoch, history):
                break
    finally:
        bar.close()
    return history

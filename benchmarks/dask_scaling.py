"""Scaling gradc out with Dask: full-batch MLP loss_and_grad over lazily generated data on 1 and 2 workers,
against in-memory gradc, and the per-step overhead of synchronous data-parallel training, in one run.

    .venv/bin/python benchmarks/dask_scaling.py [--rows 2000000] [--full] [--chunk-rows 125000] [--hidden 128]
                                                [--workers 1,2] [--repeat 3] [--train-rows 400000]
                                                [--batch 16384] [--slice-rows N] [--json PATH]

The data (float64 X of --features columns, int labels of --classes) is made by ``dask.array.random`` chunk by
chunk inside the tasks: it is never materialised in one process, and each pass over it generates it again
(the rows/s below include that; the generation alone is timed too). ``--full`` is the 20 million × 64 rows
case. Each worker count gets its own ``LocalCluster`` of single-threaded worker processes, gradc's loops and
the BLAS held to one thread (GRADC_THREADS=1 and the usual variables, set before anything is imported), so
that 1 → 2 workers doubles the cores and nothing else. The in-memory reference is this process, equally
capped, on the largest slice that fits in a quarter of the available memory (at most --slice-rows).

Measured:

* rows/s of a full-batch ``loss_and_grad`` (median of --repeat passes after a warm-up that compiles on the
  workers), and the speed-up from 1 to 2 workers (target ≥ 1.7×);
* peak memory per worker: the workers' resident set sampled every 20 ms during the passes, above its level
  before them, against the bytes of one chunk of X;
* synchronous ``fit``: the time of one step on the cluster (the difference between 3 epochs and 1, over the
  steps between them, so the one-off chunk generation cancels) against the compute of one step in memory
  (``step`` on one batch in this process), and the bytes that travel per step (the parameters out with each
  chunk's task, one float64 gradient per chunk back); one epoch of the local strategy (averaging once per
  epoch) beside one of sync.
"""

from __future__ import annotations

import os

_ONE_THREAD = {"GRADC_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}
os.environ.update(_ONE_THREAD)   # before NumPy and Numba size their pools; the workers inherit it

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gradc  # noqa: E402

TARGET = 1.7   # rows/s of 2 workers / rows/s of 1


def spec(features: int, hidden: int, classes: int) -> dict[str, Any]:
    return {"name": "dask_scaling", "input": features, "layers": [{"units": hidden, "activation": "relu"},
                                                                  {"units": classes, "activation": "identity"}],
            "loss": "softmax_cross_entropy", "optimizer": {"name": "adam", "lr": 0.001}}


def lazy_data(rows: int, features: int, classes: int, chunk: int, seed: int = 0):
    """(X, labels) as dask arrays generated chunk by chunk by dask.array.random (reproducibly from seed)."""
    import dask.array as da

    rng = da.random.default_rng(seed)
    X = rng.standard_normal((rows, features), chunks=(chunk, features))
    labels = rng.integers(0, classes, size=rows, chunks=chunk)
    return X, labels


class RSSSampler:
    """Peak resident memory of some processes above their level at the start, sampled every 20 ms."""

    def __init__(self, pids: list[int]):
        import psutil

        self.processes = [psutil.Process(p) for p in pids]
        self.base = [p.memory_info().rss for p in self.processes]
        self.peak = list(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for k, p in enumerate(self.processes):
                try:
                    self.peak[k] = max(self.peak[k], p.memory_info().rss)
                except Exception:   # a process gone: keep what was seen
                    pass

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def above_base(self) -> list[int]:
        return [peak - base for peak, base in zip(self.peak, self.base)]


def cluster(workers: int):
    """A LocalCluster of `workers` single-threaded worker processes and a Client to it."""
    import distributed

    env = {**_ONE_THREAD, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    c = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                 env=env, silence_logs=40, memory_limit=0)
    return c, distributed.Client(c)


def timed(fn, repeat: int) -> list[float]:
    """Seconds of fn(k) for k = 0 .. repeat - 1."""
    times = []
    for k in range(repeat):
        start = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - start)
    return times


def fresh(params: dict[str, Any], k: int) -> dict[str, Any]:
    """params with the last entry of one bias raised by k of the smallest subnormals: the same network to every
    digit that matters, but another Dask token, so that pass k cannot reuse a result the previous pass's
    tasks still hold."""
    params = {name: value.copy() for name, value in params.items()}
    params["b1"].flat[-1] += k * 5e-324
    return params


def full_batch(net, params, X, labels, workers: int, repeat: int) -> dict[str, Any]:
    """rows/s of loss_and_grad over the lazy data on `workers` workers, the generation alone, peak memory."""
    import dask

    local, client = cluster(workers)
    try:
        head = X[: X.chunks[0][0] * workers], labels[: X.chunks[0][0] * workers]
        net.loss_and_grad(params, *head)   # compiles (or loads) the module on every worker
        pids = list(client.run(os.getpid).values())
        with RSSSampler(pids) as rss:
            times = timed(lambda k: net.loss_and_grad(fresh(params, k), X, labels), repeat)
        generation = statistics.median(timed(lambda k: dask.compute(X.sum(), labels.sum()), 1))
    finally:
        client.close()
        local.close()
    rows = X.shape[0]
    return {"workers": workers, "seconds": times, "rows_per_s": rows / statistics.median(times),
            "generation_rows_per_s": rows / generation, "peak_rss_above_base": rss.above_base()}


def in_memory(net, params, X, labels, slice_rows: int, repeat: int) -> dict[str, Any]:
    """rows/s of loss_and_grad in this process on the first slice_rows rows, materialised here."""
    import dask

    Xs, ls = dask.compute(X[:slice_rows], labels[:slice_rows], scheduler="threads")
    net.loss_and_grad(params, Xs[:1000], ls[:1000])   # compile
    times = timed(lambda k: net.loss_and_grad(params, Xs, ls), repeat)
    return {"rows": slice_rows, "seconds": times, "rows_per_s": slice_rows / statistics.median(times)}


def largest_slice(rows: int, features: int, hidden: int, cap: int) -> int:
    """Rows of the largest in-memory slice: X, the one-hot labels and the activations and adjoints of a pass
    (about 6 arrays of the hidden width) in a quarter of the available memory, at most `cap`."""
    import psutil

    per_row = 8 * (features + 10 + 6 * hidden)
    return int(min(rows, cap, psutil.virtual_memory().available // 4 // per_row))


def sync_training(net, params, X, labels, batch: int, workers: int) -> dict[str, Any]:
    """Seconds per synchronous step on the cluster against one step's compute in memory; bytes per step."""
    import dask

    local, client = cluster(workers)
    try:
        for strategy in ("sync", "local"):   # compiles (or loads) each strategy's kernels on every worker
            net.fit({k: v.copy() for k, v in params.items()}, X, labels, epochs=1, batch_size=batch,
                    progress=False, strategy=strategy)
        runs = {}
        for strategy in ("sync", "local"):
            for epochs in (1, 3):
                trained = {k: v.copy() for k, v in params.items()}
                start = time.perf_counter()
                net.fit(trained, X, labels, epochs=epochs, batch_size=batch, progress=False, strategy=strategy)
                runs[strategy, epochs] = time.perf_counter() - start
    finally:
        client.close()
        local.close()
    steps = -(-X.shape[0] // batch)
    per_step = (runs["sync", 3] - runs["sync", 1]) / (2 * steps)
    Xb, lb = dask.compute(X[:batch], labels[:batch], scheduler="threads")
    state = net.init_state(params)
    trained = {k: v.copy() for k, v in params.items()}
    net.step(trained, state, Xb, lb)   # compile
    compute = statistics.median(timed(lambda k: net.step(trained, state, Xb, lb), 20))
    param_bytes = sum(v.nbytes for v in params.values())
    chunks = len(X.chunks[0])
    return {"rows": X.shape[0], "batch": batch, "workers": workers, "steps_per_epoch": steps,
            "seconds_per_step": per_step, "step_compute_s": compute,
            "overhead_per_step_s": per_step - compute / workers,
            "local_epoch_s": (runs["local", 3] - runs["local", 1]) / 2,
            "sync_epoch_s": (runs["sync", 3] - runs["sync", 1]) / 2, "param_bytes": param_bytes, "chunks": chunks,
            "bytes_per_step": (param_bytes + 8 * sum(v.size for v in params.values())) * chunks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the full-batch data")
    parser.add_argument("--full", action="store_true", help="the 20,000,000 x 64 case (overrides --rows)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128, help="units of the hidden (relu) layer")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=125_000)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--repeat", type=int, default=3, help="timed full-batch passes per worker count")
    parser.add_argument("--slice-rows", type=int, default=1_000_000, help="cap of the in-memory slice")
    parser.add_argument("--train-rows", type=int, default=400_000, help="rows of the synchronous-training data")
    parser.add_argument("--batch", type=int, default=16_384, help="global mini-batch of synchronous training")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    rows = 20_000_000 if args.full else args.rows
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    import dask
    import distributed

    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores;"
          f" dask {dask.__version__}, distributed {distributed.__version__}", flush=True)
    net = gradc.compile_mlp(spec(args.features, args.hidden, args.classes))
    params = net.init_params(0)
    X, labels = lazy_data(rows, args.features, args.classes, args.chunk_rows)
    chunk_bytes = args.chunk_rows * args.features * 8
    print(f"data: {rows:,} x {args.features} float64 ({rows * args.features * 8 / 1e9:.2f} GB, generated lazily),"
          f" chunks of {args.chunk_rows:,} rows ({chunk_bytes / 1e6:.0f} MB); network {args.features}-{args.hidden}"
          f"-{args.classes} relu, softmax_cross_entropy", flush=True)
    results: dict[str, Any] = {"rows": rows, "chunk_bytes": chunk_bytes, "scaling": []}
    slice_rows = largest_slice(rows, args.features, args.hidden, args.slice_rows)
    results["in_memory"] = memory = in_memory(net, params, X, labels, slice_rows, args.repeat)
    print(f"in memory (this process, 1 thread, {slice_rows:,} rows): {memory['rows_per_s']:,.0f} rows/s", flush=True)
    for workers in counts:
        r = full_batch(net, params, X, labels, workers, args.repeat)
        results["scaling"].append(r)
        peaks = ", ".join(f"{b / 1e6:.0f} MB ({b / chunk_bytes:.1f} chunks)" for b in r["peak_rss_above_base"])
        print(f"{workers} worker(s): {r['rows_per_s']:,.0f} rows/s (median of {args.repeat}: "
              f"{statistics.median(r['seconds']):.2f} s); generation alone {r['generation_rows_per_s']:,.0f} rows/s;"
              f" peak memory above base per worker: {peaks}", flush=True)
    by_count = {r["workers"]: r["rows_per_s"] for r in results["scaling"]}
    if 1 in by_count and 2 in by_count:
        speedup = by_count[2] / by_count[1]
        results["speedup_1_to_2"] = speedup
        verdict = "met" if speedup >= TARGET else "MISSED"
        print(f"speed-up 1 -> 2 workers: {speedup:.2f}x (target >= {TARGET}x: {verdict})")
    Xt, lt = lazy_data(args.train_rows, args.features, args.classes, -(-args.train_rows // max(counts)), seed=1)
    results["sync"] = s = sync_training(net, params, Xt, lt, args.batch, max(counts))
    print(f"synchronous fit, {max(counts)} workers, batch {args.batch:,}, {s['rows']:,} rows in {s['chunks']} chunks: "
          f"{s['seconds_per_step'] * 1e3:.1f} ms per step against {s['step_compute_s'] * 1e3:.1f} ms of compute in "
          f"memory (overhead {s['overhead_per_step_s'] * 1e3:.1f} ms beyond compute/{max(counts)}); "
          f"{s['bytes_per_step'] / 1e3:.0f} kB per step (params {s['param_bytes'] / 1e3:.0f} kB); "
          f"one epoch: sync {s['sync_epoch_s']:.2f} s, local strategy {s['local_epoch_s']:.2f} s", flush=True)
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark harness, shared by ``gradc bench`` and benchmarks/run.py: timing (warm-up, median of
repeated samples, blocked interleaving), verification against a reference, the "verified, then timed"
contestant loop, and gradc's cold-compile / warm-load measurement in fresh processes.

Needs only numpy and the standard library; peer libraries are imported by ``import_peer`` when a
contestant is built (gradc.tools.peers).
"""

from __future__ import annotations

import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Samples a contestant takes in a row before the next one's turn: short blocks let a drift of foreign load
#: hit every contestant alike (benchmarks/README.md has the measurements behind 3).
BLOCK_SAMPLES = 3
#: Pause before each block, so that the previous contestant's spinning thread pools are idle again.
GAP_S = 0.2


def blocked(repeat: int) -> dict[str, Any]:
    """:func:`time_interleaved`'s ``passes`` and ``gap_s`` for ``repeat`` samples taken in blocks of about
    BLOCK_SAMPLES (at least 3 passes), each after a pause of GAP_S."""
    return {"passes": max(3, repeat // BLOCK_SAMPLES), "gap_s": GAP_S}


class VerificationError(AssertionError):
    """A contestant's value or gradient differs from the reference by more than the tolerance."""


@dataclass(frozen=True)
class Timing:
    """Per-call wall time of one contestant, in milliseconds.

    ``number`` calls are timed together per sample (so that tiny calls are not lost in timer
    resolution); ``samples`` such samples are taken after ``warmup`` untimed calls.
    """

    median_ms: float
    min_ms: float
    max_ms: float
    iqr_ms: float
    samples: int
    number: int
    warmup: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _calibrate(fn: Callable[[], Any], warmup: int, min_sample_s: float) -> int:
    """Run the warm-up calls (the first absorbs JIT compilation or tracing) and three more; return the
    number of calls per sample that makes one sample last at least ``min_sample_s``, judged from the
    fastest of those three (one call stalled by foreign load must not set a sample of one call)."""
    for _ in range(max(1, warmup)):
        fn()
    one = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        one = min(one, time.perf_counter() - t0)
    return max(1, math.ceil(min_sample_s / max(one, 1e-9)))


def _sample(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call over ``number`` back-to-back calls, garbage collector paused (as in timeit)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - t0) / number
    finally:
        if enabled:
            gc.enable()


def _summary(per_call: list[float], number: int, warmup: int) -> Timing:
    ms = sorted(1e3 * t for t in per_call)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    return Timing(median_ms=statistics.median(ms), min_ms=ms[0], max_ms=ms[-1], iqr_ms=q[2] - q[0],
                  samples=len(ms), number=number, warmup=max(1, warmup))


def time_call(fn: Callable[[], Any], *, repeat: int = 15, warmup: int = 2, min_sample_s: float = 0.005,
              budget_s: float = 30.0, min_samples: int = 5) -> Timing:
    """Time ``fn()`` alone: ``warmup`` untimed calls, then ``repeat`` samples; the median per call.

    Sampling stops early once ``budget_s`` is spent and at least ``min_samples`` samples exist.
    """
    result = time_interleaved({"fn": fn}, repeat=repeat, warmup=warmup, min_sample_s=min_sample_s,
                              budget_s=budget_s, min_samples=min_samples, passes=1, gap_s=0.0)["fn"]
    if isinstance(result, Exception):
        raise result
    return result


def time_interleaved(fns: Mapping[str, Callable[[], Any]], *, repeat: int = 15, warmup: int = 2,
                     min_sample_s: float = 0.005, budget_s: float = 60.0, min_samples: int = 5,
                     passes: int = 3, gap_s: float = 0.2) -> dict[str, Timing | Exception]:
    """Time several functions in ``passes`` rounds of blocks: each pass times every function in turn
    for about ``repeat / passes`` samples, so slow drifts of foreign load on a shared machine hit
    every contestant alike and the ratios of the medians stay meaningful.

    Each block starts with a pause of ``gap_s`` (the previous contestant's thread pools -- OpenBLAS,
    OpenMP, numba -- spin for a while after their last task and would steal the cores) and one
    untimed call. Returns name -> Timing, or the exception a function raised (it leaves the rounds).
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    results: dict[str, Timing | Exception] = {}
    numbers: dict[str, int] = {}
    for name, fn in fns.items():
        try:
            numbers[name] = _calibrate(fn, warmup, min_sample_s)
        except Exception as exc:  # noqa: BLE001 - reported per contestant
            results[name] = exc
    samples: dict[str, list[float]] = {name: [] for name in numbers}
    passes = max(1, min(passes, repeat))
    started = time.perf_counter()
    for p in range(passes):
        quota = (repeat * (p + 1)) // passes
        for name in samples:
            if name in results:
                continue
            try:
                if gap_s and len(numbers) > 1:
                    time.sleep(gap_s)
                    fns[name]()
                while len(samples[name]) < quota:
                    samples[name].append(_sample(fns[name], numbers[name]))
                    over = time.perf_counter() - started > budget_s * (p + 1) / passes
                    if over and len(samples[name]) >= -(-min_samples * (p + 1) // passes):
                        break
            except Exception as exc:  # noqa: BLE001
                results[name] = exc
    for name, per_call in samples.items():
        if name not in results:
            results[name] = _summary(per_call, numbers[name], warmup)
    return {name: results[name] for name in fns}


def max_error(got: Any, want: Any) -> float:
    """Largest ``|got - want| / (|want| + floor)`` over all elements, ``floor = 1e-3·max|want|``.

    Relative where the reference is not tiny, absolute (scaled to the array) where it is: near-zero
    gradients computed by two correct formulas differ by rounding of much larger intermediates.
    Shape mismatches and non-finite values where the reference is finite count as infinite error.
    """
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        return math.inf
    if w.size == 0:
        return 0.0
    finite = np.isfinite(w)
    if not np.array_equal(np.isfinite(g), finite) or not np.array_equal(g[~finite], w[~finite]):
        return math.inf
    g, w = g[finite], w[finite]
    if w.size == 0:
        return 0.0
    floor = 1e-3 * float(np.max(np.abs(w))) or 1e-300
    return float(np.max(np.abs(g - w) / (np.abs(w) + floor)))


def verify(got_value: Any, got_grads: Sequence[Any] | Mapping[str, Any], want_value: Any,
           want_grads: Sequence[Any] | Mapping[str, Any], rtol: float, who: str = "") -> float:
    """The worst :func:`max_error` over the value and every gradient; VerificationError above ``rtol``.

    Gradients are compared by key for mappings (the keys must match) or by position for sequences.
    """
    if isinstance(want_grads, Mapping):
        if not isinstance(got_grads, Mapping) or set(got_grads) != set(want_grads):
            raise VerificationError(f"{who}: gradient keys {sorted(got_grads)} != {sorted(want_grads)}")
        pairs = [(k, got_grads[k], want_grads[k]) for k in want_grads]
    else:
        if len(got_grads) != len(want_grads):
            raise VerificationError(f"{who}: {len(got_grads)} gradients, expected {len(want_grads)}")
        pairs = [(f"grad[{i}]", g, w) for i, (g, w) in enumerate(zip(got_grads, want_grads))]
    worst, where = max_error(got_value, want_value), "value"
    for name, g, w in pairs:
        err = max_error(g, w)
        if err > worst:
            worst, where = err, name
    if not worst <= rtol:
        raise VerificationError(f"{who}: {where} differs from the reference by {worst:.3g} (rtol {rtol:g})")
    return worst


# ---------------------------------------------------------------- contestants: verified, then timed


def _as_is(result: Any) -> Any:
    return result


@dataclass
class Contestant:
    """``run()`` is the timed call (it returns only once the result is ready); ``unpack(run())`` gives
    ``(value, grads)`` as NumPy for verification: grads a dict by parameter name (MLP) or a tuple (expr).
    ``extra`` is copied into the contestant's record (op counts, BLAS, threads)."""

    name: str
    run: Callable[[], Any]
    unpack: Callable[[Any], tuple[Any, Any]] = _as_is
    extra: dict[str, Any] | None = None


class Skip(Exception):
    """The contestant cannot run here (library missing, spec feature unsupported); the message says why."""


def import_peer(module: str) -> Any:
    """The peer library ``module``; Skip ('not installed' / 'import failed: ...') when it cannot be imported."""
    try:
        return __import__(module, fromlist=["_"])
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise Skip("not installed") from None
        raise Skip(f"import failed: {exc}") from None
    except ImportError as exc:  # installed but broken (a missing shared library, an ABI mismatch)
        raise Skip(f"import failed: {exc}") from None


def run_contestants(names: Iterable[str], build: Callable[[str], Contestant], reference: tuple[Any, Any],
                    *, rtol: float, repeat: int, warmup: int, budget_s: float, min_sample_s: float = 0.005,
                    passes: int = 3, gap_s: float = 0.2,
                    progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Build and verify each contestant (against ``reference = (value, grads)``), then time all the
    verified ones together in interleaved rounds (:func:`time_interleaved`).

    Returns one record per contestant: ``status`` is ``ok``, ``skipped`` (with ``note``) or ``failed``
    (with ``note``: the exception, or the verification error); ``ms`` and ``timing`` when ok.
    """
    records, runs = [], {}
    for name in names:
        if progress:
            progress(f"verify {name}")
        record: dict[str, Any] = {"name": name, "status": "ok"}
        try:
            contestant = build(name)
            value, grads = contestant.unpack(contestant.run())
            record["error"] = verify(value, grads, reference[0], reference[1], rtol, who=name)
            record.update(contestant.extra or {})
            runs[name] = contestant.run
        except Skip as exc:
            record.update(status="skipped", note=str(exc))
        except VerificationError as exc:
            record.update(status="failed", note=f"wrong result: {exc}")
        except Exception as exc:  # noqa: BLE001 - a peer that breaks must not take the others down
            record.update(status="failed", note=f"{type(exc).__name__}: {str(exc).strip()[:300]}")
        records.append(record)
    if progress:
        progress(f"time {len(runs)} contestants")
    timings = time_interleaved(runs, repeat=repeat, warmup=warmup, budget_s=budget_s, min_sample_s=min_sample_s,
                               passes=passes, gap_s=gap_s)
    for record in records:
        timing = timings.get(record["name"])
        if isinstance(timing, Timing):
            record.update(ms=timing.median_ms, timing=timing.as_dict())
        elif timing is not None:
            record.update(status="failed", note=f"while timing: {type(timing).__name__}: {timing}"[:300])
    return records


def add_ratios(records: list[dict[str, Any]], reference: str) -> None:
    """``ratio`` = ms / reference ms for every timed record (None when the reference was not timed)."""
    ref = next((r.get("ms") for r in records if r["name"] == reference), None)
    for r in records:
        r["ratio"] = r["ms"] / ref if ref and "ms" in r else None


# ---------------------------------------------------------------- gradc compile times (fresh processes)


def cold_warm(snippet: str, *args: str, python: str = sys.executable, timeout: float = 600.0) -> dict[str, Any]:
    """Run ``snippet`` (which prints one JSON line last) twice in fresh processes sharing a new, empty
    GRADC_CACHE_DIR: the first run is the cold compile, the second the warm (cached) load."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gradc-bench-cache-") as cache:
        env = {**os.environ, "GRADC_CACHE_DIR": cache}
        for label in ("cold", "warm"):
            proc = subprocess.run([python, "-c", snippet, *args], env=env, capture_output=True, text=True,
                                  timeout=timeout)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
                out[label] = {"error": tail[0][:300]}
            else:
                out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out

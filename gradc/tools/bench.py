"""Benchmark one MLP training step (loss + every parameter gradient): gradc vs hand-written NumPy backprop
(`gradc.tools.reference`, the baseline and the oracle) and any installed peers. Used by `gradc bench` and
by benchmarks/.

    report = bench_mlp("net.yaml", batch=64, repeat=20, warmup=3)
    print(report.format_table())

Every contestant's loss and gradients are checked against the reference before it is timed (relative
tolerance 1e-6 in float64, 1e-3 in float32); a contestant that disagrees is reported and not timed.
Times are the median over `repeat` repeats, after `warmup` calls, of the time per call (a repeat runs
the step enough times to last at least a millisecond, with the garbage collector off, like timeit).
Peers are imported lazily; a missing one is skipped with a note. They are registered in `PEERS`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Grads = dict[str, np.ndarray]
RTOL = {"float64": 1e-6, "float32": 1e-3}
MIN_REPEAT_SECONDS = 1e-3


class Unavailable(Exception):
    """A contestant cannot run here (package missing, spec feature unsupported); the message says why."""


@dataclass
class Contestant:
    """One way to compute a training step. `step()` runs loss + all gradients and returns them in the
    contestant's own types (timed); `to_numpy` turns that into (float, {name: ndarray}) (not timed)."""

    name: str
    step: Callable[[], Any]
    to_numpy: Callable[[Any], tuple[float, Grads]] = lambda result: result


@dataclass
class BenchRow:
    name: str
    ms: float | None = None               # median milliseconds per step (None: not timed)
    ratio: float | None = None            # ms / the baseline's ms
    max_rel_error: float | None = None    # vs the reference, over the loss and every gradient
    note: str = ""
    times_ms: list[float] = field(default_factory=list)


@dataclass
class BenchReport:
    """Everything `gradc bench` prints; `to_dict()` is JSON-ready for benchmarks/."""

    spec: str                     # e.g. "digits 64-30-10 sigmoid, mse, float64"
    batch: int
    repeat: int
    warmup: int
    baseline: str
    rows: list[BenchRow]
    op_counts: dict[str, int]
    codegen_s: float              # gradc.compile_mlp: Python -> source text
    cold_s: float | None          # codegen + import + Numba compile + first call, empty cache
    warm_s: float | None          # import + first call with Numba's on-disk cache filled
    notes: list[str] = field(default_factory=list)

    def row(self, name: str) -> BenchRow:
        return next(r for r in self.rows if r.name == name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format_table(self) -> str:
        head = ("contestant", "ms/step", f"vs {self.baseline}", "max rel err", "")
        rows = [head]
        for r in self.rows:
            rows.append((r.name, "-" if r.ms is None else f"{r.ms:.4g}",
                         "-" if r.ratio is None else f"{r.ratio:.2f}x",
                         "-" if r.max_rel_error is None else f"{r.max_rel_error:.1e}", r.note))
        widths = [max(len(row[k]) for row in rows) for k in range(len(head))]
        table = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        table.insert(1, "  ".join("-" * w for w in widths[:-1]))
        title = (f"{self.spec}; batch {self.batch}; median of {self.repeat} repeats after "
                 f"{self.warmup} warm-up calls")
        compile_line = f"gradc compile: {self.codegen_s * 1e3:.0f} ms codegen"
        if self.cold_s is not None:
            compile_line += f"; cold {self.cold_s:.2f} s (codegen + Numba compile + first call)"
        if self.warm_s is not None:
            compile_line += f"; warm {self.warm_s:.2f} s (cached kernels + first call)"
        ops = f"gradc ops: forward {self.op_counts.get('forward', '?')}, backward {self.op_counts.get('backward', '?')}"
        return "\n".join([title, *table, compile_line, ops, *(f"note: {n}" for n in self.notes)])


# ---------------------------------------------------------------------------------------------- timing


def time_call(fn: Callable[[], Any], *, repeat: int, warmup: int,
              min_seconds: float = MIN_REPEAT_SECONDS) -> list[float]:
    """Seconds per call of `fn`, one value per repeat, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    estimate = float("inf")
    for _ in range(3):   # calls per repeat from the fastest of 3 calls: one slow first call cannot skew it
        start = time.perf_counter()
        fn()
        estimate = min(estimate, time.perf_counter() - start)
    number = max(1, min(1_000_000, int(np.ceil(min_seconds / max(estimate, 1e-9)))))
    times = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times.append((time.perf_counter() - start) / number)
    finally:
        if enabled:
            gc.enable()
    return times


def max_rel_error(result: tuple[float, Grads], reference: tuple[float, Grads]) -> tuple[float, str]:
    """(largest error, where): the loss's relative error and each gradient's ``max|g−r| / max(|g|, |r|)``."""
    value, grads = result
    ref_value, ref_grads = reference
    errors = {"loss": abs(value - ref_value) / max(abs(value), abs(ref_value), 1e-300)}
    for name, r in ref_grads.items():
        if name not in grads:
            return float("inf"), f"{name} missing"
        g, r = np.asarray(grads[name], np.float64), np.asarray(r, np.float64)
        if g.shape != r.shape:
            return float("inf"), f"{name} has shape {g.shape}, expected {r.shape}"
        scale = max(float(np.max(np.abs(g), initial=0)), float(np.max(np.abs(r), initial=0)))
        diff = float(np.max(np.abs(g - r), initial=0))
        errors[name] = 0.0 if diff == 0 else (diff / scale if scale > 0 and np.isfinite(diff) else float("inf"))
    where = max(errors, key=lambda k: errors[k])
    return errors[where], where


# ------------------------------------------------------------------------------------------- contestants


def _numpy(spec: Any, params: Grads, X: np.ndarray, Y: np.ndarray) -> Contestant:
    from gradc.tools import reference

    if any(layer.activation == "custom" for layer in spec.layers):
        raise Unavailable("custom activations have no hand-written backprop")
    return Contestant("hand NumPy", lambda: reference.loss_and_grad(spec, params, X, Y))


def _supported_by_peers(spec: Any) -> None:
    custom = [i for i, layer in enumerate(spec.layers) if layer.activation == "custom"]
    if custom:
        raise Unavailable(f"layers[{custom[0]}] has a custom activation (no translation for peers)")


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:   # ImportError only: a broken install should not hide behind a skip
        raise Unavailable(f"{name.split('.')[0]} is not installed (pip install 'gradc[bench]')") from exc


def _mlp_loss(xp: Any, acts: Mapping[str, Callable], losses: Mapping[str, Callable], spec: Any) -> Callable:
    """loss(params, X, Y) written once for any array library `xp` (torch, jax.numpy, autograd.numpy)."""
    def loss(params: Mapping[str, Any], X: Any, Y: Any) -> Any:
        a = z = X
        for i, layer in enumerate(spec.layers, 1):
            z = a @ params[f"W{i}"]
            if layer.bias:
                z = z + params[f"b{i}"]
            a = acts[layer.activation](z, layer.alpha)
        last = spec.layers[-1].activation
        name = "binary_cross_entropy_logits" if spec.loss == "binary_cross_entropy" and last == "sigmoid" else spec.loss
        value = losses[name](z, a, Y) / (1 if spec.loss == "sum_squared" else X.shape[0])
        if spec.l2:
            value = value + spec.l2 / 2 * sum((params[f"W{i}"] ** 2).sum() for i in range(1, len(spec.layers) + 1))
        return value
    return loss


def _losses(xp: Any, log_softmax: Callable, softplus: Callable, relu: Callable) -> dict[str, Callable]:
    """Summed over the batch (the caller divides by N); `xp` arrays must support .sum(axis)."""
    return {
        "mse": lambda z, a, y: ((a - y) ** 2).sum() / 2,
        "sum_squared": lambda z, a, y: ((a - y) ** 2).sum(),
        "softmax_cross_entropy": lambda z, a, y: -(y * log_softmax(a)).sum(),
        "binary_cross_entropy": lambda z, a, y: -(y * xp.log(a) + (1 - y) * xp.log(1 - a)).sum(),
        "binary_cross_entropy_logits": lambda z, a, y: (softplus(z) - y * z).sum(),
        "hinge": lambda z, a, y: (relu((a - (a * y).sum(1, keepdims=True) + 1) * (1 - y))).sum(),
    }


def _torch(spec: Any, params: Grads, X: np.ndarray, Y: np.ndarray) -> Contestant:
    _supported_by_peers(spec)
    torch = _import("torch")
    F = torch.nn.functional
    acts = {
        "identity": lambda z, _: z, "sigmoid": lambda z, _: torch.sigmoid(z), "tanh": lambda z, _: torch.tanh(z),
        "relu": lambda z, _: torch.relu(z), "leaky_relu": lambda z, alpha: F.leaky_relu(z, alpha),
        "elu": lambda z, alpha: F.elu(z, alpha), "softplus": lambda z, _: F.softplus(z),
        "gelu": lambda z, _: F.gelu(z, approximate="tanh"), "silu": lambda z, _: F.silu(z),
    }
    losses = _losses(torch, lambda a: F.log_softmax(a, dim=1), F.softplus, torch.relu)
    losses["hinge"] = lambda z, a, y: torch.relu((a - (a * y).sum(1, keepdim=True) + 1) * (1 - y)).sum()
    loss = _mlp_loss(torch, acts, losses, spec)
    names = list(params)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    inputs = [tensors[k] for k in names]

    def step() -> Any:
        value = loss(tensors, Xt, Yt)
        return value, torch.autograd.grad(value, inputs)

    def to_numpy(result: Any) -> tuple[float, Grads]:
        value, grads = result
        return float(value.detach()), {k: g.detach().numpy() for k, g in zip(names, grads)}

    return Contestant("torch (eager autograd)", step, to_numpy)


def _jax(spec: Any, params: Grads, X: np.ndarray, Y: np.ndarray) -> Contestant:
    _supported_by_peers(spec)
    jax = _import("jax")
    jax.config.update("jax_enable_x64", True)   # before any array is made; float32 specs stay float32
    jnp, nn = jax.numpy, jax.nn
    acts = {
        "identity": lambda z, _: z, "sigmoid": lambda z, _: nn.sigmoid(z), "tanh": lambda z, _: jnp.tanh(z),
        "relu": lambda z, _: nn.relu(z), "leaky_relu": lambda z, alpha: nn.leaky_relu(z, alpha),
        "elu": lambda z, alpha: nn.elu(z, alpha), "softplus": lambda z, _: nn.softplus(z),
        "gelu": lambda z, _: nn.gelu(z, approximate=True), "silu": lambda z, _: nn.silu(z),
    }
    losses = _losses(jnp, lambda a: nn.log_softmax(a, axis=1), nn.softplus, nn.relu)
    fn = jax.jit(jax.value_and_grad(_mlp_loss(jnp, acts, losses, spec)))
    device = {k: jnp.asarray(v) for k, v in params.items()}
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)

    def step() -> Any:
        return jax.block_until_ready(fn(device, Xj, Yj))

    def to_numpy(result: Any) -> tuple[float, Grads]:
        value, grads = result
        return float(value), {k: np.asarray(g) for k, g in grads.items()}

    return Contestant("jax (jit value_and_grad)", step, to_numpy)


def _autograd(spec: Any, params: Grads, X: np.ndarray, Y: np.ndarray) -> Contestant:
    _supported_by_peers(spec)
    autograd = _import("autograd")
    anp = _import("autograd.numpy")
    from autograd.scipy.special import logsumexp

    def sigmoid(z: Any) -> Any:
        return 0.5 * (anp.tanh(0.5 * z) + 1)

    def softplus(z: Any) -> Any:
        return anp.logaddexp(0.0, z)

    acts = {
        "identity": lambda z, _: z, "sigmoid": lambda z, _: sigmoid(z), "tanh": lambda z, _: anp.tanh(z),
        "relu": lambda z, _: anp.maximum(z, 0.0), "leaky_relu": lambda z, alpha: anp.maximum(z, alpha * z),
        "elu": lambda z, alpha: anp.where(z > 0, z, alpha * (anp.exp(anp.minimum(z, 0.0)) - 1)),
        "softplus": lambda z, _: softplus(z),
        "gelu": lambda z, _: 0.5 * z * (1 + anp.tanh(0.7978845608028654 * (z + 0.044715 * z**3))),
        "silu": lambda z, _: z * sigmoid(z),
    }
    losses = _losses(anp, lambda a: a - logsumexp(a, axis=1, keepdims=True), softplus,
                     lambda m: anp.maximum(m, 0.0))
    fn = autograd.value_and_grad(_mlp_loss(anp, acts, losses, spec))

    def to_numpy(result: Any) -> tuple[float, Grads]:
        value, grads = result
        return float(value), {k: np.asarray(g) for k, g in grads.items()}

    return Contestant("autograd", lambda: fn(params, X, Y), to_numpy)


#: Peer name -> factory(spec, params, X, Y) -> Contestant (raises Unavailable to be skipped).
PEERS: dict[str, Callable[..., Contestant]] = {"torch": _torch, "jax": _jax, "autograd": _autograd}


# ------------------------------------------------------------------------------------------ the benchmark


@contextlib.contextmanager
def _fresh_cache() -> Iterator[Path]:
    """A temporary GRADC_CACHE_DIR, so that the cold compile is really cold (and the user's cache is
    left alone). The environment variable is restored on exit: not for concurrent use across threads."""
    old = os.environ.get("GRADC_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="gradc-bench-") as tmp:
        os.environ["GRADC_CACHE_DIR"] = tmp
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("GRADC_CACHE_DIR", None)
            else:
                os.environ["GRADC_CACHE_DIR"] = old


def describe(spec: Any) -> str:
    """'name 2-16-1 tanh/sigmoid, mse, float64'."""
    sizes = "-".join(str(n) for n in [spec.input, *(layer.units for layer in spec.layers)])
    acts = []
    for layer in spec.layers:
        if not acts or acts[-1] != layer.activation:
            acts.append(layer.activation)
    l2 = f", l2 {spec.l2:g}" if spec.l2 else ""
    return f"{spec.name} {sizes} {'/'.join(acts)}, {spec.loss}{l2}, {spec.dtype}"


def bench_mlp(spec: Any, *, batch: int = 64, repeat: int = 20, warmup: int = 3, seed: int = 0,
              peers: Sequence[str] | None = None, progress: bool | None = None,
              measure_compile: bool = True, stream: Any = None) -> BenchReport:
    """Time one training step of `spec` (anything `gradc.compile_mlp` takes) for each contestant.

    peers: names from PEERS (default: all; missing packages are skipped with a note).
    progress: a tqdm bar over the contestants on stderr (default: if tqdm is importable and stderr is
    a terminal). measure_compile: compile into a fresh temporary cache to report the cold compile and
    the warm (cached) load time; if False the normal cache is used and only codegen time is reported.
    Raises SpecError for an invalid spec, GradcError for bad options.
    """
    from gradc import jit
    from gradc.errors import GradcError
    from gradc.frontend.spec import load_spec
    from gradc.pipeline import compile_mlp
    from gradc.tools.check import random_batch

    for what, value, low in (("batch", batch, 1), ("repeat", repeat, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise GradcError(f"{what} must be an integer >= {low}, got {value!r}")
    names = list(PEERS) if peers is None else list(peers)
    unknown = [p for p in names if p not in PEERS]
    if unknown:
        raise GradcError(f"unknown peer {unknown[0]!r} (known: {', '.join(PEERS)})")
    parsed = load_spec(spec)
    rng = np.random.default_rng(seed)
    X, Y = random_batch(parsed, batch, rng)
    bar = _progress(["hand NumPy", "gradc", *names], progress, stream)   # over the contestants' labels
    if hasattr(bar, "set_description"):
        bar.set_description("compiling gradc" + (" (cold)" if measure_compile else ""))

    with _fresh_cache() if measure_compile else contextlib.nullcontext():
        start = time.perf_counter()
        module = compile_mlp(parsed)
        codegen = time.perf_counter() - start
        params = module.init_params(seed)            # imports the generated module
        cold = warm = None
        if measure_compile:
            module.loss_and_grad(params, X, Y)
            cold = time.perf_counter() - start
            path = Path(module.module.__file__)
            name = f"gradc_generated.{path.stem}_warm"
            start = time.perf_counter()
            jit.import_file(path, name).loss_and_grad(params, X, Y)   # a fresh import: Numba's cache
            warm = time.perf_counter() - start
            sys.modules.pop(name, None)
        factories = {"hand NumPy": _numpy, "gradc": functools.partial(_gradc, module), **PEERS}
        rows, notes, baseline = _run(parsed, params, X, Y, factories, bar, repeat, warmup)
    notes.append(blas_note(module.blas))
    return BenchReport(describe(parsed), batch, repeat, warmup, baseline, rows, dict(module.op_counts),
                       codegen, cold, warm, notes)


def blas_note(blas: str, machine: str | None = None) -> str:
    """Which library gradc's matrix products called, and, where MKL could serve but does not, how to get it
    (gradc/runtime/blas.py binds MKL when the `mkl` package is installed; it is built for x86-64 only)."""
    if blas == "MKL" or (machine or platform.machine()) not in ("x86_64", "AMD64"):
        return f"gradc's matrix products called {blas}"
    return ("gradc's matrix products called SciPy's OpenBLAS; with the mkl package installed (pip install "
            "'gradc[mkl]') they call MKL, which took large steps to 0.72-0.84 of their time on a 2-core x86-64")


def _gradc(module: Any, spec: Any, params: Grads, X: np.ndarray, Y: np.ndarray) -> Contestant:
    return Contestant("gradc", lambda: module.loss_and_grad(params, X, Y))


def _run(spec: Any, params: Grads, X: np.ndarray, Y: np.ndarray, factories: Mapping[str, Callable[..., Contestant]],
         bar: Any, repeat: int, warmup: int) -> tuple[list[BenchRow], list[str], str]:
    """Check, then time, the contestants named by `bar` (an iterable of labels); (rows, notes, baseline)."""
    notes: list[str] = []
    reference = None
    try:
        with np.errstate(all="ignore"):
            reference = _numpy(spec, params, X, Y).step()
        baseline = "hand NumPy"
    except Unavailable as exc:
        notes.append(f"no reference: {exc}; gradc is the baseline")
        baseline = "gradc"
    rtol = RTOL[spec.dtype]
    checked = reference is not None and _finite(reference)
    if reference is not None and not checked:
        notes.append("the reference loss or gradients are not finite on this batch (is the loss defined for "
                     "the last activation's range?); results were not checked")
    rows: list[BenchRow] = []
    with np.errstate(all="ignore"):   # a non-finite reference is reported in the notes instead
        for label in bar:
            _contest(label, factories[label], spec, params, X, Y, reference if checked else None, rtol, repeat, warmup,
                     rows, bar)
    base = next((r.ms for r in rows if r.name == baseline), None)
    for r in rows:
        if r.ms is not None and base:
            r.ratio = r.ms / base
    return rows, notes, baseline


def _contest(label: str, factory: Callable[..., Contestant], spec: Any, params: Grads, X: np.ndarray,
             Y: np.ndarray, reference: tuple[float, Grads] | None, rtol: float, repeat: int, warmup: int,
             rows: list[BenchRow], bar: Any) -> None:
    """Check one contestant against the reference, then time it; appends its row."""
    if hasattr(bar, "set_description"):
        bar.set_description(label)
    try:
        contestant = factory(spec, params, X, Y)
    except Unavailable as exc:
        rows.append(BenchRow(label, note=f"skipped: {exc}"))
        return
    row = BenchRow(contestant.name)
    rows.append(row)
    result = contestant.to_numpy(contestant.step())    # also compiles the JITs
    if reference is not None:
        row.max_rel_error, where = max_rel_error(result, reference)
        if not row.max_rel_error <= rtol:
            row.note = f"WRONG: {where} differs from the reference by {row.max_rel_error:.1e} (rtol {rtol:g})"
            return
    row.times_ms = [t * 1e3 for t in time_call(contestant.step, repeat=repeat, warmup=warmup)]
    row.ms = statistics.median(row.times_ms)


def _finite(result: tuple[float, Grads]) -> bool:
    return bool(np.isfinite(result[0]) and all(np.all(np.isfinite(g)) for g in result[1].values()))


def _progress(items: list[Any], progress: bool | None, stream: Any) -> Any:
    stream = sys.stderr if stream is None else stream
    if progress is None:
        progress = hasattr(stream, "isatty") and stream.isatty()
    if not progress:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, unit="contestant", file=stream, leave=False)


__all__ = ["BenchReport", "BenchRow", "Contestant", "PEERS", "Unavailable", "bench_mlp", "describe",
           "max_rel_error", "time_call"]

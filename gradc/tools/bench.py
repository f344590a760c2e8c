"""`gradc bench SPEC`: one MLP training step (loss + every parameter gradient) of gradc against the
hand-written NumPy backprop (`gradc.tools.reference`, the baseline and the oracle) and the installed peers.

    report = bench_mlp("net.yaml", batch=64, repeat=20, warmup=3)
    print(report.format_table())

A front over the harness that benchmarks/run.py uses too: the contestants and the loop are
`gradc.tools.peers.run_mlp_benchmark`, the timing `gradc.tools.timing` (every contestant verified against
the reference first, then all timed in turns of blocks of about 3 samples after a pause; the median per
call), the compile times `gradc.tools.peers.gradc_mlp_compile_times` (fresh processes). Peers are
imported lazily; a missing one is skipped with a note. They are registered in `PEERS`.
"""

from __future__ import annotations

import contextlib
import math
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from gradc.tools.peers import LABELS, MLP_BUILDERS, REFERENCE, Builder, gradc_mlp_compile_times, run_mlp_benchmark
from gradc.tools.timing import Contestant, Skip, blocked

#: Peer name -> builder(spec, params, X, Y) -> Contestant (raises Skip to be skipped).
PEERS: dict[str, Builder] = {name: build for name, build in MLP_BUILDERS.items() if name not in (REFERENCE, "gradc")}


@dataclass
class BenchRow:
    name: str
    ms: float | None = None               # median milliseconds per step (None: not timed)
    ratio: float | None = None            # ms / the baseline's ms
    max_rel_error: float | None = None    # vs the reference, over the loss and every gradient
    note: str = ""
    timing: dict[str, Any] | None = None  # gradc.tools.timing.Timing: median, min, max, IQR, samples, ...


@dataclass
class BenchReport:
    """Everything `gradc bench` prints; `to_dict()` is JSON-ready."""

    spec: str                     # e.g. "digits 64-30-10 sigmoid, mse, float64"
    batch: int
    repeat: int
    warmup: int
    baseline: str
    rows: list[BenchRow]
    op_counts: dict[str, int]
    codegen_s: float | None       # gradc.compile_mlp: Python -> source text
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
        compile_line = "gradc compile: " + ("-" if self.codegen_s is None else f"{self.codegen_s * 1e3:.0f} ms codegen")
        if self.cold_s is not None:
            compile_line += f"; cold {self.cold_s:.2f} s (codegen + Numba compile + first call)"
        if self.warm_s is not None:
            compile_line += f"; warm {self.warm_s:.2f} s (cached kernels + first call)"
        ops = f"gradc ops: forward {self.op_counts.get('forward', '?')}, backward {self.op_counts.get('backward', '?')}"
        return "\n".join([title, *table, compile_line, ops, *(f"note: {n}" for n in self.notes)])


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
    progress: a tqdm bar on stderr (default: if tqdm is importable and stderr is a terminal).
    measure_compile: time gradc's cold compile (empty cache) and warm load (cache filled), each in a
    fresh process, before the steps are timed. Raises SpecError for an invalid spec, GradcError for
    bad options.
    """
    from gradc.errors import GradcError
    from gradc.frontend.spec import load_spec

    for what, value, low in (("batch", batch, 1), ("repeat", repeat, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise GradcError(f"{what} must be an integer >= {low}, got {value!r}")
    names = list(PEERS) if peers is None else list(peers)
    unknown = [p for p in names if p not in PEERS]
    if unknown:
        raise GradcError(f"unknown peer {unknown[0]!r} (known: {', '.join(PEERS)})")
    parsed = load_spec(spec)
    steps = len(names) + 3 + measure_compile   # (compile), verify each contestant, time them
    with _progress(steps, progress, stream) as step, np.errstate(all="ignore"):
        compile_info: dict[str, Any] = {}
        if measure_compile:
            step("compiling gradc (cold, warm)")
            compile_info = gradc_mlp_compile_times(parsed)
        case = run_mlp_benchmark(parsed, batch, contestants=["gradc", *names],
                                 builders={n: PEERS[n] for n in names}, seed=seed, repeat=repeat, warmup=warmup,
                                 budget_s=math.inf, progress=step, **blocked(repeat))
    rows = [_row(r, checked=math.isfinite(case["rtol"])) for r in case["contestants"]]
    notes = list(case.get("notes", []))
    if any(r["note"] == "not installed" for r in case["contestants"] if r["status"] == "skipped"):
        notes.append("pip install 'gradc[bench]' installs the peers")
    cold, warm = compile_info.get("cold", {}), compile_info.get("warm", {})
    notes += [f"gradc {label} compile failed: {d['error']}" for label, d in (("cold", cold), ("warm", warm))
              if "error" in d]
    gradc = next(r for r in case["contestants"] if r["name"] == "gradc")
    if "blas" in gradc:
        notes.append(blas_note(gradc["blas"]))
    return BenchReport(describe(parsed), batch, repeat, warmup, LABELS[case["reference"]], rows,
                       dict(gradc.get("op_counts", {})), cold.get("codegen_s"), cold.get("total_s"),
                       warm.get("load_s"), notes)


def blas_note(blas: str, machine: str | None = None) -> str:
    """Which library gradc's matrix products called, and, where MKL could serve but does not, how to get it
    (gradc/runtime/blas.py binds MKL when the `mkl` package is installed; it is built for x86-64 only)."""
    if blas == "MKL" or (machine or platform.machine()) not in ("x86_64", "AMD64"):
        return f"gradc's matrix products called {blas}"
    return ("gradc's matrix products called SciPy's OpenBLAS; with the mkl package installed (pip install "
            "'gradc[mkl]') they call MKL, which takes large layers' products in less time")


def _row(record: dict[str, Any], checked: bool) -> BenchRow:
    """A record of gradc.tools.timing.run_contestants as a row of the table (no error where not `checked`)."""
    note = {"ok": "", "skipped": "skipped: ", "failed": "FAILED: "}[record["status"]] + record.get("note", "")
    return BenchRow(LABELS.get(record["name"], record["name"]), record.get("ms"), record.get("ratio"),
                    record.get("error") if checked else None, note, record.get("timing"))


@contextlib.contextmanager
def _progress(steps: int, progress: bool | None, stream: Any) -> Iterator[Callable[[str], None]]:
    """A callback that moves a tqdm bar of `steps` steps on and names the step (without a bar: does nothing)."""
    stream = sys.stderr if stream is None else stream
    if progress is None:
        progress = hasattr(stream, "isatty") and stream.isatty()
    tqdm = None
    if progress:
        with contextlib.suppress(ImportError):
            from tqdm.auto import tqdm
    if tqdm is None:
        yield lambda what: None
        return
    with tqdm(total=steps, unit="step", file=stream, leave=False) as bar:
        def step(what: str) -> None:
            bar.set_description(what)
            bar.update()
        yield step


__all__ = ["PEERS", "BenchReport", "BenchRow", "Contestant", "Skip", "bench_mlp", "blas_note", "describe"]

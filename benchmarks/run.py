"""Run gradc's benchmark suite: one subprocess per case, a table of medians and ratios, JSON and a PNG.

    python benchmarks/run.py [--cases expr|mlp|all] [--only NAME[,NAME]] [--quick] [--repeat N]
                             [--contestants a,b,...] [--no-compile-times] [--out benchmarks/out]

Expression cases: value + full gradient at N = 1,000,000 points (--quick: 20,000); ratio to the
hand-fused Numba loop. MLP cases: loss + every parameter gradient of one batch; ratio to the
hand-written NumPy backprop. Every contestant is verified against a reference before it is timed.
See benchmarks/README.md for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.expr_cases import (  # noqa: E402
    CASES,
    EXPR_CONTESTANTS,
    N_FULL,
    N_QUICK,
    gradc_expr_compile_times,
    run_expr_case,
)
from benchmarks.mlp_cases import MLP_CASES, run_mlp_case  # noqa: E402
from benchmarks.report import LABELS, format_table, target_status  # noqa: E402
from gradc.runtime.heap import _retain_freed_memory  # noqa: E402
from gradc.tools.peers import MLP_CONTESTANTS, gradc_mlp_compile_times  # noqa: E402
from gradc.tools.timing import blocked  # noqa: E402

CASE_TIMEOUT_S = 1800
BUSY_LOAD = 0.7  # 1-minute load average above which a warning says the numbers will be noisy


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment that caps every contestant's thread pools (Numba, OpenMP/torch, OpenBLAS, MKL, XLA)."""
    if not threads:
        return {}
    n = str(threads)
    return {"NUMBA_NUM_THREADS": n, "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n,
            "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
                         f"intra_op_parallelism_threads={n}"}


PACKAGES = ("gradc", "numpy", "numba", "llvmlite", "scipy", "mkl", "sympy", "torch", "jax", "jaxlib", "autograd",
            "pytensor")
# A full run's contestants take turns in blocks of about 3 samples (gradc.tools.timing.blocked). Short
# blocks let a drift of foreign load hit every contestant alike: tanh1024's gradc/torch ratio over 4-5
# full runs of each spread 0.87-1.04 in blocks of 10 samples, 0.93-0.99 in blocks of 3 and 0.96-0.98 in
# blocks of 1 (which cost a 0.2 s pause per sample and contestant).


# ---------------------------------------------------------------- one case (inside the worker process)


def run_case(kind: str, name: str, *, quick: bool, repeat: int | None, contestants: list[str] | None,
             compile_times: bool) -> dict[str, Any]:
    """Compile times (fresh processes, before any timing), then the timed contestants of one case."""
    load_before = os.getloadavg()
    compile_info = None
    if compile_times:
        compile_info = gradc_expr_compile_times(name) if kind == "expr" else gradc_mlp_compile_times(
            MLP_CASES[name][0])
    repeat = repeat or (3 if quick else 15 if kind == "expr" else 30)
    timing = {"passes": 1, "gap_s": 0.05, "budget_s": 10.0} if quick else blocked(repeat)
    if kind == "expr":
        result = run_expr_case(name, n=N_QUICK if quick else N_FULL, contestants=contestants, repeat=repeat,
                               warmup=1 if quick else 2, **timing)
    else:
        result = run_mlp_case(name, contestants=contestants, repeat=repeat, warmup=1 if quick else 3, **timing)
    result["timing"] = {"repeat": repeat, **timing}
    result["compile"] = compile_info
    result["loadavg"] = {"before": load_before, "after": os.getloadavg()}
    return result


def worker(argv: list[str]) -> int:
    """``run.py --worker KIND:NAME --result PATH [options]``: run one case, write its JSON."""
    args = parse_args(argv)
    kind, name = args.worker.split(":", 1)
    # what importing a generated module does, done first: every contestant (gradc or not) then runs
    # with the same malloc settings (GRADC_MALLOC_TUNING=0 runs them all with glibc's defaults)
    tuned = _retain_freed_memory()
    result = run_case(kind, name, quick=args.quick, repeat=args.repeat, contestants=args.contestant_list,
                      compile_times=args.compile_times)
    result["malloc_tuned"] = tuned
    Path(args.result).write_text(json.dumps(result, indent=1, default=float))
    return 0


# ---------------------------------------------------------------- the driver


def plan(cases: str, only: list[str] | None) -> list[tuple[str, str]]:
    todo = ([("expr", n) for n in CASES] if cases in ("expr", "all") else []) + \
           ([("mlp", n) for n in MLP_CASES] if cases in ("mlp", "all") else [])
    if only:
        unknown = sorted(set(only) - {n for _, n in todo})
        if unknown:
            raise SystemExit(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(n for _, n in todo)}")
        todo = [(k, n) for k, n in todo if n in only]
    return todo


def spawn(kind: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one case in a fresh interpreter; a crash or timeout becomes an error record."""
    with tempfile.TemporaryDirectory(prefix="gradc-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", f"{kind}:{name}", "--result",
               str(result_path)]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--repeat", str(args.repeat)] if args.repeat else []
        cmd += ["--contestants", args.contestants] if args.contestants else []
        cmd += [] if args.compile_times else ["--no-compile-times"]
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_TIMEOUT_S, cwd=ROOT,
                                  env={**os.environ, **thread_env(args.threads)})
        except subprocess.TimeoutExpired:
            return {"kind": kind, "name": name, "error": f"timed out after {CASE_TIMEOUT_S} s"}
        if proc.returncode != 0 or not result_path.exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            return {"kind": kind, "name": name, "error": f"worker exited {proc.returncode}:\n{tail}"}
        result = json.loads(result_path.read_text())
        result["wall_s"] = time.perf_counter() - started
        return result


def environment() -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
            "cpus": os.cpu_count(), "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "loadavg": os.getloadavg(), "versions": versions}


def compile_table(results: list[dict[str, Any]]) -> str:
    """gradc per case: cold compile and warm load seconds, and forward/backward IR op counts."""
    header = (f"{'case':<14} {'codegen s':>9} {'cold s':>8} {'warm s':>8} {'hand warm':>9} {'fwd ops':>8} "
              f"{'bwd ops':>8} {'load':>9}  target")
    lines = [header, "-" * len(header)]
    for r in results:
        if "error" in r:
            continue
        gradc = next((c for c in r["contestants"] if c["name"] == "gradc"), {})
        ops = gradc.get("op_counts") or {}
        compile_info = r.get("compile") or {}
        cold, warm, hand = compile_info.get("cold", {}), compile_info.get("warm", {}), compile_info.get("hand_warm", {})

        def secs(d: dict[str, Any], key: str = "total_s") -> str:
            return f"{d[key]:.2f}" if key in d else ("err" if "error" in d else "-")

        load = r.get("loadavg") or {}
        load_text = f"{load['before'][0]:.1f}>{load['after'][0]:.1f}" if load else "-"
        lines.append(f"{r['name']:<14} {secs(cold, 'codegen_s'):>9} {secs(cold):>8} {secs(warm):>8} "
                     f"{secs(hand):>9} {ops.get('forward', '-'):>8} {ops.get('backward', '-'):>8} {load_text:>9}  "
                     f"{target_status(r)}")
    lines.append("cold = fresh process, empty GRADC_CACHE_DIR: compile + first call on tiny inputs (imports excluded);"
                 "\nwarm = fresh process, same cache folder; codegen = the SymPy/spec -> source part of cold;"
                 "\nhand warm = the same warm load of the hand-fused Numba loop (cache=True): Numba's own floor;"
                 "\nload = 1-minute load average before > after the case (2 cores: above ~0.7 means foreign load).")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path, meta: dict[str, Any] | None = None) -> Path | None:
    """Bars per case (one per contestant), log-scale milliseconds; one panel per kind of case."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    kinds = [k for k in ("expr", "mlp") if any(r.get("kind") == k and "error" not in r for r in results)]
    if not kinds:
        return None
    fig, axes = plt.subplots(len(kinds), 1, figsize=(13, 4.8 * len(kinds)), squeeze=False)
    for ax, kind in zip(axes[:, 0], kinds):
        cases = [r for r in results if r.get("kind") == kind and "error" not in r]
        order = EXPR_CONTESTANTS if kind == "expr" else MLP_CONTESTANTS
        names = [n for n in order if any(c["name"] == n and c["status"] == "ok" for r in cases
                                         for c in r["contestants"])]
        width = 0.8 / max(1, len(names))
        for j, n in enumerate(names):
            xs, ys = [], []
            for i, r in enumerate(cases):
                c = next((c for c in r["contestants"] if c["name"] == n and c["status"] == "ok"), None)
                if c:
                    xs.append(i + (j - (len(names) - 1) / 2) * width)
                    ys.append(c["ms"])
            bars = ax.bar(xs, ys, width, label=LABELS.get(n, n),
                          edgecolor="black" if n == "gradc" else None, linewidth=1.2 if n == "gradc" else 0)
            if n == "gradc":
                for b in bars:
                    b.set_hatch("//")
        ax.set_yscale("log")
        ax.set_xticks(range(len(cases)))
        ax.set_xticklabels([r["name"] for r in cases])
        ax.set_ylabel("ms per call (median, log scale)")
        ref = "hand-fused Numba loop" if kind == "expr" else "hand NumPy"
        ax.set_title(f"{'Expression value + gradient' if kind == 'expr' else 'MLP loss + gradients'} "
                     f"(lower is better; ratios in the table are to the {ref})")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0)
        ax.grid(axis="y", which="both", alpha=0.3)
    if meta:
        versions = meta.get("versions") or {}
        fig.suptitle(f"gradc {versions.get('gradc')} · numba {versions.get('numba')} · {meta.get('cpus')} cores · "
                     f"threads {meta.get('threads') or 'all'} · load {meta['loadavg'][0]:.1f} · {meta.get('started')}",
                     fontsize=9, y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", choices=("expr", "mlp", "all"), default="all")
    p.add_argument("--only", help="comma-separated case names (e.g. neuron,seed000)")
    p.add_argument("--quick", action="store_true", help=f"smoke run: N={N_QUICK:,} points, 3 samples")
    p.add_argument("--repeat", type=int, help="timed samples per contestant (default 15 expr / 30 mlp)")
    p.add_argument("--contestants", help="comma-separated contestants (the reference always runs)")
    p.add_argument("--compile-times", dest="compile_times", action="store_true", default=None,
                   help="measure gradc cold compile / warm load (default: on, off with --quick)")
    p.add_argument("--no-compile-times", dest="compile_times", action="store_false")
    p.add_argument("--threads", type=int, help="cap every library's thread pool (default: all cores); "
                   "--threads 1 gives steadier ratios on a busy machine")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out"), help="folder for JSON and PNG")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.compile_times is None:
        args.compile_times = not args.quick
    args.contestant_list = args.contestants.split(",") if args.contestants else None
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        return worker(argv)
    todo = plan(args.cases, args.only.split(",") if args.only else None)
    meta = {"command": " ".join([Path(sys.executable).name, "benchmarks/run.py", *argv]),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "threads": args.threads,
            **environment()}
    if meta["loadavg"][0] > BUSY_LOAD:
        print(f"warning: load average {meta['loadavg'][0]:.2f} on {os.cpu_count()} cores -- other processes are "
              "running; multi-threaded contestants suffer most (try --threads 1 or a quieter moment)",
              file=sys.stderr)
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    bar = tqdm(todo, unit="case", file=sys.stderr) if tqdm else todo
    results = []
    for kind, name in bar:
        if tqdm:
            bar.set_description(f"{kind}:{name}")
        else:
            print(f"... {kind}:{name}", file=sys.stderr, flush=True)
        results.append(spawn(kind, name, args))
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["loadavg_end"] = os.getloadavg()

    for kind, title in (("expr", "Expression value + full gradient (ratio: to the hand-fused Numba loop *)"),
                        ("mlp", "MLP training step, loss + all gradients, float64 (ratio: to hand NumPy *)")):
        done = [r for r in results if r.get("kind") == kind and "error" not in r]
        if done:
            print("\n" + format_table(done, title=title))
    for r in results:
        if "error" in r:
            print(f"\n{r['kind']}:{r['name']} FAILED: {r['error']}")
    print("\ngradc compile times and targets (issue 4)\n" + compile_table(results))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    payload = json.dumps({"meta": meta, "cases": results}, indent=1, default=float)
    for stem in (f"results-{stamp}", "results"):
        (out / f"{stem}.json").write_text(payload)
    png = plot(results, out / "results.png", meta)
    print(f"\nwrote {out / 'results.json'}" + (f" and {png}" if png else " (no PNG: matplotlib not installed)"))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

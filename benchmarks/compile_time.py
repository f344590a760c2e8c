"""Compile time: from a new model to its first value and gradient, gradc against SymEngine, SymPy and JAX.

Every cell but "gradc codegen" is the wall time, in a FRESH Python process, from a SymPy expression (or an
MLP spec) to the first value + gradient at a small batch: 1,000 points for an expression, 64 rows for an MLP.
The imports (numpy, sympy, numba, gradc, the peer; JAX's backend initialised, x64 on) and the expression,
spec and inputs are ready before the clock starts.

* gradc cold (first use after install): GRADC_CACHE_DIR a new, empty folder (Numba caches the kernels
  and gradc's shared support code next to the generated files in it, so nothing is cached):
  ``compile_expr`` (codegen, also timed alone) + the first ``value_and_grad`` ("numba": writing and
  importing the generated file, Numba compiling the kernel, the call). MLPs: ``compile_mlp`` +
  ``init_params(0)`` and the first ``loss_and_grad``.
* gradc new: a new model on a machine where gradc has run before: GRADC_CACHE_DIR a new folder in which
  another model of the same kind ran first (cs231n's, or rosenbrock8's for cs231n; mlp784's, or mlp1024's
  for mlp784), so gradc's shared support code (gradc/backend/support.py) is cached and the case's own
  kernels are not.
* after warmup: a new model on a machine where `gradc warmup --dtype float64` ran (once per run of this
  script; each cell starts from a copy of that folder): the shared support code and the built-in activations'
  loops are cached, the case's own kernels are not.
* gradc warm: a second fresh process with the cold run's folder: codegen again, the kernels from the cache.
* warm, Numba up: the same, but Numba's typing and target contexts initialised before the clock (as JAX's backend
  is for jax): what the first call costs when the caller did something else for ~0.2 s after ``import gradc``,
  which starts that initialisation in a background thread (gradc/jit.py).
* gradc codegen: in this process, the input to source text only, the best of 3. ``compile_expr`` and
  ``compile_mlp`` only emit source: the generated module is imported (and Numba compiles) on ``.module``
  access or on the first call (gradc/module.py, gradc/pipeline.py).
* symengine: the expression converted (``symengine.sympify``), ``diff`` w.r.t. each differentiated
  argument, ``Lambdify(args, [f, *grads], backend="llvm", cse=True)`` and one call on the (N, args) batch.
* sympy: ``sympy.diff`` w.r.t. each differentiated argument, ``lambdify(args, [f, *grads], modules="numpy",
  cse=True)`` and one call.
* jax: ``lambdify(args, f, modules="jax")``, ``jit(vmap(value_and_grad(fn, argnums=differentiated)))``, the
  first call; MLPs: the network as a jax.numpy loss of the parameters (``gradc.tools.peers._loss_fn``, the
  loss the other benchmarks give JAX) under ``jit(value_and_grad)``, the first call.

Cases: cs231n (x + σ(y)) / (σ(x) + (x + y)²) with σ(u) = 1/(1 + exp(-u)); rosenbrock8; pendulum8 and
pendulum16, the Lagrangian of an n-link pendulum chain (tests/corpus_exprs.py) in the angles, rates, masses,
lengths and g, differentiated w.r.t. the angles and rates; mlp784 and mlp1024 (gradc and JAX only);
lagrangian9900, the same chain with 41 links (count_ops 9,760; JAX gets 120 s). Then "scaling": gradc's
codegen alone for chains of 2 to 32 links, in seconds and in ms per 1,000 IR operations.

The value and gradients of every run are summed into a checksum compared with gradc cold's (relative 1e-6):
a cell that disagrees is marked "!". A run over its time limit shows "timeout", a peer not installed
"skipped (not installed)", not applicable "–". --repeat R runs each fresh-process cell R times (the median).

    .venv-bench/bin/python benchmarks/compile_time.py [--only cs231n,scaling] [--repeat 1] [--timeout 600]
                                                     [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gradc.tools.timing import cold_warm, max_error  # noqa: E402

N_POINTS = 1_000
MLP_BATCH = 64
LAGRANGIAN_LINKS = 41          # count_ops of the chain's Lagrangian: 9,302 at 40 links, 9,760 at 41
SCALING_LINKS = (2, 4, 8, 16, 32)
CODEGEN_TRIES = 3
TIMEOUT_S = 600.0
LARGE_JAX_TIMEOUT_S = 120.0    # JAX on lagrangian9900 is optional: beyond this it shows "timeout"
CHECK_RTOL = 1e-6
NA = "–"

MLP_SPECS: dict[str, dict[str, Any]] = {
    "mlp784": {"input": 784, "layers": [{"units": 30, "activation": "sigmoid"},
                                        {"units": 10, "activation": "sigmoid"}], "loss": "mse"},
    "mlp1024": {"input": 1024, "layers": [{"units": 1024, "activation": "tanh"},
                                          {"units": 1024, "activation": "tanh"}, {"units": 10}],
                "loss": "softmax_cross_entropy"},
}
CASES = ("cs231n", "rosenbrock8", "pendulum8", "pendulum16", "mlp784", "mlp1024", "lagrangian9900")
COLUMNS = ("gradc_cold", "gradc_new", "gradc_warmed", "gradc_warm", "gradc_warm_up", "gradc_codegen", "symengine",
           "sympy", "jax")
HEADERS = {"gradc_cold": "gradc cold (codegen + numba)", "gradc_new": "gradc new", "gradc_warmed": "after warmup",
           "gradc_warm": "gradc warm", "gradc_warm_up": "warm, Numba up",
           "gradc_codegen": "gradc codegen", "symengine": "symengine", "sympy": "sympy", "jax": "jax"}
PEERS = ("symengine", "sympy", "jax")


def columns_for(case: str) -> tuple[str, ...]:
    """The columns measured for ``case``: all of them for an expression, gradc's and JAX's for an MLP."""
    if case in MLP_SPECS:
        return ("gradc_cold", "gradc_new", "gradc_warmed", "gradc_warm", "gradc_warm_up", "gradc_codegen", "jax")
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; expected one of {', '.join(CASES)}")
    return COLUMNS


def time_limit(case: str, column: str, timeout: float) -> float:
    """Seconds a fresh process of ``column`` on ``case`` may take (JAX on lagrangian9900 gets 120 at most)."""
    return min(timeout, LARGE_JAX_TIMEOUT_S) if (case, column) == ("lagrangian9900", "jax") else timeout


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ExprInput:
    """A SymPy expression, its ordered argument symbols and the arguments it is differentiated w.r.t."""

    expr: Any
    args: tuple[sp.Symbol, ...]
    wrt: tuple[sp.Symbol, ...]


def _sigmoid(u: Any) -> Any:
    return 1 / (1 + sp.exp(-u))


def pendulum(n_links: int) -> ExprInput:
    """The Lagrangian of an ``n_links`` pendulum chain built with sympy.physics.mechanics by tests/corpus_exprs.py
    (``_pendulum_chain``, ``_plain``): args the angles, rates, masses, lengths and g; wrt the angles and rates."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from corpus_exprs import _pendulum_chain, _plain

    L, qs, thetas, omegas, ms, ls, g = _pendulum_chain(n_links)
    return ExprInput(_plain(L, qs, thetas, omegas), (*thetas, *omegas, *ms, *ls, g), (*thetas, *omegas))


def expr_input(case: str) -> ExprInput:
    """The expression case ``case`` (ValueError for an MLP or unknown name)."""
    if case == "cs231n":
        x, y = sp.symbols("x y", real=True)
        return ExprInput((x + _sigmoid(y)) / (_sigmoid(x) + (x + y) ** 2), (x, y), (x, y))
    if case == "rosenbrock8":
        xs = sp.symbols("x0:8", real=True)
        f = sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(7))
        return ExprInput(f, xs, xs)
    if case == "lagrangian9900":
        return pendulum(LAGRANGIAN_LINKS)
    if re.fullmatch(r"pendulum\d+", case):
        return pendulum(int(case[len("pendulum"):]))
    raise ValueError(f"{case!r} is not an expression case")


#: Sampling interval by a symbol's letters (theta1 -> "theta"); anything else draws from (-2, 2).
DOMAINS = {"theta": (-math.pi, math.pi), "omega": (-3.0, 3.0), "m": (0.2, 3.0), "l": (0.3, 2.0), "g": (9.7, 9.9)}


def sample(inp: ExprInput, n: int = N_POINTS, seed: int = 0) -> list[np.ndarray]:
    """One float64 array of ``n`` deterministic points per argument, uniform in its DOMAINS interval."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(*DOMAINS.get(re.match(r"[a-z]*", s.name).group(0), (-2.0, 2.0)), n) for s in inp.args]


def mlp_batch(case: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Deterministic (params, X, Y) of MLP_BATCH rows for the MLP case (gradc.tools.peers.make_batch)."""
    from gradc.frontend.spec import load_spec
    from gradc.tools.peers import make_batch

    return make_batch(load_spec(MLP_SPECS[case]), MLP_BATCH)


# ---------------------------------------------------------------- measurements (inside the fresh process)


def _checksum(values: Sequence[Any], points: int | None = None) -> list[float]:
    """The sum of each value (each broadcast to ``points`` entries first when given: a constant gradient
    comes back as a scalar from lambdify)."""
    if points is not None:
        values = [np.broadcast_to(np.asarray(v, dtype=np.float64), (points,)) for v in values]
    return [float(np.sum(np.asarray(v, dtype=np.float64))) for v in values]


def _gradc_expr(inp: ExprInput, cols: list[np.ndarray]) -> dict[str, Any]:
    """compile_expr (codegen_s), then the first value_and_grad (numba_s: import, Numba compile, the call)."""
    import gradc

    t0 = time.perf_counter()
    module = gradc.compile_expr(inp.expr, list(inp.args), wrt=list(inp.wrt))
    t1 = time.perf_counter()
    value, grads = module.value_and_grad(*cols)
    t2 = time.perf_counter()
    return {"total_s": t2 - t0, "codegen_s": t1 - t0, "numba_s": t2 - t1,
            "check": _checksum([value, *grads], len(cols[0]))}


def _symengine_expr(inp: ExprInput, cols: list[np.ndarray]) -> dict[str, Any]:
    """sympify, diff per wrt argument, LLVM Lambdify with cse, one call on the (N, args) batch."""
    import symengine as se

    X = np.column_stack(cols)
    t0 = time.perf_counter()
    args = [se.sympify(a) for a in inp.args]
    f = se.sympify(inp.expr)
    grads = [f.diff(args[inp.args.index(w)]) for w in inp.wrt]
    out = se.Lambdify(args, [f, *grads], backend="llvm", cse=True)(X)
    t1 = time.perf_counter()
    return {"total_s": t1 - t0, "check": _checksum(list(np.asarray(out).T), len(cols[0]))}


def _sympy_expr(inp: ExprInput, cols: list[np.ndarray]) -> dict[str, Any]:
    """sympy.diff per wrt argument, lambdify (numpy, cse) of the value and gradients, one call."""
    t0 = time.perf_counter()
    grads = [sp.diff(inp.expr, w) for w in inp.wrt]
    out = sp.lambdify(inp.args, [inp.expr, *grads], modules="numpy", cse=True)(*cols)
    t1 = time.perf_counter()
    return {"total_s": t1 - t0, "check": _checksum(out, len(cols[0]))}


def _jax_expr(inp: ExprInput, cols: list[np.ndarray]) -> dict[str, Any]:
    """lambdify to jax.numpy, jit(vmap(value_and_grad)) w.r.t. the wrt arguments, the first call."""
    import jax

    on_device = [jax.device_put(c) for c in cols]
    t0 = time.perf_counter()
    fn = sp.lambdify(inp.args, inp.expr, modules="jax")
    argnums = tuple(inp.args.index(w) for w in inp.wrt)
    value, grads = jax.block_until_ready(jax.jit(jax.vmap(jax.value_and_grad(fn, argnums=argnums)))(*on_device))
    t1 = time.perf_counter()
    return {"total_s": t1 - t0, "check": _checksum([value, *grads], len(cols[0]))}


def _gradc_mlp(case: str, batch: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]) -> dict[str, Any]:
    """compile_mlp (codegen_s), then init_params(0) and the first loss_and_grad (numba_s). The checksum comes
    from a second call, after the clock, on the batch's shared parameters."""
    import gradc

    params, X, Y = batch
    t0 = time.perf_counter()
    net = gradc.compile_mlp(MLP_SPECS[case])
    t1 = time.perf_counter()
    net.loss_and_grad(net.init_params(0), X, Y)
    t2 = time.perf_counter()
    loss, grads = net.loss_and_grad(params, X, Y)
    return {"total_s": t2 - t0, "codegen_s": t1 - t0, "numba_s": t2 - t1,
            "check": _checksum([loss, *(grads[k] for k in params)])}


def _jax_mlp(case: str, batch: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]) -> dict[str, Any]:
    """The jax.numpy network loss of the parameters under jit(value_and_grad), the first call."""
    import jax

    from gradc.frontend.spec import load_spec
    from gradc.tools import peers

    params, X, Y = batch
    spec = load_spec(MLP_SPECS[case])
    names = list(params)
    weights, jX, jY = [jax.device_put(params[k]) for k in names], jax.device_put(X), jax.device_put(Y)
    t0 = time.perf_counter()
    step = jax.jit(jax.value_and_grad(peers._loss_fn(spec, peers._jax_ops(), X.shape[0])))
    loss, grads = jax.block_until_ready(step(weights, jX, jY))
    t1 = time.perf_counter()
    return {"total_s": t1 - t0, "check": _checksum([loss, *grads])}


EXPR_MEASURES: dict[str, Callable[[ExprInput, list[np.ndarray]], dict[str, Any]]] = {
    "gradc": _gradc_expr, "symengine": _symengine_expr, "sympy": _sympy_expr, "jax": _jax_expr}
MLP_MEASURES: dict[str, Callable[[str, Any], dict[str, Any]]] = {"gradc": _gradc_mlp, "jax": _jax_mlp}


def _preload(who: str) -> None:
    """Import everything ``who``'s measurement uses, before its clock starts (JAX: x64 on, backend up)."""
    import numba  # noqa: F401

    import gradc  # noqa: F401
    if who == "gradc" and os.environ.get("GRADC_BENCH_NUMBA_UP") == "1":
        from gradc.jit import _initialise_numba

        _initialise_numba()   # Numba's start-up, which `import gradc` began in the background, finished
    if who == "symengine":
        import symengine  # noqa: F401
    if who == "jax":
        import jax
        import jax.numpy  # noqa: F401

        jax.config.update("jax_enable_x64", True)
        jax.devices()


def child(who: str, case: str) -> None:
    """The fresh process's work: import, build the input, measure ``who`` ("gradc" or a peer) on ``case`` and
    print its result as one JSON line: total_s, the parts (gradc: codegen_s, numba_s) and a checksum."""
    _preload(who)
    if case in MLP_SPECS:
        result = MLP_MEASURES[who](case, mlp_batch(case))
    else:
        inp = expr_input(case)
        result = EXPR_MEASURES[who](inp, sample(inp))
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- fresh processes (the parent's side)

_SNIPPET = """
import sys
sys.path.insert(0, sys.argv[1])
from benchmarks.compile_time import child
child(sys.argv[2], sys.argv[3])
"""


def _failure(text: str) -> str:
    """A failed run's cell text from its last line of output."""
    return f"failed: {text}"[:200]


def _fresh(who: str, case: str, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """One fresh process measuring ``who`` on ``case`` (in `env`, default this one's): its JSON result, or
    {"error": "timeout" | "failed: <last line of stderr>"}."""
    try:
        proc = subprocess.run([sys.executable, "-c", _SNIPPET, str(ROOT), who, case], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return {"error": _failure(tail[0])}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_peer(peer: str, case: str, timeout: float) -> dict[str, Any]:
    """One fresh process measuring ``peer`` on ``case``: its JSON result, or {"error": "timeout" |
    "skipped (not installed)" | "failed: <last line of stderr>"}."""
    if importlib.util.find_spec(peer) is None:
        return {"error": "skipped (not installed)"}
    return _fresh(peer, case, timeout)


def run_gradc(case: str, timeout: float) -> dict[str, dict[str, Any]]:
    """gradc on ``case`` in two fresh processes sharing a new, empty GRADC_CACHE_DIR
    (gradc.tools.timing.cold_warm): {"cold": result, "warm": result}, each as :func:`run_peer`'s."""
    try:
        pair = cold_warm(_SNIPPET, str(ROOT), "gradc", case, python=sys.executable, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"cold": {"error": "timeout"}, "warm": {"error": "timeout"}}
    for result in pair.values():
        if "error" in result:
            result["error"] = _failure(result["error"])
    return pair


def primer(case: str) -> str:
    """The model of the same kind run before ``case`` for "gradc new", to cache gradc's shared support code."""
    if case in MLP_SPECS:
        return "mlp1024" if case == "mlp784" else "mlp784"
    return "rosenbrock8" if case == "cs231n" else "cs231n"


def run_gradc_new(case: str, timeout: float) -> dict[str, Any]:
    """gradc on ``case`` in a fresh process whose new GRADC_CACHE_DIR holds what ``primer(case)`` cached
    (run first, in a fresh process of its own): a result as :func:`run_peer`'s."""
    with tempfile.TemporaryDirectory(prefix="gradc-bench-cache-") as cache:
        env = {**os.environ, "GRADC_CACHE_DIR": cache}
        primed = _fresh("gradc", primer(case), timeout, env)
        return primed if "error" in primed else _fresh("gradc", case, timeout, env)


def run_gradc_numba_up(case: str, timeout: float) -> dict[str, Any]:
    """gradc warm, but with Numba's typing and target contexts initialised before the clock, as JAX's backend is
    for the jax column: the first call of a process that did something else for 0.2 s after `import gradc`
    (which starts that initialisation in the background). A cold process fills a new GRADC_CACHE_DIR first."""
    with tempfile.TemporaryDirectory(prefix="gradc-bench-cache-") as cache:
        env = {**os.environ, "GRADC_CACHE_DIR": cache}
        cold = _fresh("gradc", case, timeout, env)
        return cold if "error" in cold else _fresh("gradc", case, timeout, {**env, "GRADC_BENCH_NUMBA_UP": "1"})


_WARMED: list[str] = []   # the folder `gradc warmup` filled, made once per run of this script


def _warmed_cache(timeout: float) -> str:
    """A GRADC_CACHE_DIR in which `gradc warmup --dtype float64` ran (the first call runs it)."""
    if not _WARMED:
        folder = tempfile.mkdtemp(prefix="gradc-bench-warmed-")
        subprocess.run([sys.executable, "-m", "gradc.tools.cli", "warmup", "--dtype", "float64", "--quiet"],
                       env={**os.environ, "GRADC_CACHE_DIR": folder}, check=True, timeout=timeout,
                       capture_output=True)
        _WARMED.append(folder)
    return _WARMED[0]


def run_gradc_warmed(case: str, timeout: float) -> dict[str, Any]:
    """gradc on ``case`` in a fresh process whose new GRADC_CACHE_DIR is a copy of :func:`_warmed_cache`'s: a
    result as :func:`run_peer`'s."""
    with tempfile.TemporaryDirectory(prefix="gradc-bench-cache-") as cache:
        shutil.copytree(_warmed_cache(timeout), cache, dirs_exist_ok=True)
        return _fresh("gradc", case, timeout, {**os.environ, "GRADC_CACHE_DIR": cache})


def _repeated(run: Callable[[], Any], repeat: int, failed: Callable[[Any], bool]) -> list[Any]:
    """``run()`` up to ``repeat`` times; stops after the first failed result (a timeout is not retried)."""
    results = []
    for _ in range(repeat):
        results.append(run())
        if failed(results[-1]):
            break
    return results


def cell(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A table cell from fresh-process runs: status "ok" with the median of each time over the runs and the first
    run's checksum, or the first error as the status when a run failed."""
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return {"status": errors[0], "runs": runs}
    out: dict[str, Any] = {"status": "ok", "runs": runs, "check": runs[0].get("check")}
    for key in ("total_s", "codegen_s", "numba_s"):
        if key in runs[0]:
            out[key] = statistics.median(r[key] for r in runs)
    return out


# ---------------------------------------------------------------- codegen (in this process)


def _codegen_maker(case: str) -> tuple[Callable[[], Any], int | None]:
    """(a function emitting the case's module -- source only, nothing compiled --, SymPy's count_ops or None)."""
    import gradc

    if case in MLP_SPECS:
        return (lambda: gradc.compile_mlp(MLP_SPECS[case])), None
    inp = expr_input(case)
    return (lambda: gradc.compile_expr(inp.expr, list(inp.args), wrt=list(inp.wrt))), int(sp.count_ops(inp.expr))


def _best_of(make: Callable[[], Any], tries: int) -> tuple[list[float], Any]:
    """(seconds of each of ``tries`` calls of ``make``, the last call's result)."""
    times, result = [], None
    for _ in range(tries):
        t0 = time.perf_counter()
        result = make()
        times.append(time.perf_counter() - t0)
    return times, result


def codegen_cell(case: str, tries: int = CODEGEN_TRIES) -> dict[str, Any]:
    """gradc's input -> source time for ``case`` in this process: total_s the best of ``tries`` (the first one
    also warms SymPy's cache; all are in runs_s) of what the first value and gradient need; whole_s with the
    whole standalone module (an expression's Jacobian, Hessian, JVP and HVP kernels too, emitted once on its
    first use), its line count, the IR op counts and count_ops."""
    make, count_ops = _codegen_maker(case)
    times, module = _best_of(make, tries)
    t0 = time.perf_counter()
    source = module.source   # an expression's derivative kernels are emitted only now (the written module's)
    whole = min(times) + time.perf_counter() - t0
    return {"status": "ok", "total_s": min(times), "runs_s": times, "whole_s": whole, "lines": len(source.splitlines()),
            "op_counts": dict(module.op_counts), "count_ops": count_ops}


def scaling(links: Sequence[int] = SCALING_LINKS, tries: int = CODEGEN_TRIES) -> list[dict[str, Any]]:
    """gradc's codegen of the pendulum chain of each number of ``links`` (:func:`codegen_cell`'s fields), with
    ir_ops = forward + backward IR operations and ms_per_kop = milliseconds per 1,000 of them."""
    rows = []
    for n in links:
        row = {"links": n, **codegen_cell(f"pendulum{n}", tries)}
        row["ir_ops"] = sum(row["op_counts"].values())
        row["ms_per_kop"] = 1e6 * row["total_s"] / row["ir_ops"]
        row["whole_ms_per_kop"] = 1e6 * row["whole_s"] / row["ir_ops"]
        rows.append(row)
    return rows


# ---------------------------------------------------------------- one case, all columns


def _compare(cells: dict[str, dict[str, Any]]) -> None:
    """Mark each measured cell with check_error (its checksum against gradc cold's, gradc.tools.timing.max_error)
    and agrees (check_error <= CHECK_RTOL)."""
    ref = cells.get("gradc_cold", {}).get("check")
    for column, c in cells.items():
        if ref is not None and c.get("check") is not None and column != "gradc_cold":
            c["check_error"] = max_error(c["check"], ref)
            c["agrees"] = c["check_error"] <= CHECK_RTOL


def run_case(case: str, columns: Sequence[str] | None = None, repeat: int = 1, timeout: float = TIMEOUT_S,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure ``columns`` (default all; those that do not apply to the case are left out) of ``case``, each
    fresh-process column ``repeat`` times. Returns {"case", "cells": {column: cell}} where a cell has "status"
    ("ok", "timeout", "skipped (not installed)", "failed: ...") and, when ok, "total_s" (gradc cold also
    "codegen_s" and "numba_s"; gradc codegen also "lines", "op_counts", "count_ops")."""
    wanted = [c for c in (columns or COLUMNS) if c in columns_for(case)]
    say = progress or (lambda _text: None)
    cells: dict[str, dict[str, Any]] = {}
    if "gradc_codegen" in wanted:
        say(f"{case}: gradc codegen")
        cells["gradc_codegen"] = codegen_cell(case)
    if "gradc_cold" in wanted or "gradc_warm" in wanted:
        say(f"{case}: gradc cold + warm")
        pairs = _repeated(lambda: run_gradc(case, timeout), repeat, lambda p: "error" in p["cold"])
        cells["gradc_cold"] = cell([p["cold"] for p in pairs])
        cells["gradc_warm"] = cell([p["warm"] for p in pairs])
    if "gradc_warm_up" in wanted:
        say(f"{case}: gradc warm, Numba's start-up before the clock")
        cells["gradc_warm_up"] = cell(_repeated(lambda: run_gradc_numba_up(case, timeout), repeat,
                                                lambda r: "error" in r))
    if "gradc_new" in wanted:
        say(f"{case}: gradc new (after {primer(case)})")
        cells["gradc_new"] = cell(_repeated(lambda: run_gradc_new(case, timeout), repeat, lambda r: "error" in r))
    if "gradc_warmed" in wanted:
        say(f"{case}: gradc after `gradc warmup`")
        cells["gradc_warmed"] = cell(_repeated(lambda: run_gradc_warmed(case, timeout), repeat,
                                               lambda r: "error" in r))
    for peer in (p for p in PEERS if p in wanted):
        say(f"{case}: {peer}")
        limit = time_limit(case, peer, timeout)
        runs = _repeated(lambda peer=peer, limit=limit: run_peer(peer, case, limit), repeat, lambda r: "error" in r)
        cells[peer] = cell(runs)
        if cells[peer]["status"] == "timeout":
            cells[peer]["status"] = f"timeout (> {limit:.0f} s)"
    _compare(cells)
    return {"case": case, "cells": {c: cells[c] for c in COLUMNS if c in cells}}


# ---------------------------------------------------------------- tables


def _s(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds < 100 else f"{seconds:.0f}"


def format_cell(column: str, c: dict[str, Any] | None) -> str:
    """Seconds (gradc cold: "total (codegen + numba)"), "!" when the checksum disagrees; the status otherwise."""
    if c is None:
        return NA
    if c["status"] != "ok":
        return c["status"][:48]
    text = _s(c["total_s"])
    if column in ("gradc_cold", "gradc_new") and "codegen_s" in c:
        text += f" ({_s(c['codegen_s'])} + {_s(c['numba_s'])})"
    return text + (" !" if c.get("agrees") is False else "")


def _grid(header: Sequence[str], rows: list[Sequence[str]]) -> str:
    """Left-aligned first column, right-aligned others, each as wide as its widest entry."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The main table (seconds): one line per case, one column per COLUMNS entry."""
    return _grid(["case", *(HEADERS[c] for c in COLUMNS)],
                 [[r["case"], *(format_cell(c, r["cells"].get(c)) for c in COLUMNS)] for r in rows])


def format_codegen(rows: list[dict[str, Any]]) -> str:
    """gradc's generated code per case: count_ops of the input, IR ops, source lines, each codegen try."""
    out = []
    for r in rows:
        c = r["cells"].get("gradc_codegen")
        if c is None:
            continue
        ops = c["op_counts"]
        out.append([r["case"], NA if c["count_ops"] is None else f"{c['count_ops']:,}",
                    f"{ops.get('forward', 0):,} + {ops.get('backward', 0):,}", f"{c['lines']:,}",
                    " / ".join(_s(t) for t in c["runs_s"]), _s(c["whole_s"])])
    return _grid(["case", "count_ops", "IR ops fwd + bwd", "source lines", "codegen tries s", "whole module s"],
                 out)


def format_scaling(rows: list[dict[str, Any]]) -> str:
    """The scaling table: links, count_ops, IR ops, source lines, best codegen s and ms per 1,000 IR ops (to the
    first gradient; and of the whole module, derivative kernels included)."""
    return _grid(["links", "count_ops", "IR ops", "source lines", "codegen s", "ms / 1,000 IR ops",
                  "whole module s", "ms / 1,000 IR ops"],
                 [[str(r["links"]), f"{r['count_ops']:,}", f"{r['ir_ops']:,}", f"{r['lines']:,}",
                   f"{r['total_s']:.3f}", f"{r['ms_per_kop']:.0f}", f"{r['whole_s']:.3f}",
                   f"{r['whole_ms_per_kop']:.0f}"] for r in rows])


def versions() -> dict[str, str]:
    """Installed versions of gradc and the libraries measured ("-" when absent)."""
    out = {}
    for name in ("gradc", "numpy", "numba", "sympy", "symengine", "jax", "jaxlib"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join([*CASES, "scaling"]),
                        help=f"comma-separated names among {', '.join(CASES)}, scaling")
    parser.add_argument("--repeat", type=int, default=1, help="fresh-process runs per cell (the median)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per fresh process")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    names = [s for s in args.only.split(",") if s]
    unknown = [s for s in names if s not in (*CASES, "scaling")]
    if unknown or args.repeat < 1:
        parser.error(f"unknown name(s) {unknown}" if unknown else "--repeat must be >= 1")
    load_start = _load()
    print(f"compile time to the first value + gradient ({N_POINTS:,} points; MLPs {MLP_BATCH} rows), fresh "
          f"processes, median of {args.repeat}; timeout {args.timeout:.0f} s; load average at start: {load_start}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()), flush=True)
    progress = lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)  # noqa: E731
    rows = [run_case(c, repeat=args.repeat, timeout=args.timeout, progress=progress) for c in CASES if c in names]
    scaled = []
    if "scaling" in names:
        progress("scaling")
        scaled = scaling()
    if rows:
        print("\nseconds from the SymPy expression / MLP spec to the first value + gradient")
        print(format_table(rows), "", "gradc's generated code (codegen in this process, each of 3 tries)",
              format_codegen(rows), sep="\n")
    if scaled:
        print("\nscaling: gradc codegen of n-link pendulum chains (in this process, best of 3)", format_scaling(scaled),
              sep="\n")
    load_end = _load()
    print(f"\nload average at end: {load_end}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"n_points": N_POINTS, "mlp_batch": MLP_BATCH, "repeat": args.repeat,
                                         "timeout_s": args.timeout, "versions": versions(),
                                         "load_average": {"start": load_start, "end": load_end},
                                         "rows": rows, "scaling": scaled}, indent=1))
    return 0 if all(r["cells"].get("gradc_cold", {"status": "ok"})["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

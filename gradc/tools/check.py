"""Gradient checks: gradc's gradients against central finite differences, as a user-facing feature.

`check_mlp(spec)` and `check_expr(exprs)` return a `CheckReport` with one `GradCheck` per parameter
(MLP) or differentiated argument (expression); `gradc check` prints its table and exits 1 if any
error is over the tolerance.

Error measure, per parameter (or argument): ``max |g − fd| / max(|g|, |fd|)``, both maxima over
every checked entry at every point -- the error relative to the parameter's largest gradient entry.
Finite-difference round-off (~1e-10·|f| at the default step) therefore cannot turn one tiny entry into
a false alarm, while a wrong formula still shows as an error of order 1. Central differences use the
step ``h = step·max(1, |θ|)`` and divide by the step actually taken (``θ+h − (θ−h)`` in floating
point). Checks always run in float64: for a float32 spec or expression the float64 twin (same formulas) is
checked, and the report says so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STEP = 1e-6
MAX_ENTRIES = 64     # entries of one parameter checked per point (a random subset of larger ones)
BATCH = 4            # rows of X and Y per MLP check point


@dataclass(frozen=True)
class GradCheck:
    """The comparison for one parameter or argument, over all points."""

    name: str
    shape: tuple[int, ...]
    entries: int              # gradient entries compared, summed over points
    max_rel_error: float      # max |g - fd| / max(|g|, |fd|) over all compared entries (module docstring)
    max_abs_error: float      # max |g - fd| over the compared entries

    def ok(self, tol: float) -> bool:
        return bool(self.max_rel_error <= tol)


@dataclass
class CheckReport:
    """Per-parameter results of one gradient check; `ok` is False if any error exceeds `tol`."""

    subject: str
    results: list[GradCheck]
    tol: float
    points: int                        # points at which gradients were compared
    notes: list[str] = field(default_factory=list)
    label: str = "parameter"           # what a row is: "parameter" (MLP) or "argument" (expression)

    @property
    def ok(self) -> bool:
        return all(r.ok(self.tol) for r in self.results)

    @property
    def failures(self) -> list[GradCheck]:
        return [r for r in self.results if not r.ok(self.tol)]

    def format_table(self) -> str:
        """A plain-text table: one row per parameter, then a verdict line."""
        with_shape = any(r.shape for r in self.results)
        rows = [(self.label, "shape", "entries", "max rel error", "max abs error", "")]
        for r in self.results:
            shape = "(" + ", ".join(map(str, r.shape)) + ("," if len(r.shape) == 1 else "") + ")"
            rows.append((r.name, shape, str(r.entries), f"{r.max_rel_error:.2e}", f"{r.max_abs_error:.2e}",
                         "ok" if r.ok(self.tol) else "FAIL"))
        if not with_shape:   # expression arguments are scalars per point: no shape to show
            rows = [(row[0], *row[2:]) for row in rows]
        widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths[:-1]))
        bad = self.failures
        verdict = (f"ok: every gradient is within {self.tol:g} of central differences at {self.points} points"
                   if not bad else
                   f"FAIL: {', '.join(r.name for r in bad)} over tolerance {self.tol:g} ({self.points} points)")
        return "\n".join([*lines, *(f"note: {n}" for n in self.notes), verdict])


class _Accumulator:
    """Running maxima of |g - fd| and of the gradient's magnitude for one parameter."""

    def __init__(self, name: str, shape: tuple[int, ...]):
        self.name, self.shape = name, shape
        self.entries, self.diff, self.scale = 0, 0.0, 0.0

    def add(self, g: np.ndarray, fd: np.ndarray) -> None:
        g, fd = np.asarray(g, np.float64).ravel(), np.asarray(fd, np.float64).ravel()
        if g.size:
            self.entries += g.size
            self.diff = max(self.diff, float(np.max(np.abs(g - fd))))
            self.scale = max(self.scale, float(np.max(np.abs(g))), float(np.max(np.abs(fd))))

    def result(self) -> GradCheck:
        rel = self.diff / self.scale if self.scale > 0 else (0.0 if self.diff == 0 else float("inf"))
        return GradCheck(self.name, self.shape, self.entries, rel, self.diff)


def _central_entries(loss: Callable[[], float], flat: np.ndarray, picks: np.ndarray, step: float) -> np.ndarray:
    """Central differences of `loss()` w.r.t. the entries `picks` of `flat` (perturbed in place, then
    restored), each divided by the step actually represented: (f(θ+h) - f(θ-h)) / ((θ+h) - (θ-h))."""
    fd = np.empty(picks.size)
    for j, e in enumerate(picks):
        saved = float(flat[e])
        h = step * max(1.0, abs(saved))
        flat[e] = saved + h
        f_plus, x_plus = loss(), float(flat[e])
        flat[e] = saved - h
        f_minus, x_minus = loss(), float(flat[e])
        flat[e] = saved
        fd[j] = (f_plus - f_minus) / (x_plus - x_minus)
    return fd


# ---------------------------------------------------------------------------------------------- MLPs


def random_batch(spec: Any, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) fitting the spec's loss: X ~ N(0, 1); one-hot Y for softmax cross-entropy and hinge,
    Y in (0, 1) for binary cross-entropy and the squared losses."""
    dtype = np.dtype(spec.dtype)
    k = spec.layers[-1].units
    X = rng.standard_normal((n, spec.input)).astype(dtype)
    if spec.loss in ("softmax_cross_entropy", "hinge"):
        Y = np.eye(k, dtype=dtype)[rng.integers(0, k, size=n)]
    else:
        Y = rng.uniform(0.05, 0.95, size=(n, k)).astype(dtype)
    return X, Y


def check_mlp(spec: Any, *, points: int = 5, seed: int = 0, tol: float = 1e-6, batch: int = BATCH,
              step: float = STEP, max_entries: int = MAX_ENTRIES, module: Any = None) -> CheckReport:
    """Compare `loss_and_grad` of the compiled spec with central differences of its `loss`.

    spec: anything `gradc.compile_mlp` takes. At each of `points` points: parameters from
    `init_params` (a different seed per point) with biases drawn from N(0, 0.1²) so that they matter
    too, and a random batch of `batch` rows (see `random_batch`). Parameters with more than
    `max_entries` entries are checked on a random subset of that many entries per point.
    `module`: an already compiled float64 MLPModule of the same spec, to skip compiling.
    Raises SpecError for an invalid spec.
    """
    from gradc.errors import GradcError
    from gradc.frontend.spec import load_spec
    from gradc.pipeline import compile_mlp

    _check_options(points, tol, step)
    parsed = load_spec(spec)
    notes = []
    if parsed.dtype != "float64":
        notes.append(f"the spec is {parsed.dtype}; its float64 twin (same formulas) was checked")
        parsed = load_spec({**parsed.to_dict(), "dtype": "float64"})
    if module is None:
        module = compile_mlp(parsed)
    rng = np.random.default_rng(seed)
    shapes = dict(module.param_shapes)
    acc = {name: _Accumulator(name, shape) for name, shape in shapes.items()}
    used = tries = 0
    while used < points and tries < 4 * points:   # points where the loss is not finite are skipped
        tries += 1
        params = {k: np.array(v, dtype=np.float64) for k, v in module.init_params(seed * 1000 + tries).items()}
        for name in params:
            if name.startswith("b"):
                params[name] = rng.normal(0.0, 0.1, size=params[name].shape)
        X, Y = random_batch(parsed, batch, rng)
        with np.errstate(all="ignore"):
            value, grads = module.loss_and_grad(params, X, Y)
        if not (np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())):
            continue
        used += 1
        for name, theta in params.items():
            flat = theta.reshape(-1)   # a view: writes perturb params[name]
            picks = np.arange(flat.size)
            if flat.size > max_entries:
                picks = np.sort(rng.choice(flat.size, size=max_entries, replace=False))
            fd = _central_entries(functools.partial(module.loss, params, X, Y), flat, picks, step)
            acc[name].add(np.asarray(grads[name]).reshape(-1)[picks], fd)
    if used == 0:
        raise GradcError(f"the loss or its gradient is not finite at any of {tries} random points; "
                         f"is {parsed.loss} defined on the range of the last activation "
                         f"({parsed.layers[-1].activation})?")
    if used < points:
        notes.append(f"only {used} of {tries} random points had a finite loss and gradient")
    if any(s > max_entries for s in (int(np.prod(v)) for v in shapes.values())):
        notes.append(f"parameters with more than {max_entries} entries: {max_entries} random entries per point")
    return CheckReport(f"MLP {parsed.name}", [a.result() for a in acc.values()], tol, used, notes)


# ---------------------------------------------------------------------------------------- expressions


def check_expr(exprs: Any, args: Sequence[Any] | None = None, wrt: Sequence[Any] | None = None, *,
               points: int = 5, seed: int = 0, tol: float = 1e-6, step: float = STEP, low: float = -1.0,
               high: float = 1.0, name: str = "f", dtype: str = "float64", module: Any = None) -> CheckReport:
    """Compare `value_and_grad` of the compiled expression(s) with central differences of `forward`.

    exprs/args/wrt/name are as for `gradc.compile_expr` (the check always compiles in float64).
    Points are drawn uniformly from [low, high] in every argument; points where a value, a gradient
    or a finite-difference evaluation is not finite (outside the domain: log of a negative, ...) are
    skipped, and more are drawn. Several expressions are checked through one random weighted sum of
    their outputs (the `cotangents` of `value_and_grad`). Raises GradcError if no valid point is found.
    `module`: an already compiled float64 ExprModule of the same input, to skip compiling.
    """
    from gradc.errors import GradcError
    from gradc.pipeline import compile_expr

    _check_options(points, tol, step)
    notes = []
    if dtype != "float64":
        notes.append(f"{dtype} was asked for; the float64 twin (same formulas) was checked")
    if isinstance(exprs, (list, tuple)) and len(exprs) == 1:
        exprs = exprs[0]   # one expression: grad of f itself (no cotangents)
    listed = exprs if isinstance(exprs, (list, tuple)) else [exprs]
    no_args = not args and not set().union(*(getattr(e, "free_symbols", set()) for e in listed))
    if module is None and (no_args or (wrt is not None and not list(wrt))):
        raise GradcError("nothing to check: the expression has no arguments to differentiate")
    if module is None:
        module = compile_expr(exprs, args, wrt, name=name, dtype="float64")
    if not module.wrt:
        raise GradcError("nothing to check: the expression has no arguments to differentiate")
    rng = np.random.default_rng(seed)
    n_args, many = len(module.args), module.n_outputs > 1
    wrt_index = [module.args.index(w) for w in module.wrt]

    candidates = max(64, 16 * points)
    xs = [rng.uniform(low, high, size=candidates) for _ in range(n_args)]
    # one output: grad of sum(f), weight 1; several: a random weighted sum, weights passed as cotangents
    weights = [rng.uniform(0.5, 1.5, size=candidates) if many else 1.0 for _ in range(module.n_outputs)]

    grads, fds, finite = _expr_differences(module, xs, weights, wrt_index, step)
    chosen = np.flatnonzero(finite)[:points]
    if chosen.size == 0:
        raise GradcError(f"no point in [{low:g}, {high:g}]^{n_args} (of {candidates} tried) where the "
                         "value and gradient are finite; the expression may be undefined there (sample elsewhere: "
                         "low/high, gradc check --low/--high)")
    if chosen.size < points:
        notes.append(f"only {chosen.size} of {candidates} random points had finite values and gradients")
    results = []
    for k, g, fd in zip(wrt_index, grads, fds):
        acc = _Accumulator(module.args[k], ())
        acc.add(np.asarray(g)[chosen], fd[chosen])
        results.append(acc.result())
    described = ", ".join(_describe(e) for e in (exprs if isinstance(exprs, (list, tuple)) else [exprs]))
    return CheckReport(described, results, tol, int(chosen.size), notes, label="argument")


def _expr_differences(module: Any, xs: list[np.ndarray], weights: list[Any], wrt_index: list[int],
                      step: float) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """At the points `xs`: the gradients of Σ weights·outputs from `value_and_grad`, their central
    differences through `forward` (one per differentiated argument), and where all of them are finite."""
    many = module.n_outputs > 1

    def total(inputs: Sequence[np.ndarray]) -> np.ndarray:
        out = module.forward(*inputs)
        outs = out if many else (out,)
        return sum(w * np.asarray(o, np.float64) for w, o in zip(weights, outs))

    with np.errstate(all="ignore"):
        if many:
            value, grads = module.value_and_grad(*xs, cotangents=tuple(weights))
            value = sum(w * np.asarray(o) for w, o in zip(weights, value))
        else:
            value, grads = module.value_and_grad(*xs)
        finite = np.isfinite(value)
        fds = []
        for k, g in zip(wrt_index, grads):
            h = step * np.maximum(1.0, np.abs(xs[k]))
            xp, xm = xs[k] + h, xs[k] - h
            fp = total([xp if a == k else x for a, x in enumerate(xs)])
            fm = total([xm if a == k else x for a, x in enumerate(xs)])
            fd = (fp - fm) / (xp - xm)
            finite &= np.isfinite(g) & np.isfinite(fp) & np.isfinite(fm) & np.isfinite(fd)
            fds.append(fd)
    return list(grads), fds, finite


def _describe(expr: Any) -> str:
    text = str(expr)
    return text if len(text) <= 60 else text[:59] + "…"


def _check_options(points: int, tol: float, step: float) -> None:
    from gradc.errors import GradcError

    if not isinstance(points, int) or points < 1:
        raise GradcError(f"points must be an integer >= 1, got {points!r}")
    if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol > 0):
        raise GradcError(f"tol must be a number > 0, got {tol!r}")
    if not (isinstance(step, (int, float)) and 0 < step < 1):
        raise GradcError(f"step must be a number in (0, 1), got {step!r}")


"""The corpus of real-world expressions (tests/corpus_exprs.py) against SymPy: each expression's value, and its
derivative with respect to each of its symbols, compared with sympy.lambdify of the expression and of
sympy.diff(expr, symbol), at 20 random points of the domain its case gives (points where the oracle gives nan
or inf are left out).

Compiling costs about 0.5 s a module, 0.1 s an input or an output, and 0.3-0.9 s a special function (mostly
Numba), so each group of the corpus is compiled once, as ONE list of expressions over the symbols of the group
(its cases share symbols by name). Each case has its own block of points: its symbols drawn from its domain,
the group's other symbols taken from the points of a case that uses them, keeping only points where every
expression of the group and every derivative is finite (so that a zero cotangent times another expression's
derivative is zero). A case's gradient is value_and_grad at its block with the one-hot cotangents of its
output; the gradient w.r.t. the symbols it does not use must then be exactly zero, which is checked too.

The slow groups (pytest.mark.slow, `make test-slow`) hold the rest of the corpus, their cases renamed apart."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import gradc

sys.path.insert(0, str(Path(__file__).parent))
from corpus_exprs import GROUPS, SLOW_GROUPS, Case  # noqa: E402

N_POINTS = 20
POOL = 400          # points drawn per case, before its `where` and the finiteness filters


def _apart(cases: list[Case]) -> list[Case]:
    """The cases with their symbols renamed apart (x -> x__3 in the fourth case, same assumptions): for the slow
    groups, whose cases are not written to share symbols with compatible domains."""
    renamed = []
    for i, case in enumerate(cases):
        rename = {s: sp.Symbol(f"{s.name}__{i}", **s.assumptions0) for s in case.expr.free_symbols}
        where = case.where
        if where is not None:
            where = (lambda w, r: lambda v: w({s.name: v[t.name] for s, t in r.items()}))(where, rename)
        renamed.append(dataclasses.replace(case, expr=case.expr.xreplace(rename), where=where,
                                           domain={rename[s]: d for s, d in case.domain.items() if s in rename}))
    return renamed


ALL_GROUPS = {**GROUPS, **{name: _apart(cases) for name, cases in SLOW_GROUPS.items()}}


# ---- the oracle: sympy.lambdify of the expression and of sympy.diff -------------------------------------------

class _floor0(sp.Function):
    """floor with derivative 0 (true away from its jumps), for the oracle: SymPy leaves d/dx floor(u) unevaluated,
    which lambdify cannot print. frac, Mod and ceiling are written with it, by their definitions."""

    def fdiff(self, argindex=1):
        return sp.S.Zero


class _sign0(sp.Function):
    """sign with derivative 0 away from 0 (SymPy leaves d/dx sign(u) unevaluated unless u is a symbol)."""

    def fdiff(self, argindex=1):
        return sp.S.Zero


def _oracle_form(expr: sp.Expr) -> sp.Expr:
    expr = expr.replace(sp.frac, lambda u: u - _floor0(u))
    expr = expr.replace(sp.Mod, lambda p, q: p - q * _floor0(p / q))
    expr = expr.replace(sp.ceiling, lambda u: -_floor0(-u))
    expr = expr.replace(sp.sign, _sign0)
    return expr.replace(sp.floor, _floor0)


#: Cbrt and fma: SymPy's C functions, which its NumPy printer leaves as calls
_MODULES = [{"Cbrt": np.cbrt, "fma": lambda a, b, c: a * b + c, "_floor0": np.floor, "_sign0": np.sign},
            "scipy", "numpy"]


def _as_real(values, n: int) -> np.ndarray:
    """An oracle's result as n floats: complex results (scipy's lambertw) real where their imaginary part is 0."""
    values = np.broadcast_to(np.asarray(values), (n,))
    if np.iscomplexobj(values):
        values = np.where(values.imag == 0, values.real, np.nan)
    return np.asarray(values, dtype=float)


def _symbols(case: Case) -> list[sp.Symbol]:
    return sorted(case.expr.free_symbols, key=lambda s: s.name)


class Oracle:
    """SymPy's value and derivatives of one case (DiracDelta, the derivative of Heaviside and sign, is 0 away
    from their jumps)."""

    def __init__(self, case: Case):
        self.args = _symbols(case)
        expr = _oracle_form(case.expr)
        derivatives = [sp.diff(expr, s).replace(sp.DiracDelta, lambda *_: sp.S.Zero) for s in self.args]
        self._value = sp.lambdify(self.args, expr, _MODULES)
        self._derivatives = [sp.lambdify(self.args, d, _MODULES) for d in derivatives]

    def __call__(self, points: dict[sp.Symbol, np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        inputs = [points[s] for s in self.args]
        n = len(inputs[0])
        with np.errstate(all="ignore"):
            return _as_real(self._value(*inputs), n), [_as_real(d(*inputs), n) for d in self._derivatives]


# ---- a group: its module and one block of points per case -----------------------------------------------------

def group_args(cases: list[Case]) -> list[sp.Symbol]:
    """The inputs of a group's module: the symbols of its expressions, sorted by name."""
    args = sorted(set().union(*(c.expr.free_symbols for c in cases)), key=lambda s: s.name)
    names = [s.name for s in args]
    assert len(set(names)) == len(names), f"two symbols of one name (different assumptions) in {names}"
    return args


def compile_group(cases: list[Case]):
    return gradc.compile_expr([c.expr for c in cases], args=group_args(cases))


def _draw(interval: tuple, rng: np.random.Generator, size: int) -> np.ndarray:
    lo, hi, *scale = interval
    lo, hi = float(lo), float(hi)
    if scale == ["log"]:
        return np.exp(rng.uniform(np.log(lo), np.log(hi), size))
    return rng.uniform(lo, hi, size)


class Block:
    """A case's points (every symbol of the group) and the oracle's value and derivatives of the case there."""

    def __init__(self, points: dict[sp.Symbol, np.ndarray], value: np.ndarray, derivatives: dict):
        self.points, self.value, self.derivatives = points, value, derivatives


class CompiledGroup:
    def __init__(self, cases: list[Case]):
        self.cases = cases
        self.args = group_args(cases)
        self.oracles = [Oracle(c) for c in cases]
        self.own = [self._own_points(i) for i in range(len(cases))]
        self.blocks = [self._block(i) for i in range(len(cases))]
        self.module = compile_group(cases)

    def _own_points(self, index: int) -> dict[sp.Symbol, np.ndarray] | AssertionError:
        """Points of the case's own domain, in its own symbols, where `where` holds and the oracle is finite."""
        case = self.cases[index]
        rng = np.random.default_rng(zlib.crc32(case.name.encode()))
        pool = {s: _draw(case.domain[s], rng, POOL) for s in _symbols(case)}
        keep = np.ones(POOL, dtype=bool)
        if case.where is not None:
            keep &= np.asarray(case.where({s.name: v for s, v in pool.items()}), dtype=bool)
        value, derivatives = self.oracles[index](pool)
        keep &= np.logical_and.reduce([np.isfinite(q) for q in (value, *derivatives)])
        if keep.sum() < N_POINTS:
            return AssertionError(f"{case.name}: only {int(keep.sum())} of {POOL} points of its domain are usable "
                                  f"(where its `where` holds and SymPy's value and derivatives are finite)")
        return {s: v[keep] for s, v in pool.items()}

    def _block(self, index: int) -> Block | AssertionError:
        """The case's own points, the group's other symbols taken from the own points of a case that uses them,
        kept where every expression of the group and every derivative is finite."""
        case, own = self.cases[index], self.own[index]
        if isinstance(own, AssertionError):
            return own
        size = len(next(iter(own.values())))
        points = {}
        for s in self.args:
            if s in own:
                points[s] = own[s]
            else:
                donor = next((o for c, o in zip(self.cases, self.own) if s in c.expr.free_symbols
                              and not isinstance(o, AssertionError)), None)
                points[s] = np.resize(donor[s], size) if donor is not None else np.ones(size)
        results = [oracle(points) for oracle in self.oracles]
        finite = [np.logical_and.reduce([np.isfinite(q) for q in (value, *derivatives)])
                  for value, derivatives in results]
        chosen = np.flatnonzero(np.logical_and.reduce(finite))[:N_POINTS]
        if len(chosen) < N_POINTS:
            worst = sorted(((int((~f).sum()), c.name) for f, c in zip(finite, self.cases)), reverse=True)[:3]
            return AssertionError(f"{case.name}: only {len(chosen)} of its {size} points leave every expression of "
                                  f"the group finite (points lost to each, worst first: {worst})")
        value, derivatives = results[index]
        return Block({s: np.ascontiguousarray(v[chosen]) for s, v in points.items()}, value[chosen],
                     {s: d[chosen] for s, d in zip(self.oracles[index].args, derivatives)})

    def value_and_grad(self, index: int):
        """The case's value and the gradient of its output alone (one-hot cotangents) at its block."""
        block = self.blocks[index]
        cotangents = [1.0 if k == index else 0.0 for k in range(len(self.cases))]
        values, grads = self.module.value_and_grad(*(block.points[s] for s in self.args), cotangents=cotangents)
        return values[index], dict(zip(self.args, grads))


# ---- compiling the groups on both cores ------------------------------------------------------------------------

def warm(names: list[str]) -> None:
    """Compile the groups' kernels into the Numba cache ($GRADC_CACHE_DIR) as the tests call them (float64
    arrays of N_POINTS, float cotangents): what the helper process of the `corpus` fixture runs."""
    for name in names:
        cases = ALL_GROUPS[name]
        inputs = [np.ones(N_POINTS) for _ in group_args(cases)]
        compile_group(cases).value_and_grad(*inputs, cotangents=[1.0] * len(cases))


_HELPER_START = 3.0   # seconds for the helper to start Python and import gradc, SymPy, Numba and the corpus


def _cost(cases: list[Case]) -> float:
    """Rough seconds to compile a group: a base, per expression, per input."""
    return 1.0 + 0.3 * len(cases) + 0.1 * len({s.name for c in cases for s in c.expr.free_symbols})


class _Helper:
    """A second process that compiles the last groups into the shared cache while this one compiles the first
    (compiling is nearly all of this file's time, and single-threaded): the module compiled here from the same
    source then loads the helper's kernels from the cache. Results do not depend on it: where the helper failed,
    the group is compiled here."""

    def __init__(self, names: list[str]):
        self.names: set[str] = set()
        self.process = None
        cost = {name: _cost(ALL_GROUPS[name]) for name in names}
        mine, theirs = sum(cost.values()), _HELPER_START
        for name in reversed(names[1:]):     # from the end, while handing the group over shortens the run
            if max(mine - cost[name], theirs + cost[name]) >= max(mine, theirs):
                break
            mine, theirs = mine - cost[name], theirs + cost[name]
            self.names.add(name)
        if self.names:
            code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_corpus; "
                    f"test_corpus.warm({sorted(self.names)!r})")
            self.process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)

    def wait_for(self, name: str) -> None:
        if self.process is not None and name in self.names:
            try:
                self.process.wait(timeout=600)
            except subprocess.TimeoutExpired:
                self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def corpus(request):
    """The groups, each compiled on first use (once for the module); the last groups of the selected tests
    are compiled meanwhile by a helper process (see _Helper)."""
    selected: list[str] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is request.module and callspec and "group_name" in callspec.params:
            if callspec.params["group_name"] not in selected:
                selected.append(callspec.params["group_name"])
    helper = _Helper(selected)
    compiled: dict[str, CompiledGroup] = {}

    def get(name: str) -> CompiledGroup:
        if name not in compiled:
            helper.wait_for(name)
            compiled[name] = CompiledGroup(ALL_GROUPS[name])
        return compiled[name]

    yield get
    helper.stop()


# ---- the checks ------------------------------------------------------------------------------------------------

def _mismatch(what: str, got, expected: np.ndarray, case: Case, block: Block) -> str | None:
    """None when got matches the oracle within rtol, and within atol * max|oracle| where it is near zero."""
    got = np.asarray(got, dtype=float)
    tol = case.rtol * np.abs(expected) + case.atol * np.max(np.abs(expected))
    bad = ~(np.abs(got - expected) <= tol)
    if not bad.any():
        return None
    i = int(np.flatnonzero(bad)[0])
    at = ", ".join(f"{s.name}={block.points[s][i]!r}" for s in _symbols(case))
    with np.errstate(all="ignore"):
        rel = np.max(np.abs(got - expected)[bad] / np.abs(expected[bad]))
    return (f"{what}: {int(bad.sum())}/{len(bad)} points off (max relative error {rel:.3g}); first at {at}: "
            f"gradc {got[i]!r}, sympy {expected[i]!r}")


def _params():
    params = []
    for group, cases in ALL_GROUPS.items():
        for index, case in enumerate(cases):
            marks = [pytest.mark.slow] if group in SLOW_GROUPS else []
            if case.xfail:
                marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
            params.append(pytest.param(group, index, id=f"{group}-{case.name}", marks=marks))
    return params


@pytest.mark.parametrize("group_name, index", _params())
def test_corpus_expression(corpus, group_name: str, index: int):
    group = corpus(group_name)
    case, block = group.cases[index], group.blocks[index]
    if isinstance(block, AssertionError):   # too few usable points: this case fails, not its group
        raise block
    value, grads = group.value_and_grad(index)
    problems = [_mismatch("value", value, block.value, case, block)]
    for s, expected in block.derivatives.items():
        problems.append(_mismatch(f"d/d{s.name}", grads[s], expected, case, block))
    leaked = [s.name for s, g in grads.items() if s not in block.derivatives and np.any(np.asarray(g) != 0)]
    if leaked:
        problems.append(f"nonzero gradient w.r.t. symbols of the other expressions (one-hot cotangent): {leaked}")
    problems = [p for p in problems if p]
    assert not problems, f"{case.name} ({case.source}): {case.expr}\n" + "\n".join(problems)


def test_corpus_cases_are_documented():
    names = [case.name for cases in ALL_GROUPS.values() for case in cases]
    assert len(names) == len(set(names))
    for cases in ALL_GROUPS.values():
        for case in cases:
            assert case.source.strip(), case.name
            assert case.expr.free_symbols <= set(case.domain), case.name

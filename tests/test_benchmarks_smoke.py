"""Smoke test of the benchmark harness (gradc.tools.timing and .peers, benchmarks/): every expression
case at small N, an MLP case, in-process.

Only gradc, SymPy lambdify, the hand-fused Numba loops and hand NumPy run here (the peers need the
`bench` extra; their network is checked through NumPy standing in for a peer library); the full-size
run through benchmarks/run.py is marked slow.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import expr_cases, mlp_cases, numba_floor, report, training  # noqa: E402
from gradc.frontend.spec import load_spec  # noqa: E402
from gradc.tools import peers, reference, timing  # noqa: E402

SMOKE = ("gradc", "sympy", "sympy_cse", "hand_numba")


def test_expr_harness_quick_in_process():
    started = time.perf_counter()
    results = [expr_cases.run_expr_case(name, n=2_000, contestants=SMOKE, repeat=2, warmup=1, passes=1,
                                        gap_s=0.0, budget_s=2.0) for name in expr_cases.CASES]
    for result in results:
        by_name = {r["name"]: r for r in result["contestants"]}
        assert list(by_name) == ["hand_numba", "gradc", "sympy", "sympy_cse"]
        for name, r in by_name.items():
            assert r["status"] == "ok", (result["name"], name, r.get("note"))
            assert r["error"] <= expr_cases.RTOL
            assert r["ms"] > 0 and r["timing"]["samples"] == 2
        assert by_name["hand_numba"]["ratio"] == 1.0
        assert set(by_name["gradc"]["op_counts"]) == {"forward", "backward"}
    table = report.format_table(results)
    assert "hand Numba loop *" in table and "gradc" in table
    # ~9 s warm and ~15 s with cold Numba caches on a loaded 2-core machine; the bound catches a full-size run
    assert time.perf_counter() - started < 60, "the smoke run must stay fast"


def test_verification_rejects_a_wrong_gradient():
    case = expr_cases.CASES["sigmoid_ratio"]
    arrays = case.sample(np.random.default_rng(0), 100)
    value, grads = case.hand(*arrays)
    wrong = (grads[0] * (1 + 1e-6), grads[1])
    with pytest.raises(timing.VerificationError, match=r"grad\[0\]"):
        timing.verify(value, wrong, value, grads, rtol=1e-9, who="x")
    assert timing.verify(value, grads, value, grads, rtol=1e-9) == 0.0


def test_missing_peer_is_skipped_not_failed(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    case = expr_cases.CASES["neuron"]
    records = timing.run_contestants(
        ["torch"], lambda n: expr_cases.build_expr_contestant(n, case, case.sample(np.random.default_rng(0), 10)),
        (None, ()), rtol=1e-9, repeat=1, warmup=1, budget_s=1.0)
    assert records[0]["status"] == "skipped"


def test_time_interleaved_reports_each_function():
    out = timing.time_interleaved({"a": lambda: sum(range(100)), "b": lambda: sum(range(1000))}, repeat=4,
                                  warmup=1, min_sample_s=0.001, passes=2, gap_s=0.0)
    assert out["a"].samples == 4 and out["b"].samples == 4
    assert out["a"].median_ms < out["b"].median_ms


def test_mlp_harness_quick_in_process():
    result = mlp_cases.run_mlp_case("tiny2", contestants=["gradc", "torch"], repeat=2, warmup=1, passes=1,
                                    gap_s=0.0, budget_s=2.0)
    by_name = {r["name"]: r for r in result["contestants"]}
    assert list(by_name) == ["hand_numpy", "gradc", "torch"]
    assert by_name["hand_numpy"]["ratio"] == 1.0 and by_name["gradc"]["status"] == "ok"
    assert by_name["gradc"]["error"] <= result["rtol"] == 1e-6
    assert set(by_name["gradc"]["op_counts"]) == {"forward", "backward"}
    assert by_name["torch"]["status"] in ("ok", "skipped")
    assert "hand NumPy *" in report.format_table([result])


def _numpy_ops() -> peers._Ops:
    """NumPy as a peer library: the activations it is not given come from _Ops' own formulas."""
    from scipy.special import logsumexp

    return peers._Ops(tanh=np.tanh, exp=np.exp, minimum=np.minimum, maximum=np.maximum, where=np.where,
                      softplus=lambda z: np.logaddexp(0.0, z), sum=np.sum,
                      row_sum=lambda x: np.sum(x, axis=1, keepdims=True),
                      lse_rows=lambda x: logsumexp(x, axis=1), log=np.log)


@pytest.mark.parametrize("activation, loss", [
    ("identity", "mse"), ("sigmoid", "binary_cross_entropy"), ("tanh", "softmax_cross_entropy"),
    ("relu", "hinge"), ("leaky_relu", "sum_squared"), ("elu", "mse"), ("softplus", "mse"), ("gelu", "mse"),
    ("silu", "sum_squared")])
def test_the_peers_network_is_the_reference_loss(activation, loss):
    """The one network every peer runs (peers._loss_fn over an array library's _Ops) computes the
    reference's loss, for every activation and loss."""
    last = "sigmoid" if loss == "binary_cross_entropy" else activation
    spec = load_spec({"name": "n", "input": 3, "layers": [{"units": 4, "activation": activation},
                                                          {"units": 2, "activation": last}],
                      "loss": loss, "l2": 0.01})
    params, X, Y = peers.make_batch(spec, 5, seed=1)
    assert list(params) == list(spec.param_shapes())
    value = peers._loss_fn(spec, _numpy_ops(), 5)([params[k] for k in params], X, Y)
    np.testing.assert_allclose(value, reference.loss_and_grad(spec, params, X, Y)[0], rtol=1e-12)


def test_custom_activations_make_gradc_the_reference():
    spec = {"name": "c", "input": 2, "layers": [{"units": 3, "activation": "z*tanh(z)"},
                                                {"units": 1, "activation": "identity"}], "loss": "mse"}
    result = peers.run_mlp_benchmark(spec, 4, contestants=["gradc", "autograd"], repeat=1, warmup=1, passes=1,
                                     gap_s=0.0, budget_s=1.0)
    by_name = {r["name"]: r for r in result["contestants"]}
    assert result["reference"] == "gradc" and list(by_name) == ["gradc", "hand_numpy", "autograd"]
    assert by_name["gradc"]["status"] == "ok" and by_name["gradc"]["ratio"] == 1.0
    assert by_name["hand_numpy"]["status"] == "skipped" and by_name["autograd"]["status"] == "skipped"
    assert result["notes"] == ["no reference: custom activations have no hand-written backprop; gradc is the baseline"]


@pytest.mark.parametrize("kind, name, repeat, passes", [("mlp", "tanh1024", None, 10), ("expr", "neuron", None, 5),
                                                       ("mlp", "tiny2", 4, 3)])
def test_run_case_times_in_short_blocks(monkeypatch, kind, name, repeat, passes):
    """A full run interleaves blocks of about 3 samples (timing.BLOCK_SAMPLES), never fewer than 3 passes,
    and says so in the case's JSON."""
    from benchmarks import run

    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        return {}
    monkeypatch.setattr(run, "run_mlp_case" if kind == "mlp" else "run_expr_case", fake)
    result = run.run_case(kind, name, quick=False, repeat=repeat, contestants=None, compile_times=False)
    assert seen["passes"] == passes and seen["gap_s"] == 0.2
    assert result["timing"] == {"repeat": seen["repeat"], "passes": passes, "gap_s": 0.2}


def test_training_harness_quick_in_process():
    """The digits task of benchmarks/training.py for gradc and sklearn (neither needs the `bench` extra), at 2
    epochs and one repeat: a row per contestant with a positive time and an accuracy in [0, 1]."""
    started = time.perf_counter()
    task = training.load_digits_task(epochs_scale=0.01)
    assert task.epochs == 2
    records = training.run_task(task, ["gradc", "sklearn"], repeat=1)
    assert [r.name for r in records] == ["gradc", "sklearn"]
    for r in records:
        assert r.status == "ok", r.status
        assert len(r.times) == 1 and r.median_s > 0 and r.warmup_s > 0
        assert 0.0 <= r.accuracy <= 1.0
    table = training.format_table(task, records)
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:]}
    assert set(rows) == {"gradc", "sklearn"} and rows["gradc"][3] == "1.00"
    assert training.target_line(records).startswith("target: gradc <= 0.1x sklearn's time")
    assert "torch not measured" in training.target_line(records)
    assert time.perf_counter() - started < 20, "the smoke run must stay fast"


def test_training_contestant_not_installed_is_skipped(monkeypatch):
    monkeypatch.setitem(training.PACKAGES, "jax", "gradc_no_such_module")
    task = training.load_digits_task(epochs_scale=0.01)
    records = training.run_task(task, ["jax"], repeat=1)
    assert records[0].status == "skipped (not installed)" and records[0].times == []
    assert "jax        skipped (not installed)" in training.format_table(task, records)


@pytest.mark.slow
def test_full_size_expr_run(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--cases", "expr",
                           "--contestants", ",".join(SMOKE), "--repeat", "5", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((tmp_path / "results.json").read_text())
    assert {c["name"] for c in data["cases"]} == set(expr_cases.CASES)
    for case in data["cases"]:
        assert case["n"] == expr_cases.N_FULL
        assert all(r["status"] == "ok" for r in case["contestants"])
        assert case["compile"]["cold"]["total_s"] > 0 and case["compile"]["warm"]["total_s"] > 0


def test_compile_time_quick():
    """benchmarks/compile_time.py on cs231n: gradc's codegen in this process, gradc cold (with its warm rerun)
    and SymPy each in a fresh process; positive times, checksums that agree with gradc cold's, one table row
    with "–" for the peers not run (SymEngine and JAX are not needed)."""
    from benchmarks import compile_time

    started = time.perf_counter()
    row = compile_time.run_case("cs231n", columns=("gradc_codegen", "gradc_cold", "sympy"), timeout=120)
    cells = row["cells"]
    assert list(cells) == ["gradc_cold", "gradc_warm", "gradc_codegen", "sympy"]
    for name, c in cells.items():
        assert c["status"] == "ok" and c["total_s"] > 0, (name, c["status"])
    cold = cells["gradc_cold"]
    assert cold["codegen_s"] > 0 and cold["numba_s"] > 0
    assert cold["total_s"] == pytest.approx(cold["codegen_s"] + cold["numba_s"])
    assert cells["gradc_warm"]["agrees"] and cells["sympy"]["agrees"]
    assert set(cells["gradc_codegen"]["op_counts"]) == {"forward", "backward"} and cells["gradc_codegen"]["lines"] > 0
    header, line = compile_time.format_table([row]).splitlines()
    assert header.split()[:5] == ["case", "gradc", "cold", "(codegen", "+"]
    assert line.split()[0] == "cs231n" and line.split()[-3:-1] == ["–", f"{cells['sympy']['total_s']:.2f}"]
    assert line.split()[-1] == "–"
    assert time.perf_counter() - started < 30, "the smoke run must stay fast"


def test_numba_floor_chain_computes_what_it_says_and_reports_its_passes():
    namespace = {"np": np}
    exec(numba_floor.chain_source(30), namespace)
    x, out = np.array([0.5, -0.25]), np.empty(2)
    namespace["chain"](x, out)   # plain Python: the chain is well-formed and finite
    assert np.all(np.isfinite(out))
    timings = numba_floor.compile_chain(30)
    assert set(timings) == {"total", "typing", "lowering"}
    assert 0 < timings["typing"] < timings["total"] and 0 < timings["lowering"] < timings["total"]

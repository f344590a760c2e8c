"""The examples (one per seed note, plus the demo) run, and what they claim is true.

Each example's ``main(argv)`` runs in-process (it returns the numbers it prints); the demo also runs as a
script in a subprocess, the way ``make demo`` runs it."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module", autouse=True)
def examples_on_path():
    """The examples import each other (``excerpt``, ``seed002_digits``) as a script would."""
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))


def example(name: str):
    return importlib.import_module(name)


def test_seed000_gradients_equal_the_notes_backprop_and_sgd_lowers_the_loss():
    result = example("seed000_two_layer").main(["--steps", "5"])
    assert result["diffs"]["loss"] < 1e-12
    assert result["diffs"]["W1"] < 1e-12 and result["diffs"]["W2"] < 1e-12
    ours, notes = np.array(result["losses"]).T
    np.testing.assert_allclose(ours, notes, rtol=1e-10)
    assert np.all(np.diff(ours) < 0) and ours[-1] < 0.5 * ours[0]


def test_seed000_notes_backprop_matches_finite_differences():
    """The literal notes' code is itself right (so 'equal to it' means 'correct')."""
    seed000 = example("seed000_two_layer")
    x, y, w1, w2 = seed000.make_problem(1)
    x, y, w1, w2 = x[:3, :6], y[:3, :2], 0.3 * w1[:6, :4], w2[:4, :2]
    _, grad_w1, _ = seed000.notes_backprop(x, y, w1, w2)
    eps, (i, j) = 1e-6, (2, 3)
    bump = np.zeros_like(w1)
    bump[i, j] = eps
    up, down = seed000.notes_backprop(x, y, w1 + bump, w2)[0], seed000.notes_backprop(x, y, w1 - bump, w2)[0]
    assert (up - down) / (2 * eps) == pytest.approx(grad_w1[i, j], rel=1e-6)


def test_seed001_xor_trains_to_100_percent():
    seed001 = example("seed001_xor")
    result = seed001.main([])
    assert result["accuracy"] == 1.0
    assert np.all(np.abs(result["prob"] - seed001.y) < 0.1)


def test_seed001_xor_is_not_a_lucky_seed():
    seed001 = example("seed001_xor")
    net = seed001.gradc.compile_mlp(seed001.SPEC)
    for seed in range(1, 11):
        params = seed001.notes_init(seed)
        seed001.train(net, params, seed001.STEPS, seed001.LR)
        assert np.all((net.forward(params, seed001.X)[:, 0] > 0.5) == seed001.y), seed


def test_seed002_digits_reaches_95_percent(tmp_path):
    result = example("seed002_digits").main(["--no-progress", "--out", str(tmp_path)])
    assert result["test_acc"] >= 0.95
    assert result["png"].exists() and result["png"].stat().st_size > 10_000
    for timing in result["timing"].values():
        assert timing["diff_book"] < 1e-12 and timing["diff_reference"] < 1e-12
        assert timing["t_gradc"] > 0 and timing["t_reference"] > 0


def test_seed002_digits_two_epochs_reach_85_percent(tmp_path):
    result = example("seed002_digits").main(["--epochs", "2", "--no-progress", "--out", str(tmp_path)])
    assert result["test_acc"] >= 0.85
    assert len(result["history"]["test_acc"]) == 2


def test_seed003_gradients_equal_the_notes_and_the_reference():
    result = example("seed003_relu_softmax").main(["--steps", "20"])
    diffs = result["diffs"]
    keys = ("loss_notes", "grad_notes", "loss_reference", "grad_reference")
    assert max(diffs[k] for k in keys) <= 1e-10
    assert diffs["grad_scale"] > 1e-3  # the gradients compared are not all ~0
    assert result["losses"][-1] < result["losses"][0]


def test_seed004_matches_the_notes_numbers():
    result = example("seed004_staged").main(["--points", "200"])
    first, neuron, staged = result["add_multiply"], result["neuron"], result["staged"]
    assert first["f"] == -12.0 and first["grad"] == [-4.0, -4.0, 3.0]
    assert round(neuron["f"], 2) == 0.73
    assert [round(g, 2) for g in neuron["dw"]] == [-0.20, -0.39, 0.20]
    assert [round(g, 2) for g in neuron["dx"]] == [0.39, -0.59]
    sig1 = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(neuron["dw"] + neuron["dx"], sig1 * (1 - sig1) * np.array([-1, -2, 1, 2, -3]))
    assert staged["max_relative_error"] < 1e-12
    assert staged["kernel"].startswith("def _value_and_grad_kernel(")
    assert "d_x" in staged["kernel"] and "d_y" in staged["kernel"]


def test_demo_runs_as_a_script(tmp_path):
    run = subprocess.run([sys.executable, str(EXAMPLES / "demo.py"), "--quick", "--no-progress",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    written = tmp_path / "digits_mlp.py"
    assert written.exists() and "import gradc" not in written.read_text()
    assert (tmp_path / "digits_training.png").exists()
    accuracy = float(re.search(r"test accuracy (\d+\.\d+)%", run.stdout).group(1))
    assert accuracy >= 85.0
    differences = [float(d) for d in re.findall(r"max \|gradient difference\| (\S+) ", run.stdout)]
    assert len(differences) == 2 and max(differences) < 1e-12
    assert "def _loss_and_grad(" in run.stdout
    assert re.search(r"d_z\s+= d_f × sum1\s+= 1 × 3\s+= 3", run.stdout)   # the CS231n circuit, gate by gate
    assert (tmp_path / "cs231n_circuit.svg").exists() and (tmp_path / "cs231n_circuit.png").exists()


def test_readme_lists_every_example():
    readme = (EXAMPLES / "README.md").read_text()
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "excerpt.py")
    assert scripts and all(f"python examples/{name}" in readme for name in scripts)
    for script in scripts:
        assert "def main(argv" in (EXAMPLES / script).read_text()

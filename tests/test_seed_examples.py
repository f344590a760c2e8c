"""The worked examples of the lecture notes (shared/seeds/004_*.txt: CS231n backprop notes in Chinese;
000_*.txt: CS231n lecture 4), reproduced through gradc with the notes' numbers and the notes' own
staged backprop code as oracles."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import sympy as sp

import gradc

x, y, z, q = sp.symbols("x y z q", real=True)
w0, w1, w2, x0, x1 = sp.symbols("w0 w1 w2 x0 x1", real=True)


def sig(u):
    return 1 / (1 + sp.exp(-u))


# -- the 2-d sigmoid neuron: f = σ(w0·x0 + w1·x1 + w2) -----------------------------------------------------
@pytest.fixture(scope="module")
def neuron():
    return gradc.compile_expr(sig(w0 * x0 + w1 * x1 + w2), args=[w0, w1, w2, x0, x1])


def test_neuron_forward_is_0_73(neuron):
    f = neuron.forward(2.0, -3.0, -3.0, -1.0, -2.0)
    assert round(float(f), 2) == 0.73
    assert float(f) == pytest.approx(1 / (1 + math.exp(-1.0)), rel=1e-15)   # dot = 1


def test_neuron_gradients_match_the_notes(neuron):
    f, (dw0, dw1, dw2, dx0, dx1) = neuron.value_and_grad(2.0, -3.0, -3.0, -1.0, -2.0)
    assert [round(float(v), 2) for v in (dw0, dw1, dw2)] == [-0.20, -0.39, 0.20]
    assert [round(float(v), 2) for v in (dx0, dx1)] == [0.39, -0.59]
    # the notes' staged code: ddot = (1 - f) * f; dx = [w0·ddot, w1·ddot]; dw = [x0·ddot, x1·ddot, ddot]
    w, xv = [2.0, -3.0, -3.0], [-1.0, -2.0]
    dot = w[0] * xv[0] + w[1] * xv[1] + w[2]
    fv = 1.0 / (1 + math.exp(-dot))
    ddot = (1 - fv) * fv
    np.testing.assert_allclose([dw0, dw1, dw2], [xv[0] * ddot, xv[1] * ddot, ddot], rtol=1e-14)
    np.testing.assert_allclose([dx0, dx1], [w[0] * ddot, w[1] * ddot], rtol=1e-14)
    assert "sigmoid gate" in neuron.source


def test_neuron_over_a_batch_sums_the_shared_weights(neuron):
    rng = np.random.default_rng(4)
    X0, X1 = rng.normal(size=(2, 100))
    _, (dw0, dw1, dw2, dx0, dx1) = neuron.value_and_grad(2.0, -3.0, -3.0, X0, X1)
    fv = 1 / (1 + np.exp(-(2 * X0 - 3 * X1 - 3)))
    ddot = fv * (1 - fv)
    np.testing.assert_allclose([dw0, dw1, dw2], [np.sum(X0 * ddot), np.sum(X1 * ddot), np.sum(ddot)], rtol=1e-12)
    np.testing.assert_allclose(dx0, 2 * ddot, rtol=1e-12)
    np.testing.assert_allclose(dx1, -3 * ddot, rtol=1e-12)


# -- staged backprop: f(x, y) = (x + σ(y)) / (σ(x) + (x + y)²) ---------------------------------------------------
STAGED = (x + sig(y)) / (sig(x) + (x + y) ** 2)


@pytest.fixture(scope="module")
def staged():
    return gradc.compile_expr(STAGED)


def notes_staged_backprop(xv: float, yv: float) -> tuple[float, float, float]:
    """The notes' hand-staged forward and backward pass, line by line."""
    sigy = 1.0 / (1 + math.exp(-yv))
    num = xv + sigy
    sigx = 1.0 / (1 + math.exp(-xv))
    xpy = xv + yv
    xpysqr = xpy**2
    den = sigx + xpysqr
    invden = 1.0 / den
    f = num * invden
    dnum = invden
    dinvden = num
    dden = (-1.0 / (den**2)) * dinvden
    dsigx = (1) * dden
    dxpysqr = (1) * dden
    dxpy = (2 * xpy) * dxpysqr
    dx = (1) * dxpy
    dy = (1) * dxpy
    dx += ((1 - sigx) * sigx) * dsigx
    dx += (1) * dnum
    dsigy = (1) * dnum
    dy += ((1 - sigy) * sigy) * dsigy
    return f, dx, dy


def test_staged_example_matches_the_notes_code_and_sympy(staged):
    rng = np.random.default_rng(11)
    xs, ys = rng.uniform(-3, 3, (2, 64))
    value, (dx, dy) = staged.value_and_grad(xs, ys)
    notes = np.array([notes_staged_backprop(a, b) for a, b in zip(xs, ys)])
    np.testing.assert_allclose(value, notes[:, 0], rtol=1e-13)
    np.testing.assert_allclose(dx, notes[:, 1], rtol=1e-12)
    np.testing.assert_allclose(dy, notes[:, 2], rtol=1e-12)
    for s, got in ((x, dx), (y, dy)):
        want = sp.lambdify((x, y), sp.diff(STAGED, s), "numpy")(xs, ys)
        np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_allclose(value, sp.lambdify((x, y), STAGED, "numpy")(xs, ys), rtol=1e-13)


def test_staged_example_source_has_the_notes_shape(staged):
    source = staged.source
    kernel = source[source.index("def _value_and_grad_kernel"):source.index("\ndef forward")]
    forward, backward = kernel.split("# backward:")
    assert re.search(r"^\s+sig_y = .*# σ\(y\)$", forward, re.M)   # one named intermediate per gate
    assert re.search(r"^\s+sig_x = .*# σ\(x\)$", forward, re.M)
    assert forward.index("sig_y =") < forward.index("sig_x =")
    adjoints = re.findall(r"^\s+(d_\w+) \+?= ", backward, re.M)
    assert {"d_x", "d_y"} <= set(adjoints) and len(set(adjoints)) >= 4, adjoints
    assert re.search(r"^\s+d_x \+= ", backward, re.M), "x fans out: its adjoint accumulates with +="
    assert re.search(r"sig_x \* \(1\.0 - sig_x\)\s+# sigmoid gate", backward)
    assert re.search(r"sig_y \* \(1\.0 - sig_y\)\s+# sigmoid gate", backward)
    counts = staged.op_counts
    assert counts["backward"] <= 3 * counts["forward"]


# -- circuits of the CS231n lecture ------------------------------------------------------------------------
def test_circuit_x_plus_y_times_z():
    m = gradc.compile_expr((x + y) * z, args=[x, y, z])
    f, (dx, dy, dz) = m.value_and_grad(-2.0, 5.0, -4.0)
    assert float(f) == -12.0
    assert (float(dx), float(dy), float(dz)) == (-4.0, -4.0, 3.0)


def test_gates_distribute_route_and_switch():
    """add distributes, max routes to the larger input, mul switches: f = 2·(x·y + max(z, q))."""
    m = gradc.compile_expr(2 * (x * y + sp.Max(z, q)), args=[x, y, z, q])
    f, grads = m.value_and_grad(3.0, -4.0, 2.0, -1.0)
    assert float(f) == -20.0
    assert [float(g) for g in grads] == [-8.0, 6.0, 2.0, 0.0]
    assert "max gate" in m.source

"""module.cost() and `gradc show --cost`: op counts against the program, the sympy.diff + cse swell against
sympy counted here, temporaries and bytes against hand counts, FLOPs of a network by hand, and a measured
run next to the machine's bounds."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import gradc
from gradc.pipeline import expr_program
from gradc.tools import cost
from gradc.tools.cli import main

x, y, z = sympy.symbols("x y z")
w0, w1, w2, x0, x1 = sympy.symbols("w0 w1 w2 x0 x1")
NEURON = 1 / (1 + sympy.exp(-(w0 * x0 + w1 * x1 + w2)))
ARGS = [w0, w1, w2, x0, x1]
TINY = {"name": "tiny", "input": 4, "layers": [{"units": 3, "activation": "tanh"},
                                               {"units": 2, "activation": "sigmoid"}], "loss": "mse"}


@pytest.fixture(scope="module")
def neuron():
    return gradc.compile_expr(NEURON, args=ARGS)


@pytest.fixture(scope="module")
def tiny():
    return gradc.compile_mlp(TINY)


def test_expr_counts(neuron):
    c = neuron.cost()
    counts = expr_program(NEURON, ARGS).op_counts()
    assert (c.forward_ops, c.backward_ops) == (counts["forward"], counts["backward"])
    assert c.ratio == counts["backward"] / counts["forward"]
    diffs = [sympy.diff(NEURON, s) for s in ARGS]
    replacements, reduced = sympy.cse([NEURON, *diffs])
    assert c.sympy_ops == sympy.count_ops(NEURON)
    assert c.sympy_diff_ops == sum(sympy.count_ops(d) for d in diffs)
    assert c.sympy_cse_ops == sum(sympy.count_ops(v) for _, v in replacements) + sum(map(sympy.count_ops, reduced))
    assert c.sympy_diff_ops > 3 * (c.forward_ops + c.backward_ops)   # the swell reverse mode avoids
    assert (c.bytes_read, c.bytes_written) == (5 * 8, (1 + 5) * 8)
    text = str(c)
    assert f"forward {c.forward_ops}, backward {c.backward_ops}" in text and "sympy.cse" in text


def test_temporaries_by_hand():
    # (x + y)*z: sum1 lives until the end (it is d_z), f until it is stored: 2 at once
    assert cost.temporaries(expr_program((x + y) * z)) == 2
    # a chain: each value dies at the next statement, but the gradient's own values pile up
    program = expr_program(sympy.exp(sympy.sin(x)))
    assert 2 <= cost.temporaries(program) <= 4


def test_expr_measured(neuron):
    c = cost.expr_cost(neuron, measure=True, points=20_000)
    assert c.points == 20_000 and c.seconds_per_point > 0
    assert c.bandwidth_bound == pytest.approx(88 / cost.machine().bandwidth)
    assert "measured" in str(c)


def test_mlp_flops_and_bytes(tiny):
    c = tiny.cost(batch=10)
    # forward: 10x4 @ 4x3 and 10x3 @ 3x2; backward: d_W1, d_W2 and d_h1 (not d_X)
    assert c.gemm_flops == 2 * 10 * (4 * 3) * 2 + 2 * 10 * (3 * 2) * 3
    params = 4 * 3 + 3 + 3 * 2 + 2
    assert c.bytes == 8 * (10 * (4 + 2) + 2 * params + 2 * (2 * 10 * 3 + 2 * 10 * 2))
    assert (c.forward_ops, c.backward_ops) == (tiny.op_counts["forward"], tiny.op_counts["backward"])
    assert c.elementwise_flops > 0 and c.flops == c.gemm_flops + c.elementwise_flops


def test_mlp_measured(tiny):
    c = tiny.cost(batch=16, measure=True)
    assert c.seconds > 0 and c.gemm_bound > 0 and c.bandwidth_bound > 0
    assert "lower bounds" in str(c)
    m = cost.machine()
    assert m.bandwidth > 1e8 and m.gemm_flops > 1e8


def test_cli_show_cost(capsys, tmp_path):
    assert main(["show", "--expr", "x*sin(y)", "--cost"]) == 0
    out = capsys.readouterr().out
    assert "ops per point" in out and "def " not in out
    spec = tmp_path / "tiny.json"
    spec.write_text(__import__("json").dumps(TINY))
    assert main(["show", str(spec), "--cost", "--batch", "10"]) == 0
    assert f"{2 * 10 * 12 * 2 + 2 * 10 * 6 * 3:,} in matrix products" in capsys.readouterr().out
    assert main(["show", "--expr", "x", "--measure"]) == 2
    assert "--measure applies to --cost only" in capsys.readouterr().err


def test_a_module_without_expressions_has_no_sympy_counts():
    module = gradc.compile_expr(x * y)
    module.exprs = ()
    c = module.cost()
    assert c.sympy_ops is None and "sympy" not in str(c)
    assert np.isfinite(c.ratio) or c.forward_ops == 0

"""Files, caches, threads and the debug build."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import sympy as sp

import gradc
from gradc import jit

x, y = sp.symbols("x y")


@pytest.fixture(scope="module")
def expr_module():
    return gradc.compile_expr(x * sp.sin(y) + sp.exp(x * y) / 10)


def test_eight_threads_share_one_module(expr_module):
    rng = np.random.default_rng(0)
    X, Y = rng.random(50_000), rng.random(50_000)
    expected = expr_module.value_and_grad(X, Y)
    failures: list[str] = []

    def work():
        for _ in range(10):
            value, (gx, gy) = expr_module.value_and_grad(X, Y)
            if not (np.array_equal(value, expected[0]) and np.array_equal(gx, expected[1][0])
                    and np.array_equal(gy, expected[1][1])):
                failures.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_corrupted_cache_file_is_rebuilt_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    source = "VALUE = 1\n"
    path = jit._cached_file(source)
    path.write_text("VALUE = 666\n", encoding="utf-8")        # corrupted (or tampered) entry
    assert jit._cached_file(source) == path
    assert path.read_text(encoding="utf-8") == source           # detected by content hash, rewritten


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    with pytest.raises(TypeError):
        jit.write_atomic(tmp_path / "m.py", 123)  # type: ignore[arg-type]  (not text: write fails)
    assert list(tmp_path.iterdir()) == []


_COMPILE = textwrap.dedent("""
    import sys, sympy as sp, numpy as np, gradc
    x, y = sp.symbols("x y")
    m = gradc.compile_expr(sp.atan2(y, x) * sp.cosh(x / 3))
    v, (gx, gy) = m.value_and_grad(np.linspace(0.1, 1, 7), 0.5)
    print(repr(float(v.sum())), repr(float(gx.sum())), repr(float(gy)))
""")


def test_two_processes_compiling_at_once_share_one_entry(tmp_path):
    env = {**os.environ, "GRADC_CACHE_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", _COMPILE], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert outs[0][0] == outs[1][0]
    sources = [p for p in tmp_path.glob("gradc_*.py") if not p.name.startswith("gradc_support_")]
    assert len(sources) == 1 and len(list(tmp_path.glob("gradc_support_*.py"))) == 1   # the module, what it shares
    assert not list(tmp_path.glob("*.tmp"))


def test_debug_build_names_the_first_bad_intermediate():
    m = gradc.compile_expr(sp.log(x) * sp.sqrt(y), debug=True)
    value, _ = m.value_and_grad(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
    assert np.allclose(value, np.log([1.0, 2.0]) * [1.0, 2.0])
    with pytest.raises(FloatingPointError) as err:
        m.value_and_grad(np.array([1.0, -2.0, 3.0]), 1.0)
    message, index = err.value.args
    assert "log_x" in message and "log(x)" in message and index == 1


def test_debug_build_of_an_mlp_names_the_layer():
    spec = {"input": 3, "layers": [{"units": 4, "activation": "z*log(z)"}, {"units": 1}], "loss": "mse"}
    m = gradc.compile_mlp(spec, debug=True)
    with pytest.raises(FloatingPointError) as err:
        m.loss_and_grad(m.init_params(0), np.random.default_rng(0).random((5, 3)), np.zeros((5, 1)))
    message, index = err.value.args
    assert "layer 1" in message and isinstance(index, int)


def test_debug_flag_changes_the_source_and_cache_key():
    plain = gradc.compile_expr(sp.log(x))
    debug = gradc.compile_expr(sp.log(x), debug=True)
    assert "FloatingPointError" in debug.source and "FloatingPointError" not in plain.source
    assert jit.source_digest(plain.source) != jit.source_digest(debug.source)

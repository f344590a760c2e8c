"""gradc.explain: the lecture notes' circuits (CS231n's (x+y)*z and sigmoid neuron) with values, local
derivatives and adjoints, as rows, a table, SVG, DOT and PNG; networks' layer graphs; the command line.

The compiled modules (Numba) are built once per file; everything else evaluates the IR."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import sympy

import gradc
from gradc.core import interpret
from gradc.pipeline import expr_program
from gradc.tools.cli import main
from gradc.tools.explain import explain_program, fmt
from gradc.tools.netview import explain_net

x, y, z = sympy.symbols("x y z")
w0, w1, w2, x0, x1 = sympy.symbols("w0 w1 w2 x0 x1")
CS231N = (x + y) * z
CS231N_AT = {x: -2, y: 5, z: -4}
NEURON = 1 / (1 + sympy.exp(-(w0 * x0 + w1 * x1 + w2)))
NEURON_ARGS = [w0, w1, w2, x0, x1]
NEURON_AT = {w0: 2, w1: -3, w2: -3, x0: -1, x1: -2}
FANOUT = x * x + sympy.sin(x)
TINY = {"name": "tiny", "input": 4, "layers": [{"units": 3, "activation": "tanh"},
                                               {"units": 2, "activation": "sigmoid"}], "loss": "mse"}


@pytest.fixture(scope="module")
def cs231n():
    return gradc.explain(CS231N, at=CS231N_AT)


@pytest.fixture(scope="module")
def neuron():
    return gradc.explain(NEURON, at=NEURON_AT, args=NEURON_ARGS)


@pytest.fixture(scope="module")
def modules():
    """The compiled modules the adjoints are checked against (one Numba compile each)."""
    return {"cs231n": gradc.compile_expr(CS231N), "neuron": gradc.compile_expr(NEURON, args=NEURON_ARGS),
            "fanout": gradc.compile_expr(FANOUT)}


def _last_values(table: str) -> dict[str, list[str]]:
    """name -> the numbers each of its table lines ends with (forward lines and backward lines alike)."""
    out: dict[str, list[str]] = {}
    for line in table.splitlines():
        m = re.match(r"\s+(\w+)\s+\+?=.*=\s+(-?[\d.e+-]+)(\s|$)", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def test_cs231n_rows(cs231n):
    q, f = cs231n.row("sum1"), cs231n.row("f")   # q = x + y is the generated code's sum1
    assert (q.value, f.value) == (3.0, -12.0)
    assert f.output and f.adjoint == 1.0
    assert cs231n.row("z").adjoint == 3.0
    assert q.adjoint == -4.0 and q.adjoint_name == "d_sum1"
    assert cs231n.row("x").adjoint == cs231n.row("y").adjoint == -4.0
    assert cs231n.grads == {"x": -4.0, "y": -4.0, "z": 3.0}
    assert f.operands == ("z", "sum1") and f.local == (3.0, -4.0)   # ∂f/∂z = q = 3, ∂f/∂q = z = -4
    assert q.operands == ("x", "y") and q.local == (1.0, 1.0)
    assert [r.name for r in cs231n.rows] == ["x", "y", "z", "sum1", "f"]


def test_cs231n_table(cs231n):
    text = str(cs231n)
    values = _last_values(text)
    assert values["sum1"] == ["3"] and values["f"] == ["-12"]
    assert values["d_z"] == ["3"] and values["d_sum1"] == ["-4"]
    assert values["d_x"] == ["-4"] and values["d_y"] == ["-4"]
    assert "d_z    = d_f × sum1   = 1 × 3  = 3" in text   # upstream × local = adjoint
    assert text.index("forward pass") < text.index("backward pass")


def test_neuron_numbers(neuron):
    assert round(neuron.value, 2) == 0.73
    grads = neuron.grads
    assert [round(grads[w], 2) for w in ("w0", "w1", "w2")] == [-0.2, -0.39, 0.2]
    assert [round(grads[v], 2) for v in ("x0", "x1")] == [0.39, -0.59]
    values = _last_values(neuron.table(digits=2))
    assert values["f"] == ["0.73"]
    assert [values[f"d_{w}"] for w in ("w0", "w1", "w2", "x0", "x1")] == [["-0.2"], ["-0.39"], ["0.2"], ["0.39"],
                                                                          ["-0.59"]]
    sig = neuron.row("f")   # the sigmoid gate gradc recognises: local derivative σ(1-σ), as the code says
    assert sig.op == "sigmoid" and "f * (1.0 - f)" in str(neuron)


def test_adjoints_equal_the_compiled_gradient(cs231n, neuron, modules):
    point = [CS231N_AT[s] for s in (x, y, z)]
    assert tuple(float(g) for g in modules["cs231n"].grad(*map(float, point))) == (-4.0, -4.0, 3.0)
    got = modules["neuron"].grad(*(float(NEURON_AT[s]) for s in NEURON_ARGS))
    np.testing.assert_allclose([float(g) for g in got], [neuron.grads[s.name] for s in NEURON_ARGS], rtol=1e-14)
    assert float(modules["neuron"].forward(*(float(NEURON_AT[s]) for s in NEURON_ARGS))) == pytest.approx(
        neuron.value, rel=1e-15)
    again = modules["neuron"].explain(NEURON_AT)   # a module explains itself with the same rows
    assert again.rows == neuron.rows
    assert gradc.explain(modules["neuron"], at=NEURON_AT).rows == neuron.rows
    picture = modules["neuron"]._repr_svg_()   # a notebook shows a module's circuit (no point: formulas)
    assert "prod1" in picture and "0.7311" not in picture


def test_fanout_shows_its_contributions(modules):
    e = modules["fanout"].explain({x: 1.5})
    r = e.row("x")
    assert r.fanout and len(r.parts) == 2
    assert sorted(p.gate for p in r.parts) == ["pow1", "sin_x"]
    assert r.adjoint == pytest.approx(2 * 1.5 + np.cos(1.5), rel=1e-15)
    assert r.adjoint == pytest.approx(float(modules["fanout"].grad(1.5)[0]), rel=1e-15)
    table = str(e)
    assert re.search(r"^\s+d_x\s+= ", table, re.M) and re.search(r"^\s+d_x\s+\+= ", table, re.M)
    assert f"fan-out: d_x = {fmt(r.adjoint)}" in table
    svg = e.svg()
    assert "+= 3" in svg and f"Σ d_x = {fmt(r.adjoint)}" in svg


def test_constant_operands_are_drawn_into_their_gate():
    e = gradc.explain(x * x, at={x: 3})   # SymPy writes x**2: one gate, its exponent a constant
    (gate,) = [r for r in e.rows if r.op != "input"]
    assert gate.operands == ("x", "2") and gate.local == (6.0,) and e.grads["x"] == 6.0
    texts = [t.text for t in ET.fromstring(e.svg()).iter() if t.tag.endswith("text")]
    assert "^2" in texts and "9" in texts and "6" in texts


def test_svg_is_xml_with_every_gate_and_value(cs231n, neuron):
    for e in (cs231n, neuron):
        root = ET.fromstring(e.svg())
        assert root.tag.endswith("svg")
        texts = [t.text for t in root.iter() if t.tag.endswith("text")]
        for r in e.rows:
            assert r.name in texts, r.name
            assert fmt(r.value) in texts, (r.name, r.value)
        for w in e.wrt:
            assert fmt(e.grads[w]) in texts or f"+= {fmt(e.grads[w])}" in texts


def test_dot_is_sane(cs231n, tmp_path):
    text = cs231n.dot()
    assert text.startswith("digraph circuit {") and text.rstrip().endswith("}")
    assert text.count("{") == text.count("}")
    edges = [line for line in text.splitlines() if "->" in line]
    assert len(edges) == 5   # x, y -> sum1; z, sum1 -> f; f -> its end
    assert all(re.match(r'\s+"[^"]+" -> "[^"]+" \[label=<.*>.*\];$', line) for line in edges)
    path = cs231n.write(tmp_path / "c.dot")
    assert path.read_text() == text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_dot_is_valid_for_graphviz(cs231n, neuron):
    for e in (cs231n, neuron):
        subprocess.run(["dot", "-Tsvg"], input=e.dot(), text=True, check=True, capture_output=True)


def test_write_svg_png(cs231n, tmp_path):
    svg = cs231n.write(tmp_path / "c.svg")
    ET.parse(svg)
    pytest.importorskip("matplotlib")
    png = cs231n.write(tmp_path / "sub" / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(gradc.GradcError, match=r"\.svg, \.png"):
        cs231n.write(tmp_path / "c.txt")
    assert cs231n._repr_svg_().startswith("<svg") and "<pre>" in cs231n._repr_html_()


def test_a_larger_expression_matches_the_program_gradient():
    """~40 gates with shared sub-expressions: the adjoints equal the program's own gradient IR."""
    a, b, c = sympy.symbols("a b s")
    u = sympy.sin(a * b) + sympy.exp(-c) * a
    expr = sympy.log(1 + u ** 2) * sympy.tanh(b - c) + u / (1 + b ** 2) + sympy.sqrt(1 + (a * c) ** 2) * sympy.cos(u)
    program = expr_program(expr)
    at = {a: 0.3, b: -0.7, c: 1.1}
    e = explain_program(program, at)
    assert len(e.rows) > 25
    want = interpret.evaluate(program.grads, {s.name: np.float64(v) for s, v in at.items()})
    np.testing.assert_allclose([e.grads[s] for s in ("a", "b", "s")], [float(g) for g in want], rtol=1e-12)
    assert any(r.fanout for r in e.rows)
    ET.fromstring(e.svg())


def test_structure_without_a_point():
    e = gradc.explain(FANOUT, at=None)
    assert all(r.value is None and r.adjoint is None for r in e.rows)
    assert "formulas only" in str(e) and "d_sin_x × cos(x)" in str(e)
    ET.fromstring(e.svg())


def test_bad_points():
    with pytest.raises(gradc.GradcError, match="missing z"):
        gradc.explain(CS231N, at={x: 1, y: 2})
    with pytest.raises(gradc.GradcError, match="one number"):
        gradc.explain(CS231N, at={x: [1, 2], y: 2, z: 3})
    with pytest.raises(gradc.GradcError, match="not an argument"):
        gradc.explain(CS231N, at={x: 1, y: 2, z: 3, "w": 4})


def test_sequences_sum_their_outputs():
    """Several outputs: adjoints of their sum (cotangents 1, grad's default); an output that a gate also
    reads gets its seed as a part of its own, and an input returned as an output is seeded too."""
    e = gradc.explain([x * y, x * y * sympy.sin(x)], at={x: 1, y: 2})
    f0 = e.row("f0")
    assert f0.output and [p.gate for p in f0.parts] == ["", "f1"] and f0.adjoint == 1 + np.sin(1.0)
    assert e.grads["y"] == pytest.approx(1 + np.sin(1.0)) and "1 (the output's seed)" in str(e)
    m = gradc.explain(sympy.Matrix([[x * y, x]]), at={x: 3, y: 2})
    assert m.grads == {"x": 3.0, "y": 3.0}


def test_arrays_are_refused():
    X = sympy.IndexedBase("X", shape=(3,))
    i = sympy.Idx("i")
    with pytest.raises(gradc.GradcError, match="scalar arguments only"):
        gradc.explain(sympy.Sum(X[i] ** 2, (i, 0, 2)), at=None)


def test_wrt_subset():
    e = gradc.explain(x * sympy.exp(y), at={"x": 2, "y": 0}, wrt=[x])
    assert e.grads == {"x": 1.0} and not e.row("y").live
    assert "no gradient taken w.r.t. y" in str(e)


# ------------------------------------------------------------------------------------------- networks


def test_network_layer_graph():
    e = explain_net(TINY)
    assert [r.name for r in e.rows] == ["X", "Y", "z1", "h1", "z2", "h2", "loss"]
    assert e.row("z2").code == "h1 @ W2 + b2" and e.row("h1").shape == ("N", 3)
    assert e.params["W1"][0] == (4, 3)
    texts = [t.text for t in ET.fromstring(e.svg()).iter() if t.tag.endswith("text")]
    assert {"z1", "h2", "W2", "(N, 3)"} <= set(texts)


def test_network_statistics_match_numpy():
    rng = np.random.default_rng(1)
    params = {"W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=3), "W2": rng.normal(size=(3, 2)),
              "b2": rng.normal(size=2)}
    X, Y = rng.normal(size=(8, 4)), rng.uniform(size=(8, 2))
    e = explain_net(TINY, X, Y, params)
    h1 = np.tanh(X @ params["W1"] + params["b1"])
    h2 = 1 / (1 + np.exp(-(h1 @ params["W2"] + params["b2"])))
    d_h2 = (h2 - Y) / len(X)                                       # mse = 1/(2N) Σ‖a − y‖²
    d_z2 = d_h2 * h2 * (1 - h2)
    d_W2 = h1.T @ d_z2
    assert e.row("h1").stats.mean == pytest.approx(h1.mean()) and e.row("h1").stats.std == pytest.approx(h1.std())
    assert e.row("z2").stats.grad_std == pytest.approx(d_z2.std())
    assert e.params["W2"][1].grad_mean == pytest.approx(d_W2.mean())
    assert e.row("loss").stats.mean == pytest.approx(((h2 - Y) ** 2).sum() / (2 * len(X)))
    assert "statistics over a batch of N = 8" in str(e)


def test_network_module_explains_itself():
    net = gradc.compile_mlp({**TINY, "loss": "binary_cross_entropy", "l2": 0.1})   # codegen only: no Numba here
    e = net.explain()
    assert e.row("loss").code == "binary_cross_entropy(z2, Y) + 0.1/2·Σ‖W‖²"   # from the logits: stable
    assert "<svg" in net._repr_svg_()
    rng = np.random.default_rng(2)
    params = {k: rng.normal(size=v) for k, v in net.param_shapes.items()}
    stats = net.explain(rng.normal(size=(5, 4)), rng.integers(0, 2, (5, 2)), params)
    assert stats.row("h2").stats.grad_mean is None   # the loss reads z2, not h2
    assert stats.row("z2").stats.grad_mean is not None


# --------------------------------------------------------------------------------------- command line


def test_cli_explain_expr(tmp_path, capsys):
    out = tmp_path / "circuit.svg"
    assert main(["explain", "--expr", "(x+y)*z", "--at", "x=-2,y=5,z=-4", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert _last_values(printed)["d_z"] == ["3"] and f"wrote {out}" in printed
    texts = [t.text for t in ET.parse(out).getroot().iter() if t.tag.endswith("text")]
    assert {"sum1", "-12", "3", "-4"} <= set(texts)
    assert main(["explain", "--expr", "(x+y)*z", "--at", "x=-2,y=5,z=-4", "-o", str(tmp_path / "c.dot")]) == 0
    assert (tmp_path / "c.dot").read_text().startswith("digraph")


@pytest.mark.parametrize("argv, message", [
    (["--expr", "x*y", "--at", "x=1"], "missing y"),
    (["--expr", "x*y", "--at", "x=1,y=b"], "y must be a number"),
    (["--expr", "x*y", "--at", "x=1,x=2,y=1"], "given twice"),
    (["--expr", "x*y", "--at", "x=1,y=2", "-o", "a.txt"], r"\.svg, \.png"),
    (["--expr", "x*y", "--at-batch", "b.npz"], "applies to a spec only"),
    (["--expr", "x*y", "--digits", "0"], "--digits must be >= 1"),
])
def test_cli_explain_errors(argv, message, capsys):
    assert main(["explain", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("gradc: error:") and re.search(message, err)


def test_cli_explain_spec_at_batch(tmp_path, capsys):
    import json

    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY))
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(4, 3)), "b1": np.zeros(3), "W2": rng.normal(size=(3, 2)), "b2": np.zeros(2)}
    batch = tmp_path / "batch.npz"
    np.savez(batch, X=rng.normal(size=(6, 4)), Y=rng.uniform(size=(6, 2)), **params)
    out = tmp_path / "net.svg"
    assert main(["explain", str(spec), "--at-batch", str(batch), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "N = 6" in printed and "grad std" in printed
    ET.parse(out)
    np.savez(tmp_path / "nox.npz", Y=np.zeros((2, 2)))
    assert main(["explain", str(spec), "--at-batch", str(tmp_path / "nox.npz")]) == 2
    assert "no array X" in capsys.readouterr().err

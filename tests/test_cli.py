"""The `gradc` command line, run in-process through `main(argv)` (plus one subprocess round trip).

Numba compiles dominate the run time, so the tests share one tiny spec and one expression: the
compiled MLP module is reused across tests through the process-wide module cache."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

import numpy as np
import pytest
import sympy

import gradc
from gradc.frontend.functions import TEXT_CONSTANTS, text_functions
from gradc.frontend.parse import parse_expr
from gradc.frontend.spec import load_spec
from gradc.tools import bench, reference
from gradc.tools.cli import main

SPEC = """\
name: tiny
input: 2
layers:
  - {units: 3, activation: tanh}
  - {units: 1, activation: sigmoid}
loss: binary_cross_entropy
l2: 0.01
"""
EXPR = "(x + sigmoid(y))/(sigmoid(x) + (x + y)**2)"


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("gradc-cache")
        mp.setenv("GRADC_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("specs") / "tiny.yaml"
    path.write_text(SPEC)
    return path


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2
    assert out == ""
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("gradc: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def batch(seed: int = 0, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)), rng.uniform(0.1, 0.9, (n, 1))


# ---------------------------------------------------------------------------------------------- help


def test_help_documents_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for word in ("compile", "show", "check", "bench", "examples:", "--expr", "softmax_cross_entropy"):
        assert word in out
    for command in ("compile", "show", "check", "bench"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "examples:" in out and f"gradc {command}" in out
    assert run(capsys, "--version")[1].strip() == f"gradc {gradc.__version__}"


# ---------------------------------------------------------------------------------------------- check


def test_check_passes_on_a_spec_and_fails_below_round_off(capsys, spec_file):
    code, out, _ = run(capsys, "check", spec_file, "--points", 3)
    assert code == 0, out
    for name in ("W1", "b1", "W2", "b2"):
        assert any(line.startswith(name) and line.rstrip().endswith("ok") for line in out.splitlines()), out
    assert "max rel error" in out
    # finite differences carry ~1e-10 round-off: a tolerance far below it must fail with exit code 1
    code, out, _ = run(capsys, "check", spec_file, "--points", 1, "--tol", 1e-300)
    assert code == 1 and "FAIL" in out


def test_check_passes_on_expressions(capsys):
    code, out, _ = run(capsys, "check", "--expr", EXPR, "--points", 4, "--seed", 3)
    assert code == 0, out
    assert [line.split()[0] for line in out.splitlines()[3:5]] == ["x", "y"]


def test_check_library_reports_per_parameter(spec_file):
    from gradc.tools.check import check_mlp

    report = check_mlp(spec_file, points=2)
    assert report.ok and report.points == 2
    assert [r.name for r in report.results] == ["W1", "b1", "W2", "b2"]
    assert all(r.max_rel_error < 1e-6 and r.entries > 0 for r in report.results)


# ---------------------------------------------------------------------------------------------- compile


def test_compile_round_trip_in_a_subprocess_without_gradc(capsys, spec_file, tmp_path):
    net = tmp_path / "deep" / "er" / "net.py"           # parent folders are created
    code, out, _ = run(capsys, "compile", spec_file, "-o", net)
    assert code == 0 and net.is_file()
    assert f"wrote {net}" in out
    for signature in ("init_params(seed=0)", "forward(params, X)", "loss(params, X, Y)",
                      "loss_and_grad(params, X, Y)", "sgd_step(params, X, Y, lr)", "W1 (2, 3)", "b2 (1,)"):
        assert signature in out, signature
    f = tmp_path / "f.py"
    code, out, _ = run(capsys, "compile", "--expr", EXPR, "--wrt", "x,y", "-o", f)
    assert code == 0 and "value_and_grad(x, y)" in out

    module = gradc.compile_mlp(spec_file)             # in-process, already compiled by the check tests
    params = module.init_params(7)
    X, Y = batch()
    np.savez(tmp_path / "inputs.npz", X=X, Y=Y, **params)
    points = np.linspace(-0.9, 0.8, 7), np.linspace(0.5, -0.7, 7)
    np.savez(tmp_path / "points.npz", x=points[0], y=points[1])
    program = textwrap.dedent("""
        import importlib.abc, importlib.util, sys
        import numpy as np

        class BlockGradc(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "gradc" or name.startswith("gradc."):
                    raise ImportError("gradc is blocked in this process")

        sys.meta_path.insert(0, BlockGradc())
        try:
            import gradc  # noqa: F401
            sys.exit("gradc was importable")
        except ImportError:
            pass

        def load(path, name):
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module

        net, f = load(sys.argv[1], "net"), load(sys.argv[2], "f")
        data = np.load(sys.argv[3])
        params = {k: data[k] for k in net.PARAM_SHAPES}
        loss, grads = net.loss_and_grad(params, data["X"], data["Y"])
        pts = np.load(sys.argv[4])
        value, (dx, dy) = f.value_and_grad(pts["x"], pts["y"])
        np.savez(sys.argv[5], loss=loss, value=value, dx=dx, dy=dy, **{"d_" + k: g for k, g in grads.items()})
        assert not any(m == "gradc" or m.startswith("gradc.") for m in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", program, net, f, tmp_path / "inputs.npz",
                             tmp_path / "points.npz", tmp_path / "out.npz"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    got = np.load(tmp_path / "out.npz")

    loss, grads = module.loss_and_grad(params, X, Y)
    np.testing.assert_allclose(got["loss"], loss, rtol=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(got[f"d_{name}"], g, rtol=1e-12, atol=1e-15)
    ref_loss, ref_grads = reference.loss_and_grad(load_spec(spec_file), params, X, Y)
    np.testing.assert_allclose(got["loss"], ref_loss, rtol=1e-10)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(got[f"d_{name}"], g, rtol=1e-8, atol=1e-12)

    expr = parse_expr(EXPR, text_functions(), TEXT_CONSTANTS)
    x, y = sorted(expr.free_symbols, key=lambda s: s.name)
    for key, target in (("value", expr), ("dx", sympy.diff(expr, x)), ("dy", sympy.diff(expr, y))):
        np.testing.assert_allclose(got[key], sympy.lambdify((x, y), target, "numpy")(*points), rtol=1e-12)


def test_compile_expr_options(capsys, tmp_path):
    out_file = tmp_path / "neuron.py"
    code, out, err = run(capsys, "compile", "--expr", "sigmoid(w0*x0 + w1*x1 + w2)", "--args", "x0,x1,w0,w1,w2",
                         "--wrt", "w0,w1,w2", "--name", "my neuron", "--dtype", "float32", "-o", out_file)
    assert code == 0, err
    assert "forward(x0, x1, w0, w1, w2)" in out and "(d_w0, d_w1, d_w2)" in out
    assert "'my_neuron'" in err                       # the name was made an identifier, and it says so
    source = out_file.read_text()
    assert "ARGS = ('x0', 'x1', 'w0', 'w1', 'w2')" in source and "float32" in source
    code, out, _ = run(capsys, "compile", "--expr", "x*y", "--expr", "sin(x)", "-o", tmp_path / "two.py")
    assert code == 0 and "cotangents=None" in out


def test_show_prints_the_source_plain_or_highlighted(capsys, spec_file, monkeypatch):
    code, out, _ = run(capsys, "show", spec_file)
    assert code == 0
    assert out.startswith("# MLP tiny") and "def loss_and_grad(params, X, Y):" in out and "\x1b[" not in out
    compile(out, "shown.py", "exec")
    assert out == gradc.compile_mlp(spec_file).source
    code, out, _ = run(capsys, "show", "--expr", "x*exp(y)")
    assert code == 0 and "def value_and_grad(x, y):" in out
    pytest.importorskip("pygments")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["show", "--expr", "x*exp(y)"]) == 0
    assert "\x1b[" in capsys.readouterr().out
    assert main(["show", "--expr", "x*exp(y)", "--no-color"]) == 0
    assert "\x1b[" not in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- errors


def test_code_in_an_expression_is_rejected_and_never_runs(capfd, tmp_path):
    target = tmp_path / "p.py"
    for text in ("__import__('os').system('echo pwned')", "x.__class__", "exec('print(1)')", "[x for x in y]",
                 "lambda: 0", "'echo pwned'"):
        code = main(["compile", "--expr", text, "-o", str(target)])
        out, err = capfd.readouterr()
        assert_one_line_error(code, out, err, "invalid expression")
        assert "pwned" not in out and not target.exists()
    code = main(["check", "--expr", "__import__('os').system('echo pwned')"])
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err)


def test_hostile_name_reaches_source_only_as_identifier_or_comment(capsys, tmp_path):
    name = 'q"""; __import__("os").system("echo pwned"); """\nimport os #'

    def code_text(name: str, target: Path) -> str:
        code, _, _ = run(capsys, "compile", "--expr", "x**2", "--name", name, "-o", target)
        assert code == 0
        tokens = tokenize.generate_tokens(io.StringIO(target.read_text()).readline)
        return " ".join(t.string for t in tokens if t.type != tokenize.COMMENT)

    hostile, plain = code_text(name, tmp_path / "h.py"), code_text("q", tmp_path / "q.py")
    for forbidden in ("__import__", "system(", "echo pwned", "import os"):   # the runtime imports os itself
        assert hostile.count(forbidden) == plain.count(forbidden), forbidden


@pytest.mark.parametrize("argv, fragments", [
    (["compile", "{bad}", "-o", "{tmp}/b.py"], ["layers[1].activation", "sigmod", "did you mean 'sigmoid'"]),
    (["check", "{bad}"], ["layers[1].activation"]),
    (["compile", "{tmp}/missing.yaml", "-o", "{tmp}/b.py"], ["not found", "missing.yaml"]),
    (["compile", "{tmp}/spec.txt", "-o", "{tmp}/b.py"], [".yaml"]),
    (["compile", "{spec}", "-o", "{tmp}/b.txt"], ["must end in .py"]),
    (["compile", "{spec}"], ["-o/--output"]),
    (["compile", "{spec}", "-o", "{tmp}/numpy.py"], ["shadow", "'numpy'"]),
    (["compile", "{spec}", "--expr", "x", "-o", "{tmp}/b.py"], ["not both"]),
    (["compile", "{spec}", "--wrt", "x", "-o", "{tmp}/b.py"], ["--wrt"]),
    (["show"], ["SPEC", "--expr"]),
    (["show", "--expr", "x +"], ["syntax error"]),
    (["show", "--expr", "foo(x)"], ["unknown function 'foo'"]),
    (["show", "--expr", "x*y", "--wrt", "z"], ["--wrt", "'z'"]),
    (["show", "--expr", "x*y", "--args", "x,x"], ["twice"]),
    (["show", "--expr", "x*q", "--args", "x"], ["unknown name 'q'"]),
    (["check", "--expr", "log(-2 - x)"], ["no point", "--low"]),
    (["check", "--expr", "x", "--points", "zero"], ["--points", "invalid int"]),
    (["bench", "{spec}", "--peers", "tensorflow"], ["unknown peer 'tensorflow'"]),
    (["frobnicate"], ["invalid choice"]),
    ([], ["missing command"]),
])
def test_errors_are_one_line_with_exit_code_2(capsys, tmp_path, spec_file, argv, fragments):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("activation: sigmoid", "activation: sigmod"))
    (tmp_path / "spec.txt").write_text(SPEC)
    argv = [a.format(bad=bad, tmp=tmp_path, spec=spec_file) for a in argv]
    assert_one_line_error(*run(capsys, *argv), *fragments)


# ---------------------------------------------------------------------------------------------- bench


def test_bench_prints_a_checked_table(capsys, spec_file, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)       # as if torch were not installed

    def broken(spec, params, X, Y):                        # a peer with a wrong gradient is caught
        def step():
            value, grads = reference.loss_and_grad(spec, params, X, Y)
            return value, {**grads, "W1": grads["W1"] * 1.01}
        return bench.Contestant("broken", step)

    monkeypatch.setitem(bench.PEERS, "broken", broken)
    report_file = tmp_path / "bench.json"
    code, out, err = run(capsys, "bench", spec_file, "--repeat", 3, "--warmup", 1, "--batch", 8,
                         "--peers", "torch,broken", "--json", report_file)
    assert code == 0, err
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "ms/step" in out and "vs hand NumPy" in out
    assert "1.00x" in rows["hand NumPy"] and rows["gradc"].split()[1][0].isdigit()
    assert "skipped: not installed" in rows["torch"]
    assert "FAILED: wrong result" in rows["broken"] and "W1 differs from the reference" in rows["broken"]
    assert "cold" in out and "warm" in out and "gradc ops: forward" in out
    assert "note: pip install 'gradc[bench]' installs the peers" in out
    assert f"note: {bench.blas_note(gradc.compile_mlp(spec_file).blas)}" in out
    assert '"baseline": "hand NumPy"' in report_file.read_text()


def test_the_bench_note_says_how_to_get_mkl_only_where_it_would_serve():
    assert bench.blas_note("MKL") == "gradc's matrix products called MKL"
    assert "pip install 'gradc[mkl]'" in bench.blas_note("OpenBLAS", machine="x86_64")
    assert bench.blas_note("OpenBLAS", machine="arm64") == "gradc's matrix products called OpenBLAS"

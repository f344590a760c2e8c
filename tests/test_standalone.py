"""Written modules are standalone: they import only numpy, numba and the standard library, run in a
process where `import gradc` fails, give the in-process numbers, and are written atomically."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import gradc
from gradc import jit

x, y, w = sp.symbols("x y w", real=True)
EXPR = (x + 1 / (1 + sp.exp(-y))) / (1 / (1 + sp.exp(-x)) + (x + y) ** 2) + w * sp.log(1 + sp.exp(x))
RNG = np.random.default_rng(7)
POINTS = {"x": RNG.normal(size=9), "y": RNG.normal(size=9), "w": np.float64(0.75)}


@pytest.fixture(scope="module")
def module():
    return gradc.compile_expr(EXPR, args=[x, y, w])


@pytest.fixture(scope="module")
def multi():
    return gradc.compile_expr([x * y, sp.sin(x) * w], args=[x, y, w], name="pair")


_BLOCKED_RUN = textwrap.dedent("""
    import importlib.abc, importlib.util, sys

    class NoGradc(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "gradc" or name.startswith("gradc."):
                raise ImportError("gradc is not installed here")
            return None

    sys.meta_path.insert(0, NoGradc())
    try:
        import gradc  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the import blocker does not work")

    import numpy as np
    path, out, multi = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    spec = importlib.util.spec_from_file_location("standalone_module", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    xs, ys, w = np.load(out + ".in.npy")
    if multi:
        (v0, v1), grads = mod.value_and_grad(xs, ys, w[0], cotangents=[2.0, xs])
        values = [v0, v1]
    else:
        value, grads = mod.value_and_grad(xs, ys, w[0])
        values = [value, mod.forward(xs, ys, w[0])]
    np.save(out, np.array([*values, grads[0], grads[1], np.full_like(xs, grads[2])]))
    assert not [m for m in sys.modules if m == "gradc" or m.startswith("gradc.")]
    print("ok", mod.ARGS)
""")


def _run_blocked(path: Path, tmp_path: Path, multi: bool) -> np.ndarray:
    out = tmp_path / "result.npy"
    np.save(str(out) + ".in.npy", np.array([POINTS["x"], POINTS["y"], np.full(9, POINTS["w"])]))
    done = subprocess.run([sys.executable, "-c", _BLOCKED_RUN, str(path), str(out), "1" if multi else "0"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")
    return np.load(out)


def test_written_module_runs_without_gradc(module, tmp_path):
    path = module.write(tmp_path / "staged.py")
    got = _run_blocked(path, tmp_path, multi=False)
    value, (dx, dy, dw) = module.value_and_grad(POINTS["x"], POINTS["y"], POINTS["w"])
    np.testing.assert_array_equal(got[0], value)
    np.testing.assert_array_equal(got[1], value)
    np.testing.assert_array_equal(got[2], dx)
    np.testing.assert_array_equal(got[3], dy)
    np.testing.assert_array_equal(got[4][0], dw)


def test_written_multi_output_module_runs_without_gradc(multi, tmp_path):
    path = multi.write(tmp_path / "pair.py")
    got = _run_blocked(path, tmp_path, multi=True)
    values, grads = multi.value_and_grad(POINTS["x"], POINTS["y"], POINTS["w"], cotangents=[2.0, POINTS["x"]])
    np.testing.assert_array_equal(got[0], values[0])
    np.testing.assert_array_equal(got[1], values[1])
    for k in range(2):
        np.testing.assert_array_equal(got[2 + k], grads[k])
    np.testing.assert_array_equal(got[4][0], grads[2])
    xs, ys = POINTS["x"], POINTS["y"]
    np.testing.assert_allclose(grads[0], 2 * ys + xs * np.cos(xs) * POINTS["w"])
    np.testing.assert_allclose(grads[2], np.sum(xs * np.sin(xs)))


_ALLOWED = {"numpy", "numba"} | set(sys.stdlib_module_names)


def _imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in a standalone module"
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            raise AssertionError("dynamic import in a standalone module")
    return found


def test_written_module_imports_only_numpy_numba_and_stdlib(module, multi):
    for m in (module, multi, gradc.compile_expr(sp.erf(x) + sp.atan2(x, y), debug=True)):
        imports = _imports(m.source)
        assert imports <= _ALLOWED, imports - _ALLOWED
        assert "gradc" not in imports and {"numpy", "numba"} <= imports


def test_written_module_has_header_and_public_functions(module, tmp_path):
    path = module.write(tmp_path / "f.py")
    text = path.read_text(encoding="utf-8")
    assert text == module.source
    assert text.startswith("# ") and f"gradc {gradc.__version__}" in text.splitlines()[0]
    tree = ast.parse(text)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"forward", "grad", "value_and_grad"} <= functions


def test_load_imports_a_written_module(module, tmp_path):
    path = module.write(tmp_path / "loaded.py")
    loaded = gradc.load(path)
    value, grads = loaded.value_and_grad(POINTS["x"], POINTS["y"], POINTS["w"])
    want_value, want_grads = module.value_and_grad(POINTS["x"], POINTS["y"], POINTS["w"])
    np.testing.assert_array_equal(value, want_value)
    for a, b in zip(grads, want_grads):
        np.testing.assert_array_equal(a, b)
    assert loaded.grad(POINTS["x"], POINTS["y"], POINTS["w"])[2] == want_grads[2]
    np.testing.assert_array_equal(gradc.load(str(path)).forward(1.0, 2.0, 3.0), module.forward(1.0, 2.0, 3.0))


def test_write_is_atomic_and_leaves_no_temporary_files(module, multi, tmp_path):
    path = tmp_path / "sub" / "dir" / "m.py"
    assert module.write(path) == path
    assert multi.write(path) == path                         # overwrite in place
    assert path.read_text(encoding="utf-8") == multi.source
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.py"]


def test_failed_write_leaves_no_file(module, tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        module.write(tmp_path / "m.py")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_file(module, multi, tmp_path, monkeypatch):
    path = module.write(tmp_path / "m.py")
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("no")))
    with pytest.raises(OSError):
        multi.write(path)
    assert path.read_text(encoding="utf-8") == module.source
    assert [p.name for p in tmp_path.iterdir()] == ["m.py"]


def test_write_refuses_a_non_python_path(module, tmp_path):
    with pytest.raises(ValueError, match=r"\.py"):
        module.write(tmp_path / "m.txt")
    assert list(tmp_path.iterdir()) == []


def test_cache_file_is_content_addressed(module):
    path = jit._cached_file(module.source)
    assert path.parent == jit.cache_dir() and jit.source_digest(module.source)[:32] in path.name
    assert path.read_text(encoding="utf-8") == module.source
    assert str(jit.cache_dir()).startswith(os.environ["GRADC_CACHE_DIR"])


def _unreferenced(source: str) -> set[str]:
    """Top-level names a module defines or imports that nothing in it (nor the public API) refers to."""
    tree = ast.parse(source)
    defined = {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.ClassDef))}
    defined |= {t.id for s in tree.body if isinstance(s, ast.Assign) for t in s.targets if isinstance(t, ast.Name)}
    defined |= {a.asname or a.name.split(".")[0] for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))
                for a in s.names}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    registered = {s.name for s in tree.body if isinstance(s, ast.FunctionDef)   # @overload(_load) def _load_impl
                  for d in s.decorator_list if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "overload"}
    public = {"forward", "grad", "value_and_grad", "loss", "loss_and_grad", "sgd_step", "init_params",
              "ARGS", "WRT", "OUTPUTS", "DTYPE", "PARAM_SHAPES", "PARAM_INITS", "INPUT", "OUTPUT", "LABELS_OK"}
    return defined - used - registered - public


@pytest.mark.parametrize("loss", ["mse", "sum_squared", "softmax_cross_entropy", "binary_cross_entropy", "hinge"])
def test_written_mlp_module_has_no_dead_definitions(loss):
    spec = {"input": 3, "layers": [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "sigmoid"}],
            "loss": loss}
    source = gradc.compile_mlp(spec).source
    assert not _unreferenced(source)
    others = {"_mse", "_sum_squared", "_softmax_ce", "_bce", "_bce_logits", "_hinge"} - {
        {"mse": "_mse", "sum_squared": "_sum_squared", "softmax_cross_entropy": "_softmax_ce",
         "binary_cross_entropy": "_bce_logits", "hinge": "_hinge"}[loss]}
    assert not any(f"def {name}(" in source for name in others)
    assert "_check_finite" not in source
    assert "def _check_finite(" in gradc.compile_mlp(spec, debug=True).source


def test_written_expression_module_has_no_dead_definitions(module, multi):
    libm_only = gradc.compile_expr(sp.sin(x) * y)   # no vectorisable exp/tanh: no intrinsic import either
    for m in (module, multi, libm_only, gradc.compile_expr(sp.erf(x) + sp.atan2(x, y), debug=True)):
        assert not _unreferenced(m.source)
    assert "import math" not in module.source
    assert "import math" in gradc.compile_expr(sp.erf(x)).source

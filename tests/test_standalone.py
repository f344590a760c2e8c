"""Written modules are standalone: they import only numpy, numba and the standard library, run in a
process where `import gradc` fails, give the in-process numbers, and are written atomically."""

from __future__ import annotations

import ast
import builtins
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
from gradc.backend import expr as backend_expr
from gradc.backend import mlp as backend_mlp

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
    public = {"forward", "grad", "value_and_grad", "jacobian", "hessian", "jvp", "hvp", "loss", "loss_and_grad",
              "sgd_step", "init_params", "init_state", "step", "fit", "predict", "predict_proba", "save_params",
              "load_params", "ARGS", "WRT", "OUTPUTS", "DTYPE", "PARAM_SHAPES", "PARAM_INITS", "INPUT", "OUTPUT",
              "LABELS_OK"}
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


# -- layout: the user's model first, gradc's support code after a marker line ---------------------------
_EXPR_RUNTIMES = backend_expr.RUNTIMES
_MLP_RUNTIMES = backend_mlp.RUNTIMES
_MLP_SPEC = {"input": 3, "layers": [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "sigmoid"}],
             "loss": "softmax_cross_entropy"}


def _top_level(source: str) -> list[tuple[int, str]]:
    """(line, name) of every top-level definition and assignment of a module, in order."""
    found = []
    for stmt in ast.parse(source).body:
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            found.append((stmt.lineno, stmt.name))
        elif isinstance(stmt, ast.Assign):
            found += [(stmt.lineno, n.id) for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return found


def _layout(source: str) -> tuple[int, list[tuple[int, str]], list[tuple[int, str]]]:
    """(the support marker's line, the definitions above it, the definitions below it)."""
    from gradc.backend.printer import SUPPORT_MARKER

    lines = source.splitlines()
    assert lines.count(SUPPORT_MARKER) == 1, "exactly one support marker line"
    marker = lines.index(SUPPORT_MARKER) + 1
    found = _top_level(source)
    return marker, [d for d in found if d[0] < marker], [d for d in found if d[0] > marker]


def _runtime_names(runtimes: tuple[str, ...]) -> set[str]:
    from gradc.backend.names import defined_names
    from gradc.backend.printer import runtime_source

    return set().union(*(defined_names(runtime_source(r)) for r in runtimes))


def _assert_model_first(source: str, runtimes: tuple[str, ...], kernels: set[str], public: set[str],
                        constants: set[str]) -> list[str]:
    """The module opens with its header, imports and constants, then its kernels and public functions;
    every definition copied from gradc/runtime comes after the marker. Returns the names above it."""
    marker, above, below = _layout(source)
    names_above = [name for _, name in above]
    tree = ast.parse(source)
    first_def = next(s for s in tree.body if isinstance(s, ast.FunctionDef))
    assert first_def.name in kernels or first_def.name.startswith("_act_"), first_def.name
    before_first = [s for s in tree.body if s.lineno < first_def.lineno]
    assert all(isinstance(s, (ast.Import, ast.ImportFrom, ast.Assign)) for s in before_first)
    assert {a.name for s in before_first if isinstance(s, ast.Import) for a in s.names} <= {"numpy", "numba", "math"}
    assert not [s for s in tree.body if isinstance(s, ast.ImportFrom) and s.lineno < marker]
    assert kernels | public | constants <= set(names_above)
    runtime = _runtime_names(runtimes)
    assert not [name for name in names_above if name in runtime and name != "_PARALLEL"], names_above
    assert {name for _, name in below} <= runtime
    return names_above


def test_written_expression_module_opens_with_its_kernels(module, multi):
    for m in (module, multi, gradc.compile_expr(sp.erf(x) + sp.atan2(x, y), debug=True)):
        names = _assert_model_first(m.source, _EXPR_RUNTIMES,
                                    {"_forward_kernel", "_row_kernel", "_value_and_grad_kernel"},
                                    {"forward", "value_and_grad", "grad"},
                                    {"ARGS", "ARG_SHAPES", "WRT", "WRT_INDEX", "OUTPUTS", "SEQUENCE", "LAYOUT",
                                     "DTYPE"})
        assert names[:8] == ["ARGS", "ARG_SHAPES", "WRT", "WRT_INDEX", "OUTPUTS", "SEQUENCE", "LAYOUT", "DTYPE"]
        assert names[8:] == ["_forward_kernel", "_row_kernel", "_value_and_grad_kernel", "_jacobian_kernel",
                             "_hessian_kernel", "_jvp_kernel", *(["_hvp_kernel"] if m is not multi else []),
                             "forward", "value_and_grad", "grad", "jacobian", "hessian", "jvp",
                             *(["hvp"] if m is not multi else [])]
        # the public functions are one line each around the runtime's helpers
        tree = ast.parse(m.source)
        for fn in (s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name in ("forward", "grad")):
            assert len(fn.body) == 2, ast.unparse(fn)   # docstring, return


@pytest.mark.parametrize("spec", [_MLP_SPEC, "examples/seed002_digits.yaml",
                                  {**_MLP_SPEC, "layers": [{"units": 600, "activation": "tanh"},
                                                           {"units": 2, "activation": "identity"}]}],
                         ids=["small", "seed002", "splits"])
def test_written_mlp_module_opens_with_its_network(spec):
    if isinstance(spec, str):
        spec = Path(__file__).parent.parent / spec
    source = gradc.compile_mlp(spec).source
    constants = ["PARAM_SHAPES", "PARAM_INITS", "INPUT", "OUTPUT", "LABELS_OK", "DTYPE", "LOSS", "NETWORK",
                 "OPTIMIZER"]
    names = _assert_model_first(source, _MLP_RUNTIMES, {"_forward", "_loss", "_loss_and_grad", "_step", "_epoch"},
                                {"loss_and_grad"}, set(constants))
    assert names[:10] == [*constants, "_PARALLEL"]
    assert names[10:15] == ["_forward", "_loss", "_loss_and_grad", "_step", "_epoch"] and names[-1] == "loss_and_grad"
    assert all(name.startswith("_act_") for name in names[15:-1])
    lines = source.splitlines()
    assert next(k for k, line in enumerate(lines, 1) if line.startswith("def _forward(")) < 40
    # the runtime's public functions come after the marker, and the header says where
    _, _, below = _layout(source)
    assert {"init_params", "forward", "loss", "sgd_step", "init_state", "step", "fit", "predict", "predict_proba",
            "save_params", "load_params"} <= {name for _, name in below}
    assert "support code" in "\n".join(lines[:8])


def test_support_code_keeps_every_import_time_statement_after_what_it_needs():
    """Support code follows the kernels; what runs at import (decorators, `_retain_freed_memory()`, the
    BLAS binding, `@overload(_load)`) still finds every name it reads defined above it."""
    for source in (gradc.compile_mlp(_MLP_SPEC).source, gradc.compile_expr(EXPR, args=[x, y, w]).source):
        tree = ast.parse(source)
        bound = set(dir(builtins))
        def at_import(stmt: ast.stmt) -> list[ast.AST]:
            """The parts of a top-level statement that run when the module is imported."""
            if isinstance(stmt, ast.FunctionDef):
                return [*stmt.decorator_list, *stmt.args.defaults, *filter(None, stmt.args.kw_defaults)]
            if isinstance(stmt, ast.ClassDef):   # a method's body runs when it is called
                return [*stmt.decorator_list, *stmt.bases, *(p for s in stmt.body for p in at_import(s))]
            return [] if isinstance(stmt, (ast.Import, ast.ImportFrom)) else [stmt]

        for stmt in tree.body:
            for part in at_import(stmt):
                read = {n.id for n in ast.walk(part) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
                assert read <= bound, (ast.unparse(part)[:80], read - bound)
            if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                bound.add(stmt.name)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                bound |= {a.asname or a.name.split(".")[0] for a in stmt.names}
            else:
                bound |= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


_BLOCKED_MLP_RUN = _BLOCKED_RUN.split("import numpy as np")[0] + textwrap.dedent("""
    import numpy as np
    path, out = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("standalone_mlp", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    X = np.linspace(-1.0, 1.0, 15).reshape(5, 3)
    labels = np.array([0, 1, 1, 0, 1])
    params = mod.init_params(3)
    value, grads = mod.loss_and_grad(params, X, labels)
    results = [mod.forward(params, X), np.array(mod.loss(params, X, labels)), np.array(value),
               *(grads[k] for k in mod.PARAM_SHAPES), np.array(mod.sgd_step(params, X, labels, 0.5)),
               *(params[k] for k in mod.PARAM_SHAPES)]
    try:
        mod.sgd_step({**params, "W1": params["W1"].astype(int)}, X, labels, 0.5)
    except ValueError as exc:
        message = str(exc)
    np.savez(out, *results, message=np.array(message))
    assert not [m for m in sys.modules if m == "gradc" or m.startswith("gradc.")]
    print("ok")
""")


def test_written_mlp_module_runs_without_gradc(tmp_path):
    """Its public functions, written with the kernels (loss_and_grad) or copied from the runtime (the
    others), give the in-process numbers and messages in a process that cannot import gradc."""
    net = gradc.compile_mlp(_MLP_SPEC)
    path = net.write(tmp_path / "net.py")
    out = tmp_path / "mlp.npz"
    done = subprocess.run([sys.executable, "-c", _BLOCKED_MLP_RUN, str(path), str(out)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.load(out)
    X = np.linspace(-1.0, 1.0, 15).reshape(5, 3)
    labels = np.array([0, 1, 1, 0, 1])
    params = net.init_params(3)
    value, grads = net.loss_and_grad(params, X, labels)
    want = [net.forward(params, X), net.loss(params, X, labels), value, *grads.values(),
            net.sgd_step(params, X, labels, 0.5), *params.values()]
    for k, expected in enumerate(want):
        np.testing.assert_array_equal(got[f"arr_{k}"], expected)
    assert str(got["message"]) == ("sgd_step updates params in place: param W1 must be a float ndarray, "
                                   "got int64")


def test_argument_names_cannot_shadow_what_the_public_functions_call():
    """The generated bodies call the runtime's `_values`/`_values_and_grads`: arguments named like them
    (or like the constants those read) are renamed, and the numbers stay right."""
    names = ["_values", "_values_and_grads", "_shaped", "SEQUENCE", "ARGS", "OUTPUTS"]
    syms = [sp.Symbol(n, real=True) for n in names]
    m = gradc.compile_expr([sum((k + 1) * s for k, s in enumerate(syms)), syms[0] * syms[3]], args=syms)
    points = [np.full(3, k + 1.0) for k in range(len(syms))]
    (total, product), grads = m.value_and_grad(*points, cotangents=[1.0, 2.0])
    np.testing.assert_array_equal(total, np.full(3, sum((k + 1) * (k + 1.0) for k in range(len(syms)))))
    np.testing.assert_array_equal(product, np.full(3, 4.0))
    np.testing.assert_array_equal(grads[0], np.full(3, 1.0 + 2.0 * 4.0))
    np.testing.assert_array_equal(m.grad(*points)[3], np.full(3, 4.0 + 1.0))
    np.testing.assert_array_equal(m.forward(*points)[1], product)


_SPECIAL_RUN = textwrap.dedent("""
    import importlib.abc, importlib.util, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("gradc", "scipy"):
                raise ImportError(name + " is not installed here")
            return None

    sys.meta_path.insert(0, Blocked())
    import numpy as np
    spec = importlib.util.spec_from_file_location("special_module", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    value, (d_x,) = mod.value_and_grad(np.load(sys.argv[2]))
    np.save(sys.argv[2], np.array([value, d_x]))
    assert not [m for m in sys.modules if m.split(".")[0] in ("gradc", "scipy")]
""")


def test_written_special_functions_run_without_scipy(tmp_path):
    """The special functions' support code (runtime/special.py) is copied in: no scipy at run time."""
    special = sp.loggamma(x) + sp.polygamma(2, x) + sp.LambertW(x) + sp.erfcinv(x / 4)   # each support function
    module = gradc.compile_expr(special, [x])
    path, points = module.write(tmp_path / "special.py"), tmp_path / "points.npy"
    xs = np.linspace(0.1, 3.9, 7)
    np.save(points, xs)
    done = subprocess.run([sys.executable, "-c", _SPECIAL_RUN, str(path), str(points)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    value, d_x = np.load(points)
    want_value, (want_d_x,) = module.value_and_grad(xs)
    np.testing.assert_array_equal(value, want_value)
    np.testing.assert_array_equal(d_x, want_d_x)

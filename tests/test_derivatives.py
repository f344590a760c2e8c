"""Derivatives beyond the gradient: jacobian, hessian, jvp, hvp against SymPy's Matrix.jacobian and hessian.

One module of several expressions (random-fuzzer shapes and corpus entries) serves the Jacobian, Hessian and
JVP checks of all of them; a single expression serves the HVP, wrt-subset, broadcast and float32 checks.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import gradc
from gradc import pipeline
from gradc.backend.expr import emit_expr_module
from gradc.core.derivatives import derive

x, y, z = sp.symbols("x y z", real=True)
ARGS = [x, y, z]


def sig(u):
    return 1 / (1 + sp.exp(-u))


EXPRS = [
    (x + sig(y)) / (sig(x) + (x + y) ** 2),                                  # CS231n's staged example
    100 * (y - x ** 2) ** 2 + (1 - x) ** 2 + 100 * (z - y ** 2) ** 2 + (1 - y) ** 2,   # Rosenbrock, 3-D
    sp.log(1 + sp.exp(x * y)) - sp.erf(z) * sp.tanh(x),                      # softplus gate, erf
    sp.sqrt(1 + x ** 2) * sp.atan(y * z) + sp.sin(x) ** 3,
    sp.Piecewise((x ** 2 * y, x > 0), (sp.exp(y) * z, True)),
    sp.exp(-(x - y) ** 2 / (2 * (1 + z ** 2))) / sp.sqrt(1 + z ** 2),        # a Gaussian in x with scale √(1+z²)
    sp.loggamma(1 + x ** 2) + sp.asinh(y) * z,
    x * y * z + sp.Max(x, y) * z,
]


@pytest.fixture(scope="module")
def many():
    return gradc.compile_expr(EXPRS, ARGS)


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(7)
    return [rng.uniform(-1.5, 1.5, 40) for _ in ARGS]


def _numeric(exprs, symbols, pts):
    fn = sp.lambdify(symbols, exprs, modules=[{"DiracDelta": lambda u: 0 * u}, "numpy", "scipy"])   # off the kinks
    return np.asarray(np.broadcast_arrays(*fn(*pts)), dtype=float)


def test_jacobian_matches_sympy(many, points):
    J = many.jacobian(*points)
    assert J.shape == (40, len(EXPRS), 3)
    want = _numeric(list(sp.Matrix(EXPRS).jacobian(ARGS)), ARGS, points)   # (entries, points)
    np.testing.assert_allclose(J.reshape(40, -1).T, want, rtol=1e-12, atol=1e-12)


def test_hessians_match_sympy_and_are_exactly_symmetric(many, points):
    H = many.hessian(*points)
    assert H.shape == (40, len(EXPRS), 3, 3)
    assert np.array_equal(H, H.swapaxes(-1, -2))
    want = _numeric([h for e in EXPRS for h in sp.hessian(e, ARGS)], ARGS, points)
    np.testing.assert_allclose(H.reshape(40, -1).T, want, rtol=1e-11, atol=1e-11)


def test_jvp_is_the_jacobian_along_the_tangents(many, points):
    tangents = (0.5, np.linspace(-1, 1, 40), -2.0)   # broadcast like inputs
    values, derivatives = many.jvp(*points, tangents=tangents)
    J = many.jacobian(*points)
    direction = np.stack(np.broadcast_arrays(*tangents), -1)
    for k in range(len(EXPRS)):
        np.testing.assert_allclose(values[k], many.forward(*points)[k], rtol=1e-15)
        np.testing.assert_allclose(derivatives[k], (J[:, k] * direction).sum(-1), rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def single():
    """One expression, differentiated w.r.t. x and z only; y is a shared parameter in the calls."""
    return gradc.compile_expr(EXPRS[0] * z + z ** 2 * x, ARGS, wrt=[x, z])


def test_hvp_wrt_subset_and_shared_inputs(single, points):
    e = EXPRS[0] * z + z ** 2 * x
    px, _, pz = points
    H = single.hessian(px, 0.3, pz)
    assert H.shape == (40, 2, 2)
    want = _numeric(list(sp.hessian(e, [x, z])), ARGS, [px, 0.3, pz])
    np.testing.assert_allclose(H.reshape(40, 4).T, want, rtol=1e-12, atol=1e-12)
    v = (np.cos(px), 2.0)
    hv = single.hvp(px, 0.3, pz, v=v)
    assert len(hv) == 2
    np.testing.assert_allclose(np.stack(hv, -1), np.einsum("pab,pb->pa", H, np.stack(np.broadcast_arrays(*v), -1)),
                               rtol=1e-12, atol=1e-12)
    J = single.jacobian(px, 0.3, pz)
    np.testing.assert_allclose(J, np.stack(single.grad(px, np.full(40, 0.3), pz), -1), rtol=1e-14)


def test_float32_hessian():
    m = gradc.compile_expr(EXPRS[1], ARGS, dtype="float32")
    pts = [np.linspace(-1, 1, 16, dtype=np.float32) for _ in ARGS]
    H = m.hessian(*pts)
    assert H.dtype == np.float32
    want = _numeric(list(sp.hessian(EXPRS[1], ARGS)), ARGS, pts)
    np.testing.assert_allclose(H.reshape(16, 9).T, want, rtol=1e-5, atol=1e-3)


def test_matrix_outputs_have_matrix_shaped_jacobians():
    M = sp.Matrix([[x * y, sp.sin(x)], [y ** 2, x + y]])
    m = gradc.compile_expr(M, [x, y])
    J = m.jacobian(np.array([0.5, 1.0]), 2.0)
    assert J.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(J[1], [[[2.0, 1.0], [np.cos(1.0), 0]], [[0, 4.0], [1, 1]]], rtol=1e-15)


def test_written_module_has_them_without_gradc(single, points, tmp_path):
    path = single.write(tmp_path / "second_order.py")
    assert "gradc" not in "".join(line for line in path.read_text().splitlines() if line.startswith(("import", "from")))
    written = gradc.load(path)
    np.testing.assert_array_equal(written.hessian(points[0], 0.3, points[2]), single.hessian(points[0], 0.3, points[2]))


def test_debug_build_names_the_bad_second_order_intermediate():
    m = gradc.compile_expr(sp.log(x) * y ** 2, [x, y], debug=True)
    with pytest.raises(FloatingPointError, match=r"non-finite \w+ .*at index"):
        m.hessian(np.array([1.0, -1.0]), 2.0)


def test_hessians_of_a_likelihood_over_a_data_array():
    """Sum and Product loops over data (an IndexedBase that is not differentiated): the Hessian w.r.t. the
    parameters (the observed information) against SymPy's, of the unrolled expression."""
    n = 6
    data, j = sp.IndexedBase("d", shape=(n,)), sp.Symbol("j", integer=True)
    mu, s = sp.symbols("mu s")
    e = (sp.Sum(-(data[j] - mu) ** 2 / (2 * s ** 2) - sp.log(s) + sp.log(1 + (data[j] * mu) ** 2), (j, 0, n - 1))
         + sp.Product(1 + mu ** 2 * data[j] ** 2 / 10, (j, 0, 2)))
    m = gradc.compile_expr(e, [data, mu, s], wrt=[mu, s])
    D, M, S = np.random.default_rng(0).normal(size=(3, n)), np.array([0.2, 0.5, -0.3]), np.array([1.1, 0.8, 1.5])
    ds = sp.symbols(f"d0:{n}")
    unrolled = e.doit().xreplace({data[k]: ds[k] for k in range(n)})
    hess = sp.lambdify([*ds, mu, s], list(sp.hessian(unrolled, (mu, s))))
    H = m.hessian(D, M, S)
    np.testing.assert_allclose(H, np.array([hess(*D[p], M[p], S[p]) for p in range(3)]).reshape(3, 2, 2), rtol=1e-12)
    np.testing.assert_allclose(np.stack(m.hvp(D, M, S, v=(1.0, 2.0)), -1), H @ np.array([1.0, 2.0]), rtol=1e-12)


def test_unavailable_derivatives_say_why():
    v = sp.IndexedBase("v", shape=(3,))
    j = sp.Symbol("j", integer=True)
    m = gradc.compile_expr(sp.Sum(v[j] ** 2, (j, 0, 2)), [v])
    with pytest.raises(gradc.UnsupportedError, match="w.r.t. an array input"):
        m.hessian(np.ones(3))
    with pytest.raises(gradc.UnsupportedError, match="single expression"):
        gradc.compile_expr([x, y], [x, y]).hvp(1.0, 2.0, v=(1.0, 1.0))


def _kernel_text(source: str, name: str) -> str:
    functions = [f for f in ast.parse(source).body if isinstance(f, ast.FunctionDef) and f.name == name]
    return ast.get_source_segment(source, functions[0])


@pytest.mark.parametrize("expr", [[x * y, sp.sin(x)], x * y * z + sp.cos(y) * sig(z)], ids=["list", "one"])
def test_derivative_kernels_leave_the_gradient_kernels_as_they_were(expr):
    """Building the second-order passes reuses the forward and reverse nodes without changing what they mean:
    the forward and gradient kernels read the same, names and comments, with or without them."""
    plain = emit_expr_module(pipeline.expr_program(expr, ARGS), "hash", "regenerate")
    program = pipeline.expr_program(expr, ARGS)
    full = emit_expr_module(program, "hash", "regenerate", derivatives=derive(program))
    for name in ("_forward_kernel", "_value_and_grad_kernel"):
        assert _kernel_text(full, name) == _kernel_text(plain, name)


def test_a_call_at_one_point_equals_the_batched_call_there(many, points):
    """A call with plain numbers runs the kernels' serial twins (and the row kernel for forward): the same
    values as the parallel kernels give for that point of a batch."""
    k = 11
    at = [float(p[k]) for p in points]
    for one, batch in zip(many.forward(*at), many.forward(*points)):
        assert np.shape(one) == () and one == pytest.approx(batch[k], rel=1e-14)
    values, grads = many.value_and_grad(*at, cotangents=[1.0] * len(EXPRS))
    batch_grads = many.grad(*[p[k:k + 1] for p in points], cotangents=[np.ones(1)] * len(EXPRS))
    np.testing.assert_allclose(np.array(grads), np.ravel(batch_grads), rtol=1e-14)
    np.testing.assert_allclose(many.jacobian(*at), many.jacobian(*points)[k], rtol=1e-14)
    np.testing.assert_allclose(many.hessian(*at), many.hessian(*points)[k], rtol=1e-14)
    _, along = many.jvp(*at, tangents=(1.0, 0.0, -1.0))
    _, batch_along = many.jvp(*points, tangents=(1.0, 0.0, -1.0))
    np.testing.assert_allclose(np.array(along), np.array(batch_along)[:, k], rtol=1e-14)


def test_a_matrix_at_one_point_keeps_its_shape():
    m = gradc.compile_expr(sp.Matrix([[x * y, sp.sin(x)], [y ** 2, x + y]]), [x, y])
    np.testing.assert_allclose(m.forward(0.5, 2.0), [[1.0, np.sin(0.5)], [4.0, 2.5]], rtol=1e-15)
    assert m.forward(0.5, 2.0).shape == (2, 2)


_TWIN_RUN = """
import sys, numpy as np, sympy as sp, gradc
x, y = sp.symbols("x y")
m = gradc.compile_expr(sp.sin(x) * y + x ** 3, [x, y])
value = m.forward(0.5, 2.0)
batch = m.forward(np.array([0.5, 1.0]), 2.0)
twin = m.module._serial_twin(m.module._row_kernel)
print(float(value), float(batch[0]), sum(twin.stats.cache_hits.values()), sum(twin.stats.cache_misses.values()))
"""


def test_the_serial_twins_are_cached_on_disk_apart_from_the_parallel_kernels(tmp_path):
    env = {**os.environ, "GRADC_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", _TWIN_RUN], capture_output=True, text=True, env=env, check=True)
            for _ in range(2)]
    (v1, b1, hits1, misses1), (v2, b2, hits2, misses2) = (r.stdout.split() for r in runs)
    assert float(v1) == float(v2) == pytest.approx(np.sin(0.5) * 2 + 0.125, rel=1e-15) and b1 == v1
    assert (int(hits1), int(misses1)) == (0, 1)   # compiled in the first process ...
    assert (int(hits2), int(misses2)) == (1, 0)   # ... loaded from disk in the second

"""Vector, matrix and indexed inputs, Matrix outputs, and Sum/Product compiled as loops with reverse mode.

Oracles: hand-written NumPy (einsum, explicit loops) and SymPy's own `doit()` + `diff` + `lambdify` of the
unrolled form. The modules are compiled once per file (a list of expressions is one module; each
expression's gradient is taken with one-hot cotangents).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import gradc
from gradc import pipeline
from gradc.core import interpret
from gradc.errors import GradcError, UnsupportedError

N = 7
x = sp.IndexedBase("x", shape=(N,))
w = sp.IndexedBase("w", shape=(3,))
A = sp.MatrixSymbol("A", 3, 3)
mu, s = sp.symbols("mu s")
j, k = sp.symbols("j k", integer=True)

ROSENBROCK = sp.Sum(100 * (x[j + 1] - x[j] ** 2) ** 2 + (1 - x[j]) ** 2, (j, 0, N - 2))
EXPRS = {
    "rosenbrock": ROSENBROCK,
    "quadratic_form": sp.Sum(sp.Sum(A[j, k] * w[j] * w[k], (j, 0, 2)), (k, 0, 2)),
    "double_limits": sp.Sum(A[j, k] * w[k] ** 2, (j, 0, 2), (k, 0, 2)),
    "product": sp.Product(w[j], (j, 0, 2)) * mu,
    "index_as_value": sp.Sum(j * x[j] ** 2, (j, 0, N - 1)),
    "log_sum_exp": sp.log(sp.Sum(sp.exp(x[j]), (j, 0, N - 1))),
    "gaussian_loglik": sp.Sum(-(x[j] - mu) ** 2 / (2 * s ** 2) - sp.log(s), (j, 0, N - 1)),
    "constant_indices": x[0] * x[N - 1] + A[1, 2] * w[0] + sp.Sum(mu, (j, 1, 4)),
    "reversed_index": sp.Sum(x[N - 1 - j] * x[j], (j, 0, N - 1)),
}
ARGS = [x, A, w, mu, s]


def _symbolic(expr: sp.Expr) -> tuple[sp.Expr, list[sp.Symbol], dict]:
    """The unrolled expression over plain symbols (one per array element): SymPy's own reading of it."""
    xs = sp.symbols(f"x0:{N}")
    ws = sp.symbols("w0:3")
    As = sp.Matrix(3, 3, sp.symbols("A0:9"))
    unrolled = expr.doit()
    swap = {x[q]: xs[q] for q in range(N)} | {w[q]: ws[q] for q in range(3)}
    swap |= {A[r, c]: As[r, c] for r in range(3) for c in range(3)}
    return unrolled.xreplace(swap), [*xs, *As, *ws, mu, s], swap


@pytest.fixture(scope="module")
def module():
    return gradc.compile_expr(list(EXPRS.values()), ARGS)


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(3)
    batch = 5
    return [rng.uniform(-1.5, 1.5, (batch, N)), rng.uniform(-1, 1, (batch, 3, 3)), rng.uniform(0.5, 1.5, (batch, 3)),
            rng.uniform(-1, 1, batch), rng.uniform(0.5, 2, batch)]


def _flat(points: list[np.ndarray]) -> list[np.ndarray]:
    X, Am, W, m, sd = points
    return [*X.T, *Am.reshape(len(m), 9).T, *W.T, m, sd]


@pytest.mark.parametrize("name", list(EXPRS))
def test_value_and_gradient_match_sympy_unrolled(module, points, name):
    k = list(EXPRS).index(name)
    unrolled, symbols, _ = _symbolic(EXPRS[name])
    flat = _flat(points)
    want = np.broadcast_to(sp.lambdify(symbols, unrolled, "numpy")(*flat), points[3].shape)
    cotangents = [np.full(points[3].shape, float(q == k)) for q in range(len(EXPRS))]
    values, grads = module.value_and_grad(*points, cotangents=cotangents)
    np.testing.assert_allclose(values[k], want, rtol=1e-12, atol=1e-12)
    partials = [np.broadcast_to(sp.lambdify(symbols, sp.diff(unrolled, v), "numpy")(*flat), points[3].shape)
                for v in symbols]
    X_grad = np.stack(partials[:N], axis=-1)
    A_grad = np.stack(partials[N:N + 9], axis=-1).reshape(-1, 3, 3)
    W_grad = np.stack(partials[N + 9:N + 12], axis=-1)
    for got, expected in zip(grads, [X_grad, A_grad, W_grad, partials[-2], partials[-1]]):
        assert got.shape == np.shape(expected)
        np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-11)


def _ones(points: list[np.ndarray]) -> list[np.ndarray]:
    """Cotangents of 1 for every output, as arrays (each call with the same argument types reuses the kernel)."""
    return [np.ones(points[3].shape) for _ in EXPRS]


def test_the_interpreter_agrees_with_the_kernels(module, points):
    """interpret.evaluate runs the loops of the IR (the op tests' oracle): it agrees with the kernels."""
    program = pipeline.expr_program(list(EXPRS.values()), ARGS)
    inputs = dict(zip(["x", "A", "w", "mu", "s"], points))
    got = interpret.evaluate(list(program.outputs), inputs)
    for have, want in zip(got, module.value_and_grad(*points, cotangents=_ones(points))[0]):
        np.testing.assert_allclose(have, want, rtol=1e-13)


def test_array_inputs_broadcast_their_batch_axes(module, points):
    """One parameter matrix shared by all points: its gradient is summed over the batch, shaped like it."""
    X, Am, W, m, sd = points
    values, grads = module.value_and_grad(X, Am[0], W, m, sd, cotangents=_ones(points))
    assert grads[1].shape == (3, 3)
    full = module.value_and_grad(X, np.broadcast_to(Am[0], Am.shape), W, m, sd, cotangents=_ones(points))
    np.testing.assert_allclose(grads[1], full[1][1].sum(axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match=r"'x' must have shape \(\.\.\., 7\)"):
        module.value_and_grad(X[:, :5], Am, W, m, sd, cotangents=_ones(points))


def test_a_sum_is_a_loop_not_unrolled():
    """The source does not grow with n, and the forward kernel is one loop over the index."""
    small, _ = _rosenbrock_source(10)
    large, lines = _rosenbrock_source(100_000)
    assert abs(len(small) - len(large)) < 200
    assert "for j in range(0, 99999):" in lines


def _rosenbrock_source(n: int) -> tuple[str, str]:
    xs = sp.IndexedBase("x", shape=(n,))
    expr = sp.Sum(100 * (xs[j + 1] - xs[j] ** 2) ** 2 + (1 - xs[j]) ** 2, (j, 0, n - 2))
    source = gradc.compile_expr(expr, [xs]).source   # emitted, not jitted: no kernel is compiled here
    kernel = source[source.index("def _value_and_grad_kernel"):source.index("def forward")]
    return source.split("# Input sha256")[1].split("\n", 1)[1], kernel


def test_the_reverse_loop_runs_in_the_forward_loop_and_reads_like_the_notes():
    _, kernel = _rosenbrock_source(10)
    assert kernel.count("for j in range") == 1   # the forward sum and its reverse share one pass
    assert "d_x = d_x_out[i]" in kernel
    assert "d_x[j + 1] += d_diff" in kernel and "d_x[j] += d_x_j" in kernel


def test_matrix_outputs(points):
    a, b = sp.symbols("a b")
    M = sp.Matrix([[a * b, sp.sin(a)], [b ** 2, A[0, 1] * a], [(A * A.T)[0, 0], 2]])
    m = gradc.compile_expr(M, [a, b, A])
    av, bv, Am = points[3], points[4], points[1]
    want = np.stack([av * bv, np.sin(av), bv ** 2, Am[:, 0, 1] * av, (Am[:, 0] ** 2).sum(-1),
                     np.full_like(av, 2.0)], -1).reshape(-1, 3, 2)
    ct = np.zeros((3, 2))
    ct[0, 1] = 1.0
    values, (da, db, dA) = m.value_and_grad(av, bv, Am, cotangents=ct)
    assert values.shape == (len(av), 3, 2)
    np.testing.assert_allclose(values, want, rtol=1e-14)
    np.testing.assert_allclose(da, np.cos(av), rtol=1e-14)
    np.testing.assert_allclose(db, 0 * bv)
    da, db, dA = m.grad(av, bv, Am, cotangents=np.ones((3, 2)))   # the gradient of the sum of all entries
    np.testing.assert_allclose(da, bv + np.cos(av) + Am[:, 0, 1], rtol=1e-13)
    expected_dA = np.zeros_like(Am)
    expected_dA[:, 0, :] = 2 * Am[:, 0, :]
    expected_dA[:, 0, 1] += av
    np.testing.assert_allclose(dA, expected_dA, rtol=1e-13)
    with pytest.raises(ValueError, match="broadcast to"):
        m.grad(av, bv, Am, cotangents=np.ones((2, 3)))


@pytest.mark.parametrize("expr, args, error, words", [
    (sp.Sum(sp.IndexedBase("v")[j], (j, 0, 2)), [sp.IndexedBase("v")], GradcError, ["no shape", "shape=(n,)"]),
    (sp.Sum(x[j + 1], (j, 0, N - 1)), [x], GradcError, ["reads outside 'x'", "from 1 to 7"]),
    (sp.Sum(x[j ** 2], (j, 0, 2)), [x], UnsupportedError, ["not affine"]),
    (sp.Sum(x[j], (j, 0, mu)), [x, mu], UnsupportedError, ["integer bounds", ".doit()"]),
    (x[j], [x], UnsupportedError, ["not the index of an enclosing Sum"]),
    (sp.IndexedBase("x")[0, 1], [x], GradcError, ["2 indices", "shape (7,)"]),
])
def test_errors_name_the_problem_in_one_line(expr, args, error, words):
    with pytest.raises(error) as caught:
        gradc.compile_expr(expr, args)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_default_args_are_the_arrays_and_symbols_read():
    program = pipeline.expr_program(EXPRS["gaussian_loglik"])
    assert [n.name for n in program.inputs] == ["mu", "s", "x"]
    assert program.input("x").shape == (N,)

"""gradc.scipy: compiled objectives, ODE right-hand sides and residuals driving SciPy's minimize, solve_ivp and
least_squares, checked against SciPy's own Rosenbrock derivatives, its finite-difference Jacobians and known
solutions.

Compiling costs 0.3-3 s per kernel used (forward, jacobian, hessian, hvp, value_and_grad are separate kernels),
so each adapter of the default run is compiled once per module (fixtures below): the 2-D Rosenbrock objective
(5 kernels), Robertson's system (2) and the exponential-decay residual (2). The slow tests (`make test-slow`)
sweep Rosenbrock to 50 dimensions (the Hessian to 20: its compile time grows ~n^4), integrate Robertson to
t = 1e5, Van der Pol with mu = 1000 and a random 30-species mass-action network."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares, minimize, rosen, rosen_der, rosen_hess, rosen_hess_prod

from gradc.module import ExprModule
from gradc.scipy import ODESystem, objective, ode, residuals

ROSEN_ARGS = (1.0, 100.0)           # a, b: SciPy's rosen is sum(b (x[i+1] - x[i]^2)^2 + (a - x[i])^2)
ROBERTSON_ARGS = (0.04, 3e7, 1e4)   # k1, k2, k3
ODE_TOL = {"rtol": 1e-6, "atol": 1e-10}


def rosenbrock(n: int):
    """(x symbols, a, b, the n-dimensional Rosenbrock function with parameters a and b)."""
    xs = sp.symbols(f"x0:{n}")
    a, b = sp.symbols("a b")
    return xs, a, b, sum(b * (xs[i + 1] - xs[i] ** 2) ** 2 + (a - xs[i]) ** 2 for i in range(n - 1))


def close(actual, expected, rtol: float = 1e-12) -> None:
    """Equal to rtol of each entry, or of the largest entry where an entry is (nearly) zero by cancellation."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.max(np.abs(expected)))


def counted(fun):
    """fun, and a list whose length is the number of times it was called (each call is one rhs evaluation,
    or k of them for a vectorized call with k columns)."""
    calls = []

    def wrapper(t, y, *args):
        calls.append(1 if np.ndim(y) == 1 else np.shape(y)[1])
        return fun(t, y, *args)
    return wrapper, calls


@pytest.fixture(scope="module")
def rosen2():
    xs, a, b, f = rosenbrock(2)
    return objective(f, xs, params=(a, b))


def robertson_rhs():
    t, k1, k2, k3 = sp.symbols("t k1 k2 k3")
    y1, y2, y3 = sp.symbols("y1:4")
    rhs = [-k1 * y1 + k3 * y2 * y3, k1 * y1 - k3 * y2 * y3 - k2 * y2 ** 2, k2 * y2 ** 2]
    return rhs, t, (y1, y2, y3), (k1, k2, k3)


@pytest.fixture(scope="module")
def robertson():
    rhs, t, y, params = robertson_rhs()
    return ode(rhs, t, y, params=params)


@pytest.fixture(scope="module")
def decay():
    A, k, c, t, y = sp.symbols("A k c t y")
    return residuals(A * sp.exp(-k * t) + c - y, (A, k, c), data=(t, y))


# ---- minimize ----

def test_rosenbrock_value_gradient_hessian_and_hvp_equal_scipys(rosen2):
    rng = np.random.default_rng(0)
    for x in rng.uniform(-2, 2, size=(10, 2)):
        p = rng.standard_normal(2)
        assert rosen2.fun(x, *ROSEN_ARGS) == pytest.approx(rosen(x), rel=1e-12)
        close(rosen2.jac(x, *ROSEN_ARGS), rosen_der(x))
        close(rosen2.hess(x, *ROSEN_ARGS), rosen_hess(x))
        close(rosen2.hessp(x, p, *ROSEN_ARGS), rosen_hess_prod(x, p))
        value, grad = rosen2.value_and_grad(x, *ROSEN_ARGS)
        assert value == pytest.approx(rosen(x), rel=1e-12)
        close(grad, rosen_der(x))


def test_the_hot_path_returns_plain_shapes_and_types(rosen2):
    x = np.array([-1.2, 1.0])
    assert type(rosen2.fun(x, *ROSEN_ARGS)) is float
    assert rosen2.jac(x, *ROSEN_ARGS).shape == (2,)
    hess = rosen2.hess(x, *ROSEN_ARGS)
    assert hess.shape == (2, 2) and np.array_equal(hess, hess.T)
    assert rosen2.hessp(x, [1.0, 0.0], *ROSEN_ARGS).shape == (2,)
    value, grad = rosen2.value_and_grad([-1.2, 1], *ROSEN_ARGS)   # a list, integers: converted
    assert type(value) is float and grad.shape == (2,)


METHODS = {
    "trust-exact": lambda obj: {"fun": obj.fun, "jac": obj.jac, "hess": obj.hess, "options": {"gtol": 1e-10}},
    "Newton-CG": lambda obj: {"fun": obj.fun, "jac": obj.jac, "hessp": obj.hessp, "options": {"xtol": 1e-10}},
    "trust-constr": lambda obj: {"fun": obj.fun, "jac": obj.jac, "hess": obj.hess,
                                 "options": {"gtol": 1e-10, "xtol": 1e-12}},
    "BFGS": lambda obj: {"fun": obj.value_and_grad, "jac": True, "options": {"gtol": 1e-10}},
}


@pytest.mark.parametrize("method", METHODS)
def test_minimize_converges_to_rosenbrocks_minimum(rosen2, method):
    result = minimize(x0=[-1.2, 1.0], args=ROSEN_ARGS, method=method, **METHODS[method](rosen2))
    assert result.success, result.message
    np.testing.assert_allclose(result.x, np.ones(2), atol=1e-7)


def test_newton_cg_takes_the_same_path_as_with_scipys_own_derivatives(rosen2):
    ours = minimize(rosen2.fun, [-1.2, 1.0], args=ROSEN_ARGS, jac=rosen2.jac, hessp=rosen2.hessp, method="Newton-CG")
    theirs = minimize(rosen, [-1.2, 1.0], jac=rosen_der, hessp=rosen_hess_prod, method="Newton-CG")
    np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-9)
    assert (ours.nfev, ours.njev, ours.nhev) == (theirs.nfev, theirs.njev, theirs.nhev)


def test_params_come_through_args(rosen2):
    """With a = 2, b = 50 the minimum moves to (a, a^2) = (2, 4): same compiled objective, other args."""
    result = minimize(rosen2.fun, [-1.2, 1.0], args=(2.0, 50.0), jac=rosen2.jac, hess=rosen2.hess,
                      method="trust-exact", options={"gtol": 1e-10})
    np.testing.assert_allclose(result.x, [2.0, 4.0], atol=1e-7)


HESSIAN_UP_TO = 20   # the n x n Hessian kernel's Numba compile grows ~n^4: 1.3 s at n = 10, 16 s at 20, 78 s at 30


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3, 5, 10, 20, 50])
def test_rosenbrock_sweep_to_50_dimensions(n):
    """From x0 = 0 (from (-1.2, 1, -1.2, ...) SciPy's own derivatives reach the local minimum near x0 = -1 for
    n >= 4); the Hessian (trust-exact) up to HESSIAN_UP_TO dimensions, Hessian-vector products and
    value_and_grad at every n."""
    xs, a, b, f = rosenbrock(n)
    obj = objective(f, xs, params=(a, b))
    rng = np.random.default_rng(n)
    for x in rng.uniform(-2, 2, size=(3, n)):
        close(obj.jac(x, *ROSEN_ARGS), rosen_der(x))
        close(obj.hessp(x, x, *ROSEN_ARGS), rosen_hess_prod(x, x))
        close(obj.value_and_grad(x, *ROSEN_ARGS)[1], rosen_der(x))
        if n <= HESSIAN_UP_TO:
            close(obj.hess(x, *ROSEN_ARGS), rosen_hess(x))
    methods = ("Newton-CG", "BFGS", "trust-exact") if n <= HESSIAN_UP_TO else ("Newton-CG", "BFGS")
    for method in methods:
        result = minimize(x0=np.zeros(n), args=ROSEN_ARGS, method=method, **METHODS[method](obj))
        assert result.success, (method, result.message)
        np.testing.assert_allclose(result.x, np.ones(n), atol=1e-6)


# ---- solve_ivp ----

def test_robertson_jacobian_is_sympys(robertson):
    rhs, t, y, params = robertson_rhs()
    exact = sp.lambdify([t, y, params], sp.Matrix(rhs).jacobian(y))
    rng = np.random.default_rng(1)
    for point in rng.uniform(0, 1, size=(5, 3)) * [1, 1e-4, 1]:
        close(robertson.jac(0.5, point, *ROBERTSON_ARGS), exact(0.5, point, ROBERTSON_ARGS))
        close(robertson.fun(0.5, point, *ROBERTSON_ARGS), np.ravel(sp.lambdify([t, y, params], rhs)(
            0.5, point, ROBERTSON_ARGS)))


def integrate_with_and_without_jac(system: ODESystem, t_end: float, y0, args: tuple, method: str,
                                   **options):
    """(solution with system.jac, solution with SciPy's finite-difference Jacobian, the rhs evaluations of each).
    sol.nfev leaves out the evaluations of the finite differences, so they are counted here."""
    runs = []
    for jac in (system.jac, None):
        fun, calls = counted(system.fun)
        sol = solve_ivp(fun, (0.0, t_end), y0, method=method, jac=jac, args=args, **ODE_TOL, **options)
        assert sol.success, sol.message
        runs.append((sol, sum(calls)))
    (ours, n_ours), (fd, n_fd) = runs
    return ours, fd, n_ours, n_fd


def assert_same_solution(ours, fd, scale: float = 10.0) -> None:
    """The final states agree to the solver's tolerance (times `scale`: each run has its own global error)."""
    np.testing.assert_allclose(ours.y[:, -1], fd.y[:, -1], rtol=scale * ODE_TOL["rtol"],
                               atol=scale * ODE_TOL["atol"])


@pytest.mark.parametrize("method", ["BDF", "Radau"])
def test_robertson_with_the_compiled_jacobian(robertson, method):
    ours, fd, n_ours, n_fd = integrate_with_and_without_jac(robertson, 40.0, [1.0, 0.0, 0.0], ROBERTSON_ARGS,
                                                            method)
    assert_same_solution(ours, fd)
    # the known solution at t = 40 (Hairer & Wanner's reference, to 4 digits)
    np.testing.assert_allclose(ours.y[:, -1], [0.7158, 9.185e-6, 0.2842], rtol=2e-4)
    assert n_ours < n_fd   # (sol.nfev is the same for both: it leaves out the finite differences' evaluations)
    assert ours.njev >= 1


def test_vectorized_fun_evaluates_columns_as_one_batch(robertson):
    rng = np.random.default_rng(2)
    columns = rng.uniform(0, 1, size=(3, 7)) * [[1], [1e-4], [1]]
    batch = robertson.fun(1.0, columns, *ROBERTSON_ARGS)
    assert batch.shape == (3, 7)
    for k in range(7):
        np.testing.assert_array_equal(batch[:, k], robertson.fun(1.0, columns[:, k], *ROBERTSON_ARGS))
    assert robertson.fun(1.0, columns[:, :1], *ROBERTSON_ARGS).shape == (3, 1)
    many = np.tile(columns, 1000)   # 7000 columns: more than one chunk, run on all threads
    np.testing.assert_array_equal(robertson.fun(1.0, many, *ROBERTSON_ARGS), np.tile(batch, 1000))


def test_solve_ivp_vectorized(robertson):
    """vectorized=True: SciPy's finite differences evaluate all columns in one call, with the same result."""
    plain = solve_ivp(robertson.fun, (0.0, 40.0), [1.0, 0.0, 0.0], method="BDF", args=ROBERTSON_ARGS, **ODE_TOL)
    fun, calls = counted(robertson.fun)
    batched = solve_ivp(fun, (0.0, 40.0), [1.0, 0.0, 0.0], method="BDF", args=ROBERTSON_ARGS, vectorized=True,
                        **ODE_TOL)
    assert_same_solution(batched, plain, scale=1.0)
    assert len(calls) < sum(calls)   # some calls held several columns


@pytest.mark.slow
@pytest.mark.parametrize("method", ["BDF", "Radau"])
def test_robertson_to_1e5(robertson, method):
    ours, fd, n_ours, n_fd = integrate_with_and_without_jac(robertson, 1e5, [1.0, 0.0, 0.0], ROBERTSON_ARGS,
                                                            method)
    assert_same_solution(ours, fd)
    assert abs(ours.y[:, -1].sum() - 1.0) < 1e-6   # mass is conserved
    assert n_ours < n_fd


@pytest.mark.slow
@pytest.mark.parametrize("method", ["BDF", "Radau"])
def test_van_der_pol_mu_1000(method):
    t, mu = sp.symbols("t mu")
    y1, y2 = sp.symbols("y1 y2")
    system = ode([y2, mu * (1 - y1 ** 2) * y2 - y1], t, (y1, y2), params=mu)
    ours, fd, n_ours, n_fd = integrate_with_and_without_jac(system, 3000.0, [2.0, 0.0], (1000.0,), method)
    assert_same_solution(ours, fd, scale=100.0)   # a relaxation oscillation: errors grow near its jumps
    assert n_ours < n_fd


def mass_action_network(n_species: int, n_reactions: int, seed: int):
    """A random mass-action network: reactions A -> B, A + B -> C and 2A -> B among n_species species, rate
    constants (the params) log-uniform over 1e-2..1e3 (stiff). Returns (rhs, t, species, rates, rate values)."""
    rng = np.random.default_rng(seed)
    t = sp.Symbol("t")
    ys = sp.symbols(f"s0:{n_species}")
    ks = sp.symbols(f"k0:{n_reactions}")
    rhs = [sp.Integer(0)] * n_species
    for k in ks:
        kind = rng.integers(3)
        a, b, c = rng.choice(n_species, size=3, replace=False)
        reactants, product = ([a], b) if kind == 0 else ([a, b], c) if kind == 1 else ([a, a], b)
        rate = k * sp.Mul(*(ys[i] for i in reactants))
        for i in reactants:
            rhs[i] -= rate
        rhs[product] += rate
    return rhs, t, ys, ks, 10.0 ** rng.uniform(-2, 3, size=n_reactions)


@pytest.mark.slow
def test_random_mass_action_network_of_30_species():
    rhs, t, ys, ks, rates = mass_action_network(30, 60, seed=3)
    system = ode(rhs, t, ys, params=ks)
    rng = np.random.default_rng(4)
    y0 = rng.uniform(0, 1, size=30)
    exact = sp.lambdify([t, ys, ks], sp.Matrix(rhs).jacobian(ys))
    close(system.jac(0.0, y0, *rates), exact(0.0, y0, rates))
    ours, fd, n_ours, n_fd = integrate_with_and_without_jac(system, 10.0, y0, tuple(rates), "BDF")
    assert_same_solution(ours, fd)
    assert n_ours < n_fd


# ---- least_squares ----

def decay_data(n: int = 100, seed: int = 5):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 5.0, n)
    return t, 3.0 * np.exp(-1.3 * t) + 0.5 + 0.01 * rng.standard_normal(n)


def test_least_squares_recovers_an_exponential_decay(decay):
    t, y = decay_data()
    fit = least_squares(decay.fun, [1.0, 1.0, 0.0], jac=decay.jac, args=(t, y))
    assert fit.success
    np.testing.assert_allclose(fit.x, [3.0, 1.3, 0.5], rtol=0.02)
    reference = least_squares(decay.fun, [1.0, 1.0, 0.0], args=(t, y))   # SciPy's finite differences
    np.testing.assert_allclose(fit.x, reference.x, rtol=1e-6)


def test_residual_jacobian_matches_finite_differences(decay):
    t, y = decay_data()
    x = np.array([2.0, 0.7, 0.3])
    jac = decay.jac(x, t, y)
    assert jac.shape == (100, 3) and decay.fun(x, t, y).shape == (100,)
    h = 1e-6
    for j in range(3):
        step = np.zeros(3)
        step[j] = h
        central = (decay.fun(x + step, t, y) - decay.fun(x - step, t, y)) / (2 * h)
        np.testing.assert_allclose(jac[:, j], central, rtol=1e-7, atol=1e-9)


def test_residuals_of_more_than_one_chunk_of_points(decay):
    t, y = decay_data()
    x = np.array([2.0, 0.7, 0.3])
    many_t, many_y = np.tile(t, 50), np.tile(y, 50)   # 5000 points: run on all threads
    np.testing.assert_array_equal(decay.fun(x, many_t, many_y), np.tile(decay.fun(x, t, y), 50))
    np.testing.assert_array_equal(decay.jac(x, many_t, many_y), np.tile(decay.jac(x, t, y), (50, 1)))


# ---- errors and inspection ----

def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("call", ["fun", "jac", "hess", "value_and_grad"])
def test_objective_refuses_a_wrong_x_length(rosen2, call):
    with pytest.raises(ValueError, match=r"x must be a vector of 2 value\(s\) \(x0, x1\), got shape \(3,\)") as e:
        getattr(rosen2, call)(np.ones(3), *ROSEN_ARGS)
    one_line(e)
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        getattr(rosen2, call)(np.ones((2, 2)), *ROSEN_ARGS)


def test_objective_refuses_wrong_args_and_p(rosen2):
    with pytest.raises(TypeError, match=r"expected 2 extra argument\(s\) \(a, b\) through args=, got 1") as e:
        rosen2.fun(np.ones(2), 1.0)
    one_line(e)
    with pytest.raises(ValueError, match=r"p must be a vector of 2 value\(s\)"):
        rosen2.hessp(np.ones(2), np.ones(3), *ROSEN_ARGS)
    with pytest.raises(ValueError, match=r"each extra argument one number; got x of dtype float64, extra "
                                         r"arguments of shapes \(\), \(2,\)") as e:
        rosen2.fun(np.ones(2), 1.0, np.ones(2))
    one_line(e)


def test_ode_and_residuals_refuse_wrong_lengths(robertson, decay):
    t, y = decay_data()
    cases = [(ValueError, r"y must be a vector of 3 value\(s\) \(y1, y2, y3\), got shape \(2,\)",
              lambda: robertson.fun(0.0, [1.0, 0.0], *ROBERTSON_ARGS)),
             (ValueError, r"y must be a vector of 3", lambda: robertson.jac(0.0, np.ones(4), *ROBERTSON_ARGS)),
             (ValueError, r"y must have shape \(3,\) or \(3, k\)", lambda: robertson.fun(0.0, np.ones((2, 5)),
                                                                                          *ROBERTSON_ARGS)),
             (TypeError, r"expected 3 extra argument\(s\) \(k1, k2, k3\)", lambda: robertson.fun(0.0, np.ones(3))),
             (ValueError, r"x must be a vector of 3 value\(s\) \(A, k, c\)", lambda: decay.fun([1.0, 2.0], t, y)),
             (TypeError, r"expected 2 extra argument\(s\) \(t, y\)", lambda: decay.jac([1.0, 2.0, 3.0], t))]
    for error, pattern, call in cases:
        with pytest.raises(error, match=pattern) as e:
            call()
        one_line(e)


def test_building_refuses_ill_formed_systems():
    x, y, t, a = sp.symbols("x y t a")
    with pytest.raises(ValueError, match="rhs has 1 expression"):
        ode([x], t, (x, y))
    with pytest.raises(ValueError, match="symbol 'x' appears in x and in params"):
        objective(x ** 2, [x], params=[x])
    with pytest.raises(TypeError, match="one scalar expression"):
        objective([x, y], [x, y])
    with pytest.raises(TypeError, match="x must be SymPy symbols"):
        residuals(x - a, [x, "a"])


def test_adapters_expose_the_compiled_module(rosen2, robertson, decay):
    assert isinstance(rosen2.module, ExprModule)
    assert rosen2.module.args == ("x0", "x1", "a", "b") and rosen2.module.wrt == ("x0", "x1")
    assert robertson.module.args == ("t", "y1", "y2", "y3", "k1", "k2", "k3")
    assert robertson.module.wrt == ("y1", "y2", "y3")
    assert decay.module.wrt == ("A", "k", "c") and "def jacobian" in decay.module.source


@pytest.mark.slow
def test_the_example_runs(monkeypatch):
    """examples/scipy_adapters.py: every solver reaches its answer (and --timing measures every call)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "examples"))
    result = importlib.import_module("scipy_adapters").main(["--timing", "--rounds", "1"])
    for run in result["minimize"].values():
        np.testing.assert_allclose(run["x"], [1.0, 1.0], atol=1e-4)
    ours, fd = result["solve_ivp"]["compiled jac"], result["solve_ivp"]["finite differences"]
    assert ours["rhs evaluations"] < fd["rhs evaluations"]
    np.testing.assert_allclose(result["least_squares"]["fitted"], [3.0, 1.3, 0.5], rtol=0.02)
    assert all(0 < us < 1e4 for us in result["per_call_us"].values())

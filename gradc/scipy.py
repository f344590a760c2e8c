"""SciPy adapters: compiled objectives, ODE right-hand sides and least-squares residuals.

    from gradc.scipy import objective, ode, residuals

    obj = objective(expr, x_symbols, params=(a, b))
    minimize(obj.fun, x0, args=(1.0, 100.0), jac=obj.jac, hess=obj.hess, method="trust-exact")
    minimize(obj.fun, x0, args=(1.0, 100.0), jac=obj.jac, hessp=obj.hessp, method="Newton-CG")
    minimize(obj.value_and_grad, x0, args=(1.0, 100.0), jac=True)

    sysm = ode(rhs, t, y_symbols, params=(k1, k2, k3))
    solve_ivp(sysm.fun, t_span, y0, method="BDF", jac=sysm.jac, args=(0.04, 3e7, 1e4))

    lsq = residuals(expr, x_symbols, data=(t, y))
    least_squares(lsq.fun, x0, jac=lsq.jac, args=(t_array, y_array))

Each adapter compiles once (`gradc.compile_expr`) and exposes the result as `.module` (an ExprModule: its
`.source` is the generated code). Extra values arrive through SciPy's `args=`, in the order of `params`
(or `data`), so one compiled adapter serves every parameter value.

Speed. An optimiser or a stiff solver calls these thousands of times at one small point, so a call does
little Python around the kernel: the point and the args are checked and passed as plain numbers straight to
the serial twin of the generated module's kernel (no broadcasting, no parallel region: one point is one
chunk of work), which writes into a fresh result array.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy

from gradc.module import ExprModule
from gradc.pipeline import compile_expr

__all__ = ["objective", "ode", "residuals", "Objective", "ODESystem", "Residuals"]


# ---- shared helpers ----

def _symbol_tuple(value: Any, what: str) -> tuple[sympy.Symbol, ...]:
    """One Symbol or a sequence of them, as a tuple; TypeError (one line) for anything else."""
    items = (value,) if isinstance(value, sympy.Symbol) else tuple(value)
    for s in items:
        if not isinstance(s, sympy.Symbol):
            raise TypeError(f"{what} must be SymPy symbols (plain scalars), got {type(s).__name__}: {s!r:.60}")
    return items


def _names(symbols: Sequence[sympy.Symbol]) -> str:
    return ", ".join(s.name for s in symbols) or "none"


def _check_distinct(groups: dict[str, tuple[sympy.Symbol, ...]]) -> None:
    """ValueError if a symbol appears twice across the named groups (e.g. in x and in params)."""
    seen: dict[sympy.Symbol, str] = {}
    for what, symbols in groups.items():
        for s in symbols:
            if s in seen:
                raise ValueError(f"symbol {s.name!r} appears in {seen[s]} and in {what}: each input has one role")
            seen[s] = what


def _pack(adapter: str, what: str, names: Sequence[sympy.Symbol], params: Sequence[sympy.Symbol],
          head: tuple, vector: Any, args: tuple) -> list[float]:
    """(*head, *vector, *args) as a list of Python floats, the generated functions' one-point inputs; TypeError
    if len(args) != len(params), ValueError if vector is not len(names) numbers (or an arg not a number)."""
    if len(args) != len(params):
        raise _args_error(adapter, params, len(args))
    if (type(vector) is np.ndarray and vector.dtype is _FLOAT64 and vector.shape == (len(names),)
            and _floats(args) and _floats(head)):
        return [*head, *vector.tolist(), *args]   # as SciPy calls: nothing to convert
    try:
        values = np.concatenate((head, vector, args), dtype=np.float64)
    except (ValueError, TypeError):
        raise _vector_error(adapter, what, names, vector, args) from None
    if values.shape[0] != len(head) + len(names) + len(params):
        raise _vector_error(adapter, what, names, vector, args)
    return values.tolist()


_FLOAT64 = np.dtype(np.float64)


def _floats(values: tuple) -> bool:
    """Whether every value is a float (a Python float or NumPy float64); a loop: cheaper than all() here."""
    for v in values:
        if not isinstance(v, float):
            return False
    return True


def _args_error(adapter: str, names: Sequence[sympy.Symbol], got: int) -> TypeError:
    return TypeError(f"{adapter}: expected {len(names)} extra argument(s) ({_names(names)}) through args=, "
                     f"got {got}")


def _vector_error(adapter: str, what: str, names: Sequence[sympy.Symbol], value: Any, args: tuple = ()) -> ValueError:
    shape = np.shape(value)
    if shape == (len(names),):   # the shape is right: a value is not a number, or an arg is not one number
        shapes = ", ".join(str(np.shape(a)) for a in args) or "none"
        return ValueError(f"{adapter}: every value must be a real number, each extra argument one number; got "
                          f"{what} of dtype {np.asarray(value).dtype}, extra arguments of shapes {shapes}")
    return ValueError(f"{adapter}: {what} must be a vector of {len(names)} value(s) ({_names(names)}), "
                      f"got shape {shape}")


class _AtPoint:
    """A module's kernels run at one point, the adapters' hot path: the inputs are numbers as _pack makes them,
    each kernel is its serial twin (gradc/runtime/expr.py), each result a fresh array of the module's dtype."""

    def __init__(self, module: ExprModule):
        kernels = module.module
        self._module = module
        self.dtype = kernels.DTYPE
        self.m, self.n = len(kernels.OUTPUTS), len(kernels.WRT_INDEX)
        self._number = None if self.dtype == np.float64 else self.dtype.type   # a float is Numba's float64
        self._rows = kernels._serial_twin(kernels._row_kernel)
        self._value_and_grad = kernels._serial_twin(kernels._value_and_grad_kernel)

    def _derivative_twin(self, kernel: str):
        """The serial twin of a derivative kernel (whose code is emitted when first asked for)."""
        kernels = self._module.module_with_derivatives
        return kernels._serial_twin(getattr(kernels, kernel))

    @functools.cached_property
    def _jacobian(self):
        return self._derivative_twin("_jacobian_kernel")

    @functools.cached_property
    def _hessian(self):
        return self._derivative_twin("_hessian_kernel")

    @functools.cached_property
    def _hvp(self):
        return self._derivative_twin("_hvp_kernel")

    def _cast(self, numbers: list[float]) -> list:
        return numbers if self._number is None else list(map(self._number, numbers))

    def value(self, numbers: list[float]) -> float:
        """The one output."""
        out = np.empty((1, 1), self.dtype)
        self._rows(*self._cast(numbers), out)
        return out.item()

    def values(self, numbers: list[float]) -> np.ndarray:
        """The outputs, shape (m,)."""
        out = np.empty((1, self.m), self.dtype)
        self._rows(*self._cast(numbers), out)
        return out.reshape(self.m)

    def value_and_grad(self, numbers: list[float]) -> tuple[float, np.ndarray]:
        """(the one output, its gradient w.r.t. WRT, shape (n,)): one pass."""
        out = np.empty((1, 1), self.dtype)
        grads = np.zeros((self.n, 1, 1))   # a number's gradient buffer: one chunk, float64
        self._value_and_grad(*self._cast(numbers), out[0], *grads)
        return float(out[0, 0]), grads.reshape(self.n).astype(self.dtype, copy=False)

    def jacobian(self, numbers: list[float]) -> np.ndarray:
        """∂output_i/∂wrt_j, shape (m, n)."""
        out = np.empty((1, self.m * self.n), self.dtype)
        self._jacobian(*self._cast(numbers), out)
        return out.reshape(self.m, self.n)

    def hessian(self, numbers: list[float]) -> np.ndarray:
        """The one output's Hessian, shape (n, n)."""
        out = np.empty((1, self.n * self.n), self.dtype)
        self._hessian(*self._cast(numbers), out)
        return out.reshape(self.n, self.n)

    def hvp(self, numbers: list[float], v: list[float]) -> np.ndarray:
        """The one output's Hessian times v, shape (n,)."""
        out = np.empty((1, self.n), self.dtype)
        self._hvp(*self._cast(numbers), *self._cast(v), out)
        return out.reshape(self.n)


# ---- minimize: objective ----

class Objective:
    """A compiled scalar objective f(x; params) for scipy.optimize.minimize.

    Every method takes the optimisation vector x (shape (n,)) followed by the values of `params`, the way
    SciPy passes `args=`. Raises ValueError if x does not have n entries and TypeError if the number of
    extra arguments is not len(params)."""

    def __init__(self, module: ExprModule, x: tuple[sympy.Symbol, ...], params: tuple[sympy.Symbol, ...]):
        self.module = module
        self.x_symbols, self.params = x, params
        self.n = len(x)
        self._at = _AtPoint(module)

    def _inputs(self, x: Any, args: tuple) -> list[float]:
        return _pack("objective", "x", self.x_symbols, self.params, (), x, args)

    def fun(self, x: Any, *args: float) -> float:
        """f(x; args) as a float."""
        return self._at.value(_pack("objective", "x", self.x_symbols, self.params, (), x, args))

    def jac(self, x: Any, *args: float) -> np.ndarray:
        """The gradient ∂f/∂x, shape (n,)."""
        return self._at.jacobian(self._inputs(x, args)).reshape(self.n)

    def hess(self, x: Any, *args: float) -> np.ndarray:
        """The Hessian ∂²f/∂x∂x, shape (n, n), exactly symmetric."""
        return self._at.hessian(self._inputs(x, args))

    def hessp(self, x: Any, p: Any, *args: float) -> np.ndarray:
        """The Hessian at x times the vector p (shape (n,)), without forming the Hessian: shape (n,)."""
        inputs = self._inputs(x, args)
        p = np.asarray(p, dtype=np.float64)
        if p.shape != (self.n,):
            raise _vector_error("objective.hessp", "p", self.x_symbols, p)
        return self._at.hvp(inputs, p.tolist())

    def value_and_grad(self, x: Any, *args: float) -> tuple[float, np.ndarray]:
        """(f, ∂f/∂x) from one pass: pass it as minimize's fun with jac=True."""
        return self._at.value_and_grad(self._inputs(x, args))

    def __repr__(self) -> str:
        return f"Objective(x=({_names(self.x_symbols)}), params=({_names(self.params)}))"


def objective(expr: sympy.Expr, x: sympy.Symbol | Sequence[sympy.Symbol],
              params: sympy.Symbol | Sequence[sympy.Symbol] = (), **compile_options: Any) -> Objective:
    """Compile the scalar `expr` in the symbols x (the optimisation vector, in this order) and params (values
    passed through SciPy's args=, in this order) into an Objective. compile_options go to compile_expr
    (name=, dtype=, debug=). Every free symbol of expr must be in x or params."""
    module, x, params = _compile_scalar("objective", " (for several residuals use gradc.scipy.residuals)", expr, x,
                                        params, "params", compile_options)
    return Objective(module, x, params)


def _compile_scalar(adapter: str, why: str, expr: sympy.Expr, x: Any, extra: Any, extra_role: str,
                    options: dict[str, Any]) -> tuple[ExprModule, tuple[sympy.Symbol, ...], tuple[sympy.Symbol, ...]]:
    """(module, x, extra) for an adapter of one scalar expression differentiated w.r.t. x; one-line errors for a
    sequence, no x, or a symbol in two roles."""
    if isinstance(expr, (list, tuple, sympy.MatrixBase)):
        raise TypeError(f"{adapter} takes one scalar expression{why}")
    x, extra = _symbol_tuple(x, "x"), _symbol_tuple(extra, extra_role)
    if not x:
        raise ValueError(f"{adapter} needs at least one x symbol")
    _check_distinct({"x": x, extra_role: extra})
    return compile_expr(expr, [*x, *extra], wrt=list(x), **options), x, extra


# ---- solve_ivp: ode ----

class ODESystem:
    """A compiled right-hand side dy/dt = rhs(t, y; params) with its Jacobian, for scipy.integrate.solve_ivp.

    fun(t, y, *args): y of shape (n,) gives (n,); y of shape (n, k) (solve_ivp with vectorized=True, which
    then calls fun with (n, 1) columns too) gives (n, k), the k columns evaluated as one batch.
    jac(t, y, *args): y of shape (n,) gives J of shape (n, n), J[i, j] = ∂rhs_i/∂y_j.
    ValueError if y has the wrong number of rows, TypeError if len(args) != len(params)."""

    def __init__(self, module: ExprModule, t: sympy.Symbol, y: tuple[sympy.Symbol, ...],
                 params: tuple[sympy.Symbol, ...]):
        self.module = module
        self.t, self.y_symbols, self.params = t, y, params
        self.n = len(y)
        self._kernels = module.module
        self._at = _AtPoint(module)

    def fun(self, t: float, y: Any, *args: float) -> np.ndarray:
        """dy/dt: shape (n,) for y of shape (n,), (n, k) for y of shape (n, k)."""
        if np.ndim(y) == 2:
            return self._fun_columns(t, np.asarray(y, dtype=np.float64), args)
        return self._at.values(_pack("ode", "y", self.y_symbols, self.params, (t,), y, args))

    def _fun_columns(self, t: float, y: np.ndarray, args: tuple) -> np.ndarray:
        """fun for the k columns of y (n, k) as one batch: t and the args shared (plain numbers), y's rows."""
        if y.shape[0] != self.n:
            raise ValueError(f"ode: y must have shape ({self.n},) or ({self.n}, k) for the states "
                             f"({_names(self.y_symbols)}), got shape {y.shape}")
        shared = _pack("ode", "y", self.y_symbols, self.params, (t,), y[:, 0], args)
        return np.stack(self._kernels.forward(shared[0], *y, *shared[1 + self.n:]))

    def jac(self, t: float, y: Any, *args: float) -> np.ndarray:
        """J[i, j] = ∂rhs_i/∂y_j at (t, y), shape (n, n)."""
        return self._at.jacobian(_pack("ode", "y", self.y_symbols, self.params, (t,), y, args))

    def __repr__(self) -> str:
        return f"ODESystem(t={self.t.name}, y=({_names(self.y_symbols)}), params=({_names(self.params)}))"


def _rhs_list(rhs: Any) -> list:
    """The right-hand side as a list of n expressions: a list/tuple, or a column or row Matrix."""
    if isinstance(rhs, sympy.MatrixBase):
        if 1 not in rhs.shape:
            raise ValueError(f"ode: rhs must be a column or row Matrix, got shape {rhs.shape}")
        return list(rhs)
    if not isinstance(rhs, (list, tuple)):
        raise TypeError(f"ode: rhs must be a list or Matrix of expressions, got {type(rhs).__name__}")
    return list(rhs)


def ode(rhs: Any, t: sympy.Symbol, y: Sequence[sympy.Symbol], params: sympy.Symbol | Sequence[sympy.Symbol] = (),
        **compile_options: Any) -> ODESystem:
    """Compile dy/dt = rhs(t, y; params): rhs a list (or column Matrix) of n expressions, one per symbol of y,
    in t, y and params (values passed through solve_ivp's args=, in this order). compile_options go to
    compile_expr."""
    exprs = _rhs_list(rhs)
    if not isinstance(t, sympy.Symbol):
        raise TypeError(f"ode: t must be one SymPy symbol, got {type(t).__name__}: {t!r:.60}")
    y, params = _symbol_tuple(y, "y"), _symbol_tuple(params, "params")
    if len(exprs) != len(y):
        raise ValueError(f"ode: rhs has {len(exprs)} expression(s) but y has {len(y)} symbol(s): one per state")
    _check_distinct({"t": (t,), "y": y, "params": params})
    module = compile_expr(exprs, [t, *y, *params], wrt=list(y), **compile_options)
    return ODESystem(module, t, y, params)


# ---- least_squares: residuals ----

class Residuals:
    """A compiled residual r(x; data) for scipy.optimize.least_squares, one residual per data point.

    fun(x, *data) -> (n_points,); jac(x, *data) -> (n_points, n). The data arrays (in the order of `data`)
    broadcast together like NumPy arrays; their broadcast shape, flattened, is the points. ValueError if x
    does not have n entries, TypeError if the number of data arrays is not len(data)."""

    def __init__(self, module: ExprModule, x: tuple[sympy.Symbol, ...], data: tuple[sympy.Symbol, ...]):
        self.module = module
        self.x_symbols, self.data = x, data
        self.n = len(x)
        self._kernels = module.module

    def _inputs(self, x: Any, data: tuple) -> tuple:
        """x as plain numbers (shared by all points), then the data arrays as they are."""
        if len(data) != len(self.data):
            raise _args_error("residuals", self.data, len(data))
        return (*_pack("residuals", "x", self.x_symbols, (), (), x, ()), *data)

    def fun(self, x: Any, *data: Any) -> np.ndarray:
        """The residual at every data point, shape (n_points,)."""
        return np.ravel(self._kernels.forward(*self._inputs(x, data)))

    def jac(self, x: Any, *data: Any) -> np.ndarray:
        """∂r_i/∂x_j, shape (n_points, n)."""
        return self.module.jacobian(*self._inputs(x, data)).reshape(-1, self.n)

    def __repr__(self) -> str:
        return f"Residuals(x=({_names(self.x_symbols)}), data=({_names(self.data)}))"


def residuals(expr: sympy.Expr, x: sympy.Symbol | Sequence[sympy.Symbol],
              data: sympy.Symbol | Sequence[sympy.Symbol] = (), **compile_options: Any) -> Residuals:
    """Compile the scalar residual `expr` in x (the fitted parameters, in this order) and data (symbols whose
    values are the data arrays passed through least_squares' args=, in this order) into Residuals.
    compile_options go to compile_expr."""
    module, x, data = _compile_scalar("residuals", ": its value at each data point is one residual", expr, x, data,
                                      "data", compile_options)
    return Residuals(module, x, data)

"""The objects gradc hands to users: compiled modules with call-time validation."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gradc import jit
from gradc.backend import expr as expr_backend
from gradc.backend import mlp as mlp_backend
from gradc.backend import support
from gradc.errors import UnsupportedError
from gradc.frontend.spec import parse_optimizer


def _lazy(*values: Any) -> bool:
    """Whether an argument is a Dask collection (then gradc.distributed computes the call); read from the
    types' modules, so that NumPy calls neither import nor wait for Dask."""
    for value in values:   # a loop, not any(...): a training loop's loss_and_grad pays for this check
        kind = type(value)
        if kind.__module__.startswith("dask.") or ((kind is list or kind is tuple) and _lazy(*value)):
            return True
    return False


def _dask(part: str) -> ModuleType:
    """A part of gradc's Dask support (gradc/distributed/), imported on the first call with a dask array:
    Dask is an optional extra."""
    return importlib.import_module(f"gradc.distributed.{part}")


class CompiledModule:
    """Shared behaviour: the generated `source`, `write(path)`, and the imported kernels. In this process the
    module imports the runtime definitions it shares with every module of its kind (its `runtimes`) from one
    support module (gradc/backend/support.py); `write` gives the standalone text."""

    runtimes: tuple[str, ...] = ()

    def __init__(self, source: str | Callable[[], str], op_counts: dict[str, int]):
        self._source = source                 # the text, or how to emit it when it is first needed
        self.op_counts = op_counts            # {"forward": n, "backward": m} IR operations
        self._module: ModuleType | None = None

    @property
    def source(self) -> str:
        """The standalone module's text: what `write` writes."""
        if not isinstance(self._source, str):
            self._source = self._source()
        return self._source

    def _load(self, source: str) -> ModuleType:
        """Import `source` (its kernels compile on first call, or load from the disk cache)."""
        linked = support.link(source, self.runtimes)
        return jit.load_source(source) if linked is None else jit.load_source(*linked)

    @property
    def module(self) -> ModuleType:
        """The generated module, imported (and its kernels compiled or loaded from cache) on first use."""
        if self._module is None:
            self._module = self._load(self.source)
        return self._module

    def write(self, path: str | os.PathLike) -> Path:
        """Write the standalone module (numpy + numba only) atomically; returns the path."""
        path = Path(path)
        if path.suffix != ".py":
            raise ValueError(f"module path must end in .py, got {str(path)!r}")
        return jit.write_atomic(path, self.source)


class ExprModule(CompiledModule):
    """A compiled SymPy expression (or sequence of them), evaluated at batches of points."""

    runtimes = expr_backend.RUNTIMES

    def __init__(self, source: str | Callable[[], str], op_counts: dict[str, int], args: Sequence[str],
                 wrt: Sequence[str], n_outputs: int, gradient_source: str | None = None,
                 program: Any = None, exprs: Sequence[Any] = ()):
        super().__init__(source, op_counts)
        self.args = tuple(args)
        self.wrt = tuple(wrt)
        self.n_outputs = n_outputs
        self.program = program      # the differentiated Program it was emitted from (explain, cost)
        self.exprs = tuple(exprs)   # the SymPy expressions compiled
        self._gradient_source = gradient_source   # the module without its derivative kernels, if emitted apart
        self._with_derivatives: ModuleType | None = None

    @property
    def module(self) -> ModuleType:
        """The kernels of forward and the gradients, imported on first use. The Jacobian, Hessian, JVP and HVP
        kernels are emitted (most of a large expression's code) only when one is first asked for: see
        `module_with_derivatives`."""
        if self._module is None:
            self._module = self._load(self.source if self._gradient_source is None else self._gradient_source)
        return self._module

    @property
    def module_with_derivatives(self) -> ModuleType:
        """The whole generated module (the standalone text's), derivative kernels included."""
        if self._with_derivatives is None:
            self._with_derivatives = self.module if self._gradient_source is None else self._load(self.source)
        return self._with_derivatives

    def _check_count(self, inputs: tuple) -> None:
        if len(inputs) != len(self.args):
            raise TypeError(f"expected {len(self.args)} inputs ({', '.join(map(repr, self.args)) or 'none'}), "
                            f"got {len(inputs)}")

    def forward(self, *inputs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        """Value at every point of the broadcast inputs (a tuple for a sequence of expressions)."""
        self._check_count(inputs)
        if _lazy(*inputs):
            return _dask("expr").forward(self, inputs)
        return self.module.forward(*inputs)

    def grad(self, *inputs: Any, **cotangents: Any) -> tuple[np.ndarray, ...]:
        """Gradient of sum(f) w.r.t. each `wrt` input, shaped like it (a scalar input gets a scalar)."""
        self._check_count(inputs)
        if _lazy(*inputs, *cotangents.values()):
            return _dask("expr").value_and_grad(self, inputs, value=False, **cotangents)
        return self.module.grad(*inputs, **cotangents)

    def value_and_grad(self, *inputs: Any, **cotangents: Any) -> tuple[Any, tuple[np.ndarray, ...]]:
        """(forward(*inputs), grad(*inputs)) from one pass over the points."""
        self._check_count(inputs)
        if _lazy(*inputs, *cotangents.values()):
            return _dask("expr").value_and_grad(self, inputs, **cotangents)
        return self.module.value_and_grad(*inputs, **cotangents)

    def _derivative(self, name: str):
        function = getattr(self.module_with_derivatives, name, None)
        if function is None:
            why = ("it differentiates nothing (wrt is empty)" if not self.wrt else
                   "hvp takes a single expression" if name == "hvp" and self.n_outputs > 1 else
                   "forward mode does not differentiate w.r.t. an array input (IndexedBase, MatrixSymbol) yet")
            raise UnsupportedError(f"{name} is not available for this module: {why}")
        return function

    def jacobian(self, *inputs: Any) -> np.ndarray:
        """∂f/∂(each wrt input) at every point (not summed): the batch shape + the output shape (() for an
        expression, (m,) for a sequence, a Matrix's shape) + (len(wrt),)."""
        self._check_count(inputs)
        if _lazy(*inputs):
            self._derivative("jacobian")
            return _dask("expr").per_point(self, "jacobian", inputs)
        return self._derivative("jacobian")(*inputs)

    def hessian(self, *inputs: Any) -> np.ndarray:
        """Second derivatives at every point: the batch shape + the output shape + (len(wrt), len(wrt)),
        exactly symmetric."""
        self._check_count(inputs)
        if _lazy(*inputs):
            self._derivative("hessian")
            return _dask("expr").per_point(self, "hessian", inputs)
        return self._derivative("hessian")(*inputs)

    def jvp(self, *inputs: Any, tangents: Sequence[Any]) -> tuple[Any, Any]:
        """(forward value, its directional derivative along `tangents`: one per wrt input, broadcasting like
        the inputs), from one forward-mode pass."""
        self._check_count(inputs)
        if _lazy(*inputs, tangents):
            self._derivative("jvp")
            return _dask("expr").per_point(self, "jvp", inputs, tangents)
        return self._derivative("jvp")(*inputs, tangents)

    def hvp(self, *inputs: Any, v: Sequence[Any]) -> tuple[np.ndarray, ...]:
        """The Hessian of a single expression times `v` (one array per wrt input) at every point."""
        self._check_count(inputs)
        if _lazy(*inputs, v):
            self._derivative("hvp")
            return _dask("expr").per_point(self, "hvp", inputs, v)
        return self._derivative("hvp")(*inputs, v)

    def explain(self, at: Mapping[Any, float] | None = None):
        """The circuit at the point `at` ({symbol or name: number}): gate values, local derivatives and
        adjoints in the generated code's names (gradc/tools/explain.py); without `at`, its structure."""
        from gradc.tools.explain import explain_program

        return explain_program(self._program(), at)

    def cost(self, measure: bool = False):
        """Op counts (forward, backward, sympy.diff + cse), temporaries and bytes per point; with `measure`,
        the measured time per point next to this machine's memory-bandwidth bound (gradc/tools/cost.py)."""
        from gradc.tools.cost import expr_cost

        return expr_cost(self, measure=measure)

    def _program(self) -> Any:
        if self.program is None:
            raise UnsupportedError("this module does not keep its program: compile it with gradc.compile_expr")
        return self.program

    def _repr_svg_(self) -> str | None:
        return _display(lambda: self.explain().svg(), self.program is not None and self.op_counts["forward"] <= 400)

    def __repr__(self) -> str:
        return f"ExprModule(args={self.args}, wrt={self.wrt}, outputs={self.n_outputs})"


class MLPModule(CompiledModule):
    """A compiled MLP: batched forward, loss, gradients and an SGD step (see the generated module)."""

    runtimes = mlp_backend.RUNTIMES

    def __init__(self, source: str, op_counts: dict[str, int], spec: Any):
        super().__init__(source, op_counts)
        self.spec = spec
        self.param_names = tuple(self.param_shapes)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.spec.param_shapes()

    @property
    def blas(self) -> str:
        """The BLAS the products call: "MKL" when the `mkl` package is installed, else "OpenBLAS"
        (SciPy's), or as GRADC_BLAS demands (gradc/runtime/blas.py)."""
        return self.module._BLAS["name"]

    @property
    def threads(self) -> int:
        """Threads the elementwise loops of large arrays run on: more than 1 where they share MKL's
        OpenMP threads (modules with a layer of 512 units or more), or as GRADC_THREADS demands
        (gradc/runtime/threads.py)."""
        count = getattr(self.module, "_THREADS", None)   # absent where no loop could split
        return count.value if count is not None and getattr(self.module, "_PARALLEL", False) else 1

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Fresh parameters (weights by each layer's init rule, zero biases)."""
        return self.module.init_params(seed)

    def forward(self, params: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        """The last layer's activations, shape (N, units of the last layer)."""
        if _lazy(X):
            return _dask("mlp").rowwise(self, "forward", params, X)
        return self.module.forward(params, X)

    def loss(self, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> float:
        if _lazy(X, Y):
            return _dask("mlp").loss_and_grad(self, params, X, Y, grads=False)
        return self.module.loss(params, X, Y)

    def loss_and_grad(self, params: dict[str, np.ndarray], X: np.ndarray,
                      Y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """(loss, gradients keyed and shaped like params)."""
        if _lazy(X, Y):
            return _dask("mlp").loss_and_grad(self, params, X, Y)
        return self.module.loss_and_grad(params, X, Y)

    def sgd_step(self, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, lr: float) -> float:
        """Update params in place by -lr·gradient; returns the loss before the step."""
        return self.module.sgd_step(params, X, Y, lr)

    def init_state(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Optimiser state for params: the step count ("step") and zero moments ("m_<name>", "v_<name>")."""
        return self.module.init_state(params)

    def step(self, params: dict[str, np.ndarray], state: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray,
             optimizer: Mapping[str, Any] | str | None = None) -> float:
        """One optimiser step on params and state in place (one compiled call); the loss before the step.
        `optimizer` (a mapping like the spec's field) overrides the spec's optimizer."""
        return self.module.step(params, state, X, Y, _optimizer(optimizer))

    def fit(self, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, epochs: int = 10,
            batch_size: int = 32, shuffle: bool = True, seed: int = 0,
            validation: tuple[np.ndarray, np.ndarray] | None = None, progress: bool = True,
            callback: Callable[[int, dict[str, list[float]]], Any] | None = None,
            optimizer: Mapping[str, Any] | str | None = None,
            state: dict[str, np.ndarray] | None = None, strategy: str = "sync",
            sync_every: int | None = None) -> dict[str, list[float]]:
        """Train params in place with the spec's optimizer (or `optimizer`), each epoch one compiled call
        (shuffle, mini-batch steps, running loss); returns {"loss", "val_loss", "val_accuracy"} per epoch
        (the validation entries with `validation`). See the generated module's fit.

        With dask X and Y, trains on the current distributed Client (or Dask's threads): `strategy` "sync",
        synchronous data-parallel steps (fit's trajectory in memory), or "local", local epochs on each chunk
        averaged every `sync_every` steps (see gradc/distributed/train.py)."""
        if _lazy(X, Y):
            return _dask("train").fit(self, params, X, Y, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                                      seed=seed, validation=validation, progress=progress, callback=callback,
                                      optimizer=_optimizer(optimizer), state=state, strategy=strategy,
                                      sync_every=sync_every)
        if strategy != "sync" or sync_every is not None:
            raise ValueError("strategy and sync_every apply to dask arrays; X and Y are in memory")
        return self.module.fit(params, X, Y, epochs=epochs, batch_size=batch_size, shuffle=shuffle, seed=seed,
                               validation=validation, progress=progress, callback=callback,
                               optimizer=_optimizer(optimizer), state=state)

    def predict(self, params: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        """Class indices (softmax_cross_entropy, hinge), 0/1 per output (binary_cross_entropy) or outputs."""
        if _lazy(X):
            return _dask("mlp").rowwise(self, "predict", params, X)
        return self.module.predict(params, X)

    def predict_proba(self, params: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax_cross_entropy: rows sum to 1; binary_cross_entropy: per output)."""
        if _lazy(X):
            return _dask("mlp").rowwise(self, "predict_proba", params, X)
        return self.module.predict_proba(params, X)

    def save_params(self, params: dict[str, np.ndarray], path: str | os.PathLike[str]) -> None:
        """Write params to an .npz file stamped with the network's fingerprint."""
        self.module.save_params(params, path)

    def load_params(self, path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
        """Read params written by save_params; ValueError if the file is another network's."""
        return self.module.load_params(path)

    def explain(self, X: np.ndarray | None = None, Y: np.ndarray | None = None,
                params: Mapping[str, np.ndarray] | None = None):
        """The layer graph with shapes, in the generated code's names; with a batch X, Y (and params, by
        default init_params(0)) the mean and std of each layer's values and gradients (gradc/tools/netview.py)."""
        from gradc.tools.netview import explain_net

        return explain_net(self.spec, X, Y, params)

    def cost(self, batch: int = 64, measure: bool = False):
        """FLOPs and bytes of one training step at `batch` rows, and op counts; with `measure`, the measured
        step time next to this machine's GEMM-peak and memory-bandwidth bounds (gradc/tools/cost.py)."""
        from gradc.tools.cost import mlp_cost

        return mlp_cost(self, batch=batch, measure=measure)

    def _repr_svg_(self) -> str | None:
        return _display(lambda: self.explain().svg())

    def __repr__(self) -> str:
        return f"MLPModule({self.spec.name!r}, params={self.param_names})"


def _display(draw: Callable[[], str], allowed: bool = True) -> str | None:
    """A notebook's picture of a module, or None (no picture) where drawing is refused or fails."""
    if not allowed:
        return None
    try:
        return draw()
    except Exception:   # a display hook must never raise: the notebook falls back to repr
        return None


def _optimizer(optimizer: Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    """An optimiser override checked as the spec's field is (SpecError naming the field), as a mapping."""
    return None if optimizer is None else parse_optimizer(optimizer).to_dict()

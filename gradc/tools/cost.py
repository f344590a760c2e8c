"""What a compiled module costs: op counts (and the swell of symbolic differentiation it avoids), the
temporaries its kernel keeps alive, the bytes it moves, FLOPs for networks, and, when measured, its time
next to the bounds this machine's memory bandwidth and matrix-multiply peak imply.

Counts are of the program's IR (core/program.py `op_counts`): one per operation, as the kernels compute
them. The symbolic comparison counts with `sympy.count_ops` the derivatives `sympy.diff` gives for the
same wrt symbols, alone and after `sympy.cse`. Bytes are compulsory traffic, a lower bound: every input
and parameter read once, every result written once, and (networks) each layer's activations written in
the forward pass and read back in the backward pass. Machine bounds are measured once per process with
NumPy (a 64 MB copy; 512 x 512 and 1024 x 1024 matrix products), best of a few runs: on a busy machine
they can come out low, and a measured time can then beat its "bound".
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gradc.core import ir


@dataclass(frozen=True)
class Machine:
    """This machine's measured memory bandwidth (bytes/s, a copy: read + write) and float64 GEMM rate (FLOP/s)."""

    bandwidth: float
    gemm_flops: float


def _best(run: Callable[[], Any], repeat: int) -> float:
    """The fastest of `repeat` timed calls of `run` (after one untimed call), in seconds."""
    run()
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def machine() -> Machine:
    """Measure (once per process) the copy bandwidth and the matrix-multiply peak of this machine."""
    a = np.ones(8 << 20)            # 64 MB: well past the caches
    b = np.empty_like(a)
    copy = _best(lambda: np.copyto(b, a), 5)
    rates = []
    for n in (512, 1024):   # the better of two sizes: a busy machine slows one run, rarely both
        m = np.random.default_rng(0).standard_normal((n, n))
        rates.append(2 * n ** 3 / _best(lambda m=m: m @ m, 5))
    return Machine(bandwidth=2 * a.nbytes / copy, gemm_flops=max(rates))


# -------------------------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class ExprCost:
    """Per point of an expression module's value_and_grad (see the module docstring for the units)."""

    title: str
    forward_ops: int
    backward_ops: int
    sympy_ops: int | None          # count_ops of the expressions
    sympy_diff_ops: int | None     # count_ops of sympy.diff of their sum, once per wrt symbol (no sharing)
    sympy_cse_ops: int | None      # count_ops of cse(expressions + those derivatives): replacements + reduced
    temporaries: int               # values alive at once in the value_and_grad kernel's body
    bytes_read: int
    bytes_written: int
    points: int | None = None      # measured: points per call
    seconds_per_point: float | None = None
    bandwidth_bound: float | None = None   # seconds per point the bytes need at this machine's bandwidth

    @property
    def ratio(self) -> float:
        """Backward ops per forward op (reverse mode promises a small constant)."""
        return self.backward_ops / self.forward_ops if self.forward_ops else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}

    def __str__(self) -> str:
        lines = [f"cost of {self.title}",
                 f"  ops per point      forward {self.forward_ops}, backward {self.backward_ops} "
                 f"(ratio {self.ratio:.2f}; gradc IR ops)"]
        if self.sympy_ops is not None:
            lines += [f"  sympy              f: {self.sympy_ops} ops (sympy.count_ops); its derivatives by sympy.diff: "
                      f"{self.sympy_diff_ops} ops,",
                      f"                     f and the derivatives after sympy.cse: {self.sympy_cse_ops} ops "
                      f"(gradc: {self.forward_ops + self.backward_ops})"]
        lines += [f"  temporaries        at most {self.temporaries} alive at once (value_and_grad kernel)",
                  f"  bytes per point    read {self.bytes_read}, written {self.bytes_written} (value_and_grad)"]
        if self.seconds_per_point is not None:
            lines.append(f"  measured           {self.seconds_per_point * 1e9:.2f} ns/point over {self.points:,} "
                         f"points; memory-bandwidth lower bound {self.bandwidth_bound * 1e9:.2f} ns/point "
                         f"(measured / bound = {self.seconds_per_point / self.bandwidth_bound:.2f})")
        return "\n".join(lines)


def temporaries(program: Any) -> int:
    """The most values (not inputs or constants) alive at once when the kernel computes the outputs and
    then the gradients in topological order: a value lives from its statement to its last use, and the
    outputs and gradients until they are stored (outputs after the forward pass, gradients at the end)."""
    forward = ir.topological_order(program.outputs)
    seen = {id(n) for n in forward}
    schedule = [*forward, *(n for n in ir.topological_order([*program.outputs, *program.grads]) if id(n) not in seen)]
    position = {id(n): k for k, n in enumerate(schedule)}
    last = {}
    for k, n in enumerate(schedule):
        for x in n.inputs:
            last[id(x)] = k
    for o in program.outputs:
        last[id(o)] = max(last.get(id(o), 0), len(forward) - 1)
    for g in program.grads:
        last[id(g)] = len(schedule)
    alive = [0] * (len(schedule) + 1)
    for n in schedule:
        if not n.is_leaf:
            for k in range(position[id(n)], last.get(id(n), position[id(n)]) + 1):
                alive[k] += 1
    return max(alive, default=0)


def _sympy_counts(module: Any) -> tuple[int | None, int | None, int | None]:
    """count_ops of the expressions, of their sum's sympy.diff per wrt symbol, and of cse of all of them."""
    import sympy

    if not module.exprs:
        return None, None, None
    symbols = {getattr(s, "name", str(s)): s for e in module.exprs for s in e.free_symbols}
    try:
        total = sympy.Add(*module.exprs)
        diffs = [sympy.diff(total, symbols[w]) for w in module.wrt if w in symbols]
        replacements, reduced = sympy.cse([*module.exprs, *diffs])
    except (TypeError, ValueError, AttributeError, NotImplementedError):   # an array input sympy cannot diff
        return None, None, None
    ops = sum(sympy.count_ops(e) for e in module.exprs)
    cse_ops = sum(sympy.count_ops(v) for _, v in replacements) + sum(sympy.count_ops(e) for e in reduced)
    return int(ops), int(sum(sympy.count_ops(d) for d in diffs)), int(cse_ops)


def expr_cost(module: Any, measure: bool = False, points: int = 1_000_000) -> ExprCost:
    """The cost of an ExprModule (see ExprCost); with `measure`, value_and_grad timed on `points` points."""
    program = module._program()
    itemsize = np.dtype(program.dtype).itemsize

    def size(x: Any) -> int:
        return int(np.prod(x.shape)) if x.shape else 1

    read = sum(size(x) for x in program.inputs) * itemsize
    written = (len(program.outputs) + sum(size(x) for x in program.wrt)) * itemsize
    counts = program.op_counts()
    timing = {}
    if measure:
        timing = _measure_expr(module, program, points, read + written)
    title = "; ".join(f"{program.name} = {e}" for e in (program.origin or ()))
    return ExprCost(title, counts["forward"], counts["backward"], *_sympy_counts(module), temporaries(program),
                    read, written, **timing)


def _measure_expr(module: Any, program: Any, points: int, nbytes: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    args = [rng.uniform(0.1, 1.0, (points, *x.shape)).astype(program.dtype) for x in program.inputs]
    seconds = _best(lambda: module.value_and_grad(*args), 5)
    return {"points": points, "seconds_per_point": seconds / points,
            "bandwidth_bound": nbytes / machine().bandwidth}


# ----------------------------------------------------------------------------------------------- networks


@dataclass(frozen=True)
class MLPCost:
    """One training step (loss and every gradient) of a network at `batch` rows."""

    title: str
    batch: int
    forward_ops: int               # IR ops of the program (each a whole-array statement)
    backward_ops: int
    gemm_flops: int                # matrix products: forward, and backward's weight and input gradients
    elementwise_flops: int         # biases, activations and their derivatives, the loss (IR ops per element)
    bytes: int                     # compulsory traffic, a lower bound
    seconds: float | None = None   # measured loss_and_grad
    gemm_bound: float | None = None
    bandwidth_bound: float | None = None

    @property
    def flops(self) -> int:
        return self.gemm_flops + self.elementwise_flops

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flops": self.flops}

    def __str__(self) -> str:
        lines = [f"cost of one training step of {self.title} at batch {self.batch}",
                 f"  statements         forward {self.forward_ops}, backward {self.backward_ops} (gradc IR ops)",
                 f"  FLOPs per step     {self.flops:,} ({self.gemm_flops:,} in matrix products, "
                 f"{self.elementwise_flops:,} elementwise)",
                 f"  bytes per step     {self.bytes:,} (compulsory: inputs, parameters, gradients, activations)",
                 f"  arithmetic intensity {self.flops / max(self.bytes, 1):.2f} FLOP/byte"]
        if self.seconds is not None:
            bound = max(self.gemm_bound, self.bandwidth_bound)
            lines.append(f"  measured           {self.seconds * 1e6:.1f} µs per step; lower bounds: GEMM peak "
                         f"{self.gemm_bound * 1e6:.1f} µs, memory bandwidth {self.bandwidth_bound * 1e6:.1f} µs "
                         f"(measured / larger bound = {self.seconds / bound:.2f})")
        return "\n".join(lines)


def _activation_ops(spec: Any) -> list[tuple[int, int]]:
    """Per layer: (forward, backward) IR ops per element of its activation (0, 0 for the identity)."""
    from gradc.frontend.mlp import compile_activation

    out = []
    for i, layer in enumerate(spec.layers):
        if layer.formula.strip() == "z":
            out.append((0, 0))
            continue
        counts = compile_activation(layer.activation, layer.formula, spec.dtype, f"layers[{i}]").program.op_counts()
        out.append((counts["forward"], counts["backward"] + 1))   # + 1: the adjoint times h'(z)
    return out


def mlp_cost(module: Any, batch: int = 64, measure: bool = False) -> MLPCost:
    """The cost of one loss_and_grad of an MLPModule at `batch` rows (see MLPCost)."""
    spec = module.spec
    itemsize = np.dtype(spec.dtype).itemsize
    gemm = elementwise = 0
    stored = 0
    fan_in = spec.input
    for k, (layer, (fwd, bwd)) in enumerate(zip(spec.layers, _activation_ops(spec))):
        cells = batch * layer.units
        gemm += 2 * batch * fan_in * layer.units * (3 if k > 0 else 2)   # a @ W; d_W; d_a (not for X)
        elementwise += cells * (fwd + bwd + (2 if layer.bias else 0))   # + bias, and the bias gradient's sum
        stored += cells * (1 if layer.formula.strip() == "z" else 2)   # z and h, kept for the backward pass
        fan_in = layer.units
    elementwise += 3 * batch * spec.layers[-1].units   # the loss and its gradient
    n_params = sum(int(np.prod(s)) for s in spec.param_shapes().values())
    n_io = batch * (spec.input + spec.layers[-1].units)
    nbytes = itemsize * (n_io + 2 * n_params + 2 * stored)
    counts = module.op_counts
    timing = {}
    if measure:
        timing = _measure_mlp(module, batch, gemm + elementwise, nbytes)
    from gradc.tools.bench import describe

    return MLPCost(describe(spec), batch, counts["forward"], counts["backward"], gemm, elementwise, nbytes, **timing)


def _measure_mlp(module: Any, batch: int, flops: int, nbytes: int) -> dict[str, float]:
    spec = module.spec
    rng = np.random.default_rng(0)
    params = module.init_params(0)
    X = rng.standard_normal((batch, spec.input)).astype(spec.dtype)
    units = spec.layers[-1].units
    if spec.loss in ("softmax_cross_entropy", "hinge"):
        Y = np.eye(units, dtype=spec.dtype)[rng.integers(0, units, batch)]
    else:
        Y = rng.uniform(0, 1, (batch, units)).astype(spec.dtype)
    seconds = _best(lambda: module.loss_and_grad(params, X, Y), 20)
    m = machine()
    return {"seconds": seconds, "gemm_bound": flops / m.gemm_flops, "bandwidth_bound": nbytes / m.bandwidth}

"""Expression modules on dask arrays: the module's own functions applied block by block.

The inputs (dask arrays, NumPy arrays, numbers) are aligned like NumPy broadcasting by `da.blockwise`: each
task receives one block of every array input (its own axes, an IndexedBase's or a MatrixSymbol's, whole)
and calls the module's function on them, which broadcasts within the block as it does in memory. A task
returns all of its results at once (a value and gradients from one pass); each result becomes a dask array
of its own. A gradient w.r.t. an input broadcast along some batch axes is summed within each block into one
float64 entry per block, then across blocks by Dask's tree reduction, in float64, and cast to the module's
dtype once, at the end.
"""

from __future__ import annotations

import operator
import string
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from gradc.distributed.remote import kernel_of

_BATCH = string.ascii_lowercase   # index letters of the broadcast batch axes
_OWN = string.ascii_uppercase     # index letters of the inputs' own axes, unique per input


class _Plan:
    """How the inputs align: the broadcast batch shape, each term's own shape, and for each term the batch
    axes along which it is broadcast (where its gradient must be summed)."""

    def __init__(self, values: Sequence[Any], own: Sequence[tuple[int, ...]], names: Sequence[str]):
        self.own = [tuple(o) for o in own]
        self.terms = [_term(v, o, n) for v, o, n in zip(values, self.own, names)]
        batches = [() if not isinstance(t, da.Array) else t.shape[: t.ndim - len(o)]
                   for t, o in zip(self.terms, self.own)]
        try:
            self.shape = tuple(np.broadcast_shapes(*batches))
        except ValueError:
            shapes = ", ".join(f"{n}: {getattr(t, 'shape', ())}" for n, t in zip(names, self.terms))
            raise ValueError(f"inputs do not broadcast together ({shapes})") from None
        self.ndim = len(self.shape)
        self.batches = batches
        self.reduced = [self._broadcast_axes(b) for b in batches]

    def _broadcast_axes(self, batch: tuple[int, ...]) -> tuple[int, ...] | None:
        """The batch axes a term of batch shape `batch` is broadcast along (None: it covers every axis)."""
        offset = self.ndim - len(batch)
        axes = tuple(d for d in range(self.ndim)
                     if d < offset or (batch[d - offset] == 1 and self.shape[d] != 1))
        return axes or None

    def blockwise_args(self) -> list[Any]:
        """The (term, index) pairs da.blockwise takes: batch letters aligned to the right, then own letters."""
        args: list[Any] = []
        own_letters = iter(_OWN)
        for term, batch, own in zip(self.terms, self.batches, self.own):
            if not isinstance(term, da.Array):
                args += [term, None]
                continue
            index = _BATCH[self.ndim - len(batch): self.ndim] + "".join(next(own_letters) for _ in own)
            args += [term, index]
        return args


def _term(value: Any, own: tuple[int, ...], name: str) -> Any:
    """An input as blockwise takes it: a dask array (its own axes in one chunk), or a number passed to every
    task as it is. A NumPy array becomes a one-chunk dask array, split like the others by blockwise."""
    if not isinstance(value, da.Array):
        array = np.asarray(value)
        if array.ndim == 0 and not own:
            return value
        value = da.from_array(array, chunks=-1)
    if value.dtype.kind not in "biuf":
        raise TypeError(f"argument {name!r} must be real numbers, got an array of dtype {value.dtype}")
    if own:
        if value.shape[value.ndim - len(own):] != own:
            raise ValueError(f"argument {name!r} must have shape (..., {', '.join(map(str, own))}): its last "
                             f"axes are one point's value; got shape {value.shape}")
        value = value.rechunk({value.ndim - len(own) + k: -1 for k in range(len(own))})
    return value


def _run_block(kernel, task: dict, *blocks: Any) -> tuple[np.ndarray, ...]:
    """One task: the module's `task["method"]` on one block of each input (then the tangents or cotangents),
    as a flat tuple of arrays. Gradients of broadcast inputs come back summed over the block's broadcast
    axes, kept as axes of length 1, in float64."""
    module = kernel.module
    n = task["inputs"]
    inputs, extra = list(blocks[:n]), list(blocks[n:])
    method = task["method"]
    if method == "forward":
        return _flat(module.forward(*inputs))
    if method in ("jacobian", "hessian"):
        return (getattr(module, method)(*inputs),)
    if method in ("jvp", "hvp"):
        return _flat(getattr(module, method)(*inputs, extra))
    wrt, own, reduced = task["wrt"], task["own"], task["reduced"]
    if task["expand"]:   # float32: per-point gradients, summed below in float64 rather than by the kernel
        shape = np.broadcast_shapes(*(np.shape(x)[: np.ndim(x) - len(o)] for x, o in zip(inputs, own)))
        for k, axes in zip(wrt, reduced):
            if axes is not None:
                inputs[k] = np.broadcast_to(inputs[k], shape + own[k])
    cotangents = {} if task["cotangents"] is None else {
        "cotangents": extra[0] if task["cotangents"] == "matrix" else extra}
    value, grads = module.value_and_grad(*inputs, **cotangents)
    grads = tuple(_block_sum(g, axes, task["ndim"], own[k]) for g, k, axes in zip(grads, wrt, reduced))
    return grads if method == "grad" else (*_flat(value), *grads)


def _flat(result: Any) -> tuple[np.ndarray, ...]:
    """A module function's result as a flat tuple of arrays (a sequence's tuples spliced in)."""
    if not isinstance(result, tuple):
        return (np.asarray(result),)
    return tuple(a for part in result for a in _flat(part))


def _block_sum(g: Any, axes: tuple[int, ...] | None, ndim: int, own: tuple[int, ...]) -> np.ndarray:
    """One block's gradient of an input: as it is where the input covers every batch axis, else summed in
    float64 over the broadcast `axes`, with every batch axis kept (length 1 where summed)."""
    g = np.asarray(g)
    if axes is None:
        return g
    g = g.reshape((1,) * (ndim - (g.ndim - len(own))) + g.shape)
    summed = tuple(a for a in axes if g.shape[a] != 1)
    return g.sum(axis=summed, keepdims=True, dtype=np.float64) if summed else g.astype(np.float64)


def _part(tmp: da.Array, k: int, ones: tuple[int, ...], extra: tuple[int, ...], dtype: Any) -> da.Array:
    """The k-th array of each block of `tmp` (whose blocks are tuples) as a dask array: length-1 chunks along
    the axes `ones`, the block's own along the others, then the `extra` axes in one chunk."""
    name = f"gradc-part-{tokenize(tmp.name, k, ones, extra)}"
    zeros = (0,) * len(extra)
    graph = {(name, *index, *zeros): (operator.getitem, (tmp.name, *index), k) for index in np.ndindex(*tmp.numblocks)}
    chunks = tuple((1,) * len(c) if d in ones else c for d, c in enumerate(tmp.chunks)) + tuple((s,) for s in extra)
    layer = HighLevelGraph.from_collections(name, graph, dependencies=[tmp])
    return da.Array(layer, name, chunks, meta=np.empty((0,) * len(chunks), dtype))


def _output_shapes(module) -> list[tuple[int, ...]]:
    """The extra axes of each value array a task returns: one per output of a sequence, else one array."""
    if module.LAYOUT is not None:
        return [tuple(module.LAYOUT)]
    return [()] * len(module.OUTPUTS) if module.SEQUENCE else [()]


def _shaped(module, parts: list[da.Array]) -> Any:
    """Value arrays as the module's forward gives them: a tuple for a sequence, else the one array."""
    return tuple(parts) if module.SEQUENCE and module.LAYOUT is None else parts[0]


class _Call:
    """One blockwise call of a module's function on dask inputs (and its extra terms: tangents or cotangents)."""

    def __init__(self, compiled, inputs: Sequence[Any], extra: Sequence[Any] = (), extra_own=None,
                 extra_names=(), derivatives: bool = False):
        self.module = module = compiled.module
        self.kernel = dask.delayed(kernel_of(compiled, derivatives), pure=True)
        own = [*module.ARG_SHAPES, *(extra_own or [()] * len(extra))]
        self.plan = _Plan([*inputs, *extra], own, [*module.ARGS, *extra_names])
        self.n_inputs = len(inputs)

    def run(self, method: str, **task: Any) -> da.Array:
        """The dask array whose blocks are the tuples `_run_block` returns."""
        plan = self.plan
        task = {"method": method, "inputs": self.n_inputs, **task}
        return da.blockwise(_run_block, _BATCH[: plan.ndim], self.kernel, None, task, None,
                            *plan.blockwise_args(), meta=np.empty((0,) * plan.ndim, object), concatenate=True,
                            align_arrays=True)

    def values(self, tmp: da.Array, start: int, shapes: list[tuple[int, ...]]) -> list[da.Array]:
        return [_part(tmp, start + k, (), extra, self.module.DTYPE) for k, extra in enumerate(shapes)]

    def gradient(self, tmp: da.Array, k: int, arg: int) -> da.Array:
        """The gradient of input `arg` from part k of `tmp`: reduced across blocks where it was broadcast."""
        plan, dtype = self.plan, self.module.DTYPE
        axes = plan.reduced[arg]
        own = plan.own[arg]
        if axes is None:
            return _part(tmp, k, (), own, dtype)
        part = _part(tmp, k, axes, own, np.float64)
        total = part.sum(axis=axes, keepdims=True, dtype=np.float64)   # Dask's tree reduction
        term = plan.terms[arg]
        return total.reshape(tuple(getattr(term, "shape", ()))).astype(dtype)


def forward(compiled, inputs: Sequence[Any]) -> Any:
    """ExprModule.forward on dask inputs: dask arrays (a tuple of them for a sequence of expressions)."""
    call = _Call(compiled, inputs)
    shapes = _output_shapes(call.module)
    return _shaped(call.module, call.values(call.run("forward"), 0, shapes))


def _cotangent_terms(module, cotangents: Any) -> tuple[list[Any], list[tuple[int, ...]] | None, str | None]:
    """A sequence's cotangents as extra blockwise terms: one per output, or a Matrix's one array."""
    if cotangents is None:
        return [], None, None
    if module.LAYOUT is not None:
        return [cotangents], [tuple(module.LAYOUT)], "matrix"
    cotangents = list(cotangents)
    if len(cotangents) != len(module.OUTPUTS):
        raise ValueError(f"expected {len(module.OUTPUTS)} cotangents (one per output), got {len(cotangents)}")
    return cotangents, [()] * len(cotangents), "list"


def value_and_grad(compiled, inputs: Sequence[Any], value: bool = True, *, cotangents: Any = None) -> Any:
    """ExprModule.value_and_grad (or, without `value`, grad) on dask inputs, from one pass over the blocks."""
    module = compiled.module
    extra, extra_own, mode = _cotangent_terms(module, cotangents)
    call = _Call(compiled, inputs, extra, extra_own, [f"cotangent {k}" for k in range(len(extra))])
    wrt = tuple(module.WRT_INDEX)
    tmp = call.run("value_and_grad" if value else "grad", wrt=wrt, own=call.plan.own[: len(inputs)],
                   reduced=[call.plan.reduced[k] for k in wrt], ndim=call.plan.ndim, cotangents=mode,
                   expand=module.DTYPE != np.float64)
    shapes = _output_shapes(module) if value else []
    grads = tuple(call.gradient(tmp, len(shapes) + j, k) for j, k in enumerate(wrt))
    return (_shaped(module, call.values(tmp, 0, shapes)), grads) if value else grads


def per_point(compiled, method: str, inputs: Sequence[Any], extra: Sequence[Any] = ()) -> Any:
    """jacobian, hessian, jvp (extra: the tangents) or hvp (extra: v) on dask inputs, blockwise."""
    module = compiled.module
    wrt = len(module.WRT_INDEX)
    extra = list(extra)
    if method in ("jvp", "hvp") and len(extra) != wrt:
        raise ValueError(f"expected {wrt} {'tangents' if method == 'jvp' else 'v arrays'} "
                         f"(one per argument of WRT), got {len(extra)}")
    names = [f"tangent of {module.ARGS[k]}" for k in module.WRT_INDEX][: len(extra)]
    call = _Call(compiled, inputs, extra, None, names, derivatives=True)
    tmp = call.run(method)
    outputs = _output_shapes(module)
    out_shape = outputs[0] if module.LAYOUT is not None else (len(outputs),) if module.SEQUENCE else ()
    if method == "jacobian":
        return call.values(tmp, 0, [out_shape + (wrt,)])[0]
    if method == "hessian":
        return call.values(tmp, 0, [out_shape + (wrt, wrt)])[0]
    if method == "hvp":
        return tuple(call.values(tmp, 0, [()] * wrt))
    parts = call.values(tmp, 0, outputs + outputs)
    half = len(outputs)
    return _shaped(module, parts[:half]), _shaped(module, parts[half:])

"""Call-time support for the derivative kernels of generated expression modules (backend/derivatives.py).

Copied below the RUNTIME marker into every written expression module, after gradc/runtime/expr.py, whose
helpers and constants it uses (imported here above the marker so that this file is linted and tested as
ordinary code).
"""
from gradc.runtime.expr import (  # noqa: I001 (above the marker: not copied)
    ARG_SHAPES, ARGS, DTYPE, LAYOUT, OUTPUTS, SEQUENCE, WRT_INDEX, _prepare, _run)


def _jacobian_kernel(*arrays):
    raise NotImplementedError("the kernels are a written module's")


def _hessian_kernel(*arrays):
    raise NotImplementedError("the kernels are a written module's")


def _jvp_kernel(*arrays):
    raise NotImplementedError("the kernels are a written module's")


def _hvp_kernel(*arrays):
    raise NotImplementedError("the kernels are a written module's")


# --- RUNTIME ---
import numpy as np


def _output_shape():
    """The axes of one point's outputs: () for an expression, (m,) for a sequence, a Matrix's shape."""
    if LAYOUT is not None:
        return tuple(LAYOUT)
    return (len(OUTPUTS),) if SEQUENCE else ()


def _per_point(inputs, width, kernel, tangents=None):
    """Run `kernel` over the broadcast inputs (and tangents, one per WRT argument, broadcast with them) into a
    (points, width) array; returns (batch shape, that array)."""
    names, own = list(ARGS), list(ARG_SHAPES)
    values = list(inputs)
    if tangents is not None:
        tangents = list(tangents)
        if len(tangents) != len(WRT_INDEX):
            raise ValueError(f"expected {len(WRT_INDEX)} tangents (one per argument of WRT), got {len(tangents)}")
        values += tangents
        names += [f"tangent of {ARGS[k]}" for k in WRT_INDEX]
        own += [ARG_SHAPES[k] for k in WRT_INDEX]
    shape, n, _, args = _prepare(values, names, DTYPE, own)
    out = np.empty((n, width), DTYPE)
    _run(kernel, n, *args, out)
    return tuple(shape), out


def _jacobians(inputs):
    """The body of a module's jacobian: ∂output/∂(each WRT argument), per point."""
    w = len(WRT_INDEX)
    shape, out = _per_point(inputs, len(OUTPUTS) * w, _jacobian_kernel)
    return out.reshape(shape + _output_shape() + (w,))


def _hessians(inputs):
    """The body of a module's hessian: the second derivatives of each output, per point (symmetric)."""
    w = len(WRT_INDEX)
    shape, out = _per_point(inputs, len(OUTPUTS) * w * w, _hessian_kernel)
    return out.reshape(shape + _output_shape() + (w, w))


def _jvps(inputs, tangents):
    """The body of a module's jvp: (value as forward gives it, derivative along `tangents`, shaped alike)."""
    m = len(OUTPUTS)
    shape, out = _per_point(inputs, 2 * m, _jvp_kernel, tangents)
    values, derivatives = out[:, :m], out[:, m:]
    if LAYOUT is not None:
        return values.reshape(shape + tuple(LAYOUT)), derivatives.reshape(shape + tuple(LAYOUT))
    if SEQUENCE:
        return (tuple(values[:, k].reshape(shape) for k in range(m)),
                tuple(derivatives[:, k].reshape(shape) for k in range(m)))
    return values.reshape(shape), derivatives.reshape(shape)


def _hvps(inputs, v):
    """The body of a module's hvp: the Hessian times v at every point, one array per WRT argument."""
    shape, out = _per_point(inputs, len(WRT_INDEX), _hvp_kernel, v)
    return tuple(out[:, k].reshape(shape) for k in range(len(WRT_INDEX)))

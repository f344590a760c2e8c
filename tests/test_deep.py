"""Deeply nested expressions compile: no recursion limit in gradc's pipeline (SymPy's own recursive walks
run in a thread with a large stack and a raised recursion limit; gradc's walks are iterative)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import sympy as sp

import gradc
from gradc import pipeline
from gradc.core import interpret, passes
from gradc.core.graph import Graph

x = sp.Symbol("x", real=True)


def nested_sin(depth: int) -> sp.Expr:
    """sin(sin(...sin(x))) built without SymPy's evaluation (which recurses on its own)."""
    e = x
    for _ in range(depth):
        e = sp.sin(e, evaluate=False)
    return e


def chain_value_and_derivative(depth: int, at: float) -> tuple[float, float]:
    """The oracle: the value of sin applied `depth` times and its derivative by the chain rule."""
    value, derivative = at, 1.0
    for _ in range(depth):
        derivative *= math.cos(value)
        value = math.sin(value)
    return value, derivative


def test_sin_nested_200_deep_compiles_and_runs():
    points = np.array([-1.2, 0.3, 0.9])
    value, (grad,) = gradc.compile_expr(nested_sin(200)).value_and_grad(points)
    want = [chain_value_and_derivative(200, p) for p in points]
    np.testing.assert_allclose(value, [v for v, _ in want], rtol=1e-12)
    np.testing.assert_allclose(grad, [d for _, d in want], rtol=1e-10)


def _check_program(depth: int) -> None:
    program = pipeline._deep(pipeline.expr_program, nested_sin(depth))
    points = np.array([0.4, 1.1])
    value, grad = interpret.evaluate([*program.outputs, *program.grads], {"x": points})
    want = [chain_value_and_derivative(depth, p) for p in points]
    np.testing.assert_allclose(value, [v for v, _ in want], rtol=1e-12)
    np.testing.assert_allclose(grad, [d for _, d in want], rtol=1e-9)


def test_sin_nested_600_deep_lowers_and_differentiates_at_the_default_recursion_limit():
    assert sys.getrecursionlimit() < 5_000
    _check_program(600)
    assert sys.getrecursionlimit() < 5_000   # restored


@pytest.mark.slow
def test_sin_nested_3000_deep_lowers_and_differentiates():
    _check_program(3_000)


def test_a_sum_of_many_terms_is_split_without_recursion():
    g = Graph()
    terms = [g.input(f"t{k}") for k in range(5_000)]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    assert passes._terms(total) == terms


def test_errors_of_the_compile_thread_reach_the_caller():
    with pytest.raises(gradc.UnsupportedError, match="besselj|BesselJ|besselj"):
        gradc.compile_expr(sp.besselj(0, x))

"""What a compiled module offers, for the command line's summary: its public functions' signatures
with a note on each, and the modules it imports."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

MLP_FUNCTIONS = ("init_params", "forward", "loss", "loss_and_grad", "sgd_step")
EXPR_FUNCTIONS = ("forward", "grad", "value_and_grad")


def signatures(source_text: str, functions: Sequence[str]) -> dict[str, str]:
    """name -> 'name(arg, arg=default)' for the module-level functions of a generated module."""
    found = {}
    for node in ast.parse(source_text).body:
        if isinstance(node, ast.FunctionDef) and node.name in functions:
            found[node.name] = f"{node.name}({ast.unparse(node.args)})"
    return {name: found[name] for name in functions if name in found}


def describe_mlp(module: Any) -> list[str]:
    spec = module.spec
    shapes = ", ".join(f"{k} {_shape(v)}" for k, v in module.param_shapes.items())
    n_in, n_out = spec.input, spec.layers[-1].units
    labels = " or integer labels (N,)" if spec.loss in ("softmax_cross_entropy", "hinge") else ""
    notes = {
        "init_params": f"-> params: {shapes}",
        "forward": f"X (N, {n_in}) -> (N, {n_out})",
        "loss": f"Y (N, {n_out}){labels} -> float",
        "loss_and_grad": "-> (loss, grads keyed and shaped like params)",
        "sgd_step": "params -= lr * grads, in place -> loss before the step",
    }
    return _aligned(signatures(module.source, MLP_FUNCTIONS), notes)


def _module_constant(source_text: str, name: str) -> Any:
    """The literal value assigned to `name` at the top level of a generated module (None if absent)."""
    for node in ast.parse(source_text).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def describe_expr(module: Any) -> list[str]:
    sigs = signatures(module.source, EXPR_FUNCTIONS)
    wrt_names = _module_constant(module.source, "WRT") or module.wrt   # as the module spells them
    wrt = ", ".join(f"d_{w}" for w in wrt_names)
    out = "value" if module.n_outputs == 1 else f"tuple of {module.n_outputs} values"
    summed = "sum(f)" if module.n_outputs == 1 else "sum(cotangent_k * f_k) (cotangents default 1)"
    notes = {
        "forward": f"-> {out}; inputs broadcast like NumPy",
        "grad": f"-> ({wrt}{',' if len(wrt_names) == 1 else ''}): d {summed} / d each, shaped like it",
        "value_and_grad": f"-> ({out}, grads) in one pass",
    }
    return _aligned(sigs, notes)


def imports(source_text: str) -> set[str]:
    """Top-level names of the modules a generated module imports (numpy, numba, math, ...)."""
    names = set()
    for node in ast.walk(ast.parse(source_text)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _aligned(sigs: dict[str, str], notes: dict[str, str]) -> list[str]:
    width = max(map(len, sigs.values()), default=0)
    return [f"  {sig.ljust(width)}  {notes.get(name, '')}".rstrip() for name, sig in sigs.items()]


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"

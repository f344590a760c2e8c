"""`gradc warmup` (gradc/tools/warmup.py): after it, a new model compiles only its own kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from gradc.frontend.spec import ACTIVATIONS, LOSSES
from gradc.tools import warmup

_NEW_NETWORK = textwrap.dedent("""
    import json, numpy as np, sympy as sp
    from numba.core import event
    import gradc
    net = gradc.compile_mlp({"input": 7, "layers": [{"units": 13, "activation": "gelu"}, {"units": 4}],
                             "loss": "softmax_cross_entropy", "optimizer": {"name": "adam"}})
    x, y = sp.symbols("x y")
    f = gradc.compile_expr(sp.cos(x * y) + sp.sqrt(1 + x**2))
    X, labels = np.random.default_rng(0).standard_normal((16, 7)), np.arange(16) % 4
    with event.install_recorder("numba:compile") as compiled:
        params = net.init_params(0)
        net.fit(params, X, labels, epochs=2, batch_size=4, progress=False)
        net.loss_and_grad(params, X, labels), net.predict(params, X)
        f.value_and_grad(np.linspace(0, 1, 9), 0.5)
    names = {e.data["dispatcher"].py_func.__qualname__ for _, e in compiled.buffer if e.is_start}
    own = {name for m in (net.module, f.module) for name in vars(m)
           if getattr(getattr(m, name), "py_func", None) is not None
           and getattr(m, name).py_func.__module__ == m.__name__}
    print(json.dumps({"compiled": sorted(names), "own": sorted(own)}))
""")


def test_the_tasks_cover_every_builtin_activation_loss_and_dtype():
    steps = [what for what, _ in warmup.tasks()]
    assert len(steps) == len(set(steps)) == 2 * (len(LOSSES) + 2)
    assert set(warmup._LOSSES) == set(LOSSES)
    assert set(warmup._HIDDEN) | {"identity"} == set(ACTIVATIONS)


@pytest.mark.slow
def test_after_warmup_a_new_model_compiles_only_its_own_kernels(tmp_path):
    env = {**os.environ, "GRADC_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "gradc.tools.cli", "warmup", "--dtype", "float64", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=900, check=True)
    assert "warmed gradc's shared code for float64" in done.stdout
    run = subprocess.run([sys.executable, "-c", _NEW_NETWORK], env=env, capture_output=True, text=True,
                         timeout=600, check=True)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    shared = [name for name in report["compiled"]
              if name.removesuffix("_serial") not in report["own"]   # a kernel's serial twin is the module's too
              and "<locals>" not in name]                            # overloads compile inside their caller
    assert not shared, f"compiled again after warmup: {shared}"
    assert "_loss_and_grad" in report["compiled"]   # the network's own kernels do compile

"""Kernels loaded from the cache by a fresh process: the sequences of processes users run (a notebook, then
another, then a script; Dask workers; `gradc warmup` then a first model) must load and run what the earlier
ones compiled, with the results they computed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

_RUN = textwrap.dedent("""
    import json, sys
    import numpy as np
    import gradc
    units = int(sys.argv[1])
    net = gradc.compile_mlp({"input": 5, "layers": [{"units": units, "activation": "tanh"}, {"units": 3}],
                             "loss": "mse"})
    rng = np.random.default_rng(units)
    X, Y = rng.standard_normal((50, 5)), rng.standard_normal((50, 3))
    params = net.init_params(0)
    loss, grads = net.loss_and_grad(params, X, Y)
    print(json.dumps({"loss": float(loss), "grads": {k: v.tolist() for k, v in grads.items()}}))
""")


def _process(units: int, cache) -> dict:
    """Compile (or load) and run a small network in a new process; its loss and gradients."""
    env = {**os.environ, "GRADC_CACHE_DIR": str(cache)}
    run = subprocess.run([sys.executable, "-c", _RUN, str(units)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, f"process exited with {run.returncode}: {run.stderr[-2000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_kernel_compiled_against_cached_shared_code_loads_in_a_fresh_process(tmp_path):
    # The first process compiles the shared support code (parallel loops) into the cache; the second compiles
    # its own small, serial kernels against the cached support; the third loads those kernels alone. Before
    # the support code started Numba's threads at import, the third crashed (Numba issue 8578).
    _process(7, tmp_path)
    compiled = _process(9, tmp_path)
    loaded = _process(9, tmp_path)
    assert loaded["loss"] == compiled["loss"]
    for name, grad in compiled["grads"].items():
        np.testing.assert_array_equal(loaded["grads"][name], grad)

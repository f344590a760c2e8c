"""Support code shared between modules (gradc/backend/support.py): modules imported in-process take the runtime
definitions that read nothing of their own from one support module, compiled once per machine; written modules
stay standalone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import sympy as sp

import gradc
from gradc.backend import expr as expr_backend
from gradc.backend import mlp as mlp_backend
from gradc.backend.support import link, shared_support

_SPEC = {"input": 5, "layers": [{"units": 4, "activation": "tanh"}, {"units": 3}], "loss": "softmax_cross_entropy"}


def test_two_networks_share_one_support_module():
    a = gradc.compile_mlp(_SPEC)   # its loops never split (_PARALLEL = False in its standalone text) ...
    b = gradc.compile_mlp({**_SPEC, "layers": [{"units": 600, "activation": "tanh"}, {"units": 3}]})   # ... these may
    assert a.module._matmul is b.module._matmul and a.module._add_bias is b.module._add_bias
    assert a.module._loss_and_grad is not b.module._loss_and_grad
    c = gradc.compile_mlp({**_SPEC, "layers": [{"units": 6, "activation": "tanh"}, {"units": 3}]})
    assert c.module._act_tanh_both is a.module._act_tanh_both            # one activation's loops, one module ...
    assert b.module._act_tanh_both is not a.module._act_tanh_both        # ... unless they may split (b's may)
    for net in (a, b, c):   # and they compute what the standalone text does
        params = net.init_params(0)
        X, y = np.random.default_rng(1).standard_normal((7, 5)), np.arange(7) % 3
        loss, grads = net.loss_and_grad(params, X, y)
        assert np.isfinite(loss) and set(grads) == set(params)


def test_shared_text_reads_nothing_of_a_module():
    for runtimes in (expr_backend.RUNTIMES, mlp_backend.RUNTIMES):
        text, names = shared_support(runtimes)
        compile(text, "shared", "exec")   # valid Python
        module_names = {"ARGS", "DTYPE", "OUTPUTS", "PARAM_SHAPES", "LOSS", "OPTIMIZER", "_forward_kernel",
                        "_loss_and_grad", "_step", "_epoch"}
        public = {"forward", "loss", "fit", "step", "predict", "_values", "_values_and_grads", "init_params"}
        assert not names & (module_names | public)
        assert {"_exp", "_serial_twin", "_run", "CHUNK"} <= names if runtimes is expr_backend.RUNTIMES \
            else {"_matmul", "_add_bias", "_update_vector", "_take_rows", "_softmax_ce"} <= names


def test_linking_keeps_the_module_runnable_and_writes_stay_standalone(tmp_path):
    x, y = sp.symbols("x y")
    m = gradc.compile_expr(sp.atan2(y, x) * sp.exp(x / 3))
    text, [(name, shared)] = link(m.source, m.runtimes)
    assert f"from {name} import " in text and "def _serial_twin(" not in text and "def _serial_twin(" in shared
    assert "def _values(" in text   # reads the module's kernels: stays
    written = m.write(tmp_path / "alone.py").read_text()
    assert written == m.source and "def _serial_twin(" in written
    value, grads = m.value_and_grad(np.linspace(0.1, 1, 5), 0.5)
    np.testing.assert_allclose(value, np.arctan2(0.5, np.linspace(0.1, 1, 5)) * np.exp(np.linspace(0.1, 1, 5) / 3))


_NEW_NETWORK = textwrap.dedent("""
    import sys, numpy as np, gradc
    spec = {"input": 5, "layers": [{"units": int(sys.argv[1]), "activation": "tanh"}, {"units": 3}],
            "loss": "softmax_cross_entropy"}
    net = gradc.compile_mlp(spec)
    net.loss_and_grad(net.init_params(0), np.ones((4, 5)), np.arange(4) % 3)
    stats = net.module._matmul.stats
    print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
""")


def test_a_new_network_loads_the_shared_code_from_the_disk_cache(tmp_path):
    env = {**os.environ, "GRADC_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", _NEW_NETWORK, str(units)], capture_output=True, text=True,
                           env=env, check=True, timeout=600).stdout.split() for units in (4, 9)]
    (hits, misses), (hits2, misses2) = ([int(n) for n in run] for run in runs)
    assert hits == 0 and misses > 0       # the first network compiles _matmul (a signature per layout) ...
    assert hits2 > 0 and misses2 == 0     # ... another network, in another process, loads them

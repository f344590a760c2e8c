"""gradc on Dask: expression modules blockwise, MLP losses and gradients as exact sums of chunks, fit on dask
arrays, on a LocalCluster of two worker processes that compile into their own cache folder."""

from __future__ import annotations

import copy
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
sp = pytest.importorskip("sympy")

import gradc  # noqa: E402
from gradc.distributed import mlp, remote  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Sending large graph:UserWarning")

SPEC = {"name": "dask_net", "input": 8, "layers": [{"units": 16, "activation": "tanh"},
                                                   {"units": 3, "activation": "identity"}],
        "loss": "softmax_cross_entropy", "l2": 0.001, "optimizer": {"name": "adam", "lr": 0.01}}


@pytest.fixture(scope="module")
def workers_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workers_cache")


@pytest.fixture(scope="module")
def net():
    return gradc.compile_mlp(SPEC)


def _compile(kernel: remote.Kernel) -> None:
    """Compile (or load) the kernels of the network's module in this process: its first loss and gradients."""
    kernel.module.loss_and_grad(kernel.module.init_params(), np.zeros((2, 8)), np.zeros(2, np.int64))


@pytest.fixture(scope="module")
def client(workers_cache, net):
    """A LocalCluster of two single-threaded worker processes whose GRADC_CACHE_DIR is not the client's, and a
    Client to it (the default client while this module's tests run). The network's module is compiled on one
    worker before the other loads it from their cache: two cold compiles at once would take both cores."""
    root = str(Path(gradc.__file__).resolve().parents[1])   # the workers import this gradc
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {"GRADC_CACHE_DIR": str(workers_cache), "PYTHONPATH": path, "GRADC_THREADS": "1"}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env=env, silence_logs=40) as cluster, distributed.Client(cluster) as c:
        kernel = mlp.data_kernel(net)
        for worker in c.scheduler_info()["workers"]:
            c.submit(_compile, kernel, workers=[worker], pure=False).result()
        yield c


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 8))
    labels = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, labels


def test_expressions_blockwise_equal_numpy(client):
    x, y, a = sp.symbols("x y a")
    f = gradc.compile_expr(sp.sin(x) * y + a * x**2, [x, y, a])
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((1000, 6)), rng.standard_normal(6)
    dX = da.from_array(X, chunks=(300, 4))
    value, grads = f.value_and_grad(dX, Y, 1.5)
    assert isinstance(value, da.Array) and all(isinstance(g, da.Array) for g in grads)
    value, jac, *grads = dask.compute(value, f.jacobian(dX, Y, 1.5), *grads)
    ref_value, ref_grads = f.value_and_grad(X, Y, 1.5)
    np.testing.assert_allclose(value, ref_value, rtol=1e-15, atol=0)
    for got, want in zip(grads, ref_grads):   # y and a are broadcast: reduced across blocks
        assert np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(jac, f.jacobian(X, Y, 1.5), rtol=1e-15)


def test_float32_broadcast_gradient_summed_in_float64(client):
    x, a = sp.symbols("x a")
    f = gradc.compile_expr(a * x, [x, a], dtype="float32")
    X = np.full(2_000_000, 0.1, np.float32)
    grad_a = f.grad(da.from_array(X, chunks=250_000), np.float32(1.0))[1].compute()
    assert grad_a.dtype == np.float32
    assert grad_a == np.float32(np.sum(X, dtype=np.float64))


def test_mlp_loss_and_grad_on_200000_rows_equal_in_memory(client, net):
    X, labels = _data(200_000)
    params = net.init_params(1)
    loss, grads = net.loss_and_grad(params, X, labels)
    dloss, dgrads = net.loss_and_grad(params, da.from_array(X, chunks=(30_000, 8)), da.from_array(labels, 50_000))
    assert isinstance(dloss, float)
    assert abs(dloss - loss) <= 1e-9 * abs(loss)
    for name in params:
        assert dgrads[name].shape == grads[name].shape and dgrads[name].dtype == grads[name].dtype
        np.testing.assert_allclose(dgrads[name], grads[name], rtol=0, atol=1e-9 * np.abs(grads[name]).max())
    assert abs(net.loss(params, da.from_array(X, chunks=(30_000, 8)), labels) - loss) <= 1e-9 * abs(loss)


def test_forward_and_predict_are_dask_arrays(client, net):
    X, _ = _data(5000)
    params = net.init_params(2)
    dX = da.from_array(X, chunks=(1200, 8))
    out, predicted = net.forward(params, dX), net.predict(params, dX)
    assert isinstance(out, da.Array) and out.chunks[0] == dX.chunks[0]
    np.testing.assert_allclose(out.compute(), net.forward(params, X), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(predicted.compute(), net.predict(params, X))


def test_fit_sync_follows_the_in_memory_trajectory(client, net):
    X, labels = _data(4000)
    memory, cluster = net.init_params(3), net.init_params(3)
    history = net.fit(memory, X, labels, epochs=2, batch_size=500, progress=False, validation=(X, labels))
    dask_history = net.fit(cluster, da.from_array(X, chunks=(1100, 8)), da.from_array(labels, 1100), epochs=2,
                           batch_size=500, progress=False, validation=(X, labels))
    assert dask_history.keys() == history.keys()
    np.testing.assert_allclose(dask_history["loss"], history["loss"], rtol=1e-12)
    assert dask_history["val_accuracy"] == history["val_accuracy"]
    for name in memory:
        np.testing.assert_allclose(cluster[name], memory[name], rtol=0, atol=1e-12)


def test_workers_compile_in_their_own_cache(client, net, workers_cache):
    net.loss(net.init_params(), da.from_array(_data(100)[0], chunks=50), np.zeros(100, np.int64))
    files = [f for per_worker in client.run(remote.loaded_files).values() for f in per_worker]
    assert files and all(Path(f).parent == workers_cache for f in files)
    assert Path(os.environ["GRADC_CACHE_DIR"]) != workers_cache


def _slow_rows(block: np.ndarray) -> np.ndarray:
    """Rows that take a while to make (a pure task): a worker can be killed while they are being made."""
    time.sleep(0.15)
    return block * 1.0


def _kill_a_worker_during(client, compute):
    """compute() in a thread while one worker process is killed (SIGKILL) after its first tasks; its result."""
    pids = list(client.run(os.getpid).values())
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", compute()))
    thread.start()
    deadline = time.monotonic() + 60
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert thread.is_alive()   # the computation is under way
    os.kill(pids[0], signal.SIGKILL)
    thread.join(timeout=120)
    client.wait_for_workers(2, timeout=60)
    assert pids[0] not in client.run(os.getpid).values()   # the worker was lost and replaced
    return result["value"]


def test_a_killed_worker_changes_no_result(client, net):
    X, labels = _data(200_000, seed=4)
    params = net.init_params(4)
    loss, grads = net.loss_and_grad(params, X, labels)
    dX = da.from_array(X, chunks=(10_000, 8)).map_blocks(_slow_rows)
    dloss, dgrads = _kill_a_worker_during(client, lambda: net.loss_and_grad(params, dX, labels))
    assert abs(dloss - loss) <= 1e-9 * abs(loss)
    for name in params:
        np.testing.assert_allclose(dgrads[name], grads[name], rtol=0, atol=1e-9 * np.abs(grads[name]).max())


@pytest.mark.slow
def test_fit_through_a_killed_worker(client, net):
    X, labels = _data(20_000, seed=5)
    memory, cluster = net.init_params(5), net.init_params(5)
    history = net.fit(memory, X, labels, epochs=3, batch_size=1000, progress=False)
    dX = da.from_array(X, chunks=(2000, 8)).map_blocks(_slow_rows)
    dask_history = _kill_a_worker_during(client, lambda: net.fit(cluster, dX, labels, epochs=3, batch_size=1000,
                                                                  progress=False))
    np.testing.assert_allclose(dask_history["loss"], history["loss"], rtol=1e-12)
    for name in memory:
        np.testing.assert_allclose(cluster[name], memory[name], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_fit_reaches_the_in_memory_accuracy(client, net):
    X, labels = _data(60_000, seed=6)
    Xv, lv = _data(5000, seed=7)
    memory = net.init_params(6)
    sync, local = copy.deepcopy(memory), copy.deepcopy(memory)
    dX, dl = da.from_array(X, chunks=(15_000, 8)), da.from_array(labels, 15_000)
    kw = {"epochs": 4, "batch_size": 200, "progress": False, "validation": (Xv, lv)}
    accuracy = net.fit(memory, X, labels, **kw)["val_accuracy"][-1]
    assert accuracy > 0.9
    assert net.fit(sync, dX, dl, **kw)["val_accuracy"][-1] == pytest.approx(accuracy, abs=1e-12)
    local_accuracy = net.fit(local, dX, dl, strategy="local", sync_every=25, **kw)["val_accuracy"][-1]
    assert local_accuracy >= accuracy - 0.02


def test_threaded_scheduler(net):
    """Dask's threaded scheduler (no Client, or another scheduler configured) runs the same tasks here."""
    X, labels = _data(3000, seed=8)
    params = net.init_params(8)
    loss, grads = net.loss_and_grad(params, X, labels)
    memory, local = net.init_params(9), net.init_params(9)
    net.fit(memory, X, labels, epochs=1, batch_size=300, progress=False)
    with dask.config.set(scheduler="threads"):
        dloss, dgrads = net.loss_and_grad(params, da.from_array(X, chunks=(700, 8)), labels)
        net.fit(local, da.from_array(X, chunks=(700, 8)), labels, epochs=1, batch_size=300, progress=False)
    assert mlp.data_kernel(net).digest in remote._LOADED   # run in this process
    assert abs(dloss - loss) <= 1e-12 * abs(loss)
    for name in memory:
        np.testing.assert_allclose(local[name], memory[name], rtol=0, atol=1e-12)
    assert net.fit(local, da.from_array(X, chunks=(700, 8)), labels, epochs=0) == {"loss": []}
    with pytest.raises(ValueError, match="strategy"):
        net.fit(local, X, labels, epochs=1, strategy="local")


def test_sequence_cotangents_blockwise():
    x, y = sp.symbols("x y")
    f = gradc.compile_expr([sp.sin(x) * y, x * y], [x, y])
    X = np.random.default_rng(3).standard_normal((500, 4))
    dX = da.from_array(X, chunks=(120, 3))
    with dask.config.set(scheduler="threads"):
        grads = dask.compute(*f.grad(dX, 0.7, cotangents=[dX, 2.0]))
        values = dask.compute(*f.forward(dX, 0.7))
    for got, want in zip(grads, f.grad(X, 0.7, cotangents=[X, 2.0])):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    for got, want in zip(values, f.forward(X, 0.7)):
        np.testing.assert_allclose(got, want, rtol=1e-15)


def test_array_inputs_and_matrix_outputs_blockwise():
    """An input with axes of its own (an IndexedBase: one row of data per point) travels whole in each block;
    a Matrix's value and derivatives keep its axes; the threaded scheduler runs them."""
    n = 6
    data, j = sp.IndexedBase("d", shape=(n,)), sp.Symbol("j", integer=True)
    mu, s, x, y = sp.symbols("mu s x y")
    e = sp.Sum(-(data[j] - mu) ** 2 / (2 * s ** 2) - sp.log(s), (j, 0, n - 1))
    m = gradc.compile_expr(e, [data, mu, s], wrt=[mu, s])
    rng = np.random.default_rng(2)
    D, M = rng.normal(size=(900, n)), rng.normal(size=900)
    dD, dM = da.from_array(D, chunks=(200, 3)), da.from_array(M, chunks=300)
    matrix = gradc.compile_expr(sp.Matrix([[x * y, sp.sin(x)], [y ** 2, x + y]]), [x, y])
    with dask.config.set(scheduler="threads"):
        value, (g_mu, g_s) = dask.compute(*m.value_and_grad(dD, dM, 1.3))
        hessian, hvp = dask.compute(m.hessian(dD, dM, 1.3), m.hvp(dD, dM, 1.3, v=(1.0, dM)))
        matrix_value, jacobian = dask.compute(matrix.forward(dM, 2.0), matrix.jacobian(dM, 2.0))
    want_value, (want_mu, want_s) = m.value_and_grad(D, M, 1.3)
    np.testing.assert_allclose(value, want_value, rtol=1e-14)
    np.testing.assert_allclose(g_mu, want_mu, rtol=1e-14)
    assert np.shape(g_s) == () and g_s == pytest.approx(want_s, rel=1e-12)
    np.testing.assert_allclose(hessian, m.hessian(D, M, 1.3), rtol=1e-14)
    for got, want in zip(hvp, m.hvp(D, M, 1.3, v=(1.0, M))):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    np.testing.assert_allclose(matrix_value, matrix.forward(M, 2.0), rtol=1e-15)
    np.testing.assert_allclose(jacobian, matrix.jacobian(M, 2.0), rtol=1e-15)


def test_workers_keep_freed_memory_unless_told_otherwise():
    """distributed's nanny gives every worker MALLOC_TRIM_THRESHOLD_; gradc keeps freed arrays' memory there
    all the same, but not where the user set another value or turned the tuning off."""
    default = str(dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"))
    glibc = __import__("platform").libc_ver()[0] == "glibc"
    assert remote._retain_freed_memory_on_a_worker({"MALLOC_TRIM_THRESHOLD_": default}) is glibc
    assert not remote._retain_freed_memory_on_a_worker({"MALLOC_TRIM_THRESHOLD_": "12345"})
    assert not remote._retain_freed_memory_on_a_worker({"MALLOC_TRIM_THRESHOLD_": default,
                                                        "GRADC_MALLOC_TUNING": "0"})

"""Training: the optimisers against torch.optim step for step, one step against a whole torch training step,
fit (epochs in compiled code) against steps taken one by one, reproducibility, validation, early stopping,
predictions, parameter files, refusals that change nothing, and a written module training without gradc.

One small network (3-5-3 tanh, softmax cross-entropy) is compiled once for the module; its spec's optimizer is
Adam, and the other rules come through the `optimizer=` override, which compiles nothing new."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gradc
from gradc.errors import SpecError

SPEC = {"input": 3, "layers": [{"units": 5, "activation": "tanh"}, {"units": 3}],
        "loss": "softmax_cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}}

OPTIMIZERS = {   # gradc's optimizer field -> the torch.optim class and keyword arguments it must equal
    "sgd": ({"name": "sgd", "lr": 0.1}, torch.optim.SGD, {"lr": 0.1}),
    "sgd_wd": ({"name": "sgd", "lr": 0.1, "weight_decay": 0.05}, torch.optim.SGD, {"lr": 0.1, "weight_decay": 0.05}),
    "momentum": ({"name": "sgd", "lr": 0.05, "momentum": 0.9}, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    "nesterov_wd": ({"name": "sgd", "lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
                    torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    "adam": ({"name": "adam", "lr": 0.01}, torch.optim.Adam, {"lr": 0.01}),
    "adam_wd": ({"name": "adam", "lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.1},
                torch.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    "adamw": ({"name": "adamw", "lr": 0.01}, torch.optim.AdamW, {"lr": 0.01}),
    "adamw_wd": ({"name": "adamw", "lr": 0.02, "weight_decay": 0.3}, torch.optim.AdamW,
                 {"lr": 0.02, "weight_decay": 0.3}),
}


@pytest.fixture(scope="module")
def net():
    return gradc.compile_mlp(SPEC)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((90, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
    return X, y


def _copy(params):
    return {k: v.copy() for k, v in params.items()}


@pytest.mark.parametrize("case", OPTIMIZERS)
def test_each_update_rule_is_torch_optims_step_for_step(net, data, case):
    """10 steps on mini-batches: torch's optimiser is handed gradc's gradient at its own parameters each step
    (the gradients are checked elsewhere), so the parameters compare the update rules alone."""
    _follow_torch(net, *data, case)


@pytest.mark.parametrize("case", ["adam_wd", "adamw_wd", "nesterov_wd"])
def test_update_rules_follow_torch_where_a_gradient_is_column_ordered(case):
    # a layer narrowing to a quarter of its input or less has an F-ordered gradient, which the update rules read
    # row by row beside the C-ordered parameter and moments
    net = gradc.compile_mlp({**SPEC, "input": 24})   # W1 24 -> 5
    rng = np.random.default_rng(4)
    X = rng.standard_normal((90, 24))
    _, grads = net.loss_and_grad(net.init_params(0), X[:9], np.zeros(9, dtype=np.int64))
    assert grads["W1"].flags.f_contiguous and not grads["W1"].flags.c_contiguous
    assert grads["W2"].flags.c_contiguous
    _follow_torch(net, X, (X[:, 0] > 0).astype(np.int64), case)


def _follow_torch(net, X, y, case):
    options, optim_class, kwargs = OPTIMIZERS[case]
    params = net.init_params(1)
    state = net.init_state(params)
    tensors = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    optim = optim_class(list(tensors.values()), **kwargs)
    for k in range(10):
        rows = slice(9 * k, 9 * k + 9)
        _, grads = net.loss_and_grad({n: t.detach().numpy().copy() for n, t in tensors.items()}, X[rows], y[rows])
        for name, t in tensors.items():
            t.grad = torch.tensor(grads[name])
        optim.step()
        net.step(params, state, X[rows], y[rows], optimizer=options)
        for name, t in tensors.items():
            np.testing.assert_allclose(params[name], t.detach().numpy(), rtol=1e-12, atol=1e-14,
                                       err_msg=f"{case}, step {k + 1}, {name}")
    assert int(state["step"]) == 10


def test_a_step_equals_a_torch_training_step_of_the_same_network(net, data):
    """The whole step (forward, loss, gradient, Adam update) against torch doing all of it."""
    X, y = data
    params = net.init_params(2)
    state = net.init_state(params)
    W1, b1, W2, b2 = (torch.tensor(params[k].copy(), requires_grad=True) for k in ("W1", "b1", "W2", "b2"))
    optim = torch.optim.Adam([W1, b1, W2, b2], lr=0.01)
    for k in range(5):
        rows = slice(18 * k, 18 * k + 18)
        logits = torch.tanh(torch.tensor(X[rows]) @ W1 + b1) @ W2 + b2
        want = torch.nn.functional.cross_entropy(logits, torch.tensor(y[rows]))
        optim.zero_grad()
        want.backward()
        optim.step()
        got = net.step(params, state, X[rows], y[rows])   # the spec's optimizer: Adam, lr 0.01
        assert got == pytest.approx(want.item(), rel=1e-12)
    for name, t in zip(("W1", "b1", "W2", "b2"), (W1, b1, W2, b2)):
        np.testing.assert_allclose(params[name], t.detach().numpy(), rtol=1e-11, atol=1e-13)


def test_an_unshuffled_epoch_is_its_steps_one_by_one(net, data):
    X, y = data
    fitted, stepped = net.init_params(4), net.init_params(4)
    history = net.fit(fitted, X, y, epochs=2, batch_size=20, shuffle=False, progress=False)
    state = net.init_state(stepped)
    losses = [[net.step(stepped, state, X[s:s + 20], y[s:s + 20]) * len(X[s:s + 20]) for s in range(0, 90, 20)]
              for _ in range(2)]
    for name in fitted:
        np.testing.assert_allclose(fitted[name], stepped[name], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(history["loss"], [sum(epoch) / 90 for epoch in losses], rtol=1e-13)


def test_fit_is_reproducible_from_its_seed_and_continues_from_a_state(net, data):
    X, y = data
    runs = []
    for seed in (7, 7, 8):
        params = net.init_params(0)
        runs.append((params, net.fit(params, X, y, epochs=3, batch_size=16, seed=seed, progress=False)))
    (a, ha), (b, hb), (c, _) = runs
    assert ha == hb and all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)   # another seed, another order
    params = net.init_params(0)
    state = net.init_state(params)
    net.fit(params, X, y, epochs=1, batch_size=16, seed=7, progress=False, state=state)
    assert int(state["step"]) == 6   # ceil(90 / 16) steps, counted in the state


def test_validation_history_and_early_stopping(net, data):
    X, y = data
    params = net.init_params(0)
    history = net.fit(params, X[:60], y[:60], epochs=30, batch_size=10, validation=(X[60:], y[60:]),
                      progress=False, callback=lambda epoch, h: epoch == 4)
    assert {k: len(v) for k, v in history.items()} == {"loss": 5, "val_loss": 5, "val_accuracy": 5}
    assert history["val_loss"][-1] == pytest.approx(net.loss(params, X[60:], y[60:]), rel=1e-14)
    assert history["val_accuracy"][-1] == np.mean(net.predict(params, X[60:]) == y[60:])
    assert history["loss"][-1] < history["loss"][0]


def test_adam_learns_the_task(net, data):
    X, y = data
    params = net.init_params(0)
    history = net.fit(params, X, y, epochs=60, batch_size=15, progress=False, optimizer={"name": "adam", "lr": 0.05})
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert np.mean(net.predict(params, X) == y) > 0.9


def test_predictions_follow_the_loss():
    X = np.random.default_rng(0).standard_normal((7, 2))
    layers = [{"units": 3, "activation": "tanh"}, {"units": 2, "activation": "sigmoid"}]
    nets = {loss: gradc.compile_mlp({"input": 2, "layers": layers, "loss": loss})
            for loss in ("softmax_cross_entropy", "binary_cross_entropy", "mse", "hinge")}
    params = nets["mse"].init_params(5)   # one network, read four ways
    out = nets["mse"].forward(params, X)
    softmax = np.exp(out) / np.exp(out).sum(1, keepdims=True)
    np.testing.assert_allclose(nets["softmax_cross_entropy"].predict_proba(params, X), softmax, rtol=1e-14)
    np.testing.assert_array_equal(nets["softmax_cross_entropy"].predict(params, X), out.argmax(1))
    np.testing.assert_array_equal(nets["hinge"].predict(params, X), out.argmax(1))
    np.testing.assert_array_equal(nets["binary_cross_entropy"].predict(params, X), (out > 0.5).astype(int))
    np.testing.assert_array_equal(nets["binary_cross_entropy"].predict_proba(params, X), out)
    np.testing.assert_array_equal(nets["mse"].predict(params, X), out)
    with pytest.raises(ValueError, match="predict_proba needs a probabilistic classification loss"):
        nets["hinge"].predict_proba(params, X)


def test_params_files_round_trip_and_refuse_another_network(net, tmp_path):
    params = net.init_params(9)
    path = tmp_path / "weights.npz"
    net.save_params(params, path)
    loaded = net.load_params(path)
    assert list(loaded) == list(params) and all(np.array_equal(loaded[k], params[k]) for k in params)
    # another optimiser, l2 or loss trains the same network: its files load
    same_network = gradc.compile_mlp({**SPEC, "optimizer": {"name": "sgd"}, "l2": 0.1})
    assert np.array_equal(same_network.load_params(path)["W2"], params["W2"])
    other = gradc.compile_mlp({**SPEC, "layers": [{"units": 4, "activation": "tanh"}, {"units": 3}]})
    with pytest.raises(ValueError, match="another network"):
        other.load_params(path)
    np.savez(tmp_path / "plain.npz", W1=params["W1"])
    with pytest.raises(ValueError, match="not a parameter file"):
        net.load_params(tmp_path / "plain.npz")


def _refused(net, params, state, call, error, match):
    """`call` raises `error` matching `match`, and neither params nor state changed."""
    before, state_before = _copy(params), _copy(state)
    with pytest.raises(error, match=match):
        call()
    assert all(np.array_equal(params[k], before[k]) for k in params)
    assert all(np.array_equal(state[k], state_before[k]) for k in state)


def test_bad_input_is_refused_and_changes_nothing(net, data):
    X, y = data
    params = net.init_params(0)
    state = net.init_state(params)
    _refused(net, params, state, lambda: net.step(params, state, X, y, optimizer={"name": "adma"}),
             SpecError, r"optimizer.name: unknown optimizer 'adma'; did you mean 'adam'\?")
    _refused(net, params, state, lambda: net.step(params, state, X, y, optimizer={"name": "sgd", "lr": -0.1}),
             SpecError, r"optimizer.lr: expected a number > 0")
    _refused(net, params, state, lambda: net.fit(params, X, y, optimizer={"name": "sgd", "beta1": 0.9}),
             SpecError, "unknown key 'beta1' for sgd")
    _refused(net, params, state, lambda: net.step(params, state, X, y + 1), ValueError,
             r"labels Y must be .* in \[0, 3\)")
    other = gradc.compile_mlp({**SPEC, "layers": [{"units": 4, "activation": "tanh"}, {"units": 3}]}).init_params(0)
    _refused(net, params, state, lambda: net.step(other, state, X, y), ValueError, r"param W1 must have shape \(3, 5\)")
    _refused(net, other, net.init_state(params), lambda: net.fit(other, X, y), ValueError, r"param W1 must have shape")
    _refused(net, params, state, lambda: net.step(params, {"step": state["step"]}, X, y), ValueError, "state")
    as_lists = {k: v.tolist() for k, v in params.items()}
    with pytest.raises(ValueError, match="to be trained in place"):
        net.step(as_lists, state, X, y)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        net.fit(params, X, y, batch_size=0)


def test_a_spec_with_an_unknown_optimizer_names_the_field():
    with pytest.raises(SpecError, match=r"optimizer.nesterov: Nesterov momentum needs momentum > 0"):
        gradc.compile_mlp({**SPEC, "optimizer": {"name": "sgd", "nesterov": True}})
    with pytest.raises(SpecError, match=r"optimizer.beta2: expected a number with 0 <= beta2 < 1"):
        gradc.compile_mlp({**SPEC, "optimizer": {"name": "adamw", "beta2": 1.0}})


_BLOCKED_TRAIN = """
import sys
sys.modules["gradc"] = None   # importing gradc fails
sys.path.insert(0, sys.argv[1])
import numpy as np
from trained import fit, init_params, init_state, load_params, predict, save_params, step
rng = np.random.default_rng(0)
X = rng.standard_normal((60, 3)); y = (X[:, 0] > 0).astype(np.int64)
params = init_params(0)
history = fit(params, X, y, epochs=40, batch_size=10, progress=True)
save_params(params, sys.argv[2])
again = load_params(sys.argv[2])
print(history["loss"][0], history["loss"][-1], np.mean(predict(again, X) == y))
"""


def test_a_written_module_trains_without_gradc(net, tmp_path):
    net.write(tmp_path / "trained.py")
    done = subprocess.run([sys.executable, "-c", _BLOCKED_TRAIN, str(tmp_path), str(tmp_path / "w.npz")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    first, last, accuracy = map(float, done.stdout.split())
    assert last < 0.5 * first and accuracy > 0.9
    assert "40/40" in done.stderr   # the progress bar (tqdm's, or the plain lines without it)
    assert Path(tmp_path / "w.npz").exists()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("columns", [0, 1, 7, 8, 9, 40])
def test_take_rows_is_numpys_fancy_indexing(dtype, columns):
    from gradc.runtime.train import _take_rows

    a = np.random.default_rng(columns).standard_normal((500, columns)).astype(dtype)
    for index in (np.array([], dtype=np.int64), np.array([3, 3, 499, 0]), np.random.default_rng(1).permutation(500)):
        out = _take_rows(a, index)
        assert out.dtype == a.dtype and out.flags.c_contiguous
        np.testing.assert_array_equal(out, a[index])

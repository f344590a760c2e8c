"""scikit-learn estimators whose networks gradc compiles: MLPClassifier and MLPRegressor.

    from gradc.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=50, random_state=0).fit(X, y)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)

The parameters are scikit-learn's MLPClassifier/MLPRegressor's where they apply (solver "adam" or "sgd" with a
constant learning rate), plus `dtype`. Each fit compiles its network through gradc (once per network shape,
activation, alpha and dtype: cached in the process and on disk) and trains it with the module's compiled `fit`,
one compiled call per epoch; the optimiser's settings are passed at call time, so changing them compiles
nothing. Differences from scikit-learn's: a classifier's output is a softmax over all classes (two units for
a binary task, not one logistic unit); `alpha` is the L2 penalty alpha/(2·batch)·ΣW² with batch the
`batch_size` (200 for "auto"), fixed per network, where scikit-learn divides by each mini-batch's own size.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from gradc.module import MLPModule
from gradc.pipeline import compile_mlp

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_NETWORKS: dict[str, MLPModule] = {}   # spec fingerprint -> compiled network, shared by every estimator


def _network(spec: dict[str, Any]) -> MLPModule:
    """The compiled network of `spec`, compiled once per process (and loaded from gradc's disk cache after)."""
    net = compile_mlp(spec)
    key = net.spec.fingerprint()
    return _NETWORKS.setdefault(key, net)


class _GradcMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, validation, the training loop (epochs,
    early stopping on the training loss or a held-out score, scikit-learn's rules), pickling."""

    _loss: str
    _output_activation: str

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 dtype="float64"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype

    # ---- the network and its optimiser, from the parameters ----

    def _hidden(self) -> list[int]:
        sizes = [self.hidden_layer_sizes] if np.isscalar(self.hidden_layer_sizes) else list(self.hidden_layer_sizes)
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _batch(self, n_samples: int) -> int:
        if self.batch_size == "auto":
            return min(200, n_samples)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) \
                or self.batch_size < 1:
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        return min(int(self.batch_size), n_samples)

    def _spec(self, n_features: int, n_outputs: int) -> dict[str, Any]:
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {self.activation!r}")
        if not isinstance(self.alpha, (int, float, np.floating)) or self.alpha < 0:
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")
        penalty_batch = 200 if self.batch_size == "auto" else self._batch(10 ** 9)
        hidden = [{"units": units, "activation": _ACTIVATIONS[self.activation]} for units in self._hidden()]
        return {"name": type(self).__name__, "input": n_features, "dtype": self.dtype,
                "layers": [*hidden, {"units": n_outputs, "activation": self._output_activation}],
                "loss": self._loss, "l2": float(self.alpha) / penalty_batch}

    def _optimizer(self) -> dict[str, Any]:
        if self.solver == "adam":
            return {"name": "adam", "lr": self.learning_rate_init, "beta1": self.beta_1, "beta2": self.beta_2,
                    "eps": self.epsilon}
        if self.solver == "sgd":
            return {"name": "sgd", "lr": self.learning_rate_init, "momentum": self.momentum,
                    "nesterov": bool(self.nesterovs_momentum and self.momentum > 0)}
        raise ValueError(f"solver must be 'adam' or 'sgd' (gradc trains with these two), got {self.solver!r}")

    def _check_loop_parameters(self) -> None:
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")

    @property
    def network_(self) -> MLPModule:
        """The compiled network (recompiled, or loaded from gradc's cache, after unpickling)."""
        net = self.__dict__.get("_net")
        if net is None:
            net = self._net = _network(self.spec_)
        return net

    # ---- training ----

    def _targets(self, y: np.ndarray, first: bool) -> np.ndarray:
        """y as the network's targets (class indices, or a 2-D float array); `first` on a fresh fit."""
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _validation_score(self, X: np.ndarray, y: np.ndarray) -> float:
        return self.score(X, y)

    def _start(self, X: np.ndarray, targets: np.ndarray, rng: np.random.RandomState) -> None:
        """Fresh network, parameters, optimiser state and history for X."""
        self.spec_ = self._spec(X.shape[1], self._n_outputs())
        self._net = _network(self.spec_)
        self.params_ = self.network_.init_params(int(rng.randint(2 ** 31 - 1)))
        self.state_ = self.network_.init_state(self.params_)
        self.loss_curve_: list[float] = []
        self.n_iter_ = 0
        self.t_ = 0
        self.best_loss_ = np.inf
        self._no_improvement = 0

    def _epochs(self, X, targets, epochs: int, rng: np.random.RandomState, y_val=None, X_val=None,
                stop: bool = True) -> None:
        """Up to `epochs` epochs, stopping (when `stop`) as scikit-learn's MLP does: no improvement of the
        training loss (or of the validation score with early_stopping) by tol for n_iter_no_change epochs,
        with a ConvergenceWarning if max_iter epochs ran without that."""
        optimizer, batch = self._optimizer(), self._batch(X.shape[0])
        for _ in range(epochs):
            history = self.network_.fit(self.params_, X, targets, epochs=1, batch_size=batch,
                                        shuffle=bool(self.shuffle), seed=int(rng.randint(2 ** 31 - 1)),
                                        progress=False, optimizer=optimizer, state=self.state_)
            loss = history["loss"][0]
            self.n_iter_ += 1
            self.t_ += X.shape[0]
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if not np.isfinite(loss):
                raise ValueError(f"the training loss became {loss} at iteration {self.n_iter_}: lower "
                                 "learning_rate_init or scale the inputs")
            if stop and self._stalled(loss, X_val, y_val):
                return
        if stop:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)

    def _stalled(self, loss: float, X_val, y_val) -> bool:
        """Record this epoch; whether training should stop (scikit-learn's _update_no_improvement_count)."""
        if self.early_stopping:
            score = self._validation_score(X_val, y_val)
            self.validation_scores_.append(score)
            improved = score >= self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = {k: v.copy() for k, v in self.params_.items()}
        else:
            improved = loss <= self.best_loss_ - self.tol
            self.best_loss_ = min(self.best_loss_, loss)
        self._no_improvement = 0 if improved else self._no_improvement + 1
        if self._no_improvement > self.n_iter_no_change:
            if self.verbose:
                print(f"Training loss did not improve more than tol={self.tol} for {self.n_iter_no_change} "
                      "consecutive epochs. Stopping.")
            return True
        return False

    def fit(self, X, y):
        """Train a fresh network on X (n_samples, n_features) and y for up to max_iter epochs; returns self."""
        self._check_loop_parameters()
        X, y = validate_data(self, X, y, reset=True, dtype=np.float64, y_numeric=self._loss == "mse",
                             multi_output=self._loss == "mse")
        rng = self._random_state = check_random_state(self.random_state)
        targets = self._targets(y, first=True)
        X_val = y_val = None
        if self.early_stopping:
            stratify = targets if self._loss != "mse" and np.min(np.bincount(targets)) > 1 else None
            X, X_val, targets, y_val_targets = train_test_split(
                X, targets, random_state=rng.randint(2 ** 31 - 1), test_size=self.validation_fraction,
                stratify=stratify)
            y_val = self._decoded(y_val_targets)
        self._start(X, targets, rng)
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self._best_params = {k: v.copy() for k, v in self.params_.items()}
        self._epochs(X, targets, self.max_iter, rng, y_val, X_val)
        if self.early_stopping:   # scikit-learn keeps the best validated parameters
            for name, best in self._best_params.items():
                self.params_[name][...] = best
            del self._best_params
        return self

    def _partial_fit(self, X, y, classes=None):
        first = not hasattr(self, "params_")
        X, y = validate_data(self, X, y, reset=first, dtype=np.float64, y_numeric=self._loss == "mse",
                             multi_output=self._loss == "mse")
        if first:
            self._check_loop_parameters()
            self._set_classes(y, classes)
        if first:
            self._random_state = check_random_state(self.random_state)
        rng = self._random_state   # later calls draw on from it, as scikit-learn's: reproducible from random_state
        targets = self._targets(y, first=False)
        if first:
            self._start(X, targets, rng)
        self._epochs(X, targets, 1, rng, stop=False)
        return self

    def _set_classes(self, y, classes) -> None:
        """A classifier's partial_fit learns its classes on its first call."""

    def _decoded(self, targets: np.ndarray) -> np.ndarray:
        return targets

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.network_.forward(self.params_, X)

    # ---- what scikit-learn users read ----

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices, layer by layer (views of params_)."""
        check_is_fitted(self, "params_")
        return [v for k, v in self.params_.items() if k.startswith("W")]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The bias vectors, layer by layer (views of params_)."""
        check_is_fitted(self, "params_")
        return [v for k, v in self.params_.items() if k.startswith("b")]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_net", None)   # a compiled module does not pickle; spec_ rebuilds it
        return state


class MLPClassifier(ClassifierMixin, _GradcMLP):
    """A multi-layer perceptron classifier (softmax output, cross-entropy loss) compiled and trained by gradc,
    with scikit-learn's MLPClassifier parameters (see the module docstring for the differences)."""

    _loss = "softmax_cross_entropy"
    _output_activation = "identity"

    def _set_classes(self, y, classes) -> None:
        if classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        self.classes_ = unique_labels(classes)

    def _targets(self, y: np.ndarray, first: bool) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first:
            self.classes_ = unique_labels(y)
        index = np.searchsorted(self.classes_, y)
        index = np.minimum(index, len(self.classes_) - 1)
        if np.any(self.classes_[index] != y):
            unknown = np.setdiff1d(y, self.classes_)
            raise ValueError(f"y contains labels not in classes_: {unknown[:5]!r}; classes_ = {self.classes_!r}")
        return index.astype(np.int64)

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _decoded(self, targets: np.ndarray) -> np.ndarray:
        return self.classes_[targets]

    def partial_fit(self, X, y, classes=None):
        """One epoch over X, y (continuing the current network and optimiser state); `classes` (all labels)
        is required on the first call."""
        return self._partial_fit(X, y, classes)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row of X."""
        out = self._outputs(X)   # first: it says NotFittedError when there are no classes_ yet
        return self.classes_[np.argmax(out, axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), rows summing to 1 (columns in classes_ order)."""
        out = self._outputs(X)
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        """The log of predict_proba."""
        return np.log(self.predict_proba(X))


class MLPRegressor(RegressorMixin, _GradcMLP):
    """A multi-layer perceptron regressor (identity output, squared loss) compiled and trained by gradc, with
    scikit-learn's MLPRegressor parameters (see the module docstring for the differences)."""

    _loss = "mse"
    _output_activation = "identity"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y: np.ndarray, first: bool) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if first or not hasattr(self, "_y_1d"):
            self._y_1d = y.ndim == 1
        return y.reshape(len(y), -1)

    def _decoded(self, targets: np.ndarray) -> np.ndarray:
        return targets[:, 0] if self._y_1d else targets

    def _n_outputs(self) -> int:
        return self._n_targets

    def _start(self, X, targets, rng) -> None:
        self._n_targets = targets.shape[1]
        super()._start(X, targets, rng)

    def partial_fit(self, X, y):
        """One epoch over X, y, continuing the current network and optimiser state."""
        return self._partial_fit(X, y)

    def predict(self, X) -> np.ndarray:
        """The predicted targets: shape (n_samples,) when fitted on a 1-D y, else (n_samples, n_targets)."""
        out = self._outputs(X)
        return out[:, 0] if self._y_1d else out

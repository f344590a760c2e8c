"""gradc.sklearn: MLPClassifier and MLPRegressor as scikit-learn estimators: accuracy on digits next to
scikit-learn's own MLPClassifier, Pipeline, GridSearchCV, cross_val_score, pickling, partial_fit, early stopping,
and the errors. The default run keeps to one network shape (compiled once); scikit-learn's own estimator checks
(`parametrize_with_checks`, ~50 checks per estimator over many small datasets, each shape a compile) are slow
tests (`make test-slow`)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from gradc import sklearn as gradc_sklearn
from gradc.sklearn import MLPClassifier, MLPRegressor


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, random_state=0, stratify=y)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_digits_as_accurate_as_scikit_learns_own(digits):
    X_train, X_test, y_train, y_test = digits
    ours = MLPClassifier(hidden_layer_sizes=(32,), max_iter=60, random_state=0).fit(X_train, y_train)
    theirs = SklearnMLPClassifier(hidden_layer_sizes=(32,), max_iter=60, random_state=0).fit(X_train, y_train)
    assert ours.score(X_test, y_test) > 0.95
    assert ours.score(X_test, y_test) > theirs.score(X_test, y_test) - 0.02
    assert ours.n_iter_ == len(ours.loss_curve_) <= 60 and ours.loss_curve_[-1] < ours.loss_curve_[0]
    proba = ours.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(ours.classes_[proba.argmax(axis=1)], ours.predict(X_test))
    assert [W.shape for W in ours.coefs_] == [(64, 32), (32, 10)] and len(ours.intercepts_) == 2


def test_pipeline_grid_search_and_cross_validation(digits):
    X_train, X_test, y_train, y_test = digits
    compiled_before = len(gradc_sklearn._NETWORKS)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=15, random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__learning_rate_init": [1e-3, 1e-2],
                                 "mlpclassifier__solver": ["adam", "sgd"]}, cv=3)
    search.fit(X_train, y_train)
    assert search.best_score_ > 0.85 and search.score(X_test, y_test) > 0.85
    scores = cross_val_score(search.best_estimator_, X_train, y_train, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85
    # optimiser settings are call-time arguments: the whole search compiled at most the one network
    assert len(gradc_sklearn._NETWORKS) <= compiled_before + 1


def test_pickle_round_trip_predicts_the_same(digits):
    X_train, X_test, y_train, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=1).fit(X_train, y_train)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X_test), clf.predict_proba(X_test))
    again.partial_fit(X_train, y_train)   # and it trains on, from the pickled optimiser state
    assert again.n_iter_ == 6


def test_fit_is_reproducible_from_random_state(digits):
    X_train, X_test, y_train, _ = digits
    a, b, c = (MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=seed).fit(X_train, y_train)
               for seed in (3, 3, 4))
    np.testing.assert_array_equal(a.predict_proba(X_test), b.predict_proba(X_test))
    assert not np.array_equal(a.predict_proba(X_test), c.predict_proba(X_test))


def test_partial_fit_needs_the_classes_first_and_then_learns(digits):
    X_train, X_test, y_train, y_test = digits
    clf = MLPClassifier(hidden_layer_sizes=(32,), random_state=0, learning_rate_init=0.01, batch_size=32)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X_train[:50], y_train[:50])
    for k in range(30):   # three passes over the data in ten chunks
        rows = slice(130 * (k % 10), 130 * (k % 10) + 130)
        clf.partial_fit(X_train[rows], y_train[rows], classes=np.arange(10))
    assert clf.n_iter_ == 30 and clf.score(X_test, y_test) > 0.9


def test_early_stopping_keeps_the_best_validated_parameters(digits):
    X_train, _, y_train, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, early_stopping=True, n_iter_no_change=3,
                        random_state=0).fit(X_train, y_train)
    assert clf.n_iter_ < 200 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_regressor_fits_a_smooth_function():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(400, 2))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (400,) and reg.score(X, y) > 0.95
    two = MLPRegressor(hidden_layer_sizes=(32,), max_iter=50, random_state=0).fit(X, np.stack([y, -y], 1))
    assert two.predict(X).shape == (400, 2)


def test_errors_are_scikit_learns(digits):
    X_train, _, y_train, _ = digits
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X_train)
    with pytest.raises(ValueError, match="solver must be 'adam' or 'sgd'"):
        MLPClassifier(solver="lbfgs").fit(X_train, y_train)
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPClassifier(activation="softsign").fit(X_train, y_train)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=2, random_state=0).fit(X_train, y_train)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X_train[:, :10])


@pytest.mark.slow
@parametrize_with_checks([MLPClassifier(random_state=0), MLPRegressor(random_state=0)])
def test_scikit_learns_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_partial_fit_is_reproducible_whatever_numpys_global_random_state(digits):
    # later calls draw their shuffles from the estimator's own generator, made from random_state on the first
    X_train, X_test, y_train, _ = digits
    runs = []
    for global_seed in (1, 2):
        clf = MLPClassifier(hidden_layer_sizes=(16,), random_state=0, batch_size=32)
        for k in range(4):
            np.random.seed(global_seed + k)
            clf.partial_fit(X_train[:200], y_train[:200], classes=np.arange(10))
        runs.append(clf.predict_proba(X_test))
    np.testing.assert_array_equal(runs[0], runs[1])

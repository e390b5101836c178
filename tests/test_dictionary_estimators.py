"""The scikit-learn drop-in estimators: SparseCoder, DictionaryLearning, MiniBatchDictionaryLearning."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn import decomposition as skd

import sparseae
from sparseae.errors import ConfigError, DataError, NotFittedError
from sparseae.estimators import DictionaryLearning, MiniBatchDictionaryLearning, SparseCoder

pytest.importorskip("numba")

# scikit-learn's checks run on these three with every other public estimator: tests/test_estimators.py
# (test_sklearn_compatible, over the list generated from sparseae.estimators).


def _problem(seed=0, n=60, n_features=16, k=24):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((k, n_features))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((n, n_features))
    return X, D


@pytest.mark.parametrize("algorithm, params, tol", [
    ("lasso_lars", {"transform_alpha": 0.3}, 1e-8),
    ("lasso_lars", {"transform_alpha": 0.3, "positive_code": True}, 1e-8),
    ("lasso_cd", {"transform_alpha": 0.3}, 1e-3),
    ("lars", {"transform_n_nonzero_coefs": 4}, 1e-8),
    ("omp", {}, 1e-8),
    ("omp", {"transform_n_nonzero_coefs": 5}, 1e-8),
    ("threshold", {"transform_alpha": 0.5, "split_sign": True}, 1e-12),
])
def test_transform_gives_sklearns_codes(algorithm, params, tol):
    X, D = _problem()
    ours = SparseCoder(D, transform_algorithm=algorithm, **params).fit(X).transform(X)
    ref = skd.SparseCoder(D, transform_algorithm=algorithm, **params).fit(X).transform(X)
    assert ours.shape == ref.shape
    scale = np.abs(ref).max()
    assert np.abs(ours - ref).max() <= tol * scale, np.abs(ours - ref).max()
    if algorithm in ("omp", "lars"):
        assert ((ours != 0).sum(axis=1) == (ref != 0).sum(axis=1)).all()


@pytest.mark.parametrize("Estimator, sk", [(DictionaryLearning, skd.DictionaryLearning),
                                           (MiniBatchDictionaryLearning,
                                            skd.MiniBatchDictionaryLearning)])
def test_fitted_transform_matches_sklearn_on_our_dictionary(Estimator, sk):
    """Same dictionary, same transform settings: the same codes (default omp and lasso_lars)."""
    X, _ = _problem(1, n=80)
    est = Estimator(n_components=12, alpha=0.2, max_iter=5, random_state=0).fit(X)
    assert est.components_.shape == (12, 16) and est.n_features_in_ == 16
    assert est.n_iter_ >= 1
    for algorithm in ("omp", "lasso_lars"):
        est.set_params(transform_algorithm=algorithm)
        ref = skd.SparseCoder(est.components_, transform_algorithm=algorithm,
                              transform_alpha=0.2).transform(X)
        np.testing.assert_allclose(est.transform(X), ref, atol=1e-8)
    # the inverse is codes @ components_
    Z = est.transform(X)
    np.testing.assert_allclose(est.inverse_transform(Z), Z @ est.components_, atol=1e-12)


def test_dictionary_learning_cost_decreases_and_matches_sklearn_quality():
    X, _ = _problem(2, n=100, n_features=12, k=12)
    ours = DictionaryLearning(n_components=10, alpha=0.5, max_iter=30, tol=0,
                              transform_algorithm="lasso_lars", random_state=0)
    codes = ours.fit_transform(X)
    errors = np.array(ours.error_)
    assert len(errors) == 30 == ours.n_iter_
    assert (np.diff(errors) <= 1e-9 * errors[:-1]).all()   # monotone: exact codes + exact BCD
    ref = skd.DictionaryLearning(n_components=10, alpha=0.5, max_iter=30, tol=0,
                                 random_state=0).fit(X)
    assert errors[-1] <= ref.error_[-1] * 1.02
    assert codes.shape == (100, 10)
    assert np.allclose(np.linalg.norm(ours.components_, axis=1)[np.abs(codes).sum(0) > 0], 1,
                       atol=1e-6)


def test_minibatch_partial_fit_and_attributes():
    X, _ = _problem(3, n=200)
    est = MiniBatchDictionaryLearning(n_components=8, alpha=0.3, batch_size=50, max_iter=3,
                                      random_state=0).fit(X)
    assert est.n_steps_ <= 12 and est.n_iter_ == int(np.ceil(est.n_steps_ / 4))
    online = MiniBatchDictionaryLearning(n_components=8, alpha=0.3, random_state=0)
    for start in range(0, 200, 50):
        online.partial_fit(X[start:start + 50])
    assert online.n_steps_ == 4 and online.components_.shape == (8, 16)
    assert np.all(np.linalg.norm(online.components_, axis=1) <= 1 + 1e-9)
    names = online.get_feature_names_out()
    assert names[0] == "minibatchdictionarylearning0" and len(names) == 8
    with pytest.raises(DataError, match="features"):
        online.partial_fit(X[:10, :5])


def test_float32_is_preserved_and_drop_in_names():
    X, D = _problem(4)
    Z = SparseCoder(D.astype(np.float32), transform_algorithm="lasso_lars",
                    transform_alpha=0.2).transform(X.astype(np.float32))
    assert Z.dtype == np.float32
    assert sparseae.MiniBatchDictionaryLearning is MiniBatchDictionaryLearning
    for ours, theirs in ((SparseCoder, skd.SparseCoder), (DictionaryLearning, skd.DictionaryLearning),
                         (MiniBatchDictionaryLearning, skd.MiniBatchDictionaryLearning)):
        ours_params = ours(D).get_params() if ours is SparseCoder else ours().get_params()
        their_params = theirs(D).get_params() if theirs is skd.SparseCoder else theirs().get_params()
        assert set(ours_params) == set(their_params)
        for key, value in their_params.items():
            if key != "dictionary":
                assert ours_params[key] == value, key


def test_bad_input_errors():
    X, D = _problem(5)
    with pytest.raises(ConfigError, match="alpha"):
        DictionaryLearning(alpha=-1).fit(X)
    with pytest.raises(ConfigError, match="transform_algorithm"):
        SparseCoder(D, transform_algorithm="nope").fit(X)
    with pytest.raises(DataError, match="NaN"):
        MiniBatchDictionaryLearning(n_components=4).fit(np.full((5, 3), np.nan))
    with pytest.raises(DataError, match="features"):
        SparseCoder(D).fit(X[:, :5])
    with pytest.raises(ConfigError, match="positive"):
        SparseCoder(D, positive_code=True).transform(X)
    with pytest.raises(NotFittedError):
        DictionaryLearning().transform(X)
    with pytest.raises(DataError, match="dict_init"):
        MiniBatchDictionaryLearning(n_components=3, dict_init=np.ones((2, 16))).fit(X)
    est = MiniBatchDictionaryLearning(n_components=4, max_iter=1, random_state=0).fit(X)
    with pytest.raises(DataError, match="columns"):
        est.inverse_transform(np.ones((2, 3)))

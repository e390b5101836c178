"""The scikit-learn estimators: sklearn's own checks, learning on digits, persistence, errors."""
from __future__ import annotations

import inspect
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import sparseae.estimators
from sparseae.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    NotFittedError,
    OutputExistsError,
    SparseAEError,
)
from sparseae.estimators import (
    AutoencoderEstimator,
    BaseAutoencoderEstimator,
    ContractiveAutoencoder,
    ConvSparseAutoencoder,
    DenoisingAutoencoder,
    DictionaryLearning,
    DrSAEClassifier,
    LateralInhibitionCoder,
    LinearAutoencoder,
    LocalSparseAutoencoder,
    MiniBatchDictionaryLearning,
    SparseAutoencoder,
    SparseCoder,
    StackedAutoencoder,
    StackedClassifier,
)
from sparseae.evaluate import explained_variance
from sparseae.io import save_model
from sparseae.models import create_model


@pytest.fixture(scope="module")
def small(digits):
    """500 digits (so the KL's ρ̂ is computed over one block when scoring)."""
    X, y = digits
    return X[:500], y[:500]


# ----------------------------------------------------------------------------- sklearn's checks
def public_estimators() -> list[type]:
    """Every concrete scikit-learn estimator class that :mod:`sparseae.estimators` exports, by name."""
    found = {obj for name, obj in vars(sparseae.estimators).items()
             if not name.startswith("_") and isinstance(obj, type) and issubclass(obj, BaseEstimator)
             and not inspect.isabstract(obj)}
    return sorted(found, key=lambda cls: cls.__name__)


#: Small, fast parameters for scikit-learn's checks: one entry per class of public_estimators()
#: (test_every_public_estimator_has_check_parameters fails naming a class without one).
CHECK_PARAMS: dict[type, dict] = {
    SparseAutoencoder: dict(n_components=4, max_iter=20),
    LinearAutoencoder: dict(max_epochs=5),
    AutoencoderEstimator: dict(n_components=4, max_epochs=5),
    # small and fast enough for the checks' toy data (25 Adam steps on their 300 blobs), and accurate
    # enough for their 0.83 bar: 0.91-0.98 on the blobs for every random_state in 0..7
    DrSAEClassifier: dict(n_components=8, n_steps=2, pretrain_epochs=1, max_epochs=5, optimizer="adam",
                          learning_rate=0.1, batch_size=64, normalize_input=False, random_state=0),
    # the checks' data are not in [0, 1]: squared error instead of cross-entropy
    DenoisingAutoencoder: dict(n_components=4, corruption="gaussian:0.1", likelihood="gaussian", max_epochs=5),
    ContractiveAutoencoder: dict(n_components=4, likelihood="gaussian", max_epochs=5),
    StackedAutoencoder: dict(n_components=2, hidden=(4,), likelihood="gaussian", pretrain_epochs=2, max_epochs=5),
    StackedClassifier: dict(n_components=8, layer_params={"likelihood": "gaussian", "corruption": "gaussian:0.1"},
                            likelihood="gaussian", pretrain_epochs=1, optimizer="adam", learning_rate=0.1,
                            batch_size=64, max_epochs=5, random_state=0),  # as DrSAE: 0.91-0.98 on the blobs
    LateralInhibitionCoder: dict(n_components=4, inference_max_iter=20, max_epochs=2),
    # the checks' rows (1 to 10 features) as one-row images of any width ((1, -1)), 1×1 kernels;
    # several checks set n_components=1, so the pools are of one map, and the local model's
    # padding of 1 makes its sheet of units ≥ 3×3, where the default 3×3 windows fit
    ConvSparseAutoencoder: dict(n_components=1, image_shape=(1, -1), kernel_size=1,
                                pools={"kind": "disjoint", "group_size": 1, "n_components": 1}, max_epochs=2),
    LocalSparseAutoencoder: dict(n_components=2, image_shape=(1, -1), kernel_size=1, padding=1, max_epochs=5),
    # scikit-learn's own settings for its three (sklearn/utils/_test_common/instance_generator.py)
    SparseCoder: dict(dictionary=np.random.default_rng(0).normal(size=(5, 3))),
    DictionaryLearning: dict(max_iter=20, transform_algorithm="lasso_lars", random_state=0),
    MiniBatchDictionaryLearning: dict(batch_size=10, max_iter=5, random_state=0),
}
#: n_features of the dictionary scikit-learn gives its SparseCoder in these checks
#: (its PER_ESTIMATOR_CHECK_PARAMS: a dictionary as wide as the check's data); the same here.
CODER_CHECK_FEATURES = {
    "check_estimators_dtypes": 5, "check_dtype_object": 10, "check_transformers_unfitted_stateless": 5,
    "check_fit_idempotent": 2, "check_transformer_preserve_dtypes": 3, "check_set_output_transform": 5,
    "check_global_output_transform_pandas": 5, "check_set_output_transform_pandas": 5,
    "check_set_output_transform_polars": 5, "check_global_set_output_transform_polars": 5,
    "check_dataframe_column_names_consistency": 8, "check_estimators_overwrite_params": 2,
    "check_estimators_fit_returns_self": 2, "check_readonly_memmap_input": 2,
    "check_n_features_in_after_fitting": 4, "check_fit_check_is_fitted": 2, "check_n_features_in": 2,
    "check_positive_only_tag_during_fit": 4, "check_fit2d_1sample": 10, "check_fit2d_1feature": 1,
}


def test_every_public_estimator_has_check_parameters():
    estimators = public_estimators()
    assert len(estimators) >= 14 and LateralInhibitionCoder in estimators and SparseCoder in estimators
    assert BaseAutoencoderEstimator not in estimators  # abstract: not an estimator one can fit
    missing = [cls.__name__ for cls in estimators if cls not in CHECK_PARAMS]
    assert not missing, f"sparseae.estimators exports {missing} without an entry in CHECK_PARAMS: add one"
    stale = [cls.__name__ for cls in CHECK_PARAMS if cls not in estimators]
    assert not stale, f"CHECK_PARAMS names {stale}, which sparseae.estimators does not export"
    unlisted = [cls.__name__ for cls in estimators if cls.__name__ not in sparseae.estimators.__all__]
    assert not unlisted, f"{unlisted} are not in sparseae.estimators.__all__"


# Every check passes for every public estimator, sample-order invariance included (the array-API
# check skips itself unless SCIPY_ARRAY_API is set).
@parametrize_with_checks([cls(**CHECK_PARAMS[cls]) for cls in public_estimators() if cls in CHECK_PARAMS])
def test_sklearn_compatible(estimator, check):
    name = getattr(check, "func", check).__name__
    if isinstance(estimator, SparseCoder) and name in CODER_CHECK_FEATURES:
        dictionary = np.random.default_rng(1).normal(size=(5, CODER_CHECK_FEATURES[name]))
        estimator = clone(estimator).set_params(dictionary=dictionary)
    check(estimator)


def test_image_shape_infers_one_entry():
    # the image estimators' checks above rely on (1, -1): a one-row image as wide as the data
    from sparseae.nn.convolutional import image_geometry

    assert image_geometry((1, -1), 7) == (1, 1, 7)
    assert image_geometry((2, -1, 3), 12) == (2, 2, 3)
    assert image_geometry((-1, 4), 8) == (1, 2, 4)
    with pytest.raises(ConfigError, match="more than one -1"):
        image_geometry((-1, -1), 7)
    with pytest.raises(ConfigError, match="n_features = 7"):
        image_geometry((3, -1), 7)
    with pytest.raises(ConfigError, match="image_shape entries"):
        image_geometry((-2, 7), 7)
    X = np.random.default_rng(0).normal(size=(20, 12)).astype(np.float32)
    est = ConvSparseAutoencoder(n_components=2, image_shape=(2, -1), kernel_size=2, max_epochs=1,
                                pools={"kind": "disjoint", "group_size": 2, "n_components": 2}, random_state=0)
    assert est.fit(X).transform(X).shape == (20, 2 * 1 * 5)  # 2 maps of (2 − 2 + 1)×(6 − 2 + 1)


@pytest.mark.parametrize("estimator", [
    DenoisingAutoencoder(n_components=1, corruption="gaussian:0.1", likelihood="gaussian", max_epochs=5),
    ContractiveAutoencoder(n_components=1, likelihood="gaussian", max_epochs=5),
    StackedAutoencoder(n_components=1, hidden=(4,), likelihood="gaussian", pretrain_epochs=2, max_epochs=5),
    StackedClassifier(n_components=3, layer_params={"likelihood": "gaussian"}, likelihood="gaussian",
                      pretrain_epochs=1, max_epochs=3),
], ids=["dae", "cae", "stacked-ae", "stacked-clf"])
def test_outputs_do_not_depend_on_the_order_of_the_samples(estimator):
    # scikit-learn's check_methods_sample_order_invariance on its own data, over 200 permutations
    # and bit for bit: a float32 product's rounding depends on a row's position in the batch
    # (benchmarks/probe_row_order.py: 24.6% of a 10→4 layer's values), so inference runs in float64
    # on the CPU
    X = 3 * np.random.RandomState(0).uniform(size=(20, 3))
    y = (X[:, 0] > 1.5).astype(int)
    estimator = clone(estimator).set_params(random_state=1).fit(X, y)
    methods = ["transform", "predict", "predict_proba"] if hasattr(estimator, "predict") else \
        ["transform", "inverse_transform"]
    rng = np.random.default_rng(0)
    for method in methods:
        inputs = estimator.transform(X) if method == "inverse_transform" else X
        reference = getattr(estimator, method)(inputs)
        for _ in range(200):
            order = rng.permutation(len(X))
            np.testing.assert_array_equal(getattr(estimator, method)(inputs[order]), reference[order],
                                          err_msg=method)
    assert next(estimator.model_.parameters()).dtype == torch.float32  # the fitted model is untouched


# ----------------------------------------------------------------------------- fitting
@pytest.mark.parametrize("estimator", [
    SparseAutoencoder(n_components=16, max_iter=50, random_state=0),
    SparseAutoencoder(n_components=16, sparsity="l1", sparsity_weight=0.05, optimizer="adam",
                      learning_rate=1e-2, max_epochs=3, random_state=0),
    SparseAutoencoder(n_components=16, sparsity="none", activation="tanh", decoder="linear",
                      max_iter=50, random_state=0),
    LinearAutoencoder(n_components=3, max_epochs=3, random_state=0),
    LinearAutoencoder(n_components=3, tied=True, optimizer="sgd", max_epochs=3, random_state=0),
    AutoencoderEstimator(model="sparse_ae_kl", n_components=16, model_params={"decoder": "bernoulli"},
                         max_epochs=3, random_state=0),
], ids=["kl", "l1", "none", "linear", "linear-tied", "generic"])
def test_fit_transform_shapes_and_attributes(estimator, small):
    X, _ = small
    k = estimator.n_components
    params_before = estimator.get_params()
    assert estimator.fit(X) is estimator
    assert estimator.get_params() == params_before
    Z = estimator.transform(X)
    assert Z.shape == (len(X), k) and Z.dtype == np.float32
    X_hat = estimator.inverse_transform(Z)
    assert X_hat.shape == X.shape and X_hat.dtype == np.float32
    assert estimator.n_features_in_ == 64
    assert estimator.components_.shape == (k, 64)
    np.testing.assert_array_equal(estimator.components_, estimator.model_.decoder.weight.detach().numpy().T)
    assert isinstance(estimator.model_, torch.nn.Module)
    assert all(p.device.type == "cpu" for p in estimator.model_.parameters())
    assert estimator.n_iter_ == len(estimator.history_) >= 1
    assert "train_loss" in estimator.history_[-1]
    names = estimator.get_feature_names_out()
    assert len(names) == k and names[0] == f"{type(estimator).__name__.lower()}0"
    assert np.isfinite(estimator.score(X))
    np.testing.assert_array_equal(estimator.fit_transform(X), Z)  # seeded: identical refit


def test_transform_of_float64_and_memmap(small, tmp_path):
    X, _ = small
    sae = SparseAutoencoder(n_components=8, max_iter=20, random_state=0).fit(X)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=X.shape)
    mm[:] = X
    mm.flush()
    ro = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_allclose(sae.transform(X.astype(np.float64)), sae.transform(X), atol=1e-6)
    np.testing.assert_array_equal(sae.transform(ro), sae.transform(X))
    fitted_on_map = clone(sae).fit(ro)
    np.testing.assert_allclose(fitted_on_map.transform(X), sae.transform(X), atol=1e-5)


def test_seeding_is_reproducible_and_leaves_torch_rng_alone(small):
    X, _ = small
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = LinearAutoencoder(n_components=3, max_epochs=2, random_state=7).fit(X)
    np.testing.assert_array_equal(torch.rand(3), expected_next)
    b = LinearAutoencoder(n_components=3, max_epochs=2, random_state=7).fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    c = LinearAutoencoder(n_components=3, max_epochs=2, random_state=8).fit(X)
    assert not np.allclose(a.components_, c.components_)
    d = LinearAutoencoder(n_components=3, max_epochs=2).fit(X)  # random_state=None
    assert d.random_state is None and d.transform(X).shape == (len(X), 3)


def test_score_is_negative_training_criterion(small):
    X, _ = small
    sae = SparseAutoencoder(n_components=16, sparsity_target=0.05, max_iter=50, random_state=0).fit(X)
    # Full-batch L-BFGS logs the criterion on the whole training set after its last step.
    assert sae.score(X) == pytest.approx(-sae.history_[-1]["train_loss"], rel=1e-5)
    worse = SparseAutoencoder(n_components=16, sparsity_target=0.05, max_iter=2, random_state=0).fit(X)
    assert sae.score(X) > worse.score(X)


# ----------------------------------------------------------------------------- learning on digits
def test_kl_sparsity_reaches_target(digits):
    X, _ = digits
    sae = SparseAutoencoder(n_components=32, sparsity_target=0.05, max_iter=200, random_state=0).fit(X)
    Z = sae.transform(X)
    assert 0.025 < Z.mean() < 0.1
    per_unit = Z.mean(axis=0)
    assert per_unit.min() > 0.025 and per_unit.max() < 0.1
    assert explained_variance(X, sae.inverse_transform(Z)) > 0.5
    assert sae.history_[-1]["train_kl"] < sae.history_[0]["train_kl"] or sae.n_iter_ == 1


def test_l1_gives_exact_zeros(digits):
    X, _ = digits
    sae = SparseAutoencoder(n_components=32, sparsity="l1", sparsity_weight=0.05, optimizer="adam",
                            learning_rate=1e-2, max_epochs=30, random_state=0).fit(X)
    Z = sae.transform(X)
    assert (Z == 0).mean() > 0.3
    assert (Z >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(sae.components_, axis=1), 1.0, atol=1e-5)
    assert explained_variance(X, sae.inverse_transform(Z)) > 0.5


def test_linear_autoencoder_reconstructs(digits):
    X, _ = digits
    la = LinearAutoencoder(n_components=32, random_state=0).fit(X)
    assert explained_variance(X, la.inverse_transform(la.transform(X))) > 0.9


def test_pipeline_with_logistic_regression(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    pipe = make_pipeline(SparseAutoencoder(n_components=32, sparsity_target=0.05, max_iter=200,
                                           random_state=0),
                         LogisticRegression(max_iter=1000))
    pipe.fit(X_train, y_train)
    assert pipe.score(X_test, y_test) > 0.9
    names = pipe[:-1].get_feature_names_out()
    assert list(names[:2]) == ["sparseautoencoder0", "sparseautoencoder1"]


# ----------------------------------------------------------------------------- clone, pickle, save
def test_clone_copies_params_not_fit(small):
    X, _ = small
    est = AutoencoderEstimator(model="sparse_ae_l1", n_components=8,
                               model_params={"sparsity_weight": 0.01}, max_epochs=2, random_state=0)
    est.fit(X)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert twin.model_params is not est.model_params
    assert not hasattr(twin, "model_")
    with pytest.raises(NotFittedError):
        twin.transform(X)


@pytest.mark.parametrize("estimator", [
    LinearAutoencoder(n_components=3, max_epochs=2, random_state=0),  # identity activation
    SparseAutoencoder(n_components=8, max_iter=20, random_state=0),
])
def test_pickle_round_trip(estimator, small):
    X, _ = small
    estimator.fit(X)
    again = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(again.transform(X), estimator.transform(X))
    assert again.get_params() == estimator.get_params() and again.n_iter_ == estimator.n_iter_


@pytest.mark.parametrize("estimator", [
    SparseAutoencoder(n_components=8, sparsity="kl", activation="tanh", sparsity_target=0.1,
                      max_iter=20, random_state=0),
    LinearAutoencoder(n_components=3, tied=True, max_epochs=2, random_state=0),
    AutoencoderEstimator(model="autoencoder", n_components=6,
                         model_params={"activation": "relu", "sparsity": "l1", "sparsity_weight": 0.01},
                         max_epochs=2, random_state=0),
], ids=["sparse", "linear", "generic"])
def test_save_load_round_trip(estimator, small, tmp_path):
    X, _ = small
    estimator.fit(X)
    path = tmp_path / "est"
    estimator.save(path)
    loaded = type(estimator).load(path)
    assert type(loaded) is type(estimator)
    assert loaded.get_params() == estimator.get_params()
    np.testing.assert_array_equal(loaded.transform(X), estimator.transform(X))
    np.testing.assert_array_equal(loaded.components_, estimator.components_)
    assert loaded.n_iter_ == estimator.n_iter_ and loaded.history_ == estimator.history_
    assert loaded.score(X) == pytest.approx(estimator.score(X))
    assert type(BaseAutoencoderEstimator.load(path)) is type(estimator)

    with pytest.raises(OutputExistsError, match="overwrite"):
        estimator.save(path)
    refit = clone(estimator).set_params(random_state=1).fit(X)
    refit.save(path, overwrite=True)
    np.testing.assert_array_equal(type(estimator).load(path).transform(X), refit.transform(X))


def test_load_refuses_other_estimators_and_reads_bare_models(small, tmp_path):
    X, _ = small
    LinearAutoencoder(n_components=3, max_epochs=1, random_state=0).fit(X).save(tmp_path / "lin")
    with pytest.raises(CheckpointError, match="LinearAutoencoder"):
        SparseAutoencoder.load(tmp_path / "lin")
    with pytest.raises(CheckpointError):
        SparseAutoencoder.load(tmp_path / "missing")
    with pytest.raises(NotFittedError):
        SparseAutoencoder().save(tmp_path / "unfitted")

    model = create_model("sparse_ae_kl", 64, 5, sparsity_target=0.2)
    save_model(model, tmp_path / "bare")
    est = AutoencoderEstimator.load(tmp_path / "bare")
    assert est.model == "sparse_ae_kl" and est.n_components == 5
    assert est.model_params["sparsity_target"] == 0.2
    with torch.no_grad():
        expected = model.eval().encode(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(est.transform(X), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(CheckpointError):
        SparseAutoencoder.load(tmp_path / "bare")


def test_feature_names_from_a_dataframe(small, tmp_path):
    pd = pytest.importorskip("pandas")
    X, _ = small
    columns = [f"px{i}" for i in range(64)]
    frame = pd.DataFrame(X, columns=columns)
    est = LinearAutoencoder(n_components=2, max_epochs=1, random_state=0).fit(frame)
    assert list(est.feature_names_in_) == columns
    with pytest.raises(DataError, match="feature names"):
        est.transform(frame[columns[::-1]])
    est.save(tmp_path / "est")
    loaded = LinearAutoencoder.load(tmp_path / "est")
    assert list(loaded.feature_names_in_) == columns
    np.testing.assert_array_equal(loaded.transform(frame), est.transform(frame))


def test_verbose_shows_progress(small, capsys):
    X, _ = small
    LinearAutoencoder(n_components=2, max_epochs=1, verbose=True, random_state=0).fit(X)
    assert "step" in capsys.readouterr().err


# ----------------------------------------------------------------------------- errors
def test_not_fitted_errors(small):
    X, _ = small
    for method, arg in (("transform", X), ("inverse_transform", np.zeros((2, 25))), ("score", X)):
        with pytest.raises(NotFittedError, match="not fitted") as info:
            getattr(SparseAutoencoder(), method)(arg)
        assert isinstance(info.value, SklearnNotFittedError) and isinstance(info.value, SparseAEError)
    with pytest.raises(NotFittedError):
        SparseAutoencoder().get_feature_names_out()


def test_bad_data_errors(small):
    X, _ = small
    bad = X[:20].copy()
    bad[3, 5] = np.nan
    with pytest.raises(DataError, match="NaN"):
        SparseAutoencoder(max_iter=5).fit(bad)
    bad[3, 5] = np.inf
    with pytest.raises(DataError, match="inf"):
        SparseAutoencoder(max_iter=5).fit(bad)
    with pytest.raises(DataError, match="float32 range"):
        SparseAutoencoder(max_iter=5).fit(np.full((4, 3), 1e300))
    with pytest.raises(DataError, match="2D array"):
        SparseAutoencoder(max_iter=5).fit(X[0])
    with pytest.raises(DataError):
        SparseAutoencoder(max_iter=5).fit(np.empty((0, 64)))

    est = SparseAutoencoder(n_components=8, max_iter=5, random_state=0).fit(X)
    with pytest.raises(DataError, match="has 10 features"):
        est.transform(X[:, :10])
    with pytest.raises(DataError, match="NaN"):
        est.transform(np.where(np.arange(64) == 2, np.nan, X[:3]))
    with pytest.raises(DataError, match="has 10 features"):
        est.score(X[:, :10])
    with pytest.raises(DataError, match="8 components"):
        est.inverse_transform(np.zeros((2, 9)))
    with pytest.raises(DataError, match="NaN"):
        est.inverse_transform(np.full((2, 8), np.nan))


@pytest.mark.parametrize("estimator, match", [
    (SparseAutoencoder(sparsity_target=1.5), "sparsity_target"),
    (SparseAutoencoder(sparsity_target=0.0), "sparsity_target"),
    (SparseAutoencoder(sparsity="group"), "sparsity"),
    (SparseAutoencoder(sparsity_weight=-1.0), "sparsity_weight"),
    (SparseAutoencoder(weight_decay=-1e-4), "weight_decay"),
    (SparseAutoencoder(activation="relu"), "activation"),
    (SparseAutoencoder(n_components=0), "n_components"),
    (SparseAutoencoder(optimizer="rmsprop"), "optimizer"),
    (SparseAutoencoder(learning_rate=0.0), "learning_rate"),
    (SparseAutoencoder(random_state=-1), "random_state"),
    (SparseAutoencoder(device="tpu"), "device"),
    (LinearAutoencoder(validation_fraction=1.0), "validation_fraction"),
    (AutoencoderEstimator(model="no_such_model"), "unknown model 'no_such_model'"),
    (AutoencoderEstimator(model_params={"no_such_param": 1}), "no_such_param"),
    (AutoencoderEstimator(model_params={"n_features": 3}), "n_features"),
    (AutoencoderEstimator(model="sparse_ae_kl", model_params={"sparsity_target": 2.0}), "rho"),
    (AutoencoderEstimator(model="sparse_ae_kl", model_params={"weight_decay": -1.0}), "weight_decay"),
    (AutoencoderEstimator(model_params=[("activation", "relu")]), "model_params"),
])
def test_bad_hyperparameters_are_config_errors(estimator, match, small):
    X, _ = small
    with pytest.raises(ConfigError, match=match):
        estimator.fit(X[:20])
    assert not hasattr(estimator, "model_")


# ----------------------------------------------------------------------------- DrSAE classifier
def test_drsae_classifier_learns_digits_and_round_trips(tmp_path):
    X, y = load_digits(return_X_y=True)
    labels = np.array(list("abcdefghij"))[y]           # any label type: here strings
    X_train, X_test, y_train, y_test = train_test_split(X, labels, test_size=0.25, random_state=0)
    clf = DrSAEClassifier(n_components=64, n_steps=5, pretrain_epochs=2, max_epochs=8,
                          learning_rate=0.1, validation_fraction=0.2, n_iter_no_change=3,
                          random_state=0, device="cpu")
    clf.fit(X_train, y_train)
    accuracy = clf.score(X_test, y_test)
    assert accuracy > 0.8, accuracy                     # chance 0.1
    assert [r["phase"] for r in clf.history_[:2]] == ["pretrain", "pretrain"]
    assert "val_error" in clf.history_[-1]
    assert set(clf.predict(X_test)) <= set(clf.classes_)
    np.testing.assert_allclose(clf.predict_proba(X_test).sum(axis=1), 1.0, rtol=1e-5)
    codes = clf.transform(X_test)
    assert codes.shape == (len(X_test), 64) and codes.min() >= 0
    clf.save(tmp_path / "clf")
    loaded = BaseAutoencoderEstimator.load(tmp_path / "clf")
    assert isinstance(loaded, DrSAEClassifier)
    np.testing.assert_array_equal(loaded.predict(X_test), clf.predict(X_test))
    with pytest.raises(DataError, match="not seen at fit time"):
        clf.score(X_test, np.full(len(X_test), "z"))
    with pytest.raises(DataError, match="requires y"):
        DrSAEClassifier().fit(X_train)
    with pytest.raises(DataError, match="only one class"):
        DrSAEClassifier().fit(X_train, np.zeros(len(X_train)))

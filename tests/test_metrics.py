"""Tests of sparseae.evaluate: reconstruction metrics, sparsity statistics, linear probes."""
import numpy as np
import pytest
import torch

from sparseae.errors import ConfigError, DataError
from sparseae.evaluate import (
    SparsityAccumulator,
    confusion_matrix,
    explained_variance,
    fraction_of_variance_unexplained,
    linear_probe,
    mean_squared_error,
    reconstruction_error,
    sparsity_stats,
)

# ---------------------------------------------------------------- reconstruction metrics

X_SMALL = np.array([[1.0, 2.0], [3.0, 4.0]])
X_HAT_SMALL = np.array([[1.0, 0.0], [4.0, 4.0]])  # squared errors per sample: 4 and 1


def test_reconstruction_error_is_mean_of_per_sample_sums():
    assert reconstruction_error(X_SMALL, X_HAT_SMALL) == pytest.approx((4 + 1) / 2)


def test_mean_squared_error_is_per_element():
    assert mean_squared_error(X_SMALL, X_HAT_SMALL) == pytest.approx((4 + 1) / 4)


def test_metrics_accept_tensors_and_return_floats():
    value = reconstruction_error(torch.tensor(X_SMALL, dtype=torch.float32), torch.tensor(X_HAT_SMALL))
    assert isinstance(value, float) and value == pytest.approx(2.5)


def test_image_shaped_inputs_are_flattened_per_sample():
    X = np.zeros((3, 2, 2))
    X_hat = np.ones((3, 2, 2))
    assert reconstruction_error(X, X_hat) == pytest.approx(4.0)
    assert mean_squared_error(X, X_hat) == pytest.approx(1.0)


def test_explained_variance_hand_example():
    # mean(X) = (2, 3); Σ‖x − mean‖² = (1+1) + (1+1) = 4; Σ‖x − x̂‖² = 5  →  1 − 5/4
    assert explained_variance(X_SMALL, X_HAT_SMALL) == pytest.approx(-0.25)
    assert fraction_of_variance_unexplained(X_SMALL, X_HAT_SMALL) == pytest.approx(1.25)


def test_explained_variance_of_perfect_and_mean_reconstructions():
    X = np.random.default_rng(0).normal(size=(50, 7))
    assert explained_variance(X, X) == pytest.approx(1.0)
    assert explained_variance(X, np.broadcast_to(X.mean(axis=0), X.shape)) == pytest.approx(0.0, abs=1e-12)
    assert fraction_of_variance_unexplained(X, X) == pytest.approx(0.0)


def test_explained_variance_of_constant_data():
    X = np.ones((4, 3))
    assert explained_variance(X, X) == 1.0
    assert explained_variance(X, X + 1) == 0.0


@pytest.mark.parametrize("X_hat, match", [
    (np.zeros((2, 3)), "shape"),
    (np.array([[1.0, np.nan], [0.0, 0.0]]), "NaN"),
    (np.zeros((0, 2)), "empty"),
])
def test_reconstruction_metrics_reject_bad_input(X_hat, match):
    with pytest.raises(DataError, match=match):
        reconstruction_error(X_SMALL if X_hat.shape[0] else X_hat, X_hat)


def test_one_dimensional_input_is_refused():
    with pytest.raises(DataError, match="2-D"):
        explained_variance(np.ones(3), np.ones(3))


# ---------------------------------------------------------------- sparsity statistics

# 4 samples × 5 units. Unit 3 is always 0 (dead), unit 4 is only ever 0.05 (dead at 0.1).
Z_SMALL = np.array([
    [0.0, 1.0, 0.5, 0.0, 0.05],
    [2.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 3.0, -0.5, 0.0, 0.05],
    [1.0, 0.0, 0.0, 0.0, 0.0],
])


def test_sparsity_stats_hand_example():
    stats = sparsity_stats(Z_SMALL)
    # nonzeros per sample: 3, 1, 3, 1
    assert stats["mean_l0"] == pytest.approx(2.0)
    assert stats["active_fraction"] == pytest.approx(2.0 / 5)
    np.testing.assert_allclose(stats["activation_frequency"], [0.5, 0.5, 0.5, 0.0, 0.5])
    np.testing.assert_allclose(stats["rho_hat"], [0.75, 1.0, 0.0, 0.0, 0.025])
    assert stats["dead_units"] == 1 and isinstance(stats["dead_units"], int)
    assert stats["dead_fraction"] == pytest.approx(0.2)
    assert stats["n_samples"] == 4 and stats["n_units"] == 5
    assert isinstance(stats["mean_l0"], float)
    assert stats["rho_hat"].shape == (5,) and stats["activation_frequency"].shape == (5,)


def test_sparsity_thresholds():
    stats = sparsity_stats(Z_SMALL, threshold=0.1, dead_threshold=0.1)
    # |z| > 0.1 per sample: 2, 1, 2, 1 ; unit 4 (only 0.05) now dead too
    assert stats["mean_l0"] == pytest.approx(1.5)
    np.testing.assert_allclose(stats["activation_frequency"], [0.5, 0.5, 0.5, 0.0, 0.0])
    assert stats["dead_units"] == 2 and stats["dead_fraction"] == pytest.approx(0.4)


def test_tanh_codes_are_mapped_to_unit_interval():
    Z = np.array([[-1.0, 1.0, 0.0], [-1.0, 0.0, 0.5]])
    stats = sparsity_stats(Z, activation_range=(-1, 1))
    np.testing.assert_allclose(stats["rho_hat"], [0.0, 0.75, 0.625])  # mean of (z + 1) / 2
    # activity still looks at the raw code: -1 counts as active (|z| > 0)
    np.testing.assert_allclose(stats["activation_frequency"], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(sparsity_stats(Z)["rho_hat"], [-1.0, 0.5, 0.25])


def test_sparsity_stats_accepts_tensors():
    stats = sparsity_stats(torch.tensor(Z_SMALL, dtype=torch.float32))
    assert stats["mean_l0"] == pytest.approx(2.0) and stats["dead_units"] == 1


@pytest.mark.parametrize("kwargs", [{"threshold": -1}, {"dead_threshold": "x"},
                                    {"activation_range": (1, -1)}, {"activation_range": 3}])
def test_sparsity_stats_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        sparsity_stats(Z_SMALL, **kwargs)


@pytest.mark.parametrize("Z", [np.zeros(5), np.zeros((0, 3)), np.array([[np.inf, 0.0]]),
                               torch.tensor([[float("nan"), 0.0]]), torch.zeros(2, 3, 4)])
def test_sparsity_stats_rejects_bad_codes(Z):
    with pytest.raises(DataError):
        sparsity_stats(Z)


def test_accumulator_equals_stats_on_concatenation():
    rng = np.random.default_rng(1)
    Z = np.maximum(rng.normal(size=(203, 17)), 0.0)
    Z[:, [2, 9]] = 0.0  # dead units
    Z[150, 9] = 0.3  # unit 9 alive only in the last batches
    Z = np.tanh(Z) * 2 - 1
    kwargs = {"threshold": 0.05, "dead_threshold": 0.0, "activation_range": (-1, 1)}
    accumulator = SparsityAccumulator(**kwargs)
    tensor = torch.tensor(Z, dtype=torch.float64)
    for batch in torch.split(tensor, 64):
        accumulator.update(batch)
    accumulator.update(tensor[:0])  # empty batches are ignored
    batched, whole = accumulator.compute(), sparsity_stats(Z, **kwargs)
    assert batched.keys() == whole.keys()
    for key in whole:
        np.testing.assert_allclose(batched[key], whole[key], rtol=1e-12, err_msg=key)


def test_accumulator_dead_units_over_all_batches():
    accumulator = SparsityAccumulator()
    accumulator.update(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    accumulator.update(torch.tensor([[2.0, 0.0]]))
    stats = accumulator.compute()
    assert stats["dead_units"] == 0 and stats["n_samples"] == 3
    np.testing.assert_allclose(stats["activation_frequency"], [1 / 3, 1 / 3])
    accumulator.reset()
    with pytest.raises(DataError, match="no samples"):
        accumulator.compute()


def test_accumulator_reports_nan_at_compute_and_checks_widths():
    accumulator = SparsityAccumulator()
    accumulator.update(torch.tensor([[float("nan"), 1.0]]))  # no host sync here, so no error yet
    with pytest.raises(DataError, match="NaN"):
        accumulator.compute()
    with pytest.raises(DataError, match="units"):
        accumulator.update(torch.zeros(2, 3))
    with pytest.raises(DataError, match="2-D"):
        SparsityAccumulator().update(torch.zeros(4))


def test_accumulator_keeps_state_on_batch_device_and_tolerates_grad():
    accumulator = SparsityAccumulator()
    Z = torch.rand(8, 3, requires_grad=True)
    accumulator.update(Z * 1.0)
    assert accumulator._value_sum.device == Z.device
    assert accumulator.compute()["n_samples"] == 8


# ---------------------------------------------------------------- linear probe

def _blobs(n_per_class, n_classes, n_features, separation, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, n_features)) * separation
    y = np.repeat(np.arange(n_classes), n_per_class)
    return centres[y] + rng.normal(size=(len(y), n_features)), y


def test_probe_on_separable_blobs():
    Z, y = _blobs(60, 3, 10, separation=6.0, seed=0)
    order = np.random.default_rng(1).permutation(len(y))
    Z, y = Z[order], y[order]
    result = linear_probe(Z[:120], y[:120], Z[120:], y[120:])
    assert result["accuracy"] >= 0.95 and result["train_accuracy"] >= 0.95
    assert isinstance(result["accuracy"], float)
    assert result["n_classes"] == 3 and result["converged"]
    assert result["classifier"].predict(Z[120:]).shape == (60,)
    assert "scaler" in result["classifier"].named_steps


def test_probe_on_random_labels_is_near_chance():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(1000, 5))
    y = rng.integers(0, 4, size=1000)
    result = linear_probe(Z[:600], y[:600], Z[600:], y[600:], standardize=False)
    assert abs(result["accuracy"] - 0.25) < 0.08
    assert "scaler" not in result["classifier"].named_steps


def test_probe_accepts_tensors_and_string_labels():
    Z, y = _blobs(20, 2, 4, separation=8.0, seed=3)
    names = np.array(["cat", "dog"])[y]
    result = linear_probe(torch.tensor(Z), names, torch.tensor(Z), names.reshape(-1, 1))
    assert result["accuracy"] >= 0.95


@pytest.mark.parametrize("change, match", [
    ({"y_train": np.zeros(9)}, "labels"),
    ({"y_test": np.zeros(5)}, "labels"),
    ({"y_train": np.zeros(10)}, "at least 2 classes"),
    ({"y_test": np.array([0, 1, 2, 0, 1, 7])}, "never seen"),
    ({"Z_test": np.zeros((6, 4))}, "features"),
    ({"Z_train": np.full((10, 3), np.nan)}, "NaN"),
    ({"y_train": np.zeros((10, 2))}, "1-D"),
])
def test_probe_rejects_bad_data(change, match):
    args = {"Z_train": np.random.default_rng(0).normal(size=(10, 3)), "y_train": np.arange(10) % 3,
            "Z_test": np.zeros((6, 3)), "y_test": np.arange(6) % 3}
    args.update(change)
    with pytest.raises(DataError, match=match):
        linear_probe(args["Z_train"], args["y_train"], args["Z_test"], args["y_test"])


@pytest.mark.parametrize("kwargs", [{"C": 0}, {"max_iter": 0}, {"max_iter": 2.5}, {"standardize": "yes"}])
def test_probe_rejects_bad_settings(kwargs):
    Z, y = _blobs(5, 2, 3, separation=3.0, seed=0)
    with pytest.raises(ConfigError):
        linear_probe(Z, y, Z, y, **kwargs)


def test_confusion_matrix_reuses_sklearn():
    matrix = confusion_matrix(torch.tensor([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    with pytest.raises(DataError):
        confusion_matrix([0, 1], [0])


def test_preferred_orientation_of_gratings_and_topographic_smoothness():
    from sparseae.evaluate.filters import preferred_orientation, topographic_smoothness

    yy, xx = np.mgrid[0:8, 0:8]
    angles = np.array([0.0, np.pi / 6, np.pi / 3, np.pi / 2, 2 * np.pi / 3])
    # a grating whose stripes run along angle a varies along the normal direction a + π/2;
    # its frequency vector points along the normal, so the power-weighted orientation is a + π/2
    gratings = np.stack([np.cos(1.3 * (xx * np.cos(a + np.pi / 2) + yy * np.sin(a + np.pi / 2))).ravel()
                         for a in angles])
    found = preferred_orientation(gratings, (8, 8))
    expected = (angles + np.pi / 2) % np.pi
    difference = np.abs(found - expected) % np.pi
    assert np.minimum(difference, np.pi - difference).max() < 0.12
    # a smooth map (orientation = column angle) against a random one
    smooth = np.tile(np.linspace(0, np.pi, 12, endpoint=False), 12)
    result = topographic_smoothness(smooth, 12, 12)
    assert result["ratio"] < 0.35 and result["shuffled"] == pytest.approx(np.pi / 4, abs=0.05)
    noise = np.random.default_rng(0).uniform(0, np.pi, 144)
    assert 0.85 < topographic_smoothness(noise, 12, 12)["ratio"] < 1.15

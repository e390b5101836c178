"""The UFLDL sparse autoencoder exercise (MODELS.md §2), on the natural images that ship offline.

The exercise's claims, measured: the gradient check passes at < 1e-9 on its exact criterion, and
the learned filters are oriented edges — their spectral power is concentrated on one
orientation far more than random filters' is.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparseae.data import natural_image_patches
from sparseae.evaluate import orientation_selectivity, random_filter_baseline, sparsity_stats
from sparseae.gradcheck import check_gradients
from sparseae.models import create_model
from sparseae.train import TrainConfig, train

EXERCISE = dict(sparsity_weight=3.0, sparsity_target=0.01, weight_decay=1e-4)  # β, ρ, λ


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    return natural_image_patches(5000, 8, random_state=0)


def test_exercise_gradient_check(patches):
    model = create_model("sparse_ae_kl", 64, 25, **EXERCISE)
    # the exercise checks on a few patches, with UFLDL's own two-point central differences
    result = check_gradients(model, patches[:10], epsilon=1e-4, order=2)
    assert result.relative_error < 1e-9
    assert result.n_checked + result.n_kinks == 64 * 25 * 2 + 25 + 64


def test_exercise_learns_oriented_edge_filters(patches):
    torch.manual_seed(0)
    model = create_model("sparse_ae_kl", 64, 25, **EXERCISE)
    result = train(model, patches, TrainConfig(optimizer="lbfgs", learning_rate=1.0, lbfgs_max_iter=200,
                                               dtype="float64"))
    variance_loss = 0.5 * patches.astype(np.float64).var(0).sum()   # predicting the mean patch
    assert result.history[-1]["train_reconstruction"] < 0.8 * variance_loss
    W = model.encoder.weight.detach().numpy()
    selectivity = orientation_selectivity(W, (8, 8))
    random = orientation_selectivity(random_filter_baseline(1000, (8, 8)), (8, 8))
    assert selectivity.mean() > 0.4 > 2 * random.mean()
    assert (selectivity > np.percentile(random, 95)).mean() >= 0.7
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(patches).double()).numpy()
    assert sparsity_stats(codes)["rho_hat"].mean() == pytest.approx(0.01, abs=0.01)


def test_orientation_selectivity_separates_gabors_from_blobs():
    y, x = np.mgrid[0:8, 0:8]
    envelope = np.exp(-((x - 3.5) ** 2 + (y - 3.5) ** 2) / 8.0)
    gabor = (np.cos(1.5 * (x * np.cos(0.7) + y * np.sin(0.7))) * envelope).reshape(1, 64)
    blob = np.exp(-((x - 3.5) ** 2 + (y - 3.5) ** 2) / 4.0).reshape(1, 64)
    assert orientation_selectivity(gabor, (8, 8))[0] > 0.85
    assert orientation_selectivity(blob, (8, 8))[0] < 0.1

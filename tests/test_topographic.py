"""Topographic maps: dense group sums, reconstruction ICA (unit-norm rows inside the objective),
PCA/ZCA whitening with dimension reduction, the smooth group penalty and its accelerated-gradient
inference, the orientation-map measures, and a tiny end-to-end map."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

import sparseae.groups as groups_module
from sparseae.coding.dictionary import SparseInference
from sparseae.coding.smooth import smooth_group_codes, smooth_group_lipschitz
from sparseae.data import ZCAWhitening
from sparseae.errors import ConfigError, DataError
from sparseae.evaluate.filters import orientation_singularities, topographic_smoothness
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.groups import grid_groups
from sparseae.io import load_model, save_model
from sparseae.models import create_model


def test_dense_and_scatter_group_sums_agree(monkeypatch):
    structure = grid_groups(4, 5, window=3, gaussian_sigma=1.2)
    z = torch.randn(7, 20, dtype=torch.float64, requires_grad=True)
    M = structure.membership_matrix(dtype=torch.float64)
    assert M.shape == (20, 20) and float(M.sum()) == pytest.approx(float(structure.weights.sum()))
    assert structure.membership_matrix(dtype=torch.float64) is M  # cached
    dense = structure.group_norms(z, 1e-3)
    (g_dense,) = torch.autograd.grad(dense.sum(), z)
    monkeypatch.setattr(groups_module, "DENSE_LIMIT", 0)  # force the gather + index_add path
    scatter = structure.group_norms(z, 1e-3)
    (g_scatter,) = torch.autograd.grad(scatter.sum(), z)
    torch.testing.assert_close(dense, scatter)
    torch.testing.assert_close(g_dense, g_scatter)


def test_unit_norm_encoder_is_rica_and_saves(tmp_path):
    groups = {"kind": "grid", "height": 3, "width": 4, "window": 2}
    model = create_model("autoencoder", 6, 12, activation="identity", tied=True, sparsity="group",
                         sparsity_weight=0.2, groups=groups, group_eps=1e-2, unit_norm_encoder=True)
    torch.testing.assert_close(model.encoder.weight.norm(dim=1), torch.ones(12))
    assert model.penalties["group"].eps == 1e-2
    X = np.random.default_rng(0).standard_normal((5, 6))
    result = check_gradients(model, X)
    assert result.relative_error < UFLDL_TOLERANCE
    # the loss is RICA's ½‖WᵀWx − x‖² + λ Σ_j √(Σ_{i∈g_j}(Wx)_i² + ε) (biases at zero)
    x = torch.from_numpy(X).float()
    W = model.encoder.weight.detach()
    z = x @ W.t()
    expected = 0.5 * (z @ W - x).pow(2).sum(1).mean() + 0.2 * (
        model.penalties["group"].groups.group_norms(z, 1e-2).sum(1).mean())
    torch.testing.assert_close(model.loss(x).loss.detach(), expected)
    with torch.no_grad():  # scaling the stored parameter changes nothing: the rows are normalized
        model.encoder.parametrizations.weight.original.mul_(3.0)
    torch.testing.assert_close(model.encoder.weight.detach(), W)
    save_model(model, tmp_path / "rica")
    loaded = load_model(tmp_path / "rica")
    torch.testing.assert_close(loaded.encoder.weight, model.encoder.weight)
    torch.testing.assert_close(loaded(x), model(x))


def test_whitening_with_kept_directions_and_pca_coordinates():
    rng = np.random.default_rng(1)
    rotation = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    X = rng.standard_normal((2000, 6)) @ np.diag([5.0, 3.0, 2.0, 0.1, 0.05, 0.02]) @ rotation
    zca = ZCAWhitening(epsilon=1e-8, n_components=3).fit(X)
    Z = zca.transform(X)
    assert Z.shape == (2000, 6) and np.linalg.matrix_rank(np.cov(Z.T), tol=1e-6) == 3
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(np.cov(Z.T, bias=True)))[-3:], 1.0, atol=1e-6)
    pca = ZCAWhitening(epsilon=1e-8, n_components=3, rotate_back=False).fit(X)
    P = pca.transform(X)
    assert P.shape == (2000, 3) and pca.components_.shape == (6, 3) and pca.inverse_components_.shape == (3, 6)
    np.testing.assert_allclose(np.cov(P.T, bias=True), np.eye(3), atol=1e-6)
    # the two differ by a rotation into pixel space; the inverse restores the kept directions
    np.testing.assert_allclose(P @ (pca.inverse_components_ @ zca.components_), Z, atol=1e-6)
    restored = pca.inverse_transform(P)
    np.testing.assert_allclose(restored, zca.inverse_transform(Z), atol=1e-6)
    assert np.linalg.norm(restored - X) / np.linalg.norm(X) < 0.05  # only the weak directions are lost
    assert pca.get_params() == {"epsilon": 1e-8, "n_components": 3, "rotate_back": False}
    with pytest.raises(ConfigError, match="n_components"):
        ZCAWhitening(n_components=7).fit(X)


def _smooth_objective(z, x, D, lam, structure, eps):
    z = torch.as_tensor(z, dtype=torch.float64).reshape(1, -1)
    return float(0.5 * (x - z @ D.t()).pow(2).sum() + lam * structure.group_norms(z, eps).sum())


def test_smooth_group_codes_minimize_the_smooth_energy():
    torch.manual_seed(0)
    structure = grid_groups(3, 3, window=2, gaussian_sigma=1.0)
    D = torch.randn(5, 9, dtype=torch.float64)
    D /= D.norm(dim=0)
    X = torch.randn(4, 5, dtype=torch.float64)
    lam, eps = 0.3, 1e-2
    Z = smooth_group_codes(X, D, lam, structure, eps, max_iter=5000, tol=1e-13)
    for x, z in zip(X, Z, strict=True):
        def energy_and_gradient(v, x=x):
            t = torch.tensor(v, requires_grad=True)
            value = 0.5 * (x - D @ t).pow(2).sum() + lam * structure.group_norms(t[None], eps).sum()
            value.backward()
            return float(value.detach()), t.grad.numpy()
        best = minimize(energy_and_gradient, np.zeros(9), jac=True, method="L-BFGS-B",
                        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        assert _smooth_objective(z, x, D, lam, structure, eps) <= best.fun + 1e-9
        np.testing.assert_allclose(z.numpy(), best.x, atol=1e-4)
    assert smooth_group_lipschitz(structure, lam, eps) == pytest.approx(
        lam * float(structure.membership_matrix(dtype=torch.float64).sum(1).max()) / 0.1)
    with pytest.raises(ConfigError, match="eps"):
        smooth_group_codes(X, D, lam, structure, 0.0)


def test_smooth_group_inference_in_sparse_coding_and_psd():
    torch.manual_seed(1)
    grid = {"kind": "grid", "height": 3, "width": 3, "window": 2}
    model = create_model("sparse_coding", 5, 9, sparsity_weight=0.3, groups=grid, group_eps=1e-2,
                         inference_max_iter=3000, tol=1e-14)
    assert model.inference.group_eps == 1e-2 and model.penalties["group"].eps == 1e-2
    model.double()
    X = torch.randn(6, 5, dtype=torch.float64)
    z = model.encode(X)
    direct = smooth_group_codes(X, model.dictionary, 0.3, model.inference.groups, 1e-2, max_iter=3000, tol=1e-14)
    torch.testing.assert_close(z, direct)
    # at z* the energy's gradient in z vanishes, so the loss's gradient in D is exact (envelope theorem)
    result = check_gradients(model, X.numpy(), max_checks_per_parameter=12)
    assert result.n_checked == 12 and result.relative_error < 1e-6
    psd = create_model("psd", 5, 9, sparsity_weight=0.3, groups=grid, group_eps=1e-2, inference_max_iter=3000,
                       tol=1e-14)
    psd.double()
    prediction = psd.encode(X)
    code = psd.sparse_code(X, prediction=prediction)
    t = code.clone().requires_grad_()
    energy = sum(term.sum() for term in psd.energy_terms(X, t, prediction).values())
    (gradient,) = torch.autograd.grad(energy, t)
    assert float(gradient.abs().max()) < 1e-6  # z* minimizes E(x, z) with the prediction term
    with pytest.raises(ConfigError, match="needs groups"):
        SparseInference(0.1, group_eps=1e-2)


def test_orientation_measures_on_synthetic_maps():
    side = 12
    rows, cols = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    smooth = (np.pi * (rows + cols) / side) % np.pi  # changes by π/12 per step, periodic on the torus
    result = topographic_smoothness(smooth.ravel(), side, side)
    assert result["neighbour"] == pytest.approx(np.pi / side) and result["ratio"] < 0.4
    assert result["pairs"] == 2 * side * side
    assert not orientation_singularities(smooth.ravel(), side, side).any()
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, np.pi, side * side)
    assert 0.2 < np.count_nonzero(orientation_singularities(noise, side, side)) / side ** 2 < 0.5
    # a pinwheel: orientation = half the polar angle around (5.5, 5.5), the centre of plaquette (5, 5)
    pinwheel = (np.arctan2(rows - 5.5, cols - 5.5) / 2) % np.pi
    found = orientation_singularities(pinwheel.ravel(), side, side)
    assert found[5, 5] == 1 and found.sum() == 0  # the torus's total winding is zero
    # the mask: noisy non-selective units hidden, only the smooth ones compared
    mixed = smooth.ravel().copy()
    mixed[::2] = noise[::2]
    selective = np.ones(side * side, dtype=bool)
    selective[::2] = False
    masked = topographic_smoothness(mixed, side, side, mask=selective, toroidal=False)
    assert topographic_smoothness(mixed, side, side)["ratio"] > 0.6
    # only vertical pairs have both units selective (11 × 6 of them off the torus), all smooth
    assert masked["pairs"] == 66 and masked["neighbour"] == pytest.approx(np.pi / side) and masked["ratio"] < 0.4
    with pytest.raises(DataError, match="no pair"):
        topographic_smoothness(mixed, side, side, mask=np.zeros(side * side, dtype=bool))


def test_a_tiny_topographic_map_forms():
    """Reconstruction ICA with 3×3 pooling on an 8×8 torus, PCA-whitened 8×8 patches kept to 24
    directions, full-batch L-BFGS: grid neighbours end up with much closer orientations than
    the same filters permuted (the benchmark's recipe at a small size)."""
    from sparseae.data.datasets import natural_image_patches
    from sparseae.evaluate.filters import preferred_orientation
    from sparseae.train import TrainConfig, train

    torch.manual_seed(0)
    raw = natural_image_patches(1500, 8, whitening="none", ufldl_normalize=False, random_state=0).astype(np.float64)
    raw -= raw.mean(axis=1, keepdims=True)
    raw /= raw.std()
    zca = ZCAWhitening(epsilon=0.1, n_components=24, rotate_back=False).fit(raw)
    model = create_model("autoencoder", 24, 64, activation="identity", tied=True, sparsity="group",
                         sparsity_weight=0.1, groups={"kind": "grid", "height": 8, "width": 8, "window": 3},
                         group_eps=1e-2, unit_norm_encoder=True)
    train(model, zca.transform(raw), TrainConfig(optimizer="lbfgs", learning_rate=1.0, lbfgs_max_iter=150,
                                                 lbfgs_iter_per_epoch=50, dtype="float64"))
    W = model.encoder.weight.detach().numpy() @ zca.inverse_components_
    result = topographic_smoothness(preferred_orientation(W, (8, 8)), 8, 8)
    assert result["ratio"] < 0.8, result

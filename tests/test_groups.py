"""Group structures, the group-sparsity penalty and the group proximal operators (disjoint,
tree and overlapping), checked against direct computations and an independent solver."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from sparseae.coding import fista
from sparseae.coding.prox import GroupProx
from sparseae.errors import ConfigError
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.groups import balanced_tree, custom_groups, disjoint_groups, grid_groups, make_groups, tree_groups
from sparseae.models import create_model


def test_builders_give_the_expected_groups():
    assert disjoint_groups(6, 2).members(1) == [2, 3]
    grid = grid_groups(4, 5, window=3)
    assert grid.n_groups == 20 and grid.members(0) == [0, 1, 2, 5, 6, 7, 10, 11, 12]
    assert grid.members(19) == sorted([19, 15, 16, 4, 0, 1, 9, 5, 6])  # wraps around both edges
    assert grid_groups(4, 5, window=3, toroidal=False).n_groups == 2 * 3
    tree = tree_groups(balanced_tree(2, 2))
    assert tree.n_groups == 7 and tree.members(0) == list(range(7)) and tree.members(2) == [2, 5, 6]
    weighted = grid_groups(5, 5, window=3, gaussian_sigma=1.0)
    w = weighted.weights[weighted.group_index == 0]
    assert float(w.max()) == 1.0 and float(w.min()) == pytest.approx(np.exp(-1.0))
    assert make_groups(grid.spec).members(7) == grid.members(7)
    assert make_groups({"kind": "tree", "depth": 1, "branching": 3}).n_groups == 4


def test_group_norms_equal_a_direct_sum():
    structure = grid_groups(3, 4, window=2, gaussian_sigma=0.8)
    z = torch.randn(5, 12, dtype=torch.float64)
    expected = torch.stack([torch.stack([
        (structure.weights[structure.group_index == j] * z[b, structure.unit_index[structure.group_index == j]] ** 2
         ).sum().sqrt() for j in range(structure.n_groups)]) for b in range(5)])
    torch.testing.assert_close(structure.group_norms(z), expected)


@pytest.mark.parametrize("spec, message", [
    ({"kind": "disjoint", "n_components": 10, "group_size": 3}, "do not split"),
    ({"kind": "grid", "height": 2, "width": 5, "window": 3}, "does not fit"),
    ({"kind": "tree", "parent": [1, 0]}, "cycle"),
    ({"kind": "tree", "parent": [-1, 5]}, "parent entries"),
    ({"kind": "custom", "groups": [[0, 1], [1, 7]], "n_components": 4}, "units 0..3"),
    ({"kind": "custom", "groups": [[0, 0]], "n_components": 4}, "twice"),
    ({"kind": "ring"}, "kind"),
    ({"kind": "grid", "height": 3}, "width"),
])
def test_bad_group_specs_are_named(spec, message):
    with pytest.raises(ConfigError, match=message):
        make_groups(spec)


def test_a_group_spec_must_fit_the_code_size():
    with pytest.raises(ConfigError, match="covers 16 code units, but the code has 15"):
        create_model("autoencoder", 8, 15, sparsity="group", groups={"kind": "grid", "height": 4, "width": 4})
    with pytest.raises(ConfigError, match="needs groups"):
        create_model("autoencoder", 8, 16, sparsity="group")


def _prox_by_scipy(v: np.ndarray, structure, theta: float) -> np.ndarray:
    """argmin_u ½‖u − v‖² + θ Σ_j ‖u‖_{g_j} by a general-purpose solver (smoothed by 1e-12)."""
    def objective(u):
        norms = structure.group_norms(torch.from_numpy(u[None]), eps=1e-12)[0].numpy()
        return 0.5 * np.sum((u - v) ** 2) + theta * norms.sum()
    return minimize(objective, v * 0.5, method="Powell", options={"xtol": 1e-10, "ftol": 1e-14, "maxiter": 200000}).x


@pytest.mark.parametrize("structure", [
    disjoint_groups(8, 2), tree_groups(balanced_tree(2, 2)), grid_groups(3, 3, window=2),
    custom_groups([[0, 1, 2], [2, 3], [3, 4, 5]], 6, weights=[[1, 1, 2], [1, 1], [0.5, 1, 1]]),
], ids=["disjoint", "tree", "grid", "weighted"])
def test_group_prox_is_the_minimizer(structure):
    torch.manual_seed(0)
    v = torch.randn(3, structure.n_components, dtype=torch.float64)
    prox = GroupProx(structure, n_iter=3000)
    u = prox(v, 0.4)
    def objective(w, target=v):
        return 0.5 * (w - target).pow(2).sum(1) + prox.penalty(w, 0.4)

    for b in range(3):
        reference = torch.from_numpy(_prox_by_scipy(v[b].numpy(), structure, 0.4))
        assert float(objective(u[b:b + 1], v[b:b + 1])) <= float(objective(reference[None], v[b:b + 1])) + 1e-7
        torch.testing.assert_close(u[b], reference, atol=2e-3, rtol=0)
    # no random perturbation does better
    for _ in range(20):
        assert (objective(u) <= objective(u + 1e-3 * torch.randn_like(u)) + 1e-12).all()


def test_tree_prox_zeroes_a_subtree_before_its_ancestors():
    structure = tree_groups(balanced_tree(1, 2))  # root 0 with leaves 1 and 2
    v = torch.tensor([[3.0, 0.1, 2.0]], dtype=torch.float64)
    u = GroupProx(structure)(v, 0.5)
    assert u[0, 1] == 0 and u[0, 2] > 0 and u[0, 0] > 0  # the weak leaf goes, the root stays


def test_fista_with_group_prox_finds_group_sparse_codes():
    torch.manual_seed(0)
    D = torch.randn(20, 24, dtype=torch.float64)
    D /= D.norm(dim=0)
    structure = disjoint_groups(24, 4)
    z_true = torch.zeros(10, 24, dtype=torch.float64)
    z_true[:, 4:8] = torch.randn(10, 4, dtype=torch.float64)  # one active group
    X = z_true @ D.t()
    result = fista(X, D, 0.05, prox=GroupProx(structure), max_iter=2000, tol=1e-10)
    norms = structure.group_norms(result.codes)
    assert (norms.argmax(dim=1) == 1).all()  # the true group carries each code
    assert float((norms > 1e-8).float().sum(1).mean()) <= 2.0  # whole groups are exactly zero
    zero_groups = norms < 1e-8
    assert zero_groups.float().mean() > 0.6


def test_group_sparse_autoencoder_gradient_check_and_pooling():
    model = create_model("autoencoder", 10, 16, activation="relu", sparsity="group", sparsity_weight=0.3,
                         groups={"kind": "grid", "height": 4, "width": 4, "window": 2, "gaussian_sigma": 1.0})
    batch = np.random.default_rng(0).uniform(0.1, 0.9, size=(6, 10))
    result = check_gradients(model, batch)
    assert result.relative_error < UFLDL_TOLERANCE
    x = torch.from_numpy(batch).float()
    z = model.encode(x)
    pooled = model.penalties["group"].groups.group_norms(z, 1e-8).sum(1).mean()
    torch.testing.assert_close(model.loss(x).terms["group"], 0.3 * pooled)


def test_group_sparse_coding_and_topographic_psd_models():
    from sparseae.models import psd_code_quality
    from sparseae.train import TrainConfig, train

    torch.manual_seed(0)
    X = torch.randn(64, 12).numpy()
    groups = {"kind": "disjoint", "n_components": 16, "group_size": 4}
    model = create_model("sparse_coding", 12, 16, sparsity_weight=0.5, groups=groups)
    z = model.encode(torch.from_numpy(X))
    norms = model.penalties["group"].groups.group_norms(z)
    assert (norms == 0).any() and (norms > 0).any()
    zero_group_units = (norms == 0).repeat_interleave(4, dim=1)
    assert (z[zero_group_units] == 0).all()  # whole groups switch off together
    assert set(model.loss(torch.from_numpy(X)).terms) == {"reconstruction", "group"}
    grid = {"kind": "grid", "height": 4, "width": 4, "window": 2}
    topographic = create_model("psd", 12, 16, sparsity_weight=0.2, groups=grid, inference_max_iter=30)
    history = train(topographic, X, TrainConfig(max_epochs=3, batch_size=16, learning_rate=1e-2)).history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    quality = psd_code_quality(topographic, X)
    assert 0 <= quality.relative_code_error < 1.5
    with pytest.raises(ConfigError, match="non-negative"):
        create_model("sparse_coding", 12, 16, nonnegative=True, groups=groups)


def test_prune_tree_removes_branches_the_data_do_not_use():
    from sparseae.groups import prune_tree

    structure = tree_groups(balanced_tree(2, 2))  # 0 → (1, 2); 1 → (3, 4); 2 → (5, 6)
    frequency = np.array([0.5, 0.2, 0.001, 0.3, 0.0, 0.002, 0.0])
    pruning = prune_tree(structure, frequency, threshold=0.01)
    # branch 2 (units 2, 5, 6) and leaf 4 are rarely active: they go; the rest stays a tree
    assert pruning.keep.tolist() == [0, 1, 3] and sorted(pruning.removed_roots) == [2, 4]
    assert pruning.structure.parent.tolist() == [-1, 0, 1]
    assert pruning.report() == {"units_before": 7, "units_after": 3, "branches_removed": 2, "removed_roots": [2, 4]}
    # a rarely active inner node stays when something below it is used
    kept = prune_tree(structure, np.array([0.5, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0]), 0.01).keep
    assert kept.tolist() == [0, 1, 3]
    with pytest.raises(ConfigError, match="whole tree"):
        prune_tree(structure, np.zeros(7), 0.01)
    with pytest.raises(ConfigError, match="tree group structure"):
        prune_tree(disjoint_groups(4, 2), np.ones(4), 0.1)

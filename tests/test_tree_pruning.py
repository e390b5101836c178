"""Model-level tree pruning: a model trained with a bigger tree than needed loses the branches the
data rarely use; parameters, penalty and saved spec follow; the report counts before and after."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparseae.errors import ConfigError
from sparseae.io import load_model, save_model
from sparseae.models import create_model
from sparseae.models.pruning import prune_tree_model, tree_structure, unit_activation_frequency

TREE = {"kind": "tree", "depth": 2, "branching": 3}  # 0 → 1, 2, 3; 1 → 4, 5, 6; 2 → 7, 8, 9; 3 → 10, 11, 12
SILENT = [3, 10, 11, 12, 5]  # branch 3 and leaf 5
KEEP = [0, 1, 2, 4, 6, 7, 8, 9]


@pytest.mark.parametrize("options", [{"tied": False}, {"tied": True, "unit_norm_encoder": True}])
def test_pruning_an_autoencoder_removes_silent_branches(tmp_path, options):
    torch.manual_seed(0)
    model = create_model("autoencoder", 6, 13, activation="relu", sparsity="group", sparsity_weight=0.1,
                         groups=TREE, **options)
    with torch.no_grad():
        model.encoder.bias[:] = 5.0  # every unit on for these inputs ...
        model.encoder.bias[SILENT] = -100.0  # ... except the ones never active
    X = np.random.default_rng(0).uniform(-1, 1, size=(200, 6)).astype(np.float32)
    frequency = unit_activation_frequency(model, X)
    assert frequency[SILENT].max() == 0 and frequency[KEEP].min() == 1.0
    result = prune_tree_model(model, X, threshold=0.01)
    pruned = result.model
    assert result.keep.tolist() == KEEP and sorted(result.removed_roots) == [3, 5]
    assert (result.units_before, result.units_after, result.groups_before, result.groups_after) == (13, 8, 13, 8)
    structure = tree_structure(pruned)
    assert structure.parent.tolist() == [-1, 0, 0, 1, 1, 2, 2, 2] and pruned.spec["params"]["n_components"] == 8
    torch.testing.assert_close(pruned.encoder.weight, model.encoder.weight[KEEP])
    torch.testing.assert_close(pruned.encoder.bias, model.encoder.bias[KEEP])
    torch.testing.assert_close(pruned.decoder.weight, model.decoder.weight[:, KEEP])
    # the removed units were silent: same reconstruction, same penalty
    assert result.error_after == pytest.approx(result.error_before, rel=1e-6) and result.error_before > 0
    x = torch.from_numpy(X)
    torch.testing.assert_close(pruned(x), model(x))
    torch.testing.assert_close(pruned.loss(x).terms["group"], model.loss(x).terms["group"], rtol=1e-5, atol=1e-6)
    report = result.report()
    assert report["units_before"] == 13 and report["units_after"] == 8 and report["branches_removed"] == 2
    assert "units:  13 -> 8" in result.summary()
    save_model(pruned, tmp_path / "pruned")
    torch.testing.assert_close(load_model(tmp_path / "pruned")(x), pruned(x))
    assert model.n_components == 13  # the input model is untouched


def test_pruning_tree_sparse_coding_and_psd():
    rng = np.random.default_rng(1)
    D = np.linalg.qr(rng.standard_normal((16, 16)))[0][:, :13]  # orthonormal atoms
    Z = rng.standard_normal((300, 13)) * 2.0
    Z[:, SILENT] = 0.0
    X = (Z @ D.T).astype(np.float64)
    model = create_model("sparse_coding", 16, 13, sparsity_weight=0.05, groups=TREE, inference_max_iter=50)
    model.double()
    model.set_dictionary(D)
    result = prune_tree_model(model, X, threshold=0.01)
    assert result.keep.tolist() == KEEP and result.frequency[SILENT].max() == 0
    torch.testing.assert_close(result.model.dictionary, model.dictionary[:, KEEP])
    assert result.model.inference.groups.parent.tolist() == [-1, 0, 0, 1, 1, 2, 2, 2]
    assert result.error_after == pytest.approx(result.error_before, rel=1e-9)
    # PSD: the inferred codes decide; encoder rows and gains follow the kept units
    psd = create_model("psd", 16, 13, sparsity_weight=0.05, groups=TREE, inference_max_iter=50)
    psd.double()
    psd.set_dictionary(D)
    with torch.no_grad():  # F(x) = G·tanh(Wx + b) is 0 on the silent units, so z* is 0 there too
        psd.encoder.linear.weight[SILENT] = 0.0
        psd.encoder.linear.bias[SILENT] = 0.0
    pruned_psd = prune_tree_model(psd, X, threshold=0.01)
    assert pruned_psd.keep.tolist() == KEEP
    torch.testing.assert_close(pruned_psd.model.encoder.linear.weight, psd.encoder.linear.weight[KEEP])
    torch.testing.assert_close(pruned_psd.model.encoder.gain, psd.encoder.gain[KEEP])


def test_pruning_refuses_models_without_a_tree():
    X = np.zeros((4, 6), dtype=np.float32)
    grid = create_model("autoencoder", 6, 9, sparsity="group", groups={"kind": "grid", "height": 3, "width": 3})
    with pytest.raises(ConfigError, match="no tree group structure"):
        prune_tree_model(grid, X, 0.1)
    tree = create_model("autoencoder", 6, 13, activation="relu", sparsity="group", groups=TREE)
    with torch.no_grad():
        tree.encoder.bias[:] = -100.0
    with pytest.raises(ConfigError, match="whole tree"):
        prune_tree_model(tree, X, 0.1)
    tree.spec = {}
    with pytest.raises(ConfigError, match="create_model"):
        prune_tree_model(tree, X, 0.1)

"""Evaluations of the learned filters' arrangement: tree branches (``tree_branches``) and tree pruning
(``tree_pruning``) of tree-structured lateral inhibition, topographic maps of group sparsity on a grid
(``topographic_map``) and of a locally connected sheet (``local_topographic_map``)."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ...errors import ConfigError
from ...validation import check_number
from ..data import load_datasets
from .registry import FinishedRun, register_evaluation

# -------------------------------------------------------------------------- tree-structured filters

@register_evaluation("tree_branches", metrics=("branch_ratio_level1", "branch_ratio_level2",
                                               "branch_ratio_relatives", "branch_p_level1", "branch_p_level2",
                                               "branch_p_relatives"))
def _tree_branches(run: FinishedRun, *, n_permutations: int = 1000, seed: int = 0) -> dict[str, float]:
    """Gregor, Szlam & LeCun 2011: units on one branch of the tree learn similar filters. The decoder
    filters' mean |cos| within / across the branches rooted at depth 1 and at depth 2, and between
    ancestor–descendant pairs / other pairs (:func:`~sparseae.evaluate.tree.tree_filter_ratios`),
    each with its permutation p-value (``n_permutations`` draws)."""
    from ...evaluate.tree import tree_filter_ratios
    from ...models.lateral_inhibition import LateralInhibition

    if not isinstance(run.model, LateralInhibition) or run.model.tree is None:
        raise ConfigError("evaluation 'tree_branches' needs a lateral_inhibition model with a tree of units")
    tree = run.model.tree
    filters = run.model.dictionary.detach().double().cpu().numpy().T
    check_number(n_permutations, "evaluate.n_permutations", low=1, integer=True)
    ratios = tree_filter_ratios(filters, tree, levels=(1, 2), n_permutations=n_permutations, random_state=seed)
    return {f"branch_{kind}_{name}": float(result[key]) for name, result in ratios.items()
            for kind, key in (("ratio", "ratio"), ("p", "p_value"))}


# ------------------------------------------------------------------------------ topographic maps

@register_evaluation("topographic_map", metrics=("topographic_ratio", "topographic_ratio_selective",
                                                 "topographic_selective_units", "topographic_mean_selectivity",
                                                 "topographic_pinwheels", "topographic_pinwheels_permuted"))
def _topographic_map(run: FinishedRun, *, selective: float = 0.3, n_permutations: int = 100) -> dict[str, float]:
    """Hyvärinen & Hoyer 2001, Kavukcuoglu et al. 2009: group sparsity over the windows of a grid of
    units arranges the filters topographically. The units' filters (in pixels: through the inverse
    of the ``whitened_patches`` whitening) on the model's ``groups`` grid: orientation difference of
    neighbours against permuted layouts, over all and over selective units, and pinwheels
    (:func:`~sparseae.evaluate.filters.topographic_map`)."""
    from ...data.datasets import pca_whitened_patches
    from ...evaluate.filters import topographic_map

    groups = run.model.spec["params"].get("groups")
    if not isinstance(groups, Mapping) or groups.get("kind") != "grid":
        raise ConfigError("evaluation 'topographic_map' needs a model whose groups are a grid "
                          "(model.groups: {kind: grid, height, width, window})")
    check_number(n_permutations, "evaluate.n_permutations", low=1, integer=True)
    filters = run.model.unit_filters().detach().double().cpu().numpy()
    options = run.config.data_options
    if run.config.data_name == "whitened_patches":
        _, whitening = pca_whitened_patches(**options)
        filters = filters @ whitening.inverse_components_
        side = options.get("patch_size", 8)
        shape = (side, side)
    else:
        shape = load_datasets(run.config)[0].image_shape
        if shape is None:
            raise ConfigError("evaluation 'topographic_map' needs image data (or whitened_patches)")
    result = topographic_map(filters, shape, groups["height"], groups["width"], selective=selective,
                             n_permutations=n_permutations)
    return {f"topographic_{key}": value for key, value in result.items()}


@register_evaluation("local_topographic_map", metrics=(
    "local_ratio", "local_ratio_selective", "local_selective_units", "local_pinwheels",
    "local_pinwheels_permuted", "local_ratio_whole", "local_mean_selectivity", "local_energy_concentration"))
def _local_topographic_map(run: FinishedRun, *, margin: int = 2, selective: float = 0.3,
                           n_permutations: int = 100) -> dict[str, float]:
    """Gregor & LeCun 2010: a locally connected sparse autoencoder (``local_sae``) with group sparsity
    over its sheet of units grows an orientation map over the image. Its units' own k×k decoder atoms
    in sheet order, on the non-wrapping sheet: ``local_*`` figures of the interior ``margin`` rows and
    columns in from each edge (edge units lie in fewer windows), ``local_ratio_whole`` of the whole
    sheet (:func:`~sparseae.evaluate.filters.topographic_map`), and the atoms' mean energy
    concentration (:func:`~sparseae.evaluate.filters.energy_concentration`; localized filters: high)."""
    from ...evaluate.filters import energy_concentration, topographic_map
    from ...models.local import LocalAutoencoder

    model = run.model
    if not isinstance(model, LocalAutoencoder):
        raise ConfigError("evaluation 'local_topographic_map' needs a local_sae model")
    check_number(margin, "evaluate.margin", low=0, integer=True)
    check_number(n_permutations, "evaluate.n_permutations", low=1, integer=True)
    kernel = int(model.spec["params"]["kernel_size"])
    atoms = model.sheet_atoms().double().cpu().numpy()
    if atoms.shape[1] != kernel * kernel:
        raise ConfigError(f"evaluation 'local_topographic_map' needs one-channel images; the atoms have "
                          f"{atoms.shape[1]} weights for {kernel}×{kernel} filters")
    height, width = model.sheet_shape
    if min(height, width) - 2 * margin < 2:
        raise ConfigError(f"evaluate.margin {margin} leaves less than 2×2 of the {height}×{width} sheet")
    inner = atoms.reshape(height, width, -1)[margin:height - margin, margin:width - margin]
    inner_shape = (height - 2 * margin, width - 2 * margin)
    figures = topographic_map(inner.reshape(-1, atoms.shape[1]), (kernel, kernel), *inner_shape,
                              selective=selective, n_permutations=n_permutations, toroidal=False)
    whole = topographic_map(atoms, (kernel, kernel), height, width, selective=selective,
                            n_permutations=n_permutations, toroidal=False)
    return {"local_ratio": figures["ratio"], "local_ratio_selective": figures["ratio_selective"],
            "local_selective_units": figures["selective_units"], "local_pinwheels": figures["pinwheels"],
            "local_pinwheels_permuted": figures["pinwheels_permuted"], "local_ratio_whole": whole["ratio"],
            "local_mean_selectivity": whole["mean_selectivity"],
            "local_energy_concentration": float(energy_concentration(atoms, (kernel, kernel)).mean())}


# -------------------------------------------------------------------------------- tree pruning

@register_evaluation("tree_pruning", metrics=("pruning_units_before", "pruning_units_after",
                                              "pruning_error_before", "pruning_error_after",
                                              "pruning_error_finetuned"))
def _tree_pruning(run: FinishedRun, *, threshold: float = 0.02, finetune_epochs: int = 3) -> dict[str, float]:
    """Train a larger tree than needed, then prune: the branches none of whose units is active on
    ``threshold`` of the training rows are removed (:func:`~sparseae.models.pruning.prune_tree_model`),
    and the smaller model is fine-tuned ``finetune_epochs`` epochs with the run's train settings.
    Units before / after, and the mean ‖x − Dz*‖² per row before, after pruning and after fine-tuning.
    The pruned, fine-tuned model is saved in ``pruned_model/``."""
    import dataclasses

    from ...io import save_model
    from ...models.pruning import prune_tree_model
    from ...train import train

    check_number(finetune_epochs, "evaluate.finetune_epochs", low=1, integer=True)
    train_set, _ = load_datasets(run.config)
    X = np.asarray(train_set.X)
    result = prune_tree_model(run.model, X, threshold)
    settings = dataclasses.replace(run.config.train_config(), max_epochs=finetune_epochs, progress=False)
    train(result.model, X, settings)
    result.model.eval()
    with torch.no_grad():
        x = torch.as_tensor(X, dtype=next(result.model.parameters()).dtype)
        tuned = float((result.model.decode(result.model.sparse_code(x)) - x).pow(2).sum(dim=1).mean())
    save_model(result.model, run.run_dir / "pruned_model", overwrite=True)
    return {"pruning_units_before": result.units_before, "pruning_units_after": result.units_after,
            "pruning_error_before": float(result.error_before), "pruning_error_after": float(result.error_after),
            "pruning_error_finetuned": tuned}

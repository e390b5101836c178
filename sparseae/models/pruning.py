"""Tree pruning at the model level: train with a larger tree of units than needed, then remove the
branches the data rarely use.

:func:`prune_tree_model` measures each unit's activation frequency over a data set, finds with
:func:`sparseae.groups.prune_tree` the branches (a node and all its descendants) none of whose
units reaches the threshold, and builds a smaller model of the same kind whose tree is the kept
one: the rows / columns of every parameter and buffer indexed by code unit (encoder rows, decoder
columns, per-unit gains, thresholds, S, usage counts...) are copied for the kept units. The group
penalty (or the group prox of sparse-coding inference) is rebuilt on the pruned tree. The report
gives units and groups before and after, and the reconstruction error before and after.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..groups import GroupStructure, prune_tree
from ..inference import evaluating, placement, row_batches
from ..validation import as_float_array, check_number
from .base import Autoencoder, create_model

__all__ = ["TreeModelPruning", "tree_structure", "unit_activation_frequency", "prune_tree_model"]


@dataclass
class TreeModelPruning:
    """What :func:`prune_tree_model` did. ``model``: the pruned model; ``keep``: the kept units (old
    indices, in order); ``removed_roots``: roots of the removed branches (old indices);
    ``frequency``: each old unit's activation frequency (n_units_before,); counts and mean
    reconstruction errors ‖x − x̂‖² per sample before and after."""

    model: Autoencoder
    keep: np.ndarray
    removed_roots: list[int]
    frequency: np.ndarray
    threshold: float
    units_before: int
    units_after: int
    groups_before: int
    groups_after: int
    error_before: float
    error_after: float
    extra: dict[str, Any] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """The before/after numbers as a JSON-able dict."""
        return {"threshold": self.threshold, "units_before": self.units_before, "units_after": self.units_after,
                "groups_before": self.groups_before, "groups_after": self.groups_after,
                "branches_removed": len(self.removed_roots), "removed_roots": self.removed_roots,
                "reconstruction_error_before": self.error_before, "reconstruction_error_after": self.error_after}

    def summary(self) -> str:
        """One line per quantity, for a log or a terminal."""
        return "\n".join([
            f"tree pruning at activation frequency < {self.threshold:g}",
            f"units:  {self.units_before} -> {self.units_after}",
            f"groups: {self.groups_before} -> {self.groups_after} ({len(self.removed_roots)} branches removed, "
            f"roots {self.removed_roots})",
            f"reconstruction error: {self.error_before:.6g} -> {self.error_after:.6g}"])


def tree_structure(model: Autoencoder) -> GroupStructure:
    """The tree :class:`~sparseae.groups.GroupStructure` a model penalizes (its group penalty's, or
    its sparse-coding inference's); :class:`ConfigError` when it has none."""
    for structure in model.code_groups():
        if structure.parent is not None:
            return structure
    raise ConfigError(f"{type(model).__name__} has no tree group structure: build it with "
                      "groups={'kind': 'tree', ...}")


def _codes(model: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    """The code a unit's activity is read from: the inferred z* for sparse coding / PSD, else the encoder's."""
    return model.activity_code(x)


def _statistics(model: Autoencoder, X: np.ndarray, threshold: float, batch_size: int) -> tuple[np.ndarray, float]:
    """(activation frequency (n_units,), mean per-sample squared reconstruction error) over X, in eval mode."""
    device, dtype = placement(model)
    active = torch.zeros(model.n_components, dtype=torch.float64)
    error = 0.0
    with evaluating(model):
        for _, x in row_batches(X, batch_size, device=device, dtype=dtype):
            z = _codes(model, x)
            active += (z.abs() > threshold).sum(dim=0).double().cpu()
            error += float((model.decode(z) - x).double().pow(2).sum())
    return (active / X.shape[0]).numpy(), error / X.shape[0]


def unit_activation_frequency(model: Autoencoder, X: Any, *, activity_threshold: float = 0.0,
                              batch_size: int = 1024) -> np.ndarray:
    """Fraction of the rows of X (n_samples, n_features) on which each unit's code satisfies
    |z_i| > ``activity_threshold``: (n_units,). Sparse coding and PSD use the inferred code z*."""
    check_number(activity_threshold, "activity_threshold", low=0.0)
    X = as_float_array(X, "X", n_features=model.n_features)
    return _statistics(model, X, activity_threshold, batch_size)[0]


def _sliced(old: torch.Tensor, new_shape: torch.Size, keep: torch.Tensor, n_old: int, n_new: int,
            name: str) -> torch.Tensor:
    """``old`` restricted to the kept units along every dimension of size n_old that becomes n_new."""
    if old.shape == new_shape:
        return old
    if old.ndim != len(new_shape):
        raise ConfigError(f"cannot prune {name}: shape {tuple(old.shape)} -> {tuple(new_shape)}")
    for dim, (before, after) in enumerate(zip(old.shape, new_shape, strict=True)):
        if before == n_old and after == n_new:
            old = old.index_select(dim, keep.to(old.device))
        elif before != after:
            raise ConfigError(f"cannot prune {name}: shape {tuple(old.shape)} -> {tuple(new_shape)}")
    return old


def prune_tree_model(model: Autoencoder, X: Any, threshold: float, *, activity_threshold: float = 0.0,
                     batch_size: int = 1024) -> TreeModelPruning:
    """Remove the branches of ``model``'s tree whose units are all active on less than ``threshold``
    of the rows of X (n_samples, n_features) (|z_i| > ``activity_threshold``; sparse coding and PSD
    read the inferred code z*). A kept node's ancestors are kept, so the result is again a tree.

    ``model`` must come from :func:`~sparseae.models.create_model` with ``groups`` a tree spec.
    Returns a :class:`TreeModelPruning` whose ``model`` is a new model of the same kind with
    ``len(keep)`` units, the kept units' parameters and buffers, and the pruned tree
    (``groups={"kind": "tree", "parent": ...}`` in its spec, so it saves and loads as usual); the
    input model is left unchanged.
    """
    check_number(threshold, "threshold", low=0.0)
    check_number(activity_threshold, "activity_threshold", low=0.0)
    check_number(batch_size, "batch_size", low=1, integer=True)
    if not model.spec:
        raise ConfigError("prune_tree_model needs a model built by sparseae.create_model (model.spec is empty)")
    structure = tree_structure(model)
    X = as_float_array(X, "X", n_features=model.n_features)
    frequency, error_before = _statistics(model, X, activity_threshold, batch_size)
    pruning = prune_tree(structure, frequency, threshold)
    keep = np.asarray(pruning.keep, dtype=np.int64)
    params = copy.deepcopy(model.spec["params"])
    n_features, n_old, n_new = params.pop("n_features"), params.pop("n_components"), len(keep)
    params["groups"] = {"kind": "tree", "parent": pruning.structure.parent.tolist()}
    pruned = create_model(model.spec["name"], n_features, n_new, **params)
    parameter = next(model.parameters())
    pruned.to(device=parameter.device, dtype=parameter.dtype)
    index = torch.as_tensor(keep)
    target = pruned.state_dict()
    state = {name: _sliced(value, target[name].shape, index, n_old, n_new, name)
             for name, value in model.state_dict().items() if name in target}
    missing = sorted(set(target) - set(state))
    if missing:
        raise ConfigError(f"cannot prune: the pruned model has state the original lacks: {missing}")
    pruned.load_state_dict(state)
    pruned.train(model.training)
    _, error_after = _statistics(pruned, X, activity_threshold, batch_size)
    return TreeModelPruning(model=pruned, keep=keep, removed_roots=pruning.removed_roots, frequency=frequency,
                            threshold=float(threshold), units_before=n_old, units_after=n_new,
                            groups_before=structure.n_groups, groups_after=pruning.structure.n_groups,
                            error_before=error_before, error_after=error_after)

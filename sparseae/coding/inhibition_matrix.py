"""The inhibition matrix ``S`` of lateral-inhibition sparse coding: its structure, bound and learning.

``S`` ``(k, k)`` is kept ``≥ 0``, symmetric, with a zero diagonal, and zero outside a *mask* of the
pairs allowed to inhibit each other. With a tree over the units (a parent array, as in
:mod:`sparseae.groups`) the mask leaves out every pair of *relatives* — a unit and its ancestors or
descendants — so units on one branch never inhibit each other and units on different branches do:
the converse of tree-structured group sparsity (Gregor, Szlam & LeCun 2011).

Learning (the paper's game): ``S`` goes *up* the gradient of the mean energy,
``∂E/∂S = ½ mean_batch |z||z|ᵀ`` (:func:`coactivation`), so inhibition grows between units that are
on together, which the next inferences then keep apart. An ascent alone would grow ``S`` forever; a
bound keeps it finite and makes the units compete for a fixed amount of inhibition, which therefore
concentrates on the pairs that co-activate most. Two bounds (``norm``):

* ``"row_sum"`` (default): every unit's total inhibition ``Σ_j S_ij ≤ β``. After the step, rows over
  the bound are shrunk symmetrically, ``S_ij ← min(a_i, a_j)·S_ij`` with ``a_i = min(1, β / Σ_j S_ij)``,
  which keeps ``S`` symmetric and every row sum ``≤ a_i Σ_j S_ij ≤ β`` (a feasible point, not the
  Euclidean projection; rows with equal sums land exactly on β). ``β`` also bounds ``λ_max(S)``
  (Gershgorin).
* ``"frobenius"``: ``‖S‖_F ≤ β``. The Euclidean projection onto {masked, symmetric, ≥ 0} ∩ ball is
  the projection onto the cone (symmetrize, clamp at 0, mask) followed by scaling into the ball.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..validation import check_choice, check_number

__all__ = ["NORMS", "parse_tree", "tree_relatives", "inhibition_mask", "tree_inhibition", "coactivation",
           "inhibition_penalty", "project_inhibition", "ascend_inhibition", "inhibition_ascent"]

NORMS = ("row_sum", "frobenius")


def parse_tree(tree: Any, n_components: int | None = None) -> np.ndarray:
    """The parent array ``(k,)`` of a tree spec: a parent list (``-1`` for a root), ``{"parent": [...]}``
    or ``{"depth": d, "branching": b}`` (:func:`sparseae.groups.balanced_tree`). Cycles, entries out of
    range and a node count other than ``n_components`` are a :class:`ConfigError`."""
    from ..groups import make_groups

    if isinstance(tree, np.ndarray) or (isinstance(tree, (list, tuple)) and not isinstance(tree, str)):
        spec: dict[str, Any] = {"parent": [int(p) for p in np.asarray(tree).reshape(-1)]}
    elif isinstance(tree, dict):
        spec = {k: v for k, v in tree.items() if k != "kind"}
    else:
        raise ConfigError("a tree is a parent list or a mapping {parent: [...]} or {depth: d, branching: b}, "
                          f"got {tree!r}")
    parent = make_groups({"kind": "tree", **spec}).parent
    if n_components is not None and len(parent) != n_components:
        raise ConfigError(f"the tree has {len(parent)} nodes but the code has {n_components} units: "
                          "one unit per node")
    return np.asarray(parent, dtype=np.int64)


def tree_relatives(parent: Any) -> torch.Tensor:
    """``R`` ``(k, k)`` bool: ``R[i, j]`` when ``i`` is ``j``, an ancestor of ``j`` or a descendant of ``j``."""
    from ..groups import tree_groups

    structure = tree_groups(parse_tree(parent))  # group g = node g and its descendants
    k = structure.n_components
    below = torch.zeros(k, k, dtype=torch.bool)
    below[structure.group_index, structure.unit_index] = True
    return below | below.T


def inhibition_mask(n_components: int, tree: Any = None) -> torch.Tensor:
    """``(k, k)`` bool: the pairs that may inhibit each other — every pair of distinct units, or with a
    ``tree`` (see :func:`parse_tree`) every pair that are not relatives."""
    check_number(n_components, "n_components", low=1, integer=True)
    if tree is None:
        return ~torch.eye(n_components, dtype=torch.bool)
    return ~tree_relatives(parse_tree(tree, n_components))


def tree_inhibition(tree: Any, value: float = 1.0) -> torch.Tensor:
    """The tree-form ``S`` ``(k, k)`` float32: ``value`` between units on different branches, 0 between
    relatives (and on the diagonal)."""
    check_number(value, "value", low=0.0)
    parent = parse_tree(tree)
    return inhibition_mask(len(parent), parent).to(torch.get_default_dtype()) * float(value)


def coactivation(Z: torch.Tensor) -> torch.Tensor:
    """``½ mean_b |z_b||z_b|ᵀ`` ``(k, k)`` of codes ``Z`` ``(batch, k)``: the gradient of the batch-mean
    energy in ``S`` (each entry ``S_ij`` counted on its own)."""
    A = Z.detach().abs()
    return (A.T @ A) * (0.5 / A.shape[0])


def inhibition_penalty(A: torch.Tensor, S: torch.Tensor | None, AS: torch.Tensor | None = None) -> torch.Tensor:
    """The inhibition energy ``½|z|ᵀS|z|`` of each row from magnitudes ``A = |Z|`` ``(batch, k)`` and
    ``S`` ``(k, k)``: shape ``(batch,)``. ``AS``: ``A @ S`` when the caller already has it. The one
    place the library computes it (solvers, the model and the penalty call it)."""
    AS = A @ S if AS is None else AS
    return 0.5 * (AS * A).sum(dim=1)


def project_inhibition(S: torch.Tensor, mask: torch.Tensor, bound: float, norm: str = "row_sum") -> torch.Tensor:
    """``S`` ``(k, k)`` made symmetric, clamped at 0, zeroed outside ``mask`` (bool ``(k, k)``, no
    diagonal) and brought within ``bound`` β in ``norm`` (see the module docstring). A new tensor."""
    check_choice(norm, "norm", NORMS)
    check_number(bound, "bound", low=0.0, low_inclusive=False)
    S = (0.5 * (S + S.T)).clamp_min(0.0) * mask.to(S.dtype)
    if norm == "frobenius":
        return S * (bound / torch.linalg.matrix_norm(S).clamp_min(bound))
    scale = bound / S.sum(dim=1).clamp_min(bound)  # a_i = min(1, β / row sum)
    return S * torch.minimum(scale.unsqueeze(0), scale.unsqueeze(1))


def ascend_inhibition(S: torch.Tensor, C: torch.Tensor, rate: float, mask: torch.Tensor, bound: float,
                      norm: str = "row_sum") -> torch.Tensor:
    """The projected ascent step ``Π(S + rate·C)`` from a coactivation ``C`` ``(k, k)`` (the gradient
    of the mean energy in S, :func:`coactivation`, averaged across ranks by the caller when
    distributed): the one place the step is taken. A new tensor; see :func:`project_inhibition`."""
    return project_inhibition(S + rate * C.to(S), mask, bound, norm)


def inhibition_ascent(S: torch.Tensor, Z: torch.Tensor, rate: float, mask: torch.Tensor, bound: float,
                      norm: str = "row_sum") -> torch.Tensor:
    """One projected gradient-ascent step on the batch-mean energy: ``Π(S + rate·½ mean |z||z|ᵀ)`` for
    codes ``Z`` ``(batch, k)``; see :func:`project_inhibition`."""
    return ascend_inhibition(S, coactivation(Z), rate, mask, bound, norm)

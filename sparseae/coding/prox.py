"""Proximal operators for sparse coding.

The proximal operator of a penalty ``θ·Ω`` is

    prox_{θΩ}(v) = argmin_u  ½‖u − v‖² + θ·Ω(u).

Every operator here is a plain function ``prox(v, threshold) -> tensor`` over a whole tensor
(typically a batch of codes of shape ``(batch, n_components)``), with ``threshold`` a Python
number or a tensor broadcastable to ``v`` (for example per-unit thresholds of shape
``(n_components,)``). The result has the shape, dtype and device of ``v``. Group, tree and
overlapping-group shrinkage is :class:`GroupProx`.

The solvers in :mod:`sparseae.coding.solvers` take a :class:`ProximalOperator` object, which
bundles the prox with the value of its penalty (needed for objectives and stopping rules).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

Threshold = float | torch.Tensor

__all__ = [
    "l1_penalty",
    "group_penalty",
    "soft_threshold",
    "nonnegative_soft_threshold",
    "ProximalOperator",
    "L1Prox",
    "GroupProx",
]


def l1_penalty(z: torch.Tensor, weight: Threshold) -> torch.Tensor:
    """The ℓ1 energy ``Σⱼ weightⱼ·|zⱼ|`` of each row of ``z`` ``(batch, n)``: shape ``(batch,)``.
    ``weight``: a number, a 0-dim tensor or a tensor broadcastable to ``z`` (per-unit weights).
    The one place the library computes it (solvers, inference modules and penalties call it)."""
    if not isinstance(weight, torch.Tensor) or weight.ndim == 0:
        return weight * torch.linalg.vector_norm(z, ord=1, dim=-1)
    return (z.abs() * weight).sum(dim=-1)


def group_penalty(z: torch.Tensor, groups, weight: Threshold, eps: float = 0.0) -> torch.Tensor:
    """The group energy ``weight · Σ_j √(Σ_{i∈g_j} w_ij z_i² + eps)`` of each row of ``z``
    ``(batch, n)`` over a :class:`~sparseae.groups.GroupStructure`: shape ``(batch,)`` (eps = 0: the
    group norms ``‖z‖_{g_j}``). The one place the library computes it."""
    return weight * groups.group_norms(z, eps).sum(dim=-1)


def soft_threshold(v: torch.Tensor, threshold: Threshold) -> torch.Tensor:
    """Soft thresholding, the prox of ``θ‖·‖₁``: ``sign(v)·max(|v| − θ, 0)`` elementwise.

    ``v``: any shape; ``threshold`` (θ ≥ 0): a number or a tensor broadcastable to ``v``.
    Returns a tensor shaped like ``v``. A number θ goes through the fused
    ``torch.nn.functional.softshrink`` kernel; a tensor θ through ``v − clamp(v, −θ, θ)``; both
    equal the formula above.
    """
    if isinstance(threshold, torch.Tensor):
        return v - torch.clamp(v, min=-threshold, max=threshold)
    threshold = float(threshold)
    if v.is_floating_point() and 0.0 <= threshold <= torch.finfo(v.dtype).max:
        return F.softshrink(v, threshold)
    return v - torch.clamp(v, min=-threshold, max=threshold)  # e.g. θ = inf: everything to 0


def nonnegative_soft_threshold(v: torch.Tensor, threshold: Threshold) -> torch.Tensor:
    """Prox of ``θ‖·‖₁ + ι_{u ≥ 0}``: ``max(v − θ, 0)`` elementwise.

    ``v``: any shape; ``threshold`` (θ ≥ 0): a number or a tensor broadcastable to ``v``.
    Returns a tensor shaped like ``v``.
    """
    return (v - threshold).relu_()


class ProximalOperator(ABC):
    """A penalty ``Ω`` usable by the proximal-gradient solvers.

    Subclasses implement ``__call__(v, step_threshold)`` = ``prox_{θΩ}(v)`` with
    ``θ = step_threshold`` (the solvers pass ``λ / L``), batched over ``v`` of shape
    ``(batch, n_components)``, and ``penalty(z, weight)`` = ``weight·Ω(z)`` per row, shape
    ``(batch,)``, where ``weight`` is ``λ`` (a number or a tensor broadcastable to ``z``).
    """

    @abstractmethod
    def __call__(self, v: torch.Tensor, step_threshold: Threshold) -> torch.Tensor:
        """Return ``prox_{θΩ}(v)`` with ``θ = step_threshold``, shaped like ``v``."""

    @abstractmethod
    def penalty(self, z: torch.Tensor, weight: Threshold) -> torch.Tensor:
        """Return the penalty ``weight·Ω(z)`` of each row of ``z`` ``(batch, n)``: shape ``(batch,)``."""


class L1Prox(ProximalOperator):
    """The ℓ1 penalty ``Ω(z) = ‖z‖₁`` (``Σⱼ λⱼ|zⱼ|`` with per-unit weights).

    With ``nonnegative=True`` the penalty also holds the constraint ``z ≥ 0``
    (``Ω(z) = ‖z‖₁ + ι_{z ≥ 0}``) and the prox is :func:`nonnegative_soft_threshold`;
    otherwise it is :func:`soft_threshold`.
    """

    def __init__(self, nonnegative: bool = False) -> None:
        self.nonnegative = bool(nonnegative)

    def __call__(self, v: torch.Tensor, step_threshold: Threshold) -> torch.Tensor:
        if self.nonnegative:
            return nonnegative_soft_threshold(v, step_threshold)
        return soft_threshold(v, step_threshold)

    def penalty(self, z: torch.Tensor, weight: Threshold) -> torch.Tensor:
        """``Σⱼ weightⱼ·|zⱼ|`` per row (the constraint of the non-negative variant is not
        charged: ``z`` is assumed feasible)."""
        return l1_penalty(z, weight)

    def __repr__(self) -> str:
        return f"L1Prox(nonnegative={self.nonnegative})"


def _block_shrink(v: torch.Tensor, group_index: torch.Tensor, unit_index: torch.Tensor, n_groups: int,
                  threshold: Threshold) -> torch.Tensor:
    """Group soft thresholding on *disjoint* groups: each group's part of v scaled by
    max(0, 1 − θ/‖v_g‖); units in no listed group are left unchanged. v: (batch, n)."""
    sums = v.new_zeros(v.shape[0], n_groups).index_add_(1, group_index, v[:, unit_index].pow(2))
    scale = torch.clamp(1 - threshold / sums.sqrt().clamp_min(1e-30), min=0.0)
    out = v.clone()
    out[:, unit_index] = v[:, unit_index] * scale[:, group_index]
    return out


class GroupProx(ProximalOperator):
    """The group penalty ``Ω(z) = Σ_j ‖z‖_{g_j}`` (weighted norms √(Σ_{i∈g_j} w_ij z_i²)) over a
    :class:`~sparseae.groups.GroupStructure`, for the ISTA/FISTA solvers.

    ``prox_{θΩ}`` is computed by the method that is exact for the structure:

    * disjoint groups with unit weights: group soft thresholding, v_g · max(0, 1 − θ/‖v_g‖);
    * tree-structured groups (every group a sub-tree) with unit weights: group soft thresholding
      applied level by level from the leaves to the root — exactly the prox (Jenatton et al.
      2011, Prop. 2); groups on one level are disjoint, so the loop is over levels only;
    * anything else (overlapping windows, weights): the dual problem
      ``min_{‖ξ_j‖ ≤ θ} ½‖v − Σ_j D_jᵀ ξ_j‖²`` (D_j = diag(√w_j) on g_j) solved by projected
      gradient, all groups at once, for ``n_iter`` iterations with step 1/L, L the largest
      total weight of a unit; u = v − Σ_j D_jᵀ ξ_j. Exact in the limit; ``n_iter`` trades
      accuracy for time (tests check it against a convex solver).
    """

    def __init__(self, groups, n_iter: int = 100) -> None:
        from ..validation import check_number

        check_number(n_iter, "n_iter", low=1, integer=True)
        self.groups, self.n_iter = groups, int(n_iter)
        if groups.kind == "tree" and groups.uniform_weights:
            from ..groups import depth_of_groups

            depth = depth_of_groups(groups)
            self.method = "tree"
            # per level (deepest first): its memberships and their group renumbered 0..n−1
            member_depth = torch.as_tensor(depth)[groups.group_index]
            self._levels = []
            for d in range(int(depth.max()), -1, -1):
                keep = member_depth == d
                local = torch.unique(groups.group_index[keep], return_inverse=True)[1]
                self._levels.append((local, groups.unit_index[keep], int(local.max()) + 1))
        elif not groups.overlapping and groups.uniform_weights:
            self.method = "disjoint"
        else:
            self.method = "dual"
            load = torch.zeros(groups.n_components, dtype=torch.float64).index_add_(0, groups.unit_index,
                                                                                    groups.weights)
            self._dual_step = 1.0 / float(load.max())  # 1/L, L the largest total weight of a unit

    def __call__(self, v: torch.Tensor, step_threshold: Threshold) -> torch.Tensor:
        g = self.groups
        g.check_fits(v.shape[-1])
        group_index, unit_index = g.group_index.to(v.device), g.unit_index.to(v.device)
        if self.method == "disjoint":
            return _block_shrink(v, group_index, unit_index, g.n_groups, step_threshold)
        if self.method == "tree":
            u = v
            for local, units, n_groups in self._levels:  # deepest first; one level's groups are disjoint
                u = _block_shrink(u, local.to(v.device), units.to(v.device), n_groups, step_threshold)
            return u
        return self._dual(v, step_threshold, group_index, unit_index)

    def _dual(self, v: torch.Tensor, threshold: Threshold, group_index: torch.Tensor,
              unit_index: torch.Tensor) -> torch.Tensor:
        g = self.groups
        root_w = g.weights.to(device=v.device, dtype=v.dtype).sqrt()  # (m,)
        step = self._dual_step
        xi = v.new_zeros(v.shape[0], len(unit_index))  # one dual coordinate per membership
        for _ in range(self.n_iter):
            u = v - v.new_zeros(v.shape).index_add_(1, unit_index, xi * root_w)
            xi = xi + step * u[:, unit_index] * root_w
            norms = v.new_zeros(v.shape[0], g.n_groups).index_add_(1, group_index, xi.pow(2)).sqrt()
            xi = xi / torch.clamp(norms / threshold, min=1.0)[:, group_index]
        return v - v.new_zeros(v.shape).index_add_(1, unit_index, xi * root_w)

    def penalty(self, z: torch.Tensor, weight: Threshold, eps: float = 0.0) -> torch.Tensor:
        """``weight · Σ_j ‖z‖_{g_j}`` per row (``√(‖z‖²_{g_j} + eps)`` when ``eps`` > 0, the smoothed
        form): (batch,)."""
        return group_penalty(z, self.groups, weight, eps)

    def __repr__(self) -> str:
        return f"GroupProx({self.groups.kind}, {self.groups.n_groups} groups, method={self.method})"

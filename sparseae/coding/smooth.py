"""Sparse codes under the *smooth* group penalty, by accelerated gradient descent.

With ε > 0 the group penalty ``Ω_ε(z) = Σ_j √(Σ_{i∈g_j} w_ij z_i² + ε)`` is differentiable, so

    F(z) = ½‖x − Dz‖² + λ Ω_ε(z)

needs no proximal operator: this is the objective of UFLDL's topographic sparse coding exercise
(and of Kavukcuoglu et al. 2009), where codes are found by gradient iterations with the
dictionary fixed. Its gradient is ``Dᵀ(Dz − x) + λ z ∘ (M r)``, with ``M`` (n_components, n_groups)
the weighted membership matrix and ``r_j = 1/√((z²M)_j + ε)``; it is Lipschitz with constant at
most ``L(D) + λ · max_i Σ_j M_ij / √ε``. :func:`smooth_group_codes` runs Nesterov's accelerated
gradient with that step and the gradient restart of O'Donoghue & Candès (2015), batched over
rows (no Python loop over samples or groups). Overlapping groups (grid windows) cost one
``(batch, n) × (n, n_groups)`` product per iteration instead of an inner dual loop.
"""
from __future__ import annotations

import math

import torch

from ..validation import check_number
from .prox import group_penalty
from .solvers import lipschitz_constant

__all__ = ["smooth_group_penalty", "smooth_group_codes", "smooth_group_lipschitz"]


def smooth_group_penalty(z: torch.Tensor, groups, eps: float) -> torch.Tensor:
    """``Σ_j √(Σ_{i∈g_j} w_ij z_i² + ε)`` per row: z (batch, n_components) → (batch,)."""
    return group_penalty(z, groups, 1.0, eps)


def smooth_group_lipschitz(groups, lam: float, eps: float) -> float:
    """A Lipschitz constant of the gradient of ``λ Ω_ε``: ``λ · max_i Σ_j w_ij / √ε``."""
    load = torch.zeros(groups.n_components, dtype=torch.float64).index_add_(0, groups.unit_index, groups.weights)
    return float(lam) * float(load.max()) / math.sqrt(eps)


@torch.no_grad()
def smooth_group_codes(X: torch.Tensor, D: torch.Tensor, lam: float, groups, eps: float, *,
                       L: torch.Tensor | float | None = None, z0: torch.Tensor | None = None,
                       max_iter: int = 200, tol: float = 1e-6) -> torch.Tensor:
    """argmin_z ½‖x − Dz‖² + λ Σ_j √(Σ_{i∈g_j} w_ij z_i² + ε) for every row x of X (batch, n_features),
    D (n_features, n_components), λ ≥ 0, ε > 0: codes (batch, n_components).

    ``L``: λ_max(DᵀD) when known (else power iteration); ``z0``: warm start (default Dᵀx / L(D),
    UFLDL's start); stops after ``max_iter`` iterations or when ‖z_k − z_{k−1}‖ ≤ tol·‖z_k‖
    (checked every 10 iterations, over the whole batch).
    """
    check_number(eps, "group eps", low=0.0, low_inclusive=False)
    check_number(lam, "sparsity_weight (lambda)", low=0.0)
    check_number(max_iter, "max_iter", low=1, integer=True)
    groups.check_fits(D.shape[1])
    M = groups.membership_matrix(D.device, D.dtype)
    L_D = lipschitz_constant(D) if L is None else torch.as_tensor(L, dtype=D.dtype, device=D.device)
    step = 1.0 / (L_D + smooth_group_lipschitz(groups, lam, eps))
    gram, Dtx = D.T @ D, X @ D
    z = Dtx / L_D if z0 is None else z0.to(X.dtype).clone()
    y, t = z.clone(), z.new_ones(z.shape[0], 1)  # momentum sequence t per row
    for k in range(1, max_iter + 1):
        r = ((y * y) @ M + eps).rsqrt()
        gradient = y @ gram - Dtx + lam * y * (r @ M.T)
        z_next = y - step * gradient
        # restart the rows whose momentum points uphill: (y − z_next)·(z_next − z) > 0
        uphill = ((y - z_next) * (z_next - z)).sum(dim=1, keepdim=True) > 0
        t = torch.where(uphill, torch.ones_like(t), t)
        t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        y = z_next + ((t - 1) / t_next) * (z_next - z)
        change, z, t = z_next - z, z_next, t_next
        if k % 10 == 0 and float(change.norm()) <= tol * float(z.norm()):
            break
    return z

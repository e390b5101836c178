"""Proximal operators for sparse coding.

The proximal operator of a penalty ``θ·Ω`` is

    prox_{θΩ}(v) = argmin_u  ½‖u − v‖² + θ·Ω(u).

Every operator here is a plain function ``prox(v, threshold) -> tensor`` over a whole tensor
(typically a batch of codes of shape ``(batch, n_components)``), with ``threshold`` a Python
number or a tensor broadcastable to ``v`` (for example per-unit thresholds of shape
``(n_components,)``). The result has the shape, dtype and device of ``v``. Group or tree
shrinkage can be added later with the same signature.

The solvers in :mod:`sparseae.coding.solvers` take a :class:`ProximalOperator` object, which
bundles the prox with the value of its penalty (needed for objectives and stopping rules).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Union

import torch
import torch.nn.functional as F

Threshold = Union[float, torch.Tensor]

__all__ = [
    "soft_threshold",
    "nonnegative_soft_threshold",
    "ProximalOperator",
    "L1Prox",
]


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
        if not isinstance(weight, torch.Tensor) or weight.ndim == 0:
            return weight * torch.linalg.vector_norm(z, ord=1, dim=-1)
        return (z.abs() * weight).sum(dim=-1)

    def __repr__(self) -> str:
        return f"L1Prox(nonnegative={self.nonnegative})"

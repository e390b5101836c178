"""Lateral inhibition as a penalty on an encoder's codes, so it applies to any autoencoder (the
TopK/JumpReLU SAEs included): ``μ · mean_batch ½ |z|ᵀ S |z|`` with ``S ≥ 0`` symmetric, zero
diagonal (Gregor, Szlam & LeCun 2011).

``S`` is a buffer: fixed (a hand-made matrix, or the tree form — inhibition only between units on
different branches), or learned by the paper's projected gradient *ascent*: after every optimizer
step :class:`InhibitionAscent` adds ``η · ½ mean |z||z|ᵀ`` of the last batch (averaged across ranks
under torch.distributed) and projects back onto the allowed set (``S ≥ 0``, symmetric, zero outside
the mask, each row sum or the Frobenius norm within ``bound``), so units that fire together come
to inhibit each other.
"""
from __future__ import annotations

from typing import Any

import torch

from ..coding.inhibition import check_inhibition_matrix
from ..coding.inhibition_matrix import (
    NORMS,
    ascend_inhibition,
    coactivation,
    inhibition_mask,
    inhibition_penalty,
    tree_inhibition,
)
from ..distributed import mean_across_ranks
from ..errors import ConfigError
from ..validation import check_choice, check_number
from .activations import upcast_half
from .penalties import CodePenalty, ForwardPass, register_penalty


@register_penalty("inhibition")
class LateralInhibitionPenalty(CodePenalty):
    """``weight · mean_b ½ |z_b|ᵀ S |z_b|`` for codes (batch, k); ``S`` (k, k) in the ``inhibition`` buffer.

    ``S``: a matrix, or None for ``value`` between every allowed pair (all distinct pairs, or with
    ``tree`` — a parent list or ``{depth, branching}`` — the pairs that are not relatives).
    ``learned``: S follows the ascent of :class:`InhibitionAscent` with rate ``rate`` and ``bound``.
    """

    def __init__(self, weight: float, n_components: int, *, S: Any = None, tree: Any = None, value: float = 0.1,
                 learned: bool = False, rate: float = 0.1, bound: float = 1.0, norm: str = "row_sum") -> None:
        super().__init__(weight)
        check_number(rate, "inhibition rate", low=0.0)
        check_number(bound, "inhibition bound", low=0.0, low_inclusive=False)
        check_choice(norm, "inhibition norm", NORMS)
        mask = inhibition_mask(n_components, tree)
        if S is None:
            S = tree_inhibition(tree, value) if tree is not None else mask.to(torch.get_default_dtype()) * float(value)
        S = check_inhibition_matrix(S, n_components, dtype=torch.get_default_dtype())
        if bool((S * ~mask).any()):
            raise ConfigError("the inhibition matrix S is nonzero between tree relatives (a unit and its "
                              "ancestors or descendants); the tree form keeps those pairs at 0")
        self.register_buffer("inhibition", S)
        self.register_buffer("mask", mask)
        self.learned, self.rate, self.bound, self.norm = bool(learned), float(rate), float(bound), norm
        self.last_coactivation: torch.Tensor | None = None

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        a = z.abs()                                                          # (batch, k)
        return self.weight * inhibition_penalty(a, self.inhibition.to(a.dtype))

    def forward(self, step: ForwardPass) -> torch.Tensor:
        code = upcast_half(step.code)
        if self.learned and self.training and torch.is_grad_enabled():
            self.last_coactivation = coactivation(code)
        return self.energy(code).mean()

    def constraint(self):
        """The ascent step on a learned S (:class:`InhibitionAscent`); None for a fixed S."""
        return InhibitionAscent() if self.learned else None

    @torch.no_grad()
    def ascend(self) -> None:
        """One projected ascent step on S from the last training batch's codes (no-op otherwise)."""
        if not self.learned or self.last_coactivation is None:
            return
        C = mean_across_ranks(self.last_coactivation).to(self.inhibition)
        self.inhibition.copy_(ascend_inhibition(self.inhibition, C, self.rate, self.mask, self.bound, self.norm))
        self.last_coactivation = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["last_coactivation"] = None
        return state

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, learned={self.learned}, bound={self.bound:g}"


class InhibitionAscent:
    """A model constraint (called after each optimizer step): the ascent step of every learned
    :class:`LateralInhibitionPenalty` of the model."""

    def __call__(self, model: torch.nn.Module) -> None:
        for penalty in model.penalties.values():
            if isinstance(penalty, LateralInhibitionPenalty):
                penalty.ascend()


__all__ = ["InhibitionAscent", "LateralInhibitionPenalty"]

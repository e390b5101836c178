"""Structured sparse coding by lateral inhibition (Gregor, Szlam & LeCun 2011).

Energy of x (n_features,) and a code z (n_components,):

    E(x, z) = ½‖x − Dz‖² + λ‖z‖₁ + ½|z|ᵀS|z|,      S ≥ 0 symmetric, zero diagonal.

``encode(x)`` is ``z* = argmin_z E(x, z)`` (:func:`~sparseae.coding.inhibition.inhibition_codes`, no
gradient). One training step of the ordinary trainer, per batch: infer z*; the loss ``E(x, z*)`` gives
one gradient-descent step on D (unit-norm atoms, unused atoms re-initialized, as in ``sparse_coding``);
then, for a learned S, one projected gradient-*ascent* step ``S ← Π(S + η·½ mean |z*||z*|ᵀ)`` under a
bound (:mod:`sparseae.coding.inhibition_matrix`), taken in :meth:`LateralInhibition.apply_constraints`
after the optimizer's step. S is a buffer (saved with the model), never an optimizer parameter.
Penalties named in a config are added to the loss at z* and logged by name (z* is found without
gradient and D's atoms have unit norm, so they move D only through the reconstruction they read).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import distributed
from ..coding.dictionary import default_tolerance
from ..coding.inhibition import METHODS, check_inhibition_matrix, inhibition_codes
from ..coding.inhibition_matrix import (
    NORMS,
    ascend_inhibition,
    coactivation,
    inhibition_mask,
    inhibition_penalty,
    parse_tree,
    project_inhibition,
)
from ..coding.prox import l1_penalty
from ..errors import ConfigError
from ..nn.activations import upcast_half
from ..nn.penalties import ForwardPass
from ..validation import check_choice, check_number
from .base import MODELS, Energy
from .sparse_coding import DictionaryModel

__all__ = ["InhibitionInference", "LateralInhibition", "lateral_inhibition"]

#: How S is obtained: learned by gradient ascent, or fixed (also validated by the estimator).
INHIBITION_KINDS = ("learned", "fixed")


class InhibitionInference(nn.Module):
    """``z* = argmin_z E(x, z)`` per row by :func:`~sparseae.coding.inhibition.inhibition_codes`, under
    ``torch.no_grad()`` in full precision. Buffers: ``S`` (k, k) the inhibition matrix, ``mask`` (k, k)
    bool, the pairs S may connect. ``lam`` λ > 0, ``method`` ista/fista/cod, ``max_iter``, ``tol``
    (None: :func:`~sparseae.coding.dictionary.default_tolerance` of the data's dtype)."""

    #: No group structure over the codes (a tree shapes S's mask instead): what
    #: :meth:`DictionaryModel.code_groups` reads.
    groups = None

    def __init__(self, lam: float, S: torch.Tensor, mask: torch.Tensor, *, nonnegative: bool = False,
                 method: str = "fista", max_iter: int = 200, tol: float | None = None) -> None:
        super().__init__()
        check_number(lam, "sparsity_weight (lambda)", low=0.0, low_inclusive=False)
        check_choice(method, "method", METHODS)
        check_number(max_iter, "max_iter", low=1, integer=True)
        if tol is not None:
            check_number(tol, "tol", low=0.0)
        self.lam, self.nonnegative, self.method = float(lam), bool(nonnegative), method
        self.max_iter, self.tol = int(max_iter), tol
        self.register_buffer("S", S)
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor, D: torch.Tensor, z0: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (batch, k) of x (batch, n_features) on D (n_features, k); ``z0``: warm start."""
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            x = upcast_half(x.detach())
            tol = default_tolerance(x.dtype) if self.tol is None else self.tol
            return inhibition_codes(x, D.detach().to(x.dtype), self.lam, self.S.to(x.dtype), method=self.method,
                                    z0=None if z0 is None else z0.detach(), max_iter=self.max_iter, tol=tol,
                                    nonnegative=self.nonnegative).codes

    def extra_repr(self) -> str:
        return (f"lam={self.lam:g}, method={self.method}, nonnegative={self.nonnegative}, "
                f"max_iter={self.max_iter}, tol={'auto' if self.tol is None else f'{self.tol:g}'}")


class LateralInhibition(DictionaryModel):
    """Sparse coding with lateral inhibition: the encoder is :class:`InhibitionInference`.

    ``learned``: S goes up ``rate`` η × ∂E/∂S after every training step, then back within ``bound``
    β in ``norm`` (``"row_sum"``: every unit's total inhibition ≤ β; ``"frobenius"``: ‖S‖_F ≤ β).
    ``tree``: the parent array when S has tree form (zero between relatives). Loss terms (means over
    the batch; their sum is E(x, z*)): ``reconstruction`` ½‖x − Dz*‖², ``l1`` λ‖z*‖₁ and ``inhibition``
    ½|z*|ᵀS|z*| (the last two have no gradient in D).
    """

    def __init__(self, inference: InhibitionInference, n_features: int, n_components: int, *,
                 learned: bool, rate: float, bound: float, norm: str, tree: list[int] | None = None,
                 reinit_unused_every: int = 100) -> None:
        super().__init__(inference, n_features, n_components, reinit_unused_every=reinit_unused_every)
        self.learned, self.rate, self.bound, self.norm = bool(learned), float(rate), float(bound), norm
        self.tree = None if tree is None else [int(p) for p in tree]
        self._pending: torch.Tensor | None = None  # codes of the latest training batch, for the ascent

    @property
    def inference(self) -> InhibitionInference:
        return self.encoder

    @property
    def inhibition(self) -> torch.Tensor:
        """S (n_components, n_components)."""
        return self.encoder.S

    @torch.no_grad()
    def set_inhibition(self, S: Any) -> None:
        """Replace S by a user's matrix (≥ 0, symmetric, zero diagonal; zero between tree relatives; for
        a learned S, within the bound), else :class:`~sparseae.errors.ConfigError`."""
        S = check_inhibition_matrix(S, self.n_components, dtype=self.inhibition.dtype, device=self.inhibition.device)
        outside = (S != 0) & ~self.inference.mask
        if bool(outside.any()):
            i, j = (int(v) for v in torch.nonzero(outside)[0])
            raise ConfigError(f"S[{i}, {j}] = {float(S[i, j]):g}, but units {i} and {j} are relatives in the "
                              "tree (one is an ancestor of the other): tree-form inhibition must be 0 there")
        if self.learned:
            excess = float(self._size(S)) - self.bound
            if excess > 1e-6 * self.bound:
                raise ConfigError(f"S exceeds the bound of a learned inhibition ({self.norm} "
                                  f"{float(self._size(S)):g} > {self.bound:g}); scale it down or raise "
                                  "inhibition_bound")
        self.inference.S.copy_(S)

    def _size(self, S: torch.Tensor) -> torch.Tensor:
        return S.sum(dim=1).max() if self.norm == "row_sum" else torch.linalg.matrix_norm(S)

    def encode(self, x: torch.Tensor, z0: torch.Tensor | None = None) -> torch.Tensor:
        """z* (batch, n_components) on the current D and S; ``z0``: warm start."""
        return self.sparse_code(x, z0)

    def energy_terms(self, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three terms of E(x, z), each (batch,), for x (batch, n_features), z (batch, k)."""
        return {"reconstruction": self.likelihood.nll(upcast_half(self.decoder(z)), x),
                "l1": l1_penalty(z, self.inference.lam),
                "inhibition": inhibition_penalty(z.abs(), self.inhibition.to(z.dtype))}

    def energy(self, x: torch.Tensor, x_input: torch.Tensor | None = None) -> Energy:
        """E(x, z*) by its three terms (batch means). Penalties the model is given see z*, which is
        found without gradient: they are logged and add to the loss, but move nothing but D."""
        x_input = x if x_input is None else x_input
        code = self.encode(x_input)
        terms = {name: value.mean() for name, value in self.energy_terms(x, code).items()}
        self.track_usage(x, code)
        if self.learned and self.training and torch.is_grad_enabled():
            self._pending = code.detach()
        eta = self.decoder(code)
        step = ForwardPass(x=x, x_input=x_input, code=code, eta=eta, model=self)
        return Energy(step, sum(terms.values()), {k: v.detach() for k, v in terms.items()})

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Atoms back to unit norm (and unused ones re-initialized), then the ascent step on a learned S
        with the codes of the latest training batch (averaged across ranks under torch.distributed)."""
        super().apply_constraints()
        pending = getattr(self, "_pending", None)
        if pending is None:
            return
        self._pending = None
        S = self.inference.S
        C = coactivation(pending.to(S.dtype))  # ½ mean |z||z|ᵀ
        if distributed.is_distributed():  # average the statistic itself across ranks
            C = distributed.mean_across_ranks(C)
        S.copy_(ascend_inhibition(S, C, self.rate, self.inference.mask, self.bound, self.norm))

    def extra_repr(self) -> str:
        mode = f"learned (rate={self.rate:g}, {self.norm} ≤ {self.bound:g})" if self.learned else "fixed"
        return f"inhibition={mode}, tree={'yes' if self.tree is not None else 'no'}"


@MODELS.register("lateral_inhibition")
def lateral_inhibition(n_features: int, n_components: int, *, sparsity_weight: float = 0.1,
                       inhibition: str = "learned", tree: Any = None, inhibition_matrix: Any = None,
                       inhibition_value: float = 0.0, inhibition_rate: float = 0.1, inhibition_bound: float = 1.0,
                       bound_norm: str = "row_sum", nonnegative: bool = False, method: str = "fista",
                       inference_max_iter: int = 200, tol: float | None = None,
                       reinit_unused_every: int = 100) -> LateralInhibition:
    """Lateral-inhibition sparse coding: E = ½‖x − Dz‖² + λ‖z‖₁ + ½|z|ᵀS|z| with λ = ``sparsity_weight``.

    ``inhibition``: ``"learned"`` (projected gradient ascent on S after each training step, rate
    ``inhibition_rate`` η, bound ``inhibition_bound`` β in ``bound_norm`` ``"row_sum"`` or
    ``"frobenius"``) or ``"fixed"`` (S never changes). ``tree``: a parent list, ``{"parent": [...]}`` or
    ``{"depth": d, "branching": b}`` with one node per unit: S is 0 between a unit and its ancestors and
    descendants (tree form). S starts as ``inhibition_matrix`` (nested lists, k × k, ≥ 0, symmetric,
    zero diagonal) when given, else ``inhibition_value`` on every allowed pair (projected within the
    bound when learned); :meth:`LateralInhibition.set_inhibition` sets it from an array later.
    Inference: ``method`` ``"fista"`` (monotone accelerated majorized ISTA), ``"ista"`` or ``"cod"``
    (greedy coordinate descent), at most ``inference_max_iter`` iterations, ``tol`` (None: the working
    precision), ``z ≥ 0`` when ``nonnegative``. ``reinit_unused_every``: see ``sparse_coding``.
    """
    check_choice(inhibition, "inhibition", INHIBITION_KINDS)
    check_choice(bound_norm, "bound_norm", NORMS)
    check_number(inhibition_value, "inhibition_value", low=0.0)
    check_number(inhibition_rate, "inhibition_rate", low=0.0)
    check_number(inhibition_bound, "inhibition_bound", low=0.0, low_inclusive=False)
    check_number(inference_max_iter, "inference_max_iter", low=1, integer=True)
    parent = None if tree is None else parse_tree(tree, n_components)
    mask = inhibition_mask(n_components, parent)
    S = mask.to(torch.get_default_dtype()) * float(inhibition_value)
    learned = inhibition == "learned"
    if learned and inhibition_matrix is None:
        S = project_inhibition(S, mask, inhibition_bound, bound_norm)
    inference = InhibitionInference(sparsity_weight, S, mask, nonnegative=nonnegative, method=method,
                                    max_iter=inference_max_iter, tol=tol)
    model = LateralInhibition(inference, n_features, n_components, learned=learned, rate=inhibition_rate,
                              bound=inhibition_bound, norm=bound_norm,
                              tree=None if parent is None else parent.tolist(),
                              reinit_unused_every=reinit_unused_every)
    if inhibition_matrix is not None:
        model.set_inhibition(inhibition_matrix)
    return model

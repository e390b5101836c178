"""Sparse coding (Olshausen & Field 1996): codes by optimization, a dictionary learned by alternation.

``encode(x)`` is ``z* = argmin_z ½‖x − Dz‖² + λ‖z‖₁`` (no encoder network), exact by
:func:`~sparseae.coding.sparse_encode` on the CPU, by FISTA on a GPU (the ``inference`` parameter); the loss is
``½‖x − Dz*‖² + λ‖z*‖₁`` with ``z*`` held fixed, so each step of the ordinary trainer (Adam or SGD) is
one round of dictionary learning: inference, a gradient step on D, then the atoms renormalized and
the unused ones re-initialized (:class:`~sparseae.coding.dictionary.AtomUsage`). See
:mod:`sparseae.coding.dictionary` for why the loss's gradient is exact.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..coding.dictionary import AtomUsage, SparseInference, check_dictionary, dictionary_from_samples
from ..groups import GroupStructure
from ..nn.constraints import unit_norm_columns
from ..nn.decoders import LinearDecoder
from ..nn.likelihoods import GaussianLikelihood
from ..nn.penalties import GroupSparsityPenalty, L1Penalty, Penalty
from ..validation import check_choice, check_number
from .base import MODELS, Autoencoder, Energy

#: Where a dictionary model's atoms start (its ``init`` parameter).
INITS = ("random", "data")


class DictionaryModel(Autoencoder):
    """An :class:`Autoencoder` whose decoder D (n_features, n_components), without bias, has unit-norm
    atoms and is learned at codes inferred by :class:`SparseInference`: the part sparse coding and PSD
    share. Subclasses provide the ``inference`` module. ``atom_usage`` re-initializes unused atoms.
    ``init``: where the atoms start, ``"random"`` (Gaussian, normalized) or ``"data"`` (distinct
    random training rows, normalized, set by :meth:`initialize_from_data` before training).
    """

    inference: SparseInference

    def __init__(self, encoder: nn.Module, n_features: int, n_components: int, *,
                 penalties: dict[str, Penalty] | None = None, reinit_unused_every: int = 100,
                 constraints: Sequence[Any] = (), init: str = "random") -> None:
        check_choice(init, "init", INITS)
        decoder = LinearDecoder(n_components, n_features, bias=False)
        super().__init__(encoder, decoder, GaussianLikelihood(), penalties,
                         [unit_norm_columns("decoder.weight_"), *constraints])
        self.atom_usage = AtomUsage(n_components, reinit_unused_every)
        self.init = init

    def initialize_from_data(self, X: Any, *, generator: torch.Generator | None = None) -> None:
        """With ``init="data"``, the atoms become ``n_components`` distinct random rows of X
        (n_samples, n_features), normalized; with ``"random"``, nothing changes."""
        if self.init == "data":
            self.set_dictionary(dictionary_from_samples(X, self.n_components, generator=generator))

    @property
    def dictionary(self) -> torch.Tensor:
        """D (n_features, n_components): column j is atom j."""
        return self.decoder.weight

    @torch.no_grad()
    def set_dictionary(self, D: Any) -> None:
        """Replace the atoms by the columns of D (n_features, n_components), normalized."""
        D = check_dictionary(D, self.n_features, self.n_components)
        self.decoder.weight_.copy_(D)
        self.apply_constraints()

    def sparse_code(self, x: torch.Tensor, z0: torch.Tensor | None = None) -> torch.Tensor:
        """The inferred code z* (batch, n_components) of x (batch, n_features); ``z0``: warm start."""
        return self.inference(x, self.dictionary, z0)

    def activity_code(self, x: torch.Tensor) -> torch.Tensor:
        """The inferred z* (batch, n_components): what tree pruning reads a unit's activity from."""
        return self.sparse_code(x)

    def code_groups(self) -> list[GroupStructure]:
        """The penalties' group structures, then the inference's (when it has groups)."""
        own = self.inference.groups
        return super().code_groups() + ([own] if own is not None else [])

    def track_usage(self, x: torch.Tensor, code: torch.Tensor) -> None:
        """Count the atoms a training batch used (only while training with gradients, so evaluation
        and gradient checks leave the counts alone)."""
        if self.training and torch.is_grad_enabled():
            self.atom_usage.update(x, code)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        super().apply_constraints()
        usage = getattr(self, "atom_usage", None)  # absent while Autoencoder.__init__ runs
        if usage is not None:
            usage.reinitialize(self.decoder.weight_)


class SparseCoding(DictionaryModel):
    """Sparse coding with a learned dictionary: the encoder *is* the inference (:class:`SparseInference`).

    Loss terms: ``reconstruction`` ½‖x − Dz*‖² and ``l1`` λ‖z*‖₁ (mean over the batch; the second has no
    gradient but makes the loss the energy at the optimum).
    """

    @property
    def inference(self) -> SparseInference:
        return self.encoder

    def encode(self, x: torch.Tensor, z0: torch.Tensor | None = None) -> torch.Tensor:
        """z* (batch, n_components) on the current dictionary by the model's ``inference``;
        ``z0``: warm start (used by FISTA and ``lasso_cd``)."""
        return self.sparse_code(x, z0)

    def energy(self, x: torch.Tensor, x_input: torch.Tensor | None = None) -> Energy:
        """The reconstruction at z*; the sparsity term is the penalty the inference minimizes (one
        object, in ``penalties``), added by the loss template with any other penalty."""
        energy = super().energy(x, x_input)
        self.track_usage(x, energy.step.code)
        return energy


@MODELS.register("sparse_coding")
def sparse_coding(n_features: int, n_components: int, *, sparsity_weight: float = 0.1,
                  nonnegative: bool = False, inference_max_iter: int = 200, tol: float | None = None,
                  reinit_unused_every: int = 100, groups: dict | None = None,
                  group_eps: float = 0.0, inference: str = "auto", init: str = "random") -> SparseCoding:
    """Sparse coding / dictionary learning: ``z* = argmin ½‖x − Dz‖² + λ‖z‖₁`` (λ = ``sparsity_weight``,
    ``z ≥ 0`` when ``nonnegative``) by FISTA with at most ``inference_max_iter`` iterations and relative-change
    tolerance ``tol`` (None: 100 × the dtype's epsilon, i.e. solved to the working precision);
    unit-norm atoms; atoms unused for ``reinit_unused_every`` training batches move to random
    normalized inputs (0: never). ``groups``: a group structure spec (:func:`sparseae.groups.make_groups`):
    the penalty becomes λ Σ_j ‖z‖_{g_j}, inferred with :class:`~sparseae.coding.prox.GroupProx`
    (group-sparse coding; topographic with grid windows). ``group_eps`` ε > 0: the smooth penalty
    λ Σ_j √(‖z‖²_{g_j} + ε) instead, inferred by accelerated gradient (UFLDL's topographic sparse
    coding; much faster than the dual prox for overlapping windows).
    ``inference``: ``"auto"`` (the exact Lasso by :func:`~sparseae.coding.sparse_encode`'s
    ``lasso_lars`` on the CPU, FISTA on a GPU or with groups), ``"fista"``, ``"lasso_lars"`` or
    ``"lasso_cd"`` (see :class:`~sparseae.coding.dictionary.SparseInference`). ``init``: the atoms'
    start, ``"random"`` or ``"data"`` (random training samples, set when a run starts; see
    :class:`DictionaryModel`).
    """
    structure = fitted_groups(groups, n_components)
    check_number(inference_max_iter, "inference_max_iter", low=1, integer=True)
    term = sparsity_term(sparsity_weight, nonnegative, structure, group_eps)
    solver = SparseInference(sparsity_weight, nonnegative=nonnegative, max_iter=inference_max_iter, tol=tol,
                             groups=structure, group_eps=group_eps, term=term, solver=inference)
    return SparseCoding(solver, n_features, n_components, penalties={solver.penalty_name: term},
                        reinit_unused_every=reinit_unused_every, init=init)


def sparsity_term(weight: float, nonnegative: bool, groups, group_eps: float) -> Penalty:
    """The sparsity energy term of sparse inference, one object for its value, its prox and its
    log name: λ‖z‖₁ (non-negative codes: with z ≥ 0) or, with a group structure, λ Σ_j ‖z‖_{g_j}
    (smoothed by ``group_eps``)."""
    check_number(weight, "sparsity_weight (lambda)", low=0.0, low_inclusive=False)
    if groups is None:
        return L1Penalty(weight, nonnegative=nonnegative)
    return GroupSparsityPenalty(weight, groups, group_eps)


def fitted_groups(groups: dict | None, n_components: int):
    """The :class:`~sparseae.groups.GroupStructure` of a spec, checked against the code size (None: none)."""
    if groups is None:
        return None
    from ..groups import make_groups

    structure = make_groups(groups)
    structure.check_fits(n_components)
    return structure

"""Sparse autoencoders as interpretability work trains them on model activations: TopK (with
AuxK against dead latents), BatchTopK and JumpReLU, beside the L1 ``sparse_ae_l1``.

All share: a linear decoder with unit-norm columns (projected after every step, its gradient
made tangent to the sphere before), a decoder bias subtracted before encoding (x − b_pre,
Gao et al. 2024), the encoder initialized as the decoder's transpose, squared error. Inputs
are best centred and scaled (``data.normalize: center_l2`` in a run config; Gao et al.
2024). Metrics: :func:`sparseae.evaluate.fraction_of_variance_unexplained` (FVU),
:func:`sparseae.evaluate.sparsity_stats` (L0, dead latents).
"""
from __future__ import annotations

import torch

from ..nn.constraints import unit_norm_columns
from ..nn.decoders import LinearDecoder
from ..nn.inhibition_penalty import InhibitionAscent, LateralInhibitionPenalty
from ..nn.likelihoods import GaussianLikelihood
from ..errors import ConfigError
from ..nn.penalties import AuxKPenalty, GroupSparsityPenalty, L0Penalty, Penalty
from ..nn.sparse_encoders import JumpReLUEncoder, SparseLinearDecoder, TopKEncoder, _SAEEncoder
from ..validation import check_number
from .base import MODELS, Autoencoder
from .sparse_coding import fitted_groups


def _sae(encoder: _SAEEncoder, n_features: int, n_components: int, penalties: dict[str, Penalty],
         groups: dict | None = None, group_weight: float = 0.0, sparse_decode: bool = False,
         inhibition: dict | None = None, inhibition_weight: float = 0.0) -> Autoencoder:
    check_number(group_weight, "group_weight", low=0.0)
    check_number(inhibition_weight, "inhibition_weight", low=0.0)
    extra_constraints = []
    if inhibition is not None:
        if inhibition_weight <= 0:
            raise ConfigError("inhibition needs an inhibition_weight > 0 (the weight of ½|z|ᵀS|z|)")
        if not isinstance(inhibition, dict):
            raise ConfigError("inhibition is a mapping of LateralInhibitionPenalty options, e.g. "
                              f"{{tree: {{depth: 2, branching: 4}}, value: 0.1, learned: true}}, got {inhibition!r}")
        try:
            penalties["inhibition"] = LateralInhibitionPenalty(inhibition_weight, n_components, **inhibition)
        except TypeError as exc:
            raise ConfigError(f"inhibition: {exc}") from None
        if penalties["inhibition"].learned:
            extra_constraints.append(InhibitionAscent())
    if groups is not None:
        if group_weight <= 0:
            raise ConfigError("groups need a group_weight > 0 (the weight of the group-sparsity term)")
        penalties["group"] = GroupSparsityPenalty(group_weight, fitted_groups(groups, n_components))
    decoder = SparseLinearDecoder(n_components, n_features) if sparse_decode else LinearDecoder(n_components, n_features)
    if sparse_decode:
        decoder.bind_encoder(encoder)
    with torch.no_grad():
        decoder.weight_.copy_(encoder.weight.t())
        decoder.weight_.div_(decoder.weight_.norm(dim=0, keepdim=True).clamp_min(1e-12))
        encoder.weight.copy_(decoder.weight_.t())
    encoder.bind_decoder(decoder)
    constraints = [unit_norm_columns("decoder.weight_", tangent_gradient=True), *extra_constraints]
    return Autoencoder(encoder, decoder, GaussianLikelihood(), penalties, constraints)


@MODELS.register("topk_sae")
def topk_sae(n_features: int, n_components: int, *, k: int = 32, batch_topk: bool = False,
             aux_weight: float = 1.0 / 32, k_aux: int | None = None, dead_after: int = 1_000_000,
             groups: dict | None = None, group_weight: float = 0.0, sparse_decode: bool = False,
             inhibition: dict | None = None, inhibition_weight: float = 0.0) -> Autoencoder:
    """TopK SAE (Gao et al. 2024): z = TopK_k(ReLU(W_enc(x − b_pre) + b_enc)), x̂ = W_dec z + b_pre,
    loss ½‖x − x̂‖² + α·AuxK (α = ``aux_weight``; 0 turns it off; ``k_aux`` defaults to 2k as a
    share of the latents, at most n_components; a latent is dead after ``dead_after`` samples
    without firing). ``batch_topk``: BatchTopK (Bussmann et al. 2024), k·batch latents kept per
    batch, a learned threshold at inference. ``groups`` (a :func:`sparseae.groups.make_groups`
    spec) with ``group_weight`` μ adds μ Σ_j ‖z‖_{g_j}: structured sparsity for SAE latents, e.g.
    a topographic map of features with grid windows. ``inhibition`` (options of
    :class:`~sparseae.nn.inhibition_penalty.LateralInhibitionPenalty`: ``S``, ``tree``, ``value``,
    ``learned``, ``rate``, ``bound``) with ``inhibition_weight`` μ adds μ·½|z|ᵀS|z|: lateral
    inhibition between latents, fixed or learned by ascent. ``sparse_decode``: decode from the k active
    latents only (:class:`~sparseae.nn.sparse_encoders.SparseLinearDecoder`; per-sample TopK),
    the same function, cheaper when k ≪ n_components."""
    check_number(aux_weight, "aux_weight", low=0.0)
    encoder = TopKEncoder(n_features, n_components, k, batch_topk=batch_topk, keep_sparse=sparse_decode)
    penalties: dict[str, Penalty] = {}
    if aux_weight > 0:
        k_aux = min(2 * k if k_aux is None else k_aux, n_components)
        penalties["aux_k"] = AuxKPenalty(aux_weight, n_components, k_aux=k_aux, dead_after=dead_after)
    return _sae(encoder, n_features, n_components, penalties, groups, group_weight, sparse_decode,
                inhibition, inhibition_weight)


@MODELS.register("jumprelu_sae")
def jumprelu_sae(n_features: int, n_components: int, *, l0_weight: float = 1e-3,
                 initial_threshold: float = 1e-3, bandwidth: float = 1e-3, groups: dict | None = None,
                 group_weight: float = 0.0, inhibition: dict | None = None,
                 inhibition_weight: float = 0.0) -> Autoencoder:
    """JumpReLU SAE (Rajamanoharan et al. 2024): z = a·H(a − θ), a = W_enc(x − b_pre) + b_enc,
    loss ½‖x − x̂‖² + λ·L0(z) with λ = ``l0_weight``; θ learned by straight-through estimates
    with a rectangle kernel of width ``bandwidth``. ``groups``/``group_weight`` and
    ``inhibition``/``inhibition_weight``: as for ``topk_sae``."""
    check_number(l0_weight, "l0_weight", low=0.0)
    encoder = JumpReLUEncoder(n_features, n_components, initial_threshold, bandwidth)
    penalties: dict[str, Penalty] = {"l0": L0Penalty(l0_weight)} if l0_weight > 0 else {}
    return _sae(encoder, n_features, n_components, penalties, groups, group_weight,
                inhibition=inhibition, inhibition_weight=inhibition_weight)

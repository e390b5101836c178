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

from ..errors import ConfigError
from ..nn.activations import upcast_half
from ..nn.constraints import unit_norm_columns
from ..nn.decoders import LinearDecoder
from ..nn.inhibition_penalty import InhibitionAscent, LateralInhibitionPenalty
from ..nn.likelihoods import GaussianLikelihood
from ..nn.penalties import AuxKPenalty, GroupSparsityPenalty, L0Penalty, Penalty
from ..nn.sparse_encoders import JumpReLUEncoder, SparseLinearDecoder, TopKEncoder, _SAEEncoder
from ..validation import check_number
from .base import MODELS, Autoencoder, Energy
from .sparse_coding import fitted_groups


def _sae(encoder: _SAEEncoder, n_features: int, n_components: int, penalties: dict[str, Penalty],
         groups: dict | None = None, group_weight: float = 0.0, sparse_decode: bool = False,
         inhibition: dict | None = None, inhibition_weight: float = 0.0,
         model_class: type[Autoencoder] = Autoencoder, **model_options) -> Autoencoder:
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
    decoder = (SparseLinearDecoder if sparse_decode else LinearDecoder)(n_components, n_features)
    if sparse_decode:
        decoder.bind_encoder(encoder)
    with torch.no_grad():
        decoder.weight_.copy_(encoder.weight.t())
        decoder.weight_.div_(decoder.weight_.norm(dim=0, keepdim=True).clamp_min(1e-12))
        encoder.weight.copy_(decoder.weight_.t())
    encoder.bind_decoder(decoder)
    constraints = [unit_norm_columns("decoder.weight_", tangent_gradient=True), *extra_constraints]
    return model_class(encoder, decoder, GaussianLikelihood(), penalties, constraints, **model_options)


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


def _k_default(k: int | None, n_components: int) -> int:
    """``k`` as given, or min(32, n_components // 4), at least 1."""
    return min(32, max(1, n_components // 4)) if k is None else k


def check_prefix_sizes(prefix_sizes, n_components: int) -> list[int]:
    """Matryoshka prefix sizes: strictly increasing positive integers ending at ``n_components``
    (appended when left out); None gives n/8, n/4, n/2, n (those ≥ 1, without repeats)."""
    if prefix_sizes is None:
        sizes = sorted({n_components // 8, n_components // 4, n_components // 2, n_components} - {0})
        return sizes
    if not isinstance(prefix_sizes, (list, tuple)) or not prefix_sizes:
        raise ConfigError(f"prefix_sizes must be a list of increasing latent counts, e.g. [64, 256, 1024], "
                          f"got {prefix_sizes!r}")
    for size in prefix_sizes:
        check_number(size, "prefix size", low=1, high=n_components, integer=True)
    sizes = [int(size) for size in prefix_sizes]
    if sizes[-1] != n_components:
        sizes.append(n_components)
    if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        raise ConfigError(f"prefix_sizes must increase strictly, got {list(prefix_sizes)}")
    return sizes


class MatryoshkaSAE(Autoencoder):
    """A BatchTopK SAE whose loss sums the reconstruction from each nested prefix of the
    dictionary (Bussmann et al. 2025): Σ_m ½‖x − (W_dec[:, :m] z[:m] + b_dec)‖² over
    ``prefix_sizes`` m₁ < … < n_components, so the first latents learn general features that
    reconstruct alone. Logged terms: ``reconstruction`` (the whole dictionary) and
    ``reconstruction_m<m>`` for each smaller prefix."""

    def __init__(self, *args, prefix_sizes: list[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prefix_sizes = list(prefix_sizes)

    def prefix_reconstructions(self, z: torch.Tensor) -> list[torch.Tensor]:
        """x̂ from each prefix of the code z (batch, n_components): one (batch, n_features) per
        prefix size, built up chunk by chunk."""
        weight, bias = self.decoder.weight.to(z.dtype), self.decoder.bias
        partial = torch.zeros(z.shape[0], weight.shape[0], dtype=z.dtype, device=z.device)
        if bias is not None:
            partial = partial + bias.to(z.dtype)
        out, start = [], 0
        for size in self.prefix_sizes:
            partial = partial + nn_linear(z[:, start:size], weight[:, start:size])
            out.append(self.likelihood.mean(partial))
            start = size
        return out

    def energy(self, x: torch.Tensor, x_input: torch.Tensor | None = None, *,
               reconstruction_weight: float = 1.0) -> Energy:
        """Σ over prefixes of the mean reconstruction NLL (× ``reconstruction_weight``); the whole
        dictionary's term is ``step.eta``'s, the smaller prefixes' are built from the code."""
        step = self.forward_pass(x, x_input)
        reconstruction = self.likelihood.nll(upcast_half(step.eta), x).mean()
        terms = {"reconstruction": reconstruction.detach()}
        total = reconstruction
        weight, bias = self.decoder.weight, self.decoder.bias
        code = upcast_half(step.code)
        partial = None if bias is None else upcast_half(bias).expand(code.shape[0], -1)
        start = 0
        for size in self.prefix_sizes[:-1]:
            chunk = nn_linear(code[:, start:size], upcast_half(weight)[:, start:size].to(code.dtype))
            partial = chunk if partial is None else partial + chunk
            start = size
            term = self.likelihood.nll(partial, x).mean()
            terms[f"reconstruction_m{size}"] = term.detach()
            total = total + term
        if reconstruction_weight != 1:
            total = reconstruction_weight * total
        return Energy(step, total, terms)


def nn_linear(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``z Wᵀ``: z (batch, m), W (n_features, m) → (batch, n_features)."""
    return torch.nn.functional.linear(z, weight)


@MODELS.register("matryoshka_sae")
def matryoshka_sae(n_features: int, n_components: int, *, k: int | None = None,
                   prefix_sizes: list[int] | None = None, aux_weight: float = 1.0 / 32,
                   k_aux: int | None = None, dead_after: int = 1_000_000) -> Autoencoder:
    """Matryoshka BatchTopK SAE (Bussmann, Nabeshima, Karvonen & Nanda 2025): BatchTopK codes
    (k·batch latents kept per batch, ``k`` default min(32, n_components/4); a learned threshold θ
    at inference), loss Σ_m ½‖x − x̂_m‖² over the nested ``prefix_sizes`` m (default n/8, n/4,
    n/2, n; the last is always n_components) plus α·AuxK against dead latents (``aux_weight``,
    ``k_aux``, ``dead_after`` as for ``topk_sae``). :class:`MatryoshkaSAE` documents the terms."""
    k = _k_default(k, n_components)
    check_number(aux_weight, "aux_weight", low=0.0)
    sizes = check_prefix_sizes(prefix_sizes, n_components)
    encoder = TopKEncoder(n_features, n_components, k, batch_topk=True)
    penalties: dict[str, Penalty] = {}
    if aux_weight > 0:
        k_aux = min(2 * k if k_aux is None else k_aux, n_components)
        penalties["aux_k"] = AuxKPenalty(aux_weight, n_components, k_aux=k_aux, dead_after=dead_after)
    return _sae(encoder, n_features, n_components, penalties, model_class=MatryoshkaSAE, prefix_sizes=sizes)


@MODELS.register("gated_sae")
def gated_sae(n_features: int, n_components: int, *, l1_weight: float = 1e-2,
              aux_weight: float = 1.0) -> Autoencoder:
    """Gated SAE (Rajamanoharan et al. 2024): z = H(π_gate) ⊙ ReLU(π_mag), π_gate = W(x − b_pre) +
    b_gate, π_mag = exp(r_mag) ⊙ W(x − b_pre) + b_mag (one W for both paths). Loss
    ½‖x − x̂‖² + λ Σ_j ReLU(π_gate)_j‖d_j‖ (λ = ``l1_weight``) + ``aux_weight``·½‖x − x̂_gate‖², where
    x̂_gate decodes ReLU(π_gate) through a frozen copy of the decoder (refreshed after each step)
    (:mod:`sparseae.nn.gated`)."""
    from ..nn.gated import GatedAuxiliaryLoss, GatedEncoder, GatedL1Penalty

    check_number(l1_weight, "l1_weight", low=0.0)
    check_number(aux_weight, "aux_weight", low=0.0)
    encoder = GatedEncoder(n_features, n_components)
    penalties: dict[str, Penalty] = {}
    if l1_weight > 0:
        penalties["gate_l1"] = GatedL1Penalty(l1_weight)
    if aux_weight > 0:
        penalties["gate_aux"] = GatedAuxiliaryLoss(aux_weight, n_features, n_components)
    model = _sae(encoder, n_features, n_components, penalties)
    if aux_weight > 0:  # the frozen decoder copy follows the decoder after each step
        model.constraints.append(penalties["gate_aux"].constraint())
        model.apply_constraints()
    return model


@MODELS.register("matching_pursuit_sae")
def matching_pursuit_sae(n_features: int, n_components: int, *, k: int | None = None) -> Autoencoder:
    """Matching-pursuit SAE: the encoder is ``k`` steps (default min(32, n_components/4)) of greedy
    non-negative matching pursuit with the decoder's unit-norm atoms on the residual x − b_dec
    (:class:`~sparseae.nn.matching_pursuit.MatchingPursuitEncoder`, no encoder weights); loss ½‖x − x̂‖²,
    through the selected atoms and values."""
    from ..nn.matching_pursuit import MatchingPursuitEncoder

    k = _k_default(k, n_components)
    encoder = MatchingPursuitEncoder(n_features, n_components, k)
    decoder = LinearDecoder(n_components, n_features)
    with torch.no_grad():
        decoder.weight_.div_(decoder.weight_.norm(dim=0, keepdim=True).clamp_min(1e-12))
    encoder.bind_decoder(decoder)
    constraints = [unit_norm_columns("decoder.weight_", tangent_gradient=True)]
    return Autoencoder(encoder, decoder, GaussianLikelihood(), {}, constraints)

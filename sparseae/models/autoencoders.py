"""One-hidden-layer autoencoders: undercomplete/linear, sparse (L1 and KL), denoising,
contractive, and with a noisy or dropped-out code.

Each is a registered preset over :class:`~sparseae.models.base.Autoencoder`; hyperparameters use
one vocabulary: ``sparsity_weight`` (β for KL, λ for L1), ``sparsity_target`` (ρ),
``weight_decay`` (UFLDL's λ, applied as (λ/2)Σ‖W‖²).
"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..groups import make_groups
from ..nn.activations import ACTIVATIONS
from ..nn.constraints import unit_norm_columns, unit_norm_rows_parametrization
from ..nn.corruption import GaussianCorruption, make_corruption
from ..nn.decoders import LinearDecoder
from ..nn.encoders import LinearEncoder
from ..nn.likelihoods import make_likelihood
from ..nn.penalties import ContractivePenalty, GroupSparsityPenalty, KLSparsity, L1Penalty, Penalty, WeightDecay
from ..validation import check_choice, check_number
from .base import MODELS, Autoencoder

#: Choices of the UFLDL sparse autoencoder, also validated by its estimator.
UFLDL_ACTIVATIONS = ("sigmoid", "tanh")
UFLDL_DECODERS = ("sigmoid", "linear", "bernoulli")


@MODELS.register("autoencoder")
def autoencoder(n_features: int, n_components: int, *, activation: str = "sigmoid",
                likelihood: str = "gaussian", tied: bool = False, sparsity: str = "none",
                sparsity_weight: float = 0.0, sparsity_target: float = 0.05,
                kl_momentum: float = 0.0, weight_decay: float = 0.0,
                unit_norm_decoder: bool = False, corruption: str | None = None,
                contraction_weight: float = 0.0, contraction_method: str = "auto",
                code_noise: float = 0.0, dropout: float = 0.0, groups: dict | None = None,
                group_eps: float = 1e-8, unit_norm_encoder: bool = False) -> Autoencoder:
    """The general one-hidden-layer autoencoder every preset below is a setting of.

    ``z = act(W_e x̃ + b)``, ``η = W_d z + c``, loss = −log p(x|η) + Ω.
    ``activation``: identity | sigmoid | tanh | relu. ``likelihood``: gaussian (squared error),
    gaussian_sigmoid (squared error on σ(η), UFLDL's sigmoid decoder), gaussian_learned_variance
    (−log N(x; η, diag σ²) with σ² learned), bernoulli (cross-entropy on σ(η)), categorical.
    ``sparsity``: none | l1 (λ‖z‖₁) | kl (β Σ KL(ρ‖ρ̂_j)) | group (λ Σ_j √(Σ_{i∈g_j} w z_i² + ε),
    L2 pooling over ``groups``, a :func:`sparseae.groups.make_groups` spec such as
    ``{"kind": "grid", "height": 10, "width": 10, "window": 3}``; ``group_eps`` is ε).
    ``tied``: W_d = W_eᵀ. ``unit_norm_encoder``: the rows of W_e have unit norm inside the
    objective (W_e = V/‖V_i‖, a parametrization; with ``tied`` and identity units this is
    reconstruction ICA, Le et al. 2011; works with L-BFGS, unlike a projection after each step).
    ``unit_norm_decoder``: atoms projected to unit norm after each step.
    ``corruption``: x̃ ~ q(x̃|x) in training, e.g. ``"masking:0.25"``, ``"gaussian:0.3"``,
    ``"salt_and_pepper:0.1"`` or a ``+``-composition (denoising AE); none: x̃ = x.
    ``contraction_weight`` λ: + λ‖J_f(x̃)‖²_F (contractive AE), computed by
    ``contraction_method`` (auto | closed_form | exact | stochastic, see :mod:`sparseae.nn.jacobian`).
    ``code_noise`` σ: the decoder sees z + N(0, σ²) in training (a stochastic encoder);
    ``dropout`` p: the decoder sees the code with units dropped with probability p (rescaled by
    1/(1−p)) in training.
    """
    check_choice(activation, "activation", tuple(ACTIVATIONS))
    check_choice(sparsity, "sparsity", ("none", "l1", "kl", "group"))
    check_number(sparsity_weight, "sparsity_weight", low=0.0)
    check_number(weight_decay, "weight_decay", low=0.0)
    check_number(contraction_weight, "contraction_weight", low=0.0)
    if groups is not None and sparsity != "group":
        raise ConfigError(f"groups are used by sparsity='group', not sparsity={sparsity!r}")
    if unit_norm_decoder and tied:
        raise ConfigError("unit_norm_decoder needs an untied decoder (tied=False)")
    encoder = LinearEncoder(n_features, n_components, activation)
    if unit_norm_encoder:
        unit_norm_rows_parametrization(encoder)
    decoder = LinearDecoder(n_components, n_features, tied_to=encoder if tied else None)
    penalties = _sparsity_penalty(sparsity, sparsity_weight, n_components, encoder.code_range,
                                  sparsity_target=sparsity_target, kl_momentum=kl_momentum, groups=groups,
                                  group_eps=group_eps)
    if weight_decay > 0:
        penalties["weight_decay"] = WeightDecay(weight_decay)
    if contraction_weight > 0:
        penalties["contraction"] = ContractivePenalty(contraction_weight, contraction_method)
    constraints = [unit_norm_columns("decoder.weight_")] if unit_norm_decoder else []
    return Autoencoder(encoder, decoder, make_likelihood(likelihood, n_features), penalties, constraints,
                       corruption=make_corruption(corruption), code_noise=make_code_noise(code_noise, dropout))


def _sparsity_penalty(sparsity: str, weight: float, n_components: int, code_range, *, sparsity_target: float,
                      kl_momentum: float, groups: dict | None, group_eps: float) -> dict[str, Penalty]:
    """The penalty that :func:`autoencoder`'s ``sparsity`` shorthand names, by its log name
    (none for ``"none"`` or an L1 weight of 0)."""
    if sparsity == "l1" and weight > 0:
        return {"l1": L1Penalty(weight)}
    if sparsity == "group":
        if groups is None:
            raise ConfigError("sparsity='group' needs groups, e.g. {'kind': 'disjoint', 'group_size': 4, "
                              f"'n_components': {n_components}}}")
        structure = make_groups(groups)
        structure.check_fits(n_components)
        return {"group": GroupSparsityPenalty(weight, structure, group_eps)}
    if sparsity == "kl":
        return {"kl": KLSparsity(weight, sparsity_target, n_components, code_range=code_range,
                                 momentum=kl_momentum)}
    return {}


def make_code_noise(code_noise: float, dropout: float) -> nn.Module | None:
    """The training-time perturbation of the code: Gaussian noise of std ``code_noise``, then
    dropout with probability ``dropout``; None when both are 0."""
    check_number(code_noise, "code_noise", low=0.0)
    check_number(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)
    parts: list[nn.Module] = []
    if code_noise > 0:
        parts.append(GaussianCorruption(code_noise))
    if dropout > 0:
        parts.append(nn.Dropout(dropout))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else nn.Sequential(*parts)


@MODELS.register("linear_ae")
def linear_ae(n_features: int, n_components: int, *, tied: bool = False,
              weight_decay: float = 0.0) -> Autoencoder:
    """Linear undercomplete autoencoder with squared error: learns the PCA subspace (§14.1)."""
    return autoencoder(n_features, n_components, activation="identity", likelihood="gaussian",
                       tied=tied, weight_decay=weight_decay)


@MODELS.register("sparse_ae_kl")
def sparse_ae_kl(n_features: int, n_components: int, *, activation: str = "sigmoid",
                 decoder: str = "sigmoid", sparsity_weight: float = 3.0,
                 sparsity_target: float = 0.01, weight_decay: float = 1e-4,
                 kl_momentum: float = 0.0) -> Autoencoder:
    """UFLDL's sparse autoencoder: sigmoid (or tanh) units, KL(ρ‖ρ̂) sparsity, weight decay.

    J = (1/m)Σ ½‖x̂ − x‖² + (λ/2)(‖W1‖² + ‖W2‖²) + β Σ_j KL(ρ‖ρ̂_j); defaults are the
    exercise's β = 3, ρ = 0.01, λ = 1e-4. ``decoder``: ``sigmoid`` (x̂ = σ(W2 a + b2), data in
    [0, 1]), ``linear`` (x̂ = W2 a + b2, for whitened real-valued data) or ``bernoulli``
    (sigmoid output with cross-entropy).
    """
    check_choice(activation, "activation", UFLDL_ACTIVATIONS)
    check_choice(decoder, "decoder", UFLDL_DECODERS)
    likelihood = {"sigmoid": "gaussian_sigmoid", "linear": "gaussian", "bernoulli": "bernoulli"}[decoder]
    return autoencoder(n_features, n_components, activation=activation, likelihood=likelihood,
                       sparsity="kl", sparsity_weight=sparsity_weight,
                       sparsity_target=sparsity_target, kl_momentum=kl_momentum,
                       weight_decay=weight_decay)


@MODELS.register("sparse_ae_l1")
def sparse_ae_l1(n_features: int, n_components: int, *, sparsity_weight: float = 0.1,
                 likelihood: str = "gaussian", weight_decay: float = 0.0) -> Autoencoder:
    """L1 sparse autoencoder: z = ReLU(W_e x + b), loss ½‖x − W_d z − c‖² + λ‖z‖₁, with the
    decoder's columns kept at unit norm so the penalty cannot be cheated by scaling (§14.2.1)."""
    return autoencoder(n_features, n_components, activation="relu", likelihood=likelihood,
                       sparsity="l1", sparsity_weight=sparsity_weight, weight_decay=weight_decay,
                       unit_norm_decoder=True)


@MODELS.register("denoising_ae")
def denoising_ae(n_features: int, n_components: int, *, corruption: str = "masking:0.25",
                 activation: str = "sigmoid", likelihood: str = "bernoulli", tied: bool = True,
                 weight_decay: float = 0.0) -> Autoencoder:
    """Denoising autoencoder (Vincent et al. 2008, 2010): encode x̃ ~ q(x̃|x), reconstruct the
    clean x. Defaults are the SdA's: sigmoid units, tied weights, cross-entropy, masking 25%
    (DAE-b); ``corruption="gaussian:σ"`` with ``likelihood="gaussian"`` gives DAE-g."""
    return autoencoder(n_features, n_components, activation=activation, likelihood=likelihood,
                       tied=tied, weight_decay=weight_decay, corruption=corruption)


@MODELS.register("contractive_ae")
def contractive_ae(n_features: int, n_components: int, *, contraction_weight: float = 0.1,
                   contraction_method: str = "auto", activation: str = "sigmoid",
                   likelihood: str = "bernoulli", tied: bool = True,
                   weight_decay: float = 0.0) -> Autoencoder:
    """Contractive autoencoder (Rifai et al. 2011): reconstruction + λ‖J_f(x)‖²_F. Defaults:
    sigmoid units, tied weights, cross-entropy; the penalty is in closed form for this encoder,
    ``Σ_j (h_j(1 − h_j))² ‖W_j‖²``."""
    return autoencoder(n_features, n_components, activation=activation, likelihood=likelihood,
                       tied=tied, weight_decay=weight_decay, contraction_weight=contraction_weight,
                       contraction_method=contraction_method)

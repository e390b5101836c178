"""The first models: undercomplete/linear autoencoders and sparse autoencoders (L1 and KL).

Each is a registered preset over :class:`~sparseae.models.base.Autoencoder`; hyperparameters use
one vocabulary: ``sparsity_weight`` (β for KL, λ for L1), ``sparsity_target`` (ρ),
``weight_decay`` (UFLDL's λ, applied as (λ/2)Σ‖W‖²).
"""
from __future__ import annotations

from ..nn.activations import ACTIVATIONS
from ..nn.constraints import unit_norm_columns
from ..nn.decoders import LinearDecoder
from ..nn.encoders import LinearEncoder
from ..nn.likelihoods import make_likelihood
from ..nn.penalties import KLSparsity, L1Penalty, Penalty, WeightDecay
from ..validation import check_choice, check_number
from .base import MODELS, Autoencoder


@MODELS.register("autoencoder")
def autoencoder(n_features: int, n_components: int, *, activation: str = "sigmoid",
                likelihood: str = "gaussian", tied: bool = False, sparsity: str = "none",
                sparsity_weight: float = 0.0, sparsity_target: float = 0.05,
                kl_momentum: float = 0.0, weight_decay: float = 0.0,
                unit_norm_decoder: bool = False) -> Autoencoder:
    """The general one-hidden-layer autoencoder every preset below is a setting of.

    ``z = act(W_e x + b)``, ``η = W_d z + c``, loss = −log p(x|η) + Ω.
    ``activation``: identity | sigmoid | tanh | relu. ``likelihood``: gaussian (squared error),
    gaussian_sigmoid (squared error on σ(η), UFLDL's sigmoid decoder), bernoulli (cross-entropy on
    σ(η)), categorical. ``sparsity``: none | l1 (λ‖z‖₁) | kl (β Σ KL(ρ‖ρ̂_j)).
    ``tied``: W_d = W_eᵀ. ``unit_norm_decoder``: atoms projected to unit norm after each step.
    """
    check_choice(activation, "activation", tuple(ACTIVATIONS))
    check_choice(sparsity, "sparsity", ("none", "l1", "kl"))
    check_number(sparsity_weight, "sparsity_weight", low=0.0)
    check_number(weight_decay, "weight_decay", low=0.0)
    if unit_norm_decoder and tied:
        from ..errors import ConfigError
        raise ConfigError("unit_norm_decoder needs an untied decoder (tied=False)")
    encoder = LinearEncoder(n_features, n_components, activation)
    decoder = LinearDecoder(n_components, n_features, tied_to=encoder if tied else None)
    penalties: dict[str, Penalty] = {}
    if sparsity == "l1" and sparsity_weight > 0:
        penalties["l1"] = L1Penalty(sparsity_weight)
    elif sparsity == "kl":
        penalties["kl"] = KLSparsity(sparsity_weight, sparsity_target, n_components,
                                     code_range=encoder.code_range, momentum=kl_momentum)
    if weight_decay > 0:
        penalties["weight_decay"] = WeightDecay(weight_decay)
    constraints = [unit_norm_columns("decoder.weight_")] if unit_norm_decoder else []
    return Autoencoder(encoder, decoder, make_likelihood(likelihood), penalties, constraints)


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
    check_choice(activation, "activation", ("sigmoid", "tanh"))
    check_choice(decoder, "decoder", ("sigmoid", "linear", "bernoulli"))
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

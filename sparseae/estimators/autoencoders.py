"""The autoencoder estimators: :class:`SparseAutoencoder` (UFLDL), :class:`LinearAutoencoder`
(PCA subspace), :class:`DenoisingAutoencoder`, :class:`ContractiveAutoencoder` and
:class:`AutoencoderEstimator` (any registered model by name)."""
from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

from .._sklearn_compat import Interval, StrOptions
from ..errors import ConfigError
from ..models.autoencoders import UFLDL_ACTIVATIONS, UFLDL_DECODERS
from ..nn.activations import ACTIVATIONS
from ..nn.jacobian import METHODS as JACOBIAN_METHODS
from .base import BaseAutoencoderEstimator

__all__ = ["AutoencoderEstimator", "ContractiveAutoencoder", "DenoisingAutoencoder", "LinearAutoencoder",
           "SparseAutoencoder"]


class SparseAutoencoder(BaseAutoencoderEstimator):
    """Sparse autoencoder (UFLDL): one hidden layer, sparsity on the codes, weight decay.

    The defaults are UFLDL's exercise: sigmoid units, KL sparsity with β = 3, ρ = 0.01,
    λ = 1e-4, full-batch L-BFGS for 400 iterations; data are expected in [0, 1] with the
    sigmoid decoder.

    Parameters
    ----------
    n_components : int ≥ 1
        Hidden units (code size); may exceed the number of features.
    sparsity : {"kl", "l1", "none"}
        ``"kl"``: the ``sparse_ae_kl`` preset, β Σ_j KL(ρ ‖ ρ̂_j) on the mean activations ρ̂.
        ``"l1"``: the ``sparse_ae_l1`` preset, ReLU codes z, λ‖z‖₁, decoder atoms kept at
        unit norm and a linear (Gaussian) decoder; ``activation``, ``decoder`` and
        ``sparsity_target`` are ignored, and λ is ``sparsity_weight`` (the default 3.0 is
        meant for KL — with L1 something like 0.01–0.1 for data in [0, 1]; prefer a minibatch
        optimizer such as ``"adam"``, since the unit-norm projection happens between steps).
        ``"none"``: the plain ``autoencoder`` preset (``sparsity_weight``/``sparsity_target``
        ignored).
    sparsity_weight : float ≥ 0
        β for KL, λ for L1.
    sparsity_target : float in (0, 1)
        ρ, the target mean activation of each unit (KL only).
    weight_decay : float ≥ 0
        λ of (λ/2)Σ‖W‖² over the weight matrices.
    activation : {"sigmoid", "tanh"}
        Hidden units (KL and none). With tanh, ρ̂ is measured on (a + 1)/2.
    decoder : {"sigmoid", "linear", "bernoulli"}
        Output: ``sigmoid`` (x̂ = σ(W₂a + b₂), squared error; data in [0, 1]), ``linear``
        (x̂ = W₂a + b₂, squared error; e.g. whitened data), ``bernoulli`` (sigmoid output with
        cross-entropy; data in [0, 1]).

    Notes
    -----
    The training parameters and the fitted attributes are those of
    :class:`BaseAutoencoderEstimator`.
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseAutoencoderEstimator._parameter_constraints,
        "sparsity": [StrOptions({"kl", "l1", "none"})],
        "sparsity_weight": [Interval(Real, 0, None, closed="left")],
        "sparsity_target": [Interval(Real, 0, 1, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "activation": [StrOptions(set(UFLDL_ACTIVATIONS))],
        "decoder": [StrOptions(set(UFLDL_DECODERS))],
    }

    def __init__(self, *, n_components: int = 25, sparsity: str = "kl", sparsity_weight: float = 3.0,
                 sparsity_target: float = 0.01, weight_decay: float = 1e-4,
                 activation: str = "sigmoid", decoder: str = "sigmoid", optimizer: str = "lbfgs",
                 learning_rate: float = 1.0, batch_size: int = 256, max_epochs: int = 20,
                 max_iter: int = 400, validation_fraction: float = 0.0,
                 n_iter_no_change: int | None = None, device: str = "auto",
                 random_state: int | None = None, verbose: bool = False) -> None:
        self.n_components = n_components
        self.sparsity = sparsity
        self.sparsity_weight = sparsity_weight
        self.sparsity_target = sparsity_target
        self.weight_decay = weight_decay
        self.activation = activation
        self.decoder = decoder
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _model_spec(self) -> tuple[str, dict[str, Any]]:
        if self.sparsity == "kl":
            return "sparse_ae_kl", {"activation": self.activation, "decoder": self.decoder,
                                    "sparsity_weight": self.sparsity_weight,
                                    "sparsity_target": self.sparsity_target,
                                    "weight_decay": self.weight_decay}
        if self.sparsity == "l1":
            return "sparse_ae_l1", {"sparsity_weight": self.sparsity_weight,
                                    "weight_decay": self.weight_decay}
        if self.sparsity == "none":
            likelihoods = {"sigmoid": "gaussian_sigmoid", "linear": "gaussian", "bernoulli": "bernoulli"}
            if self.decoder not in likelihoods:
                raise ConfigError(f"decoder must be one of {', '.join(map(repr, likelihoods))}; "
                                  f"got {self.decoder!r}")
            likelihood = likelihoods[self.decoder]
            return "autoencoder", {"activation": self.activation, "likelihood": likelihood,
                                   "weight_decay": self.weight_decay}
        raise ConfigError(f"sparsity must be 'kl', 'l1' or 'none'; got {self.sparsity!r}")


class LinearAutoencoder(BaseAutoencoderEstimator):
    """Linear undercomplete autoencoder with squared error (the ``linear_ae`` preset).

    Its codes span the principal subspace of the (centred) data: the same subspace as PCA with
    ``n_components`` components, though not necessarily the same (orthogonal) basis.

    Parameters
    ----------
    n_components : int ≥ 1
        Code size.
    tied : bool
        Decoder weights are the encoder's transposed (W_d = W_eᵀ).

    Notes
    -----
    The training parameters and the fitted attributes are those of
    :class:`BaseAutoencoderEstimator`.
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseAutoencoderEstimator._parameter_constraints,
        "tied": ["boolean"],
    }

    def __init__(self, *, n_components: int = 2, tied: bool = False, optimizer: str = "adam",
                 learning_rate: float = 1e-2, batch_size: int = 256, max_epochs: int = 50,
                 max_iter: int = 400, validation_fraction: float = 0.0,
                 n_iter_no_change: int | None = None, device: str = "auto",
                 random_state: int | None = None, verbose: bool = False) -> None:
        self.n_components = n_components
        self.tied = tied
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _model_spec(self) -> tuple[str, dict[str, Any]]:
        return "linear_ae", {"tied": bool(self.tied)}


class AutoencoderEstimator(BaseAutoencoderEstimator):
    """Any registered model, by name, with a dict of its parameters.

    ``AutoencoderEstimator(model="sparse_ae_l1", model_params={"sparsity_weight": 0.05})``
    builds ``create_model("sparse_ae_l1", n_features, n_components, sparsity_weight=0.05)``.
    Unknown model names and parameters are a :class:`~sparseae.errors.ConfigError` at ``fit``
    (the message lists the known ones); ``model_params`` must be JSON-able to be saved.

    Parameters
    ----------
    model : str
        A name registered in :data:`sparseae.models.MODELS`.
    n_components : int ≥ 1
        Code size.
    model_params : dict or None
        Keyword arguments of the model's builder (not ``n_features``/``n_components``).

    Notes
    -----
    The training parameters and the fitted attributes are those of
    :class:`BaseAutoencoderEstimator`.
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseAutoencoderEstimator._parameter_constraints,
        "model": [str],
        "model_params": [dict, None],
    }

    def __init__(self, *, model: str = "autoencoder", n_components: int = 25,
                 model_params: dict[str, Any] | None = None, optimizer: str = "adam",
                 learning_rate: float = 1e-3, batch_size: int = 256, max_epochs: int = 20,
                 max_iter: int = 400, validation_fraction: float = 0.0,
                 n_iter_no_change: int | None = None, device: str = "auto",
                 random_state: int | None = None, verbose: bool = False) -> None:
        self.model = model
        self.n_components = n_components
        self.model_params = model_params
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _model_spec(self) -> tuple[str, dict[str, Any]]:
        params = dict(self.model_params or {})
        bad = [key for key in params if not isinstance(key, str)]
        if bad:
            raise ConfigError(f"model_params keys must be parameter names (str); got {bad!r}")
        return self.model, params


class DenoisingAutoencoder(BaseAutoencoderEstimator):
    """Denoising autoencoder (the ``denoising_ae`` preset; Vincent et al. 2008): trained to
    reconstruct each clean sample from a corrupted copy drawn afresh for every batch.
    ``transform`` encodes the clean input.

    Parameters
    ----------
    n_components : int ≥ 1
        Hidden units.
    corruption : str
        ``"masking:ν"`` (zero a fraction ν), ``"gaussian:σ"``, ``"salt_and_pepper:ν"`` or a
        ``+``-composition of them.
    activation : {"sigmoid", "tanh", "relu", "identity"}
    likelihood : str
        ``bernoulli`` (cross-entropy, data in [0, 1]), ``gaussian`` (squared error)…
    tied : bool
        Decoder weights are the encoder's transposed.
    weight_decay : float ≥ 0

    Notes
    -----
    The training parameters and the fitted attributes are those of
    :class:`BaseAutoencoderEstimator`.
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseAutoencoderEstimator._parameter_constraints,
        "corruption": [str],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [str],
        "tied": ["boolean"],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, *, n_components: int = 100, corruption: str = "masking:0.25",
                 activation: str = "sigmoid", likelihood: str = "bernoulli", tied: bool = True,
                 weight_decay: float = 0.0, optimizer: str = "adam", learning_rate: float = 1e-3,
                 batch_size: int = 64, max_epochs: int = 20, max_iter: int = 400,
                 validation_fraction: float = 0.0, n_iter_no_change: int | None = None,
                 device: str = "auto", random_state: int | None = None, verbose: bool = False) -> None:
        self.n_components = n_components
        self.corruption = corruption
        self.activation = activation
        self.likelihood = likelihood
        self.tied = tied
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _model_spec(self) -> tuple[str, dict[str, Any]]:
        return "denoising_ae", {"corruption": self.corruption, "activation": self.activation,
                                "likelihood": self.likelihood, "tied": bool(self.tied),
                                "weight_decay": self.weight_decay}


class ContractiveAutoencoder(BaseAutoencoderEstimator):
    """Contractive autoencoder (the ``contractive_ae`` preset; Rifai et al. 2011): reconstruction
    + λ‖J_f(x)‖²_F, which makes the code insensitive to directions off the data manifold.

    Parameters
    ----------
    n_components : int ≥ 1
        Hidden units.
    contraction_weight : float ≥ 0
        λ.
    contraction_method : {"auto", "closed_form", "exact", "stochastic"}
        How ‖J‖²_F is computed (:mod:`sparseae.nn.jacobian`); ``auto`` is the closed form.
    activation, likelihood, tied, weight_decay
        As for :class:`DenoisingAutoencoder`.

    Notes
    -----
    The training parameters and the fitted attributes are those of
    :class:`BaseAutoencoderEstimator`.
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseAutoencoderEstimator._parameter_constraints,
        "contraction_weight": [Interval(Real, 0, None, closed="left")],
        "contraction_method": [StrOptions(set(JACOBIAN_METHODS))],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [str],
        "tied": ["boolean"],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, *, n_components: int = 100, contraction_weight: float = 0.1,
                 contraction_method: str = "auto", activation: str = "sigmoid",
                 likelihood: str = "bernoulli", tied: bool = True, weight_decay: float = 0.0,
                 optimizer: str = "adam", learning_rate: float = 1e-3, batch_size: int = 64,
                 max_epochs: int = 20, max_iter: int = 400, validation_fraction: float = 0.0,
                 n_iter_no_change: int | None = None, device: str = "auto",
                 random_state: int | None = None, verbose: bool = False) -> None:
        self.n_components = n_components
        self.contraction_weight = contraction_weight
        self.contraction_method = contraction_method
        self.activation = activation
        self.likelihood = likelihood
        self.tied = tied
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _model_spec(self) -> tuple[str, dict[str, Any]]:
        return "contractive_ae", {"contraction_weight": self.contraction_weight,
                                  "contraction_method": self.contraction_method,
                                  "activation": self.activation, "likelihood": self.likelihood,
                                  "tied": bool(self.tied), "weight_decay": self.weight_decay}

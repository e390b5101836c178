"""Reconstruction terms as negative log-likelihoods −log p(x | η), η the decoder output.

Each likelihood maps the decoder's natural parameter η (batch, n_features) to the mean
reconstruction x̂ (:meth:`mean`) and to a per-sample loss (:meth:`nll`, shape (batch,)).
Constants that do not depend on the parameters are dropped, so the Gaussian term is exactly
UFLDL's ½‖x̂ − x‖² (unit variance).
"""
from __future__ import annotations

import abc

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..registry import Registry


class Likelihood(nn.Module, abc.ABC):
    """Base: ``mean(η)`` → x̂ and ``nll(η, x)`` → (batch,)."""

    @abc.abstractmethod
    def mean(self, eta: torch.Tensor) -> torch.Tensor:
        """The reconstruction x̂ = E[x | η]: (batch, n_features)."""

    @abc.abstractmethod
    def nll(self, eta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x | η) up to a constant: (batch,)."""


class GaussianLikelihood(Likelihood):
    """½‖x − μ(η)‖²/σ² per sample, μ = η (``link="identity"``) or σ(η) (``link="sigmoid"``,
    UFLDL's sigmoid decoder with squared error). ``variance`` σ² (default 1) sets the weight of
    the reconstruction against the penalties: DrSAE's 5·½‖x − Dz‖² is σ² = 0.2."""

    def __init__(self, link: str = "identity", variance: float = 1.0) -> None:
        super().__init__()
        if link not in ("identity", "sigmoid"):
            raise ConfigError(f"Gaussian link must be 'identity' or 'sigmoid', got {link!r}")
        if isinstance(variance, bool) or not isinstance(variance, (int, float)) or not variance > 0 \
                or variance == float("inf"):
            raise ConfigError(f"Gaussian variance must be a positive number, got {variance!r}")
        self.link, self.variance = link, float(variance)

    def mean(self, eta: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(eta) if self.link == "sigmoid" else eta

    def nll(self, eta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        squared = (self.mean(eta) - x).pow(2).sum(dim=1)
        return (0.5 / self.variance) * squared if self.variance != 1.0 else 0.5 * squared

    def extra_repr(self) -> str:
        return f"link={self.link}" + (f", variance={self.variance:g}" if self.variance != 1.0 else "")


class BernoulliLikelihood(Likelihood):
    """Cross-entropy −Σ [x log σ(η) + (1−x) log(1−σ(η))] for x in [0, 1], computed from the
    logits η for stability."""

    def mean(self, eta: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(eta)

    def nll(self, eta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(eta, x, reduction="none").sum(dim=1)


class CategoricalLikelihood(Likelihood):
    """−Σ_i x_i log softmax(η)_i: x a probability vector (one-hot or histogram) per sample."""

    def mean(self, eta: torch.Tensor) -> torch.Tensor:
        return torch.softmax(eta, dim=1)

    def nll(self, eta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -(x * torch.log_softmax(eta, dim=1)).sum(dim=1)


class LearnedVarianceGaussian(Likelihood):
    """−log N(x; η, diag σ²) with a learned per-feature variance σ² = exp(s), s: (n_features,):
    ½ Σ_i [(x_i − η_i)²/σ_i² + log σ_i²] (the constant ½ log 2π dropped). A stochastic decoder
    whose noise level is fitted to the data (§14.4: the decoder as p(x | h))."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.log_variance = nn.Parameter(torch.zeros(n_features))

    @property
    def variance(self) -> torch.Tensor:
        return self.log_variance.exp()

    def mean(self, eta: torch.Tensor) -> torch.Tensor:
        return eta

    def nll(self, eta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_variance = self.log_variance.to(eta.dtype)
        return 0.5 * ((x - eta).pow(2) * torch.exp(-log_variance) + log_variance).sum(dim=1)

    def extra_repr(self) -> str:
        return f"n_features={self.log_variance.numel()}, learned variance"


LIKELIHOODS: Registry[Likelihood] = Registry("likelihood")
LIKELIHOODS.register("gaussian")(lambda n_features: GaussianLikelihood("identity"))
LIKELIHOODS.register("gaussian_sigmoid")(lambda n_features: GaussianLikelihood("sigmoid"))
LIKELIHOODS.register("gaussian_learned_variance")(LearnedVarianceGaussian)
LIKELIHOODS.register("bernoulli")(lambda n_features: BernoulliLikelihood())
LIKELIHOODS.register("categorical")(lambda n_features: CategoricalLikelihood())


def make_likelihood(name: str, n_features: int) -> Likelihood:
    """Build a likelihood by name for data of ``n_features``: gaussian, gaussian_sigmoid,
    gaussian_learned_variance, bernoulli, categorical."""
    return LIKELIHOODS.get(name)(n_features)

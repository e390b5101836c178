"""``binary_autoencoder``: the MAC-trained binary autoencoder of
:class:`sparseae.retrieval.BinaryAutoencoder` as a registry model, so that runs save it and the
``index``/``query`` verbs hash with it.

Encoder: ``bits = step(A φ(x) + a)`` as floats 0/1 ``(batch, n_bits)``, ``φ`` the RBF anchor
layer (or the identity when ``n_anchors`` is 0); its tensors are buffers, fitted by MAC, never by
gradients. Decoder: ``x̂ = W z + b`` ``(batch, n_features)``, the least-squares map from the bits
to the inputs (the MAC decoder itself reconstructs ``φ(x)``; this one gives pixel reconstructions
for the metrics).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..nn.decoders import LinearDecoder
from ..nn.likelihoods import make_likelihood
from ..validation import as_float_array, check_number
from .base import MODELS, Autoencoder


class BinaryHashEncoder(nn.Module):
    """``step(A φ(x) + a)``: (batch, n_features) → bits as floats (batch, n_bits); buffers only."""

    activation = "step"
    code_range = (0.0, 1.0)

    def __init__(self, n_features: int, n_bits: int, n_anchors: int, n_nearest: int, with_inputs: bool) -> None:
        super().__init__()
        self.n_features, self.n_components, self.n_nearest = n_features, n_bits, n_nearest
        self.with_inputs = with_inputs or not n_anchors
        width = n_anchors + n_features * self.with_inputs
        self.register_buffer("anchors", torch.zeros(n_anchors, n_features))
        self.register_buffer("column_scale", torch.ones(n_anchors))
        self.register_buffer("bandwidth", torch.ones(()))
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_scale", torch.ones(width))
        self.register_buffer("weight", torch.zeros(n_bits, width))
        self.register_buffer("bias", torch.zeros(n_bits))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised ``φ(x)`` (batch, width): anchor affinities, then the inputs (when used)."""
        parts = [x] if self.with_inputs else []
        if len(self.anchors):
            d2 = ((x * x).sum(1, keepdim=True) - 2 * x @ self.anchors.T
                  + (self.anchors * self.anchors).sum(1)).clamp_min(0)
            nearest, index = torch.topk(d2, self.n_nearest, dim=1, largest=False)
            weights = torch.softmax(-(nearest - nearest[:, :1]) / self.bandwidth, dim=1)
            parts.insert(0, torch.zeros_like(d2).scatter_(1, index, weights) * self.column_scale)
        return (torch.cat(parts, dim=1) - self.feature_mean) / self.feature_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.features(x) @ self.weight.T + self.bias > 0).to(x.dtype)


class BinaryAutoencoderModel(Autoencoder):
    """An :class:`Autoencoder` over a :class:`BinaryHashEncoder`, trained by the ``mac`` procedure
    (:func:`sparseae.retrieval.binary_autoencoder.fit_model`), not by the gradient trainer."""

    training_procedure: ClassVar[str] = "mac"

    def mac_settings(self) -> dict[str, Any]:
        """The MAC settings of :class:`~sparseae.retrieval.BinaryAutoencoder` this model was built with."""
        params = self.spec.get("params", {})
        return {key: params[key] for key in MAC_PARAMS if key in params}

    @torch.no_grad()
    def load_hasher(self, hasher: Any, X: Any) -> None:
        """Copy a fitted :class:`~sparseae.retrieval.BinaryAutoencoder` of the same sizes into the
        encoder's buffers, then fit the decoder: least squares of ``X`` ``(n, n_features)`` on its bits."""
        encoder, embedding = self.encoder, hasher.embedding_
        if embedding is not None:
            encoder.anchors.copy_(torch.from_numpy(embedding.anchors_))
            encoder.column_scale.copy_(torch.from_numpy(embedding.column_scale_))
            encoder.bandwidth.fill_(embedding.bandwidth_)
        encoder.feature_mean.copy_(torch.from_numpy(hasher.feature_mean_))
        encoder.feature_scale.copy_(torch.from_numpy(hasher.feature_scale_))
        encoder.weight.copy_(torch.from_numpy(hasher.A_.T))
        encoder.bias.copy_(torch.from_numpy(hasher.a_))
        X = as_float_array(X, "X", n_features=self.n_features)
        design = np.hstack([hasher.encode(X).astype(np.float64), np.ones((len(X), 1))])
        solution = np.linalg.lstsq(design, np.asarray(X, np.float64), rcond=None)[0]
        self.decoder.weight_.copy_(torch.from_numpy(solution[:-1].T))
        self.decoder.bias.copy_(torch.from_numpy(solution[-1]))


MAC_PARAMS = ("n_anchors", "n_nearest", "input_weight", "n_iter", "mu", "mu_growth", "l2", "max_samples",
              "validation_fraction")


@MODELS.register("binary_autoencoder")
def binary_autoencoder(n_features: int, n_components: int, *, n_anchors: int = 300, n_nearest: int = 3,
                       input_weight: float = 0.5, n_iter: int = 5, mu: float = 0.01, mu_growth: float = 1.6,
                       l2: float = 1e-4, max_samples: int = 10000, validation_fraction: float = 0.1) -> Autoencoder:
    """Binary autoencoder with ``n_components`` bits (Carreira-Perpiñán & Raziperchikolaei 2015),
    hash functions ``step(A φ(x) + a)`` over an RBF anchor layer of ``n_anchors`` k-means anchors
    beside the inputs weighted by ``input_weight`` (``n_anchors`` 0: linear in x), trained by
    auxiliary coordinates (:class:`sparseae.retrieval.BinaryAutoencoder` documents the parameters).
    Its codes are exact 0/1, hashed at threshold 0.5."""
    check_number(n_anchors, "n_anchors", low=0, integer=True)
    check_number(n_nearest, "n_nearest", low=1, high=n_anchors if n_anchors else None, integer=True)
    for name, value, low in (("input_weight", input_weight, 0.0), ("mu_growth", mu_growth, 1.0), ("l2", l2, 0.0)):
        check_number(value, name, low=low)
    check_number(mu, "mu", low=0.0, low_inclusive=False)
    check_number(n_iter, "n_iter", low=0, integer=True)
    check_number(max_samples, "max_samples", low=2, integer=True)
    check_number(validation_fraction, "validation_fraction", low=0.0, high=1.0, high_inclusive=False)
    encoder = BinaryHashEncoder(n_features, n_components, n_anchors, n_nearest, input_weight > 0)
    return BinaryAutoencoderModel(encoder,
                                  LinearDecoder(n_components, n_features), make_likelihood("gaussian", n_features))

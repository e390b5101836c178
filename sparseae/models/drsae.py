"""The discriminative recurrent sparse autoencoder, DrSAE (Rolfe & LeCun, ICLR 2013).

Encoder ``z⁰ = 0``, ``zᵗ⁺¹ = max(0, E x + (I + S) zᵗ − b)`` for T steps; decoder ``x̂ = D z^T``;
classifier ``C · z^T/‖z^T‖ + c``. Loss per sample (the authors' code):

    5 · ½‖x − D z^T‖² + 0.09 ‖z^T‖₁ + w · NLL(y | C z^T/‖z^T‖)

with w = 0 for unsupervised pre-training and w = 1 for discriminative training of all
parameters together (:func:`fit_drsae` runs both phases). Constraints after each step: ‖D_j‖ ≤ 1,
‖E_i‖ ≤ 1.25/(T − 1), ‖C_k‖ ≤ 5. Learning rates: E and b are used T times and S T − 1 times, so
theirs are divided by that; the classifier's is divided by 5. Inputs should have unit L2 norm
(:func:`sparseae.data.unit_norm_rows`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..nn.constraints import NormConstraint
from ..nn.decoders import LinearDecoder
from ..nn.encoders import RecurrentReLUEncoder
from ..nn.heads import LinearClassifierHead
from ..nn.likelihoods import GaussianLikelihood
from ..nn.penalties import L1Penalty, WeightDecay
from ..validation import as_float_array, check_number
from .base import MODELS
from .supervised import SupervisedAutoencoder, error_rate  # noqa: F401  (error_rate re-exported)


class DrSAE(SupervisedAutoencoder):
    """A :class:`SupervisedAutoencoder` with DrSAE's recurrent encoder and learning-rate scales."""

    classifier_lr_scale: float = 0.2

    def learning_rate_scales(self) -> dict[str, float]:
        """Per-parameter learning-rate factors (read by the trainer)."""
        steps = self.encoder.n_steps
        return {"encoder.E": 1.0 / steps, "encoder.b": 1.0 / steps,
                "encoder.S": 1.0 / max(steps - 1, 1),
                "head.weight": self.classifier_lr_scale, "head.bias": self.classifier_lr_scale}

    @torch.no_grad()
    def initialize_from_data(self, X: Any, *, init_step: float | None = None, threshold: float = 1e-5,
                             image_weight: float = 0.25, generator: torch.Generator | None = None) -> None:
        """The authors' initialization: each atom D_j = its random init + ``image_weight`` × a random
        training sample, then unit-normalized; ``E = αDᵀ``, ``S = −αDᵀD`` (so the recurrence starts
        as non-negative ISTA with step α), ``b = threshold``; α = ``init_step``, default 1.25/T.
        X: (n_samples, n_features)."""
        X = torch.as_tensor(as_float_array(X, "X", n_features=self.n_features))
        D = self.decoder.weight_
        picks = torch.randint(X.shape[0], (self.n_components,), generator=generator)
        samples = X[picks].to(device=D.device, dtype=D.dtype)
        D.add_(image_weight * samples.t())
        D.div_(D.norm(dim=0, keepdim=True).clamp_min(1e-12))
        step = 1.25 / self.encoder.n_steps if init_step is None else init_step
        check_number(step, "init_step", low=0.0, low_inclusive=False)
        self.encoder.init_from_dictionary(D, step, threshold)
        self.apply_constraints()


@MODELS.register("drsae")
def drsae(n_features: int, n_components: int, *, n_classes: int = 10, n_steps: int = 11,
          sparsity_weight: float = 0.09, reconstruction_weight: float = 5.0,
          classification_weight: float = 0.0, decoder_max_norm: float = 1.0,
          encoder_max_norm: float | None = None, classifier_max_norm: float = 5.0,
          classifier_lr_scale: float = 0.2, weight_decay: float = 0.0) -> DrSAE:
    """DrSAE ``n_features``-``n_components``^``n_steps``-``n_classes`` with the authors' defaults.

    ``classification_weight`` starts at 0 (pre-training); :func:`fit_drsae` sets it to 1.
    ``encoder_max_norm`` defaults to 1.25/(T − 1) (no bound when T = 1). ``weight_decay``:
    (λ/2)(‖E‖² + ‖S‖² + ‖C‖²) added to the loss (not in the paper; off by default); D is
    already bounded.
    """
    check_number(n_steps, "n_steps (T)", low=1, integer=True)
    check_number(n_classes, "n_classes", low=2, integer=True)
    check_number(sparsity_weight, "sparsity_weight (lambda)", low=0.0, low_inclusive=False)
    check_number(reconstruction_weight, "reconstruction_weight", low=0.0, low_inclusive=False)
    check_number(weight_decay, "weight_decay", low=0.0)
    for name, value in (("decoder_max_norm", decoder_max_norm), ("classifier_max_norm", classifier_max_norm),
                        ("classifier_lr_scale", classifier_lr_scale)):
        check_number(value, name, low=0.0, low_inclusive=False)
    if encoder_max_norm is None and n_steps > 1:
        encoder_max_norm = 1.25 / (n_steps - 1)
    constraints = [NormConstraint("decoder.weight_", dim=0, value=decoder_max_norm, mode="max"),
                   NormConstraint("head.weight", dim=1, value=classifier_max_norm, mode="max")]
    if encoder_max_norm is not None:
        check_number(encoder_max_norm, "encoder_max_norm", low=0.0, low_inclusive=False)
        constraints.append(NormConstraint("encoder.E", dim=1, value=encoder_max_norm, mode="max"))
    penalties = {"l1": L1Penalty(sparsity_weight)}
    if weight_decay > 0:
        names = ("encoder.E", "head.weight") + (("encoder.S",) if n_steps > 1 else ())
        penalties["weight_decay"] = WeightDecay(weight_decay, names=names)
    model = DrSAE(RecurrentReLUEncoder(n_features, n_components, n_steps),
                  LinearDecoder(n_components, n_features, bias=False),
                  GaussianLikelihood(variance=1.0 / reconstruction_weight),
                  LinearClassifierHead(n_components, n_classes, normalize_code=True),
                  penalties=penalties, constraints=constraints,
                  classification_weight=classification_weight)
    model.classifier_lr_scale = float(classifier_lr_scale)
    return model


@dataclass
class UnitAngles:
    """Angle (radians) between each encoder row E_i and decoder column D_i, and the paper's split:
    part-units (< ``part_below``, ISTA-like) and categorical-units (> ``categorical_above``)."""

    angles: np.ndarray
    part_below: float = 0.5
    categorical_above: float = 0.7

    @property
    def part_units(self) -> np.ndarray:
        return np.flatnonzero(self.angles < self.part_below)

    @property
    def categorical_units(self) -> np.ndarray:
        return np.flatnonzero(self.angles > self.categorical_above)

    def summary(self) -> dict[str, float]:
        return {"n_units": len(self.angles), "n_part_units": len(self.part_units),
                "n_categorical_units": len(self.categorical_units),
                "median_angle": float(np.median(self.angles))}


def encoder_decoder_angles(model: DrSAE, part_below: float = 0.5,
                           categorical_above: float = 0.7) -> UnitAngles:
    """arccos(E_i · D_i / (‖E_i‖‖D_i‖)) for every unit i (Rolfe & LeCun 2013, Fig. 3)."""
    with torch.no_grad():
        E = model.encoder.E.detach().double().cpu()
        D = model.decoder.weight.detach().double().cpu().t()
        cosine = (E * D).sum(1) / (E.norm(dim=1) * D.norm(dim=1)).clamp_min(1e-300)
        angles = torch.arccos(cosine.clamp(-1.0, 1.0)).numpy()
    return UnitAngles(angles, part_below, categorical_above)



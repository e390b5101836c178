"""Autoencoders with a classifier head trained together with the reconstruction.

Energy of a labelled batch: ``E = −log p(x | dec(z)) + Σ_k Ω_k + w · CE(head(z), y)``. With
``w = 0`` the model is an ordinary (unsupervised) autoencoder, which is how pre-training runs;
setting ``w > 0`` makes the trainer pass labels (``needs_targets``) for discriminative training.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..inference import map_rows
from ..nn.activations import upcast_half
from ..nn.likelihoods import Likelihood
from ..nn.penalties import ForwardPass, Penalty
from ..validation import as_float_array, check_number
from .base import Autoencoder, LossOutput


class SupervisedAutoencoder(Autoencoder):
    """An :class:`Autoencoder` plus ``head``: codes (batch, n_components) → logits (batch, n_classes).

    ``classification_weight`` w is a buffer (saved with the weights), changed with
    :meth:`set_classification_weight` between the unsupervised and discriminative phases.
    Logged terms add ``classification`` (mean cross-entropy) and ``error`` (fraction wrong).
    ``reconstruction_weight`` r scales the reconstruction in labelled training; r = 0 makes it a
    plain classifier (an MLP fine-tuned after pre-training): the loss is then ``w · CE`` plus the
    penalties (e.g. weight decay) and the decoder is not run. Unlabelled batches (pre-training)
    always use weight 1.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: Likelihood,
                 head: nn.Module, penalties: dict[str, Penalty] | None = None,
                 constraints: Sequence[Callable[[nn.Module], None]] = (),
                 classification_weight: float = 1.0, reconstruction_weight: float = 1.0,
                 corruption: nn.Module | None = None, code_noise: nn.Module | None = None) -> None:
        super().__init__(encoder, decoder, likelihood, penalties, constraints=(),
                         corruption=corruption, code_noise=code_noise)
        check_number(reconstruction_weight, "reconstruction_weight", low=0.0)
        self.reconstruction_weight = float(reconstruction_weight)
        if self.reconstruction_weight == 0:
            needing = [name for name, p in self.penalties.items() if p.uses_reconstruction]
            if needing:
                raise ConfigError(f"penalty {needing[0]!r} needs the reconstruction, which "
                                  "reconstruction_weight=0 does not compute: set it > 0")
        self.head = head
        self.constraints = list(constraints)
        self.register_buffer("classification_weight", torch.tensor(0.0))
        self.set_classification_weight(classification_weight)
        self.apply_constraints()

    training_procedure: ClassVar[str] = "supervised"
    #: The head is idle in unsupervised phases, the decoder when ``reconstruction_weight`` is 0
    #: (read by the trainer's DistributedDataParallel wrapper).
    may_leave_parameters_unused = True

    @property
    def n_classes(self) -> int:
        return self.head.n_classes

    @property
    def needs_targets(self) -> bool:
        """True when the loss has a classification term (the trainer must pass labels)."""
        return float(self.classification_weight) > 0

    def set_classification_weight(self, weight: float) -> None:
        check_number(weight, "classification_weight", low=0.0)
        self.classification_weight.fill_(float(weight))

    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (batch, n_classes) from the code of ``x``."""
        return self.head(self.encode(x))

    def loss(self, x: torch.Tensor, x_input: torch.Tensor | None = None, *,
             targets: torch.Tensor | None = None) -> LossOutput:
        """Reconstruction and penalties, plus ``w · CE(head(z), targets)`` when targets are given
        (``w · CE`` and the penalties, without the decoder, when ``reconstruction_weight`` is 0)."""
        if targets is None:
            return super().loss(x, x_input)
        if self.reconstruction_weight == 0:
            if x_input is None:
                x_input = self.corruption(x) if self.corruption is not None else x
            step = ForwardPass(x, x_input, self.encode(x_input), None, self)
            out = self.add_penalties(step, None, {})  # loss None when there is no penalty
        else:
            out = super().loss(x, x_input, reconstruction_weight=self.reconstruction_weight)
        logits = upcast_half(self.head(out.code))
        cross_entropy = F.cross_entropy(logits, targets)
        weighted = self.classification_weight * cross_entropy
        out.loss = weighted if out.loss is None else out.loss + weighted
        out.terms["classification"] = cross_entropy.detach()
        out.terms["error"] = (logits.detach().argmax(dim=1) != targets).float().mean()
        return out


def error_rate(model: SupervisedAutoencoder, X: Any, y: Any, batch_size: int = 1000) -> float:
    """Fraction of ``X`` (n_samples, n_features) the classifier head gets wrong."""
    X = as_float_array(X, "X", n_features=model.n_features)
    predicted = map_rows(model, X, lambda rows: model.predict_logits(rows).argmax(1), batch_size=batch_size,
                         out_dtype=None, numpy=False)
    return int((predicted != torch.as_tensor(np.asarray(y))).sum()) / X.shape[0]



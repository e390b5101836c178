"""Transcoders (Dunefsky, Chlenski & Nanda 2024): a sparse code of a layer's MLP input that
predicts the MLP's output.

``z = f(W_enc x + b_enc)`` from the MLP's input x (batch, n_features), ``ŷ = W_dec z + b_dec``
(batch, n_outputs) predicts the MLP's output y; loss ``½‖y − ŷ‖²`` (mean over the batch) plus the
sparsity term. ``f`` is ReLU with ``λ‖z‖₁`` (the paper's), or TopK / BatchTopK (the SAE encoder
of :mod:`.sae`, with AuxK against dead latents). Unlike an SAE the encoder does not subtract
``b_dec``: it lives in the output space. The decoder's columns keep unit norm (projected after
each step, the gradient made tangent first), so the L1 term cannot be cheated by scale.

Targets: ``train(model, X, y=Y)`` with Y (n_samples, n_outputs) (``target_kind`` ``"values"``;
the trainer refuses to train without them); a run reads them from paired shards
(``sparseae harvest --position mlp_in --target mlp_out``, :mod:`sparseae.data.harvest`).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError, DataError
from ..nn.activations import upcast_half
from ..nn.constraints import unit_norm_columns
from ..nn.decoders import LinearDecoder
from ..nn.encoders import LinearEncoder
from ..nn.likelihoods import GaussianLikelihood
from ..nn.penalties import AuxKPenalty, ForwardPass, L1Penalty, Penalty
from ..nn.sparse_encoders import TopKEncoder
from ..validation import check_choice, check_number
from .base import MODELS, Autoencoder, Energy
from .sae import _k_default

__all__ = ["ACTIVATIONS", "Transcoder", "transcoder"]

#: The transcoder's latent non-linearities: ReLU (+ L1), per-sample TopK, BatchTopK.
ACTIVATIONS = ("relu", "topk", "batch_topk")


class Transcoder(Autoencoder):
    """An :class:`Autoencoder` whose decoder predicts a target y (batch, n_outputs) from the code
    of its input x (batch, n_features), instead of reconstructing x.

    ``model(x)`` and ``decode(encode(x))`` return ŷ (batch, n_outputs). Loss terms (means over the
    batch): ``reconstruction`` ½‖y − ŷ‖² (the prediction's error; the name every model's loss
    logs), then each penalty (``l1`` or ``aux_k``). The penalties see ``ForwardPass(x=y,
    x_input=x)``: AuxK fits the prediction's residual. Without ``targets`` (a shape test, a
    gradient check of the generic kind) the target is x itself, which needs n_outputs =
    n_features; the trainer never does that: ``needs_targets`` is true.
    """

    #: The trainer's ``y`` for this model: the target rows (n_samples, n_outputs), e.g. an MLP's outputs.
    target_kind = "values"

    @property
    def needs_targets(self) -> bool:
        """Always: a transcoder learns to predict its target rows."""
        return True

    @property
    def n_features(self) -> int:
        """Inputs per sample: the width of the MLP's input x (the encoder's)."""
        return self.encoder.n_features

    @property
    def n_outputs(self) -> int:
        """Outputs per sample: the width of the predicted target y (the decoder's)."""
        return self.decoder.n_features

    def energy(self, x: torch.Tensor, x_input: torch.Tensor | None = None, *,
               targets: torch.Tensor | None = None, reconstruction_weight: float = 1.0) -> Energy:
        """½‖y − ŷ‖² with y = ``targets`` (batch, n_outputs) and ŷ decoded from the code of x
        (batch, n_features); × ``reconstruction_weight`` in the total (logged unweighted)."""
        if targets is None:
            if self.n_outputs != self.n_features:
                raise DataError(f"a transcoder from {self.n_features} to {self.n_outputs} features needs its "
                                "targets: loss(x, targets=y) with y of shape (batch, n_outputs)")
            targets = x
        elif tuple(targets.shape) != (x.shape[0], self.n_outputs):
            raise DataError(f"targets must be the predicted rows, shape (batch, n_outputs) = "
                            f"{(x.shape[0], self.n_outputs)}, got {tuple(targets.shape)}")
        x_input = x if x_input is None else x_input
        code = self.encode(x_input)
        eta = self.decoder(code)
        targets = targets.to(eta.dtype)
        reconstruction = self.likelihood.nll(upcast_half(eta), targets).mean()
        total = reconstruction if reconstruction_weight == 1 else reconstruction_weight * reconstruction
        step = ForwardPass(x=targets, x_input=x_input, code=code, eta=eta, model=self)
        return Energy(step, total, {"reconstruction": reconstruction.detach()})


@MODELS.register("transcoder")
def transcoder(n_features: int, n_components: int, *, n_outputs: int | None = None, activation: str = "relu",
               l1_weight: float | None = None, k: int | None = None, aux_weight: float = 1.0 / 32,
               k_aux: int | None = None, dead_after: int = 1_000_000) -> Transcoder:
    """Transcoder (Dunefsky, Chlenski & Nanda 2024): z = f(W_enc x + b_enc) from the MLP's input x
    (n_features), ŷ = W_dec z + b_dec predicts its output y (``n_outputs``, default n_features);
    loss ½‖y − ŷ‖² plus sparsity. ``activation``: ``relu`` with λ‖z‖₁ (λ = ``l1_weight``, default
    1e-2; unit-norm decoder columns), ``topk`` (k per sample, default min(32, n_components/4)) or ``batch_topk``
    (k·batch per batch, a learned threshold at inference), both with α·AuxK (``aux_weight``,
    ``k_aux``, ``dead_after`` as for ``topk_sae``). Trains on (x, y) pairs: ``train(model, X, y=Y)``,
    or harvested pairs (``sparseae harvest --position mlp_in --target mlp_out``)."""
    check_number(n_features, "n_features", low=1, integer=True)
    check_number(n_components, "n_components", low=1, integer=True)
    n_outputs = n_features if n_outputs is None else n_outputs
    check_number(n_outputs, "n_outputs", low=1, integer=True)
    check_choice(activation, "activation", ACTIVATIONS)
    check_number(aux_weight, "aux_weight", low=0.0)
    penalties: dict[str, Penalty] = {}
    if activation == "relu":
        if k is not None:
            raise ConfigError("k applies to activation topk or batch_topk, not relu (whose sparsity is l1_weight)")
        l1_weight = 1e-2 if l1_weight is None else l1_weight
        check_number(l1_weight, "l1_weight", low=0.0)
        encoder = LinearEncoder(n_features, n_components, activation="relu")
        if l1_weight > 0:
            penalties["l1"] = L1Penalty(l1_weight, nonnegative=True)
    else:
        if l1_weight is not None:
            raise ConfigError(f"l1_weight applies to activation relu; a {activation} transcoder's sparsity is k")
        k = _k_default(k, n_components)
        encoder = TopKEncoder(n_features, n_components, k, batch_topk=activation == "batch_topk")
        if aux_weight > 0:
            k_aux = min(2 * k if k_aux is None else k_aux, n_components)
            penalties["aux_k"] = AuxKPenalty(aux_weight, n_components, k_aux=k_aux, dead_after=dead_after)
    decoder = LinearDecoder(n_components, int(n_outputs))
    with torch.no_grad():
        decoder.weight_.div_(decoder.weight_.norm(dim=0, keepdim=True).clamp_min(1e-12))
    constraints = [unit_norm_columns("decoder.weight_", tangent_gradient=True)]
    return Transcoder(encoder, decoder, GaussianLikelihood(), penalties, constraints)

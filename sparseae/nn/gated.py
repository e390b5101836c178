"""The Gated SAE's encoder and its two training terms (Rajamanoharan et al. 2024).

One matrix W (n_components, n_features) serves two paths on ``u = x − b_pre``:

* gate: ``π_gate = W u + b_gate``; a latent is open where ``π_gate > 0`` (a Heaviside step, no
  gradient: the gate path is trained by the two terms below);
* magnitude: ``π_mag = exp(r_mag) ⊙ (W u) + b_mag``; ``z = H(π_gate) ⊙ ReLU(π_mag)``.

Training adds (both means over the batch):

* :class:`GatedL1Penalty`: λ Σ_j ReLU(π_gate)_j · ‖d_j‖, the sparsity term on the gate;
* :class:`GatedAuxiliaryLoss`: ½‖x − (W_dec ReLU(π_gate) + b_dec)‖² through a frozen copy of the
  decoder (no gradient to it), so the gate's pre-activations learn to reconstruct by themselves.
"""
from __future__ import annotations

import torch
from torch import nn

from .activations import upcast_half
from .penalties import ForwardPass, Penalty
from .sparse_encoders import _SAEEncoder


class GatedEncoder(_SAEEncoder):
    """``z = H(π_gate) ⊙ ReLU(exp(r_mag) ⊙ W(x − b_pre) + b_mag)``, ``π_gate = W(x − b_pre) + b_gate``;
    ``bias`` is b_gate; ``r_mag``, ``b_mag``: (n_components,), initialised to 0. Codes (batch,
    n_components). ``last_preactivation`` holds π_gate of the last training batch."""

    #: Values a resampled latent's own parameters are reset to (besides its weight row and bias).
    latent_reset_values = {"r_mag": 0.0, "b_mag": 0.0}

    def __init__(self, n_features: int, n_components: int) -> None:
        super().__init__(n_features, n_components)
        self.r_mag = nn.Parameter(torch.zeros(n_components))
        self.b_mag = nn.Parameter(torch.zeros(n_components))

    def magnitude(self, gate_pre: torch.Tensor) -> torch.Tensor:
        """π_mag from π_gate (batch, n_components): exp(r_mag)(π_gate − b_gate) + b_mag."""
        dtype = gate_pre.dtype
        return self.r_mag.exp().to(dtype) * (gate_pre - self.bias.to(dtype)) + self.b_mag.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_pre = self.preactivation(x)
        return (gate_pre > 0).to(gate_pre.dtype) * torch.relu(self.magnitude(gate_pre))

    def gate_preactivation(self, x_input: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """π_gate of the batch whose code is ``code``: the one kept in training, else computed."""
        a = self.last_preactivation
        if a is None or a.shape != code.shape:
            a = self.preactivation(x_input)
        return a

    def extra_repr(self) -> str:
        return f"{self.n_features} -> {self.n_components}, gated"


class GatedL1Penalty(Penalty):
    """λ · mean_batch Σ_j ReLU(π_gate)_j ‖d_j‖ (d_j: decoder column j), on a :class:`GatedEncoder`."""

    def forward(self, step: ForwardPass) -> torch.Tensor:
        encoder = step.model.encoder
        gate = torch.relu(upcast_half(encoder.gate_preactivation(step.x_input, step.code)))
        norms = step.model.decoder.weight.norm(dim=0).to(gate.dtype)
        return self.weight * (gate * norms).sum(dim=1).mean()


class GatedAuxiliaryLoss(Penalty):
    """weight · mean_batch −log p(x | W̃ ReLU(π_gate) + b̃) (½‖x − x̂_gate‖² for the Gaussian
    likelihood): the gate path's own reconstruction through a frozen copy (W̃, b̃) of the decoder,
    buffers (n_features, n_components) and (n_features,) that :meth:`constraint` copies from the
    decoder after every optimizer step. The term thus trains the encoder only, and its value
    does not depend on the decoder's parameters, so a finite-difference check verifies it too."""

    def __init__(self, weight: float, n_features: int, n_components: int) -> None:
        super().__init__(weight)
        self.register_buffer("frozen_weight", torch.zeros(n_features, n_components))
        self.register_buffer("frozen_bias", torch.zeros(n_features))

    def forward(self, step: ForwardPass) -> torch.Tensor:
        model = step.model
        gate = torch.relu(upcast_half(model.encoder.gate_preactivation(step.x_input, step.code)))
        eta = nn.functional.linear(gate, self.frozen_weight.to(gate.dtype), self.frozen_bias.to(gate.dtype))
        return self.weight * model.likelihood.nll(eta, step.x).mean()

    def constraint(self):
        """After each optimizer step (and the decoder's own projection): copy the decoder."""
        def copy_decoder(model: nn.Module) -> None:
            with torch.no_grad():
                self.frozen_weight.copy_(model.decoder.weight)
                if model.decoder.bias is not None:
                    self.frozen_bias.copy_(model.decoder.bias)
        return copy_decoder


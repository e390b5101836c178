"""Amortized sparse coding: encoders that predict sparse codes, and the fixed dictionary they decode with.

* :class:`ShrinkageEncoder` — LISTA (Gregor & LeCun 2010): a recurrent network of ``n_steps`` shrinkage
  steps; with ``n_steps = 0`` it is the one-layer shrinkage encoder ``h_θ(Wx + b)`` of PSD.
* :class:`ScaledTanhEncoder` — PSD's predictor ``F(x) = G·tanh(Wx + b)`` (Kavukcuoglu, Ranzato & LeCun 2008).
* :class:`FixedDictionaryDecoder` — ``η = Dz`` with ``D`` a buffer: LISTA imitates inference on a given
  dictionary, so the dictionary is data of the model, not a trained parameter.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..coding.prox import nonnegative_soft_threshold, soft_threshold
from ..validation import check_number
from .encoders import LinearEncoder, uniform_init_bound

__all__ = ["ShrinkageEncoder", "ScaledTanhEncoder", "FixedDictionaryDecoder", "nonnegative_thresholds"]


class ShrinkageEncoder(nn.Module):
    """LISTA: ``b = Wx (+ c)``, ``z⁰ = h_θ(b)``, ``z^{k+1} = h_θ(b + S z^k)`` for ``k < n_steps``; returns
    ``z^T`` (batch, n_components), ``T = n_steps``.

    ``weight`` W: (n_components, n_features); ``S``: (n_components, n_components), present when
    ``n_steps ≥ 1``; ``threshold`` θ: (n_components,), one per unit, kept ≥ 0 by the
    :func:`nonnegative_thresholds` constraint; ``bias`` c: (n_components,) when ``bias=True``.
    ``h_θ`` is the soft threshold ``sign(v)·max(|v| − θ, 0)``, or ``max(v − θ, 0)`` when ``nonnegative``.
    :meth:`init_from_dictionary` makes the network compute ``n_steps + 1`` ISTA iterations from zero.
    """

    code_range = None  # codes are unbounded

    def __init__(self, n_features: int, n_components: int, n_steps: int = 1, *,
                 nonnegative: bool = False, bias: bool = False, threshold: float = 0.0) -> None:
        super().__init__()
        check_number(n_steps, "n_steps", low=0, integer=True)
        check_number(threshold, "threshold", low=0.0)
        self.n_features, self.n_components, self.n_steps = n_features, n_components, n_steps
        self.nonnegative, self.initial_threshold = bool(nonnegative), float(threshold)
        self.weight = nn.Parameter(torch.empty(n_components, n_features))
        self.S = nn.Parameter(torch.empty(n_components, n_components)) if n_steps > 0 else None
        self.threshold = nn.Parameter(torch.empty(n_components))
        self.bias = nn.Parameter(torch.empty(n_components)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = uniform_init_bound(self.n_features, self.n_components)
        nn.init.uniform_(self.weight, -r, r)
        if self.S is not None:
            nn.init.zeros_(self.S)
        nn.init.constant_(self.threshold, self.initial_threshold)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @torch.no_grad()
    def init_from_dictionary(self, D: torch.Tensor, lipschitz: float, lam: float) -> None:
        """``W = Dᵀ/L``, ``S = I − DᵀD/L``, ``θ = λ/L``, ``c = 0``, for D (n_features, n_components):
        then ``z^T`` is ISTA's iterate ``T + 1`` from ``z = 0`` with step ``1/L`` on
        ``½‖x − Dz‖² + λ‖z‖₁``."""
        D = D.to(device=self.weight.device, dtype=self.weight.dtype)
        self.weight.copy_(D.t() / lipschitz)
        if self.S is not None:
            self.S.copy_(torch.eye(self.n_components, dtype=D.dtype, device=D.device) - D.t() @ D / lipschitz)
        self.threshold.fill_(lam / lipschitz)
        if self.bias is not None:
            self.bias.zero_()

    def shrink(self, v: torch.Tensor) -> torch.Tensor:
        """``h_θ(v)`` for v (batch, n_components)."""
        if self.nonnegative:
            return nonnegative_soft_threshold(v, self.threshold)
        return soft_threshold(v, self.threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drive = F.linear(x, self.weight, self.bias)  # (batch, n_components), the same at every step
        z = self.shrink(drive)
        for _ in range(self.n_steps):
            z = self.shrink(drive + F.linear(z, self.S))
        return z

    def extra_repr(self) -> str:
        return (f"{self.n_features} -> {self.n_components}, n_steps={self.n_steps}, "
                f"nonnegative={self.nonnegative}, bias={self.bias is not None}")


def nonnegative_thresholds(model: nn.Module) -> None:
    """Constraint: clamp ``model.encoder.threshold`` at 0 (a negative θ would not shrink)."""
    model.encoder.threshold.clamp_(min=0.0)


class ScaledTanhEncoder(nn.Module):
    """``F(x) = G ⊙ tanh(Wx + b)``: a tanh :class:`~sparseae.nn.encoders.LinearEncoder` (``linear``, W
    (n_components, n_features), b (n_components,)) times a learned gain ``gain`` G (n_components,), the
    diagonal of PSD's gain matrix (initialized to 1)."""

    code_range = None  # G scales tanh's (−1, 1)

    def __init__(self, n_features: int, n_components: int) -> None:
        super().__init__()
        self.n_features, self.n_components = n_features, n_components
        self.linear = LinearEncoder(n_features, n_components, activation="tanh")
        self.gain = nn.Parameter(torch.ones(n_components))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * self.linear(x)


class FixedDictionaryDecoder(nn.Module):
    """``η = z Dᵀ`` with the dictionary ``weight`` D (n_features, n_components) a buffer: saved with the
    model, moved by ``.to()``, never trained. Initialized with random unit-norm atoms."""

    def __init__(self, n_components: int, n_features: int) -> None:
        super().__init__()
        self.n_components, self.n_features = n_components, n_features
        D = torch.randn(n_features, n_components)
        self.register_buffer("weight", D / D.norm(dim=0, keepdim=True).clamp_min(1e-12))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.linear(z, self.weight)

    def extra_repr(self) -> str:
        return f"{self.n_components} -> {self.n_features}, fixed"

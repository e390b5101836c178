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
from ..errors import ConfigError
from ..validation import check_number
from .encoders import LinearEncoder, uniform_init_bound

__all__ = ["ShrinkageEncoder", "ScaledTanhEncoder", "FixedDictionaryDecoder", "nonnegative_thresholds"]


class ShrinkageEncoder(nn.Module):
    """LISTA: ``b = Wx (+ c)``, ``z⁰ = h_θ(b)``, ``z^{k+1} = h_θ(b + S z^k)`` for ``k < n_steps``; returns
    ``z^T`` (batch, n_components), ``T = n_steps``.

    ``weight`` W: (n_components, n_features); ``S``: (n_components, n_components), present when
    ``n_steps ≥ 1``, or (n_steps, n_components, n_components) when ``untied`` (``S_k`` for step k, as
    "untied" LISTA); ``threshold`` θ: (n_components,), one per unit, or (n_steps + 1, n_components) when
    ``layer_thresholds`` (θ_k for the shrinkage of z^k), kept ≥ 0 by the :func:`nonnegative_thresholds`
    constraint; ``bias`` c: (n_components,) when ``bias=True``. Shared weights (both False) are Gregor &
    LeCun's LISTA.
    ``h_θ`` is the soft threshold ``sign(v)·max(|v| − θ, 0)``, or ``max(v − θ, 0)`` when ``nonnegative``.
    :meth:`init_from_dictionary` makes the network compute ``n_steps + 1`` ISTA iterations from zero.
    """

    code_range = None  # codes are unbounded

    def __init__(self, n_features: int, n_components: int, n_steps: int = 1, *,
                 nonnegative: bool = False, bias: bool = False, threshold: float = 0.0,
                 untied: bool = False, layer_thresholds: bool = False) -> None:
        super().__init__()
        check_number(n_steps, "n_steps", low=0, integer=True)
        check_number(threshold, "threshold", low=0.0)
        self.n_features, self.n_components, self.n_steps = n_features, n_components, n_steps
        self.nonnegative, self.initial_threshold = bool(nonnegative), float(threshold)
        self.untied, self.layer_thresholds = bool(untied), bool(layer_thresholds)
        self.weight = nn.Parameter(torch.empty(n_components, n_features))
        s_shape = (n_steps, n_components, n_components) if self.untied else (n_components, n_components)
        self.S = nn.Parameter(torch.empty(s_shape)) if n_steps > 0 else None
        self.threshold = nn.Parameter(torch.empty((n_steps + 1, n_components) if self.layer_thresholds
                                                  else (n_components,)))
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

    @torch.no_grad()
    def warm_start_from(self, shallower: ShrinkageEncoder, repeat: int | None = None, *,
                        identity: bool = False) -> None:
        """Copy a trained encoder with ``n_steps`` ≤ this one's and the same options: W, c and the
        shared S, θ as they are; untied S_k and per-layer θ_k in order, with step ``repeat`` (0-based,
        S_repeat and θ_{repeat+1}; None: the last) applied again for each added step right after itself.
        With the last repeated, this network first computes the shallower one's code.
        ``identity`` (untied S only): the added steps come first, each with S_k = 0 and θ_{k+1} = θ_0, so
        each recomputes z⁰ = h_θ₀(b) and this network computes exactly the shallower one's code."""
        if (shallower.n_steps > self.n_steps or shallower.untied != self.untied
                or shallower.layer_thresholds != self.layer_thresholds
                or (shallower.weight.shape, shallower.bias is None) != (self.weight.shape, self.bias is None)):
            raise ConfigError(f"cannot warm-start {self.extra_repr()} from {shallower.extra_repr()}")
        if identity and (repeat is not None or not self.untied):
            raise ConfigError("an identity warm start needs untied steps (untied=True) and no repeat")
        j = shallower.n_steps - 1 if repeat is None else repeat
        if shallower.n_steps and not 0 <= j < shallower.n_steps:
            raise ConfigError(f"repeat must be a step of the shallower encoder, 0…{shallower.n_steps - 1}, "
                              f"got {repeat}")
        self.weight.copy_(shallower.weight)
        if self.bias is not None:
            self.bias.copy_(shallower.bias)
        added = self.n_steps - shallower.n_steps
        for name, steps, offset in (("S", self.untied, 0), ("threshold", self.layer_thresholds, 1)):
            mine, theirs = getattr(self, name), getattr(shallower, name)
            if mine is None:
                continue  # a 0-step encoder has no S
            if not steps:
                mine.copy_(theirs)
                continue
            if identity and name == "S":  # zeros, then the trained S_k
                mine.copy_(torch.cat([torch.zeros_like(mine[:added])] + ([theirs] if theirs is not None else [])))
                continue
            if identity:  # θ_0 for z⁰ and for each added step, then θ_1…
                mine.copy_(torch.cat([theirs[:1].expand(added + 1, *theirs.shape[1:]), theirs[1:]]))
                continue
            if theirs is None:
                continue
            k = min(j + offset, theirs.shape[0] - 1)  # the repeated step's S_j / θ_{j+1}
            mine.copy_(torch.cat([theirs[:k + 1], theirs[k:k + 1].expand(added, *theirs.shape[1:]), theirs[k + 1:]]))

    def shrink(self, v: torch.Tensor, step: int = 0) -> torch.Tensor:
        """``h_θ(v)`` for v (batch, n_components), with θ_step when ``layer_thresholds``."""
        theta = self.threshold[step] if self.layer_thresholds else self.threshold
        if self.nonnegative:
            return nonnegative_soft_threshold(v, theta)
        return soft_threshold(v, theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drive = F.linear(x, self.weight, self.bias)  # (batch, n_components), the same at every step
        z = self.shrink(drive)
        for k in range(self.n_steps):
            z = self.shrink(drive + F.linear(z, self.S[k] if self.untied else self.S), k + 1)
        return z

    def extra_repr(self) -> str:
        return (f"{self.n_features} -> {self.n_components}, n_steps={self.n_steps}, "
                f"nonnegative={self.nonnegative}, bias={self.bias is not None}, untied={self.untied}, "
                f"layer_thresholds={self.layer_thresholds}")


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

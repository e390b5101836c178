"""Encoders: maps from inputs ``x`` (batch, n_features) to codes ``z`` (batch, n_components)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .activations import ACTIVATION_RANGE, get_activation


def uniform_init_bound(n_in: int, n_out: int) -> float:
    """UFLDL's range r = √6 / √(n_in + n_out + 1) for U[−r, r] weights (Glorot-style)."""
    return math.sqrt(6.0) / math.sqrt(n_in + n_out + 1)


class LinearEncoder(nn.Module):
    """``z = act(x Wᵀ + b)`` with ``W``: (n_components, n_features).

    ``activation`` is one of ``identity``, ``sigmoid``, ``tanh``, ``relu``.
    """

    def __init__(self, n_features: int, n_components: int, activation: str = "sigmoid",
                 bias: bool = True) -> None:
        super().__init__()
        self.n_features, self.n_components = n_features, n_components
        self.activation = activation
        self._act = get_activation(activation)
        self.weight = nn.Parameter(torch.empty(n_components, n_features))
        self.bias = nn.Parameter(torch.zeros(n_components)) if bias else None
        self.reset_parameters()

    @property
    def code_range(self) -> tuple[float, float] | None:
        """Interval of the code values, e.g. (0, 1) for sigmoid; None when unbounded."""
        return ACTIVATION_RANGE[self.activation]

    def reset_parameters(self) -> None:
        r = uniform_init_bound(self.n_features, self.n_components)
        nn.init.uniform_(self.weight, -r, r)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """``x Wᵀ + b``: (batch, n_components)."""
        return nn.functional.linear(x, self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._act(self.preactivation(x))

    def extra_repr(self) -> str:
        return f"{self.n_features} -> {self.n_components}, activation={self.activation}"


class RecurrentReLUEncoder(nn.Module):
    """DrSAE's encoder (Rolfe & LeCun 2013): ``z⁰ = 0``, ``zᵗ⁺¹ = max(0, E x + (I + S) zᵗ − b)``
    for ``n_steps`` = T steps; returns z^T (batch, n_components).

    E: (n_components, n_features), S: (n_components, n_components), b: (n_components,).
    The identity is kept implicitly (the authors' parametrization), so with ``E = αDᵀ``,
    ``S = −αDᵀD`` and ``b = αλ`` each step is one step of non-negative ISTA with step size α
    (:meth:`init_from_dictionary`).
    """

    def __init__(self, n_features: int, n_components: int, n_steps: int = 11) -> None:
        super().__init__()
        self.n_features, self.n_components, self.n_steps = n_features, n_components, n_steps
        self.E = nn.Parameter(torch.empty(n_components, n_features))
        self.S = nn.Parameter(torch.zeros(n_components, n_components))
        self.b = nn.Parameter(torch.zeros(n_components))
        self.reset_parameters()

    #: Codes are non-negative but unbounded (as ReLU's).
    code_range = None

    def reset_parameters(self) -> None:
        r = uniform_init_bound(self.n_features, self.n_components)
        nn.init.uniform_(self.E, -r, r)
        nn.init.zeros_(self.S)
        nn.init.zeros_(self.b)

    @torch.no_grad()
    def init_from_dictionary(self, D: torch.Tensor, step: float, threshold: float) -> None:
        """``E = step·Dᵀ``, ``S = −step·DᵀD``, ``b = threshold``; D: (n_features, n_components)."""
        self.E.copy_(step * D.t())
        self.S.copy_(-step * (D.t() @ D))
        self.b.fill_(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drive = nn.functional.linear(x, self.E) - self.b
        z = torch.relu(drive)
        for _ in range(self.n_steps - 1):
            z = torch.relu(drive + z + nn.functional.linear(z, self.S))
        return z

    def extra_repr(self) -> str:
        return f"{self.n_features} -> {self.n_components}, n_steps={self.n_steps}"

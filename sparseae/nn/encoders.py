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

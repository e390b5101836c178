"""Decoders: affine maps from codes ``z`` (batch, n_components) to the output's natural parameter.

The output non-linearity (identity, sigmoid, softmax) belongs to the likelihood, not to the
decoder: a "sigmoid decoder" is a linear decoder followed by a likelihood with a sigmoid mean.
"""
from __future__ import annotations

import torch
from torch import nn

from .encoders import LinearEncoder, uniform_init_bound


class LinearDecoder(nn.Module):
    """``η = z Wᵀ + c`` with ``W``: (n_features, n_components); its columns are the dictionary atoms.

    With ``tied_to`` an encoder, ``W`` is that encoder's weight transposed (no own weight).
    """

    def __init__(self, n_components: int, n_features: int, bias: bool = True,
                 tied_to: LinearEncoder | None = None) -> None:
        super().__init__()
        self.n_components, self.n_features = n_components, n_features
        self.tied = tied_to is not None
        # Keep the tied encoder out of this module's children so it is saved once.
        self._tied_encoder = [tied_to] if tied_to is not None else []
        if self.tied:
            self.register_parameter("weight_", None)
        else:
            self.weight_ = nn.Parameter(torch.empty(n_features, n_components))
        self.bias = nn.Parameter(torch.zeros(n_features)) if bias else None
        self.reset_parameters()

    @property
    def weight(self) -> torch.Tensor:
        """(n_features, n_components): column j is atom j."""
        return self._tied_encoder[0].weight.t() if self.tied else self.weight_

    def reset_parameters(self) -> None:
        if not self.tied:
            r = uniform_init_bound(self.n_features, self.n_components)
            nn.init.uniform_(self.weight_, -r, r)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(z, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.n_components} -> {self.n_features}, tied={self.tied}"

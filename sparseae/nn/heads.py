"""Classifier heads: linear maps from codes (batch, n_components) to class scores (batch, n_classes)."""
from __future__ import annotations

import torch
from torch import nn


class LinearClassifierHead(nn.Module):
    """``logits = C · ẑ + c`` with ``ẑ = z/‖z‖`` when ``normalize_code`` (DrSAE's classifier sees
    the L2-normalized code), else ``ẑ = z``. C: (n_classes, n_components)."""

    def __init__(self, n_components: int, n_classes: int, normalize_code: bool = True,
                 eps: float = 1e-8) -> None:
        super().__init__()
        self.n_components, self.n_classes = n_components, n_classes
        self.normalize_code, self.eps = normalize_code, eps
        self.weight = nn.Parameter(torch.zeros(n_classes, n_components))
        self.bias = nn.Parameter(torch.zeros(n_classes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.normalize_code:
            z = z / z.norm(dim=1, keepdim=True).clamp_min(self.eps)
        return nn.functional.linear(z, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.n_components} -> {self.n_classes}, normalize_code={self.normalize_code}"

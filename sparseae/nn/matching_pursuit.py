"""The matching-pursuit SAE's encoder: greedy pursuit with the decoder's own atoms."""
from __future__ import annotations

import torch
from torch import nn

from ..validation import check_number


class MatchingPursuitEncoder(nn.Module):
    """Codes by ``k`` steps of non-negative matching pursuit with the bound decoder's atoms d_j
    (unit norm), on the residual r₀ = x − b_dec: at each step j* = argmax_j ReLU(⟨r, d_j⟩),
    z_j* += ReLU(⟨r, d_j*⟩), r −= ReLU(⟨r, d_j*⟩)·d_j* (an atom may be chosen again). No weights
    of its own; the choice of atom has no gradient, the values have. Codes (batch, n_components).
    The same steps as SAELens's ``matching_pursuit`` SAE with ``max_iterations = k``, no residual
    threshold and no stop on a repeated support."""

    def __init__(self, n_features: int, n_components: int, k: int) -> None:
        super().__init__()
        check_number(k, "k", low=1, integer=True)
        self.n_features, self.n_components, self.k = n_features, n_components, int(k)
        self._decoder: list[nn.Module] = []  # a list keeps the decoder out of this module's children

    def bind_decoder(self, decoder: nn.Module) -> None:
        """Use ``decoder``'s atoms (columns of its weight) and bias."""
        self._decoder = [decoder]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        decoder = self._decoder[0]
        atoms = decoder.weight.t().to(x.dtype)  # (n_components, n_features)
        residual = x if decoder.bias is None else x - decoder.bias.to(x.dtype)
        z = torch.zeros(x.shape[0], self.n_components, dtype=x.dtype, device=x.device)
        for _ in range(self.k):
            with torch.no_grad():
                chosen = (residual @ atoms.t()).argmax(dim=1)
            selected = atoms[chosen]  # (batch, n_features)
            values = torch.relu((residual * selected).sum(dim=1, keepdim=True))
            z = z.scatter_add(1, chosen[:, None], values)
            residual = residual - values * selected
        return z

    def extra_repr(self) -> str:
        return f"{self.n_features} -> {self.n_components}, k={self.k} matching-pursuit steps"

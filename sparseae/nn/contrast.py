"""Local contrast normalization of images and feature maps (Jarrett, Kavukcuoglu, Ranzato & LeCun
2009, "What is the best multi-stage architecture for object recognition?"):

    v = x − Σ_{c,p,q} w_pq x_c[· + p, · + q]            (subtractive: remove the local mean)
    σ = √(Σ_{c,p,q} w_pq v_c[· + p, · + q]²)             (the local standard deviation)
    y = v / max(mean(σ), σ)                              (divisive; mean over the image's positions)

w a Gaussian window of std ``sigma`` summing to 1 over channels and positions; near the border the
window is renormalized over the pixels inside the image. It whitens images locally, so a sparse
convolutional layer does not spend its maps on the ink's mean and brightness.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..inference import map_rows
from ..validation import as_float_array, check_number
from .convolutional import image_geometry


class LocalContrastNorm(nn.Module):
    """``(batch, C, H, W)`` → the same shape, locally zero-mean and of unit local contrast.
    ``eps``: a floor of the divisor, so a flat image (no contrast) stays ≈ 0."""

    def __init__(self, sigma: float = 2.0, eps: float = 1e-4) -> None:
        super().__init__()
        check_number(sigma, "sigma", low=0.0, low_inclusive=False)
        self.sigma, self.eps = float(sigma), float(eps)
        radius = math.ceil(2 * self.sigma)
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        window = torch.exp(-offsets ** 2 / (2 * self.sigma ** 2))
        self.register_buffer("window", torch.outer(window, window)[None, None], persistent=False)

    def _local_mean(self, maps: torch.Tensor) -> torch.Tensor:
        """Σ_c w ∗ maps_c / (C · w ∗ 1): (batch, 1, H, W)."""
        window = self.window.to(maps.dtype)
        padding = window.shape[-1] // 2
        summed = F.conv2d(maps.sum(dim=1, keepdim=True), window, padding=padding)
        coverage = F.conv2d(torch.ones_like(maps[:1, :1]), window, padding=padding)
        return summed / (coverage * maps.shape[1])

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        centred = maps - self._local_mean(maps)
        sigma = self._local_mean(centred.pow(2)).clamp_min(0).sqrt()
        floor = sigma.mean(dim=(2, 3), keepdim=True)
        return centred / torch.maximum(sigma, floor).clamp_min(self.eps)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}"


def local_contrast_normalize(X: Any, image_shape: Sequence[int] | None = None, *, sigma: float = 2.0,
                             batch_size: int = 1024) -> np.ndarray:
    """:class:`LocalContrastNorm` of flattened images ``X`` ``(n_samples, C·H·W)`` (channel-first;
    ``image_shape`` as for ``conv_sae``) → float32 ``(n_samples, C·H·W)``."""
    X = as_float_array(X, "X")
    shape = image_geometry(image_shape, X.shape[1])
    norm = LocalContrastNorm(sigma)
    return map_rows(norm, X, lambda rows: norm(rows.reshape(-1, *shape)).flatten(1), batch_size=batch_size)

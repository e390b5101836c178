"""L2 pooling over groups of feature maps ("complex cells") and its group-sparsity penalty.

At every location (h, w) the maps are pooled by a :class:`~sparseae.groups.GroupStructure` over
the map index (disjoint pools, or 1-D / 2-D windows — ``grid_groups(1, M, window=(1, K))`` or
``grid_groups(r, c, window=K)`` with r·c = M maps):

    p[n, g, h, w] = √(Σ_{m ∈ g} w_gm z[n, m, h, w]² + ε)

computed as one 1×1 convolution of z² with the structure's membership matrix
(:meth:`~sparseae.groups.GroupStructure.membership_matrix`): no loop over groups or locations
(on a CPU twice as fast as the same product written as an einsum).
Spatial max/average pooling of the result gives the features a next layer sees.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import DataError
from ..groups import GroupStructure
from ..validation import check_choice, check_number
from .activations import upcast_half
from .penalties import ForwardPass, Penalty

SPATIAL_POOLING = ("none", "max", "avg")


class MapPooling(nn.Module):
    """L2 pooling of feature maps over ``groups`` (a structure over the M maps) at each location:
    maps ``(batch, M, H, W)`` → pooled ``(batch, G, H, W)``. ``eps`` keeps the gradient finite
    where a whole pool is zero. No parameters."""

    def __init__(self, groups: GroupStructure, eps: float = 1e-8) -> None:
        super().__init__()
        check_number(eps, "group eps", low=0.0)
        self.groups, self.eps = groups, float(eps)
        self._kernels: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def n_maps(self) -> int:
        return self.groups.n_components

    @property
    def n_pools(self) -> int:
        return self.groups.n_groups

    def kernel(self, like: torch.Tensor) -> torch.Tensor:
        """The membership matrix transposed, as a contiguous 1×1 convolution kernel ``(G, M, 1, 1)``
        on ``like``'s device and dtype (cached)."""
        key = (like.device, like.dtype)
        if key not in self._kernels:
            membership = self.groups.membership_matrix(like.device, like.dtype)  # (M, G)
            self._kernels[key] = membership.t().contiguous()[:, :, None, None]
        return self._kernels[key]

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        if maps.ndim != 4 or maps.shape[1] != self.n_maps:
            raise DataError(f"L2 pooling over {self.n_maps} maps needs (batch, {self.n_maps}, H, W), "
                            f"got {tuple(maps.shape)}")
        return (F.conv2d(maps.pow(2), self.kernel(maps)) + self.eps).sqrt()

    def extra_repr(self) -> str:
        return f"{self.groups.kind} pools: {self.n_maps} maps -> {self.n_pools}, eps={self.eps:g}"


def spatial_pool(features: torch.Tensor, mode: str = "max", size: int = 2, stride: int | None = None,
                 ) -> torch.Tensor:
    """Max or average over ``size``×``size`` neighbourhoods every ``stride`` (default ``size``)
    positions, windows that overhang the border included (ceil mode): ``(batch, G, H, W)`` →
    ``(batch, G, ⌈(H − size)/stride⌉ + 1, …)``. ``mode="none"`` returns the input."""
    check_choice(mode, "spatial_pool", SPATIAL_POOLING)
    if mode == "none":
        return features
    check_number(size, "pool_size", low=1, integer=True)
    stride = size if stride is None else stride
    check_number(stride, "pool_stride", low=1, integer=True)
    size = min(size, features.shape[-2], features.shape[-1])
    if mode == "max":
        return F.max_pool2d(features, size, stride, ceil_mode=True)
    return F.avg_pool2d(features, size, stride, ceil_mode=True, count_include_pad=False)


class MapGroupSparsityPenalty(Penalty):
    """λ · mean_batch Σ_{h,w} Σ_g p[n, g, h, w]: group sparsity of the L2-pooled feature maps
    (Kavukcuoglu et al. 2009, 2010), on the code reshaped to ``code_shape`` ``(M, H', W')``."""

    def __init__(self, weight: float, pooling: MapPooling, code_shape: tuple[int, int, int]) -> None:
        super().__init__(weight)
        self.pooling, self.code_shape = pooling, tuple(code_shape)

    def forward(self, step: ForwardPass) -> torch.Tensor:
        maps = upcast_half(step.code).reshape(-1, *self.code_shape)
        return self.weight * self.pooling(maps).sum(dim=(1, 2, 3)).mean()

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, {self.pooling.groups.kind} pools={self.pooling.n_pools}"

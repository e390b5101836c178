"""Locally connected layers: local filters without weight sharing (every location its own).

``local_linear`` is a convolution whose filters differ at each of the L = H'·W' output
locations, and ``local_linear_transpose`` its adjoint; both are one ``unfold``/``fold`` and one
batched product over locations (no Python loop over positions):

    a[n, m, l] = Σ_p W[l, m, p] · patch_l(x_n)[p],      patch_l: the C·k·k pixels under location l

The encoder lays its units out on a 2-D *sheet* so that topographic group sparsity (windows of
:func:`~sparseae.groups.grid_groups`) pools neighbours across maps and locations alike: the M = r·c
maps of location (h, w) fill the r×c block at rows h·r…, columns w·c… of an (H'·r)×(W'·c) grid
(Gregor & LeCun 2010: image-level training with local filters gives pinwheel maps).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..validation import check_number
from .activations import get_activation
from .convolutional import PositiveGain, conv_output_shape, uniform_filters_


def local_linear(images: torch.Tensor, weight: torch.Tensor, kernel_size: int, stride: int = 1,
                 padding: int = 0) -> torch.Tensor:
    """images ``(batch, C, H, W)``, weight ``(L, M, C·k·k)`` → ``(batch, M, L)``."""
    patches = F.unfold(images, kernel_size, padding=padding, stride=stride)  # (batch, C·k·k, L)
    return torch.einsum("npl,lmp->nml", patches, weight)


def local_linear_transpose(code: torch.Tensor, weight: torch.Tensor, image_size: tuple[int, int],
                           kernel_size: int, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """The adjoint of :func:`local_linear`: code ``(batch, M, L)`` → images ``(batch, C, H, W)``
    (each unit's filter, scaled by its code, added into the image at its location)."""
    patches = torch.einsum("nml,lmp->npl", code, weight)
    return F.fold(patches, image_size, kernel_size, padding=padding, stride=stride)


def unit_grid(n_maps: int, grid: Sequence[int] | None = None) -> tuple[int, int]:
    """How the maps of one location are laid out on the sheet: ``grid`` (rows, columns) with
    rows·columns = n_maps, or (None) the squarest such factorization."""
    if grid is None:
        rows = max(r for r in range(1, math.isqrt(n_maps) + 1) if n_maps % r == 0)
        return rows, n_maps // rows
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or len(grid) != 2:
        raise ConfigError(f"unit_grid must be (rows, columns), got {grid!r}")
    for value in grid:
        check_number(value, "unit_grid entries", low=1, integer=True)
    if grid[0] * grid[1] != n_maps:
        raise ConfigError(f"unit_grid {list(grid)} holds {grid[0] * grid[1]} maps per location, "
                          f"but n_components = {n_maps}")
    return int(grid[0]), int(grid[1])


class _SheetLayout(nn.Module):
    """Shared geometry: input (C, H, W), maps per location M laid out r×c, locations H'×W'."""

    def __init__(self, image_shape: tuple[int, int, int], n_maps: int, kernel_size: int, stride: int,
                 padding: int, grid: Sequence[int] | None) -> None:
        super().__init__()
        check_number(n_maps, "maps per location (n_components)", low=1, integer=True)
        self.input_shape = tuple(image_shape)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.locations = conv_output_shape(self.input_shape, kernel_size, stride, padding)
        self.code_shape = (int(n_maps), *self.locations)
        self.grid = unit_grid(n_maps, grid)
        self.sheet_shape = (self.locations[0] * self.grid[0], self.locations[1] * self.grid[1])
        self.n_features, self.n_components = math.prod(self.input_shape), math.prod(self.code_shape)
        self.fan_in = self.input_shape[0] * kernel_size ** 2

    def to_sheet(self, maps: torch.Tensor) -> torch.Tensor:
        """``(batch, M, H', W')`` → sheet ``(batch, H'·r, W'·c)``."""
        (rows, cols), (height, width) = self.grid, self.locations
        sheet = maps.reshape(-1, rows, cols, height, width).permute(0, 3, 1, 4, 2)
        return sheet.reshape(-1, *self.sheet_shape)

    def from_sheet(self, sheet: torch.Tensor) -> torch.Tensor:
        """Sheet ``(batch, H'·r·W'·c)`` (or 3-D) → maps ``(batch, M, H', W')``."""
        (rows, cols), (height, width) = self.grid, self.locations
        maps = sheet.reshape(-1, height, rows, width, cols).permute(0, 2, 4, 1, 3)
        return maps.reshape(-1, *self.code_shape)


class LocalEncoder(_SheetLayout):
    """``z = g ⊙ act(local(W, x) + b)`` laid out on the sheet: x ``(batch, C·H·W)`` → z
    ``(batch, H'·r·W'·c)``. W ``(L, M, C·k·k)`` (own filters per location), b one per unit and the
    positive gain g ``(M, H', W')`` one per unit (``gain=False``: none, g = 1). ``activation``: a
    name of :data:`~sparseae.nn.activations.ACTIVATIONS` (``relu``; ``identity`` with a tied
    decoder and unit-norm filters is reconstruction ICA)."""

    code_range = None

    def __init__(self, image_shape: tuple[int, int, int], n_maps: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, grid: Sequence[int] | None = None, activation: str = "relu",
                 gain: bool = True) -> None:
        super().__init__(image_shape, n_maps, kernel_size, stride, padding, grid)
        self.activation_name, self.activation = activation, get_activation(activation)
        n_locations = math.prod(self.locations)
        self.weight = nn.Parameter(torch.empty(n_locations, n_maps, self.fan_in))
        self.bias = nn.Parameter(torch.zeros(n_maps * n_locations))
        self.gain = PositiveGain(self.code_shape) if gain else nn.Identity()
        uniform_filters_(self.weight, self.fan_in)

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, M, H', W')``."""
        drive = local_linear(x.reshape(-1, *self.input_shape), self.weight, self.kernel_size, self.stride,
                             self.padding) + self.bias.view(self.code_shape[0], -1)
        return self.gain(self.activation(drive.reshape(-1, *self.code_shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_sheet(self.maps(x)).flatten(1)

    def extra_repr(self) -> str:
        return (f"{self.input_shape} -> sheet {self.sheet_shape} ({self.code_shape[0]} maps × "
                f"{self.locations} locations), kernel={self.kernel_size}, stride={self.stride}, "
                f"activation={self.activation_name}")


class LocalDecoder(_SheetLayout):
    """``η = local_transpose(D, z) + c``: sheet code ``(batch, H'·r·W'·c)`` → ``(batch, C·H·W)``.
    ``filters`` D ``(L, M, C·k·k)``: each unit's own atom — the parameter ``weight_`` (kept at unit
    norm by the model's constraint over its last dim), or with ``tied_to`` that encoder's filters
    (no own weight: x̂ = Wᵀ W x, as in reconstruction ICA); c ``(C·H·W,)`` one bias per pixel."""

    def __init__(self, image_shape: tuple[int, int, int], n_maps: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, grid: Sequence[int] | None = None, tied_to: LocalEncoder | None = None) -> None:
        super().__init__(image_shape, n_maps, kernel_size, stride, padding, grid)
        self.tied = tied_to is not None
        self._tied_encoder = [tied_to] if self.tied else []  # not a child: saved once, with the encoder
        if self.tied:
            self.register_parameter("weight_", None)
        else:
            self.weight_ = nn.Parameter(torch.empty(math.prod(self.locations), n_maps, self.fan_in))
            uniform_filters_(self.weight_, self.fan_in)
        self.bias = nn.Parameter(torch.zeros(self.n_features))

    @property
    def filters(self) -> torch.Tensor:
        """Every unit's atom ``(L, M, C·k·k)`` (the tied encoder's filters when tied)."""
        return self._tied_encoder[0].weight if self.tied else self.weight_

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        code = self.from_sheet(z).flatten(2)
        images = local_linear_transpose(code, self.filters, self.input_shape[1:], self.kernel_size,
                                        self.stride, self.padding)
        return images.flatten(1) + self.bias

    @property
    def weight(self) -> torch.Tensor:
        """The decoder as a matrix ``(n_features, n_components)``, columns in sheet order: each unit's
        atom in image coordinates (its filter at its location)."""
        filters = self.filters
        eye = torch.eye(self.n_features, dtype=filters.dtype, device=filters.device)
        columns = local_linear(eye.view(-1, *self.input_shape), filters, self.kernel_size, self.stride,
                               self.padding)
        return self.to_sheet(columns.reshape(-1, *self.code_shape)).flatten(1)

    def extra_repr(self) -> str:
        return (f"sheet {self.sheet_shape} -> {self.input_shape}, kernel={self.kernel_size}, stride={self.stride}, "
                f"tied={self.tied}")

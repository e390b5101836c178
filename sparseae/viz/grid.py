"""Tiling filters or images into one 2-D array (pure numpy, no plotting)."""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..validation import as_float_array, check_choice, check_number

__all__ = ["filter_grid", "grid_layout", "kernel_grid", "tile_images"]


def _check_image_shape(image_shape: Any) -> tuple[int, int]:
    """Return ``(height, width)`` as positive ints, or raise ConfigError."""
    try:
        dims = tuple(image_shape)
    except TypeError:
        raise ConfigError(f"image_shape must be a pair (height, width), got {image_shape!r}") from None
    if len(dims) != 2 or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0
                                 for d in dims):
        raise ConfigError(f"image_shape must be two positive integers (height, width), got {image_shape!r}")
    return int(dims[0]), int(dims[1])


def grid_layout(n_tiles: int, layout: Any = None) -> tuple[int, int]:
    """Return ``(rows, cols)`` for ``n_tiles`` tiles.

    Default: ``cols = ceil(sqrt(n))``, ``rows = ceil(n / cols)`` (near-square, wider than tall).
    A given ``layout`` must be two positive ints with ``rows * cols >= n_tiles``.
    """
    if layout is None:
        cols = max(1, math.ceil(math.sqrt(n_tiles)))
        return max(1, math.ceil(n_tiles / cols)), cols
    try:
        rows, cols = layout
    except (TypeError, ValueError):
        raise ConfigError(f"layout must be a pair (rows, cols), got {layout!r}") from None
    check_number(rows, "layout rows", low=1, integer=True)
    check_number(cols, "layout cols", low=1, integer=True)
    if rows * cols < n_tiles:
        raise ConfigError(f"layout {rows}x{cols} has {rows * cols} cells, too few for {n_tiles} filters")
    return int(rows), int(cols)


def _as_filter_matrix(W: Any, name: str, image_shape: tuple[int, int]) -> np.ndarray:
    """Return ``W`` as a float64 array ``(n, height*width)``, or raise DataError."""
    if isinstance(W, torch.Tensor):
        W = W.detach().cpu().numpy()
    W = as_float_array(W, name, dtype=np.float64)
    n_pixels = image_shape[0] * image_shape[1]
    if W.shape[1] != n_pixels:
        raise DataError(f"{name} has {W.shape[1]} features per row, but image_shape {image_shape} "
                        f"needs {n_pixels}")
    return W


def scaled_filters(W: np.ndarray, image_shape: tuple[int, int], normalize: str) -> np.ndarray:
    """Filters ``(k, h·w)`` as ``(k, h, w)`` images in [0, 1]: ``"each"`` stretches every filter to
    its own range, ``"all"`` maps ±max|W| to 0 and 1 (0 stays mid-grey)."""
    if normalize == "each":
        low = W.min(axis=1, keepdims=True)
        span = W.max(axis=1, keepdims=True) - low
        scaled = np.divide(W - low, span, out=np.full_like(W, 0.5), where=span > 0)
    else:
        scale = float(np.abs(W).max())
        scaled = (W / scale + 1.0) / 2.0 if scale > 0 else np.full_like(W, 0.5)
    return scaled.reshape(W.shape[0], *image_shape)


def tile_images(tiles: np.ndarray, layout: tuple[int, int], *, pad: int = 1,
                background: float = 0.0) -> np.ndarray:
    """Tile ``tiles`` ``(n, h, w)`` row-major into ``(rows*h + (rows+1)*pad, cols*w + (cols+1)*pad)``.

    Tile ``k`` goes to row ``k // cols``, column ``k % cols``; empty cells and the ``pad``-pixel
    border around and between tiles hold ``background``.
    """
    rows, cols = layout
    n, h, w = tiles.shape
    cells = np.full((rows * cols, h + pad, w + pad), background, dtype=np.float64)
    cells[:n, :h, :w] = tiles
    grid = cells.reshape(rows, cols, h + pad, w + pad).transpose(0, 2, 1, 3)
    grid = grid.reshape(rows * (h + pad), cols * (w + pad))
    return np.pad(grid, ((pad, 0), (pad, 0)), constant_values=background)


def filter_grid(W: Any, image_shape: Any, *, layout: Any = None, pad: int = 1,
                normalize: str = "each", background: float = 0.0) -> np.ndarray:
    """Tile the rows of ``W`` ``(n_units, height*width)`` as images into one 2-D float array.

    Each row is reshaped (C order) to ``image_shape = (height, width)`` and placed row-major in a
    ``layout = (rows, cols)`` grid (default near-square, see :func:`grid_layout`). The result has
    shape ``(rows*height + (rows+1)*pad, cols*width + (cols+1)*pad)``: a ``pad``-pixel border runs
    around and between the tiles. Values lie in [0, 1]:

    - ``normalize="each"``: each filter is min-max rescaled on its own, ``(w − min w)/(max w − min w)``
      (a constant filter becomes 0.5);
    - ``normalize="all"``: one symmetric scale for every filter, ``(w / max|W| + 1) / 2``, so 0 maps
      to mid-grey 0.5 and signs stay comparable across filters.

    Padding and unused cells hold ``background`` (default 0, black).
    """
    image_shape = _check_image_shape(image_shape)
    check_number(pad, "pad", low=0, integer=True)
    check_choice(normalize, "normalize", ("each", "all"))
    check_number(background, "background", low=0.0, high=1.0)
    W = _as_filter_matrix(W, "W", image_shape)
    rows, cols = grid_layout(W.shape[0], layout)
    tiles = scaled_filters(W, image_shape, normalize)
    return tile_images(tiles, (rows, cols), pad=int(pad), background=float(background))


def kernel_grid(kernels: Any, *, layout: Any = None, pad: int = 1, background: float = 0.0) -> np.ndarray:
    """Tile convolution kernels ``(n_maps, channels, k, k)`` into one 2-D array in [0, 1], one cell
    per map (never one per map and location).

    With one input channel each cell is that map's k×k kernel, min-max scaled on its own, in a
    ``layout`` grid (:func:`grid_layout`). With ``channels`` > 1 (a second layer reading the maps
    of the first) each cell is a strip of the map's ``channels`` kernels, one per input map, left
    to right, on one scale per map so their strengths compare; the strips lie in a near-square
    grid (``layout``: its rows and columns of strips), a wider gap between strips than inside one.
    """
    if isinstance(kernels, torch.Tensor):
        kernels = kernels.detach().cpu().numpy()
    kernels = np.asarray(kernels)
    if kernels.ndim != 4 or kernels.shape[2] != kernels.shape[3] or 0 in kernels.shape:
        raise DataError(f"kernels must have shape (n_maps, channels, k, k), got {kernels.shape}")
    check_number(pad, "pad", low=0, integer=True)
    check_number(background, "background", low=0.0, high=1.0)
    n_maps, channels, size, _ = kernels.shape
    flat = as_float_array(kernels.reshape(n_maps, -1), "kernels", dtype=np.float64)
    if channels == 1:
        tiles = scaled_filters(flat, (size, size), "each")
        return tile_images(tiles, grid_layout(n_maps, layout), pad=int(pad), background=float(background))
    scaled = scaled_filters(flat, (channels, size * size), "each").reshape(n_maps, channels, size, size)
    strips = np.stack([tile_images(per_map, (1, channels), pad=int(pad), background=float(background))
                       for per_map in scaled])
    if layout is None:
        cols = max(1, math.ceil(math.sqrt(n_maps / channels)))
        layout = (math.ceil(n_maps / cols), cols)
    return tile_images(strips, grid_layout(n_maps, layout), pad=int(pad) + 1, background=float(background))

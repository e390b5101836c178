"""PNG pictures of what a denoising / contractive autoencoder learned about the data manifold:
the reconstruction vector field r(x) − x over a 2-D grid, and the tangent directions of the
encoder's Jacobian at chosen images. Same conventions as :mod:`.plots` (no pyplot, atomic
writes, the written ``pathlib.Path`` returned)."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ..errors import DataError
from ..validation import as_float_array
from .grid import tile_images
from .plots import _grid_figure, _save_figure

__all__ = ["save_vector_field", "save_tangent_images"]


def _as_array(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name} contains NaN or inf")
    return array


def save_vector_field(path: str | os.PathLike, grid_points: Any, field: Any, data: Any = None, *,
                      title: str | None = "reconstruction field r(x) − x",
                      unit_arrows: bool = False) -> Path:
    """Quiver plot of ``field`` (n, 2) at ``grid_points`` (n, 2), arrows coloured by length, over
    the training points ``data`` (m, 2) scattered in grey. ``unit_arrows``: draw directions only
    (every arrow 0.8 grid spacings long; the colour still gives the length)."""
    points = as_float_array(grid_points, "grid_points", n_features=2, dtype=np.float64)
    vectors = as_float_array(field, "field", n_features=2, dtype=np.float64)
    if vectors.shape != points.shape:
        raise DataError(f"field has shape {vectors.shape} but grid_points has shape {points.shape}")
    length = np.linalg.norm(vectors, axis=1)
    scaling = {}
    if unit_arrows:  # each arrow 0.8 grid spacings long
        vectors = np.divide(vectors, length[:, None], out=np.zeros_like(vectors), where=length[:, None] > 0)
        spacing = np.sqrt(np.prod(np.ptp(points, axis=0)) / points.shape[0]) or 1.0
        scaling = {"scale_units": "xy", "scale": 1.0 / (0.8 * spacing)}
    figure = Figure(figsize=(6.4, 6.0))
    axes = figure.add_subplot()
    if data is not None:
        scattered = as_float_array(data, "data", n_features=2, dtype=np.float64)
        axes.scatter(scattered[:, 0], scattered[:, 1], s=2, color="0.6", alpha=0.5, linewidths=0,
                     label=f"training points ({scattered.shape[0]})")
        axes.legend(fontsize=8, loc="upper right")
    arrows = axes.quiver(points[:, 0], points[:, 1], vectors[:, 0], vectors[:, 1], length,
                         cmap="viridis", angles="xy", pivot="tail", width=0.003, **scaling)
    figure.colorbar(arrows, ax=axes, label="‖r(x) − x‖", shrink=0.8)
    axes.set_aspect("equal")
    if title:
        axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return _save_figure(figure, path)


def save_tangent_images(path: str | os.PathLike, images: Any, tangents: Any, *,
                        singular_values: Any = None, title: str | None = None,
                        pad: int = 1) -> Path:
    """One row per input: the image ``images[i]`` (h, w), then its k tangent directions
    ``tangents[i]`` (k, h·w) as images. Inputs are min-max scaled; each tangent is scaled
    symmetrically, ``(t/max|t| + 1)/2``, so 0 is mid-grey (a tangent's sign is arbitrary).
    ``singular_values`` (n, k), when given: each column's mean σ is printed under it."""
    images = _as_array(images, "images")
    tangents = _as_array(tangents, "tangents")
    if images.ndim != 3:
        raise DataError(f"images must be (n, height, width), got shape {images.shape}")
    n, height, width = images.shape
    if tangents.ndim != 3 or tangents.shape[0] != n or tangents.shape[2] != height * width:
        raise DataError(f"tangents must be (n={n}, k, {height * width}) for images of shape "
                        f"{images.shape}, got {tangents.shape}")
    k = tangents.shape[1]
    low = images.min(axis=(1, 2), keepdims=True)
    span = images.max(axis=(1, 2), keepdims=True) - low
    shown_images = np.divide(images - low, span, out=np.full_like(images, 0.5), where=span > 0)
    scale = np.abs(tangents).max(axis=2, keepdims=True)
    shown_tangents = np.divide(tangents, scale, out=np.zeros_like(tangents), where=scale > 0) * 0.5 + 0.5
    tiles = np.concatenate([shown_images[:, None], shown_tangents.reshape(n, k, height, width)], axis=1)
    grid = tile_images(tiles.reshape(n * (k + 1), height, width), (n, k + 1), pad=pad, background=1.0)
    labels = ["input"] + [f"tangent {j + 1}" for j in range(k)]
    if singular_values is not None:
        values = _as_array(singular_values, "singular_values")
        if values.shape != (n, k):
            raise DataError(f"singular_values must have shape ({n}, {k}), got {values.shape}")
        labels[1:] = [f"{label}\nσ {value:.3g}" for label, value in zip(labels[1:], values.mean(axis=0), strict=True)]
    figure, axes = _grid_figure(grid, None)
    axes.set_xticks([pad + width / 2 + j * (width + pad) for j in range(k + 1)], labels, fontsize=7)
    # Margins in inches: the column labels below the grid, the wrapped title above it.
    lines = textwrap.wrap(title, max(20, int(figure.get_figwidth() * 72 / 4.5))) if title else []
    bottom, top = 0.2 + 0.12 * max(label.count("\n") + 1 for label in labels), 0.1 + 0.16 * len(lines)
    grid_height = figure.get_figheight()
    figure.set_size_inches(figure.get_figwidth(), grid_height + bottom + top)
    total = figure.get_figheight()
    axes.set_position((0.0, bottom / total, 1.0, grid_height / total))
    if lines:
        axes.set_title("\n".join(lines), fontsize=8)
    return _save_figure(figure, path)

"""A tree of filters: each unit's filter drawn at its node, root on top, children below, edges between.

For models whose units sit on a tree (tree-form lateral inhibition, tree-structured group sparsity).
Like :mod:`sparseae.viz.plots`, the figure is drawn by the Agg canvas, never through pyplot.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..coding.inhibition_matrix import parse_tree
from ..errors import DataError
from ..evaluate.tree import tree_depths
from ..validation import check_choice
from .grid import _as_filter_matrix, _check_image_shape, scaled_filters
from .plots import _save_figure

__all__ = ["tree_layout", "save_filter_tree"]


def tree_layout(parent: Any) -> np.ndarray:
    """Node positions ``(k, 2)``: column 0 is x (leaves at 0, 1, 2, … in depth-first order, a parent
    centred over its children; several roots side by side), column 1 the depth (0 for roots)."""
    parent = parse_tree(parent)
    depth = tree_depths(parent)
    children: list[list[int]] = [[] for _ in parent]
    for node, up in enumerate(parent):
        if up >= 0:
            children[up].append(int(node))
    x = np.zeros(len(parent))
    next_leaf = 0
    # iterative post-order walk (no recursion limit on deep trees)
    for root in np.flatnonzero(parent < 0):
        stack = [(int(root), False)]
        while stack:
            node, expanded = stack.pop()
            if not children[node]:
                x[node], next_leaf = next_leaf, next_leaf + 1
            elif expanded:
                x[node] = 0.5 * (x[children[node][0]] + x[children[node][-1]])
            else:
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(children[node]))
    return np.stack([x, depth.astype(np.float64)], axis=1)


def save_filter_tree(W: Any, parent: Any, path: str | os.PathLike, image_shape: Any, *,
                     title: str | None = None, normalize: str = "each", tile_inches: float = 0.45,
                     labels: bool = False) -> Path:
    """Write the rows of ``W`` ``(k, height·width)`` as images laid out on the tree ``parent`` (a parent
    list or spec; node i shows row i): root on top, each level one row below, lines from every node to
    its children. ``normalize``: ``"each"`` (min–max per filter) or ``"all"`` (one symmetric scale, 0
    is mid-grey). ``labels``: write each unit's index under its tile. Returns the PNG's path."""
    check_choice(normalize, "normalize", ("each", "all"))
    image_shape = _check_image_shape(image_shape)
    W = _as_filter_matrix(W, "W", image_shape)
    position = tree_layout(parent)
    if W.shape[0] != len(position):
        raise DataError(f"{W.shape[0]} filters for a tree of {len(position)} nodes: one filter per node")
    parent = parse_tree(parent)
    tiles = scaled_filters(W, image_shape, normalize)
    width, levels = position[:, 0].max() + 1, position[:, 1].max() + 1
    gap = 1.6  # vertical distance between levels, in tile widths
    half_w = 0.42
    half_h = half_w * image_shape[0] / image_shape[1]
    bottom = -(levels - 1) * gap - half_h - (0.35 if labels else 0.1)
    x_range, y_range = width + 0.2, half_h + 0.1 - bottom
    title_inches = 0.4 if title else 0.0
    figure = Figure(figsize=(max(2.0, x_range * tile_inches), max(1.0, y_range * tile_inches) + title_inches))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0 - title_inches / figure.get_figheight()))
    for node, up in enumerate(parent):
        if up >= 0:
            axes.plot([position[up, 0], position[node, 0]], [-position[up, 1] * gap - half_h,
                                                             -position[node, 1] * gap + half_h],
                      color="0.55", linewidth=0.8, zorder=1)
    for node, (x, level) in enumerate(position):
        y = -level * gap
        axes.imshow(tiles[node], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", zorder=2,
                    extent=(x - half_w, x + half_w, y - half_h, y + half_h))
        if labels:
            axes.text(x, y - half_h - 0.05, str(node), ha="center", va="top", fontsize=6)
    axes.set_xlim(-0.6, width - 0.4)
    axes.set_ylim(bottom, half_h + 0.1)
    axes.set_aspect("equal")
    axes.axis("off")
    if title:
        axes.set_title(title, fontsize=10)
    return _save_figure(figure, path)

"""PNG pictures of filters, training curves, reconstructions and unit activity.

Figures are built with ``matplotlib.figure.Figure`` and drawn by the Agg canvas directly, never
through ``pyplot``, so no global matplotlib state (backend, current figure) changes. Each function
writes its PNG atomically (:func:`sparseae.files.atomic_file`: a temporary file beside it, renamed), creating
missing parent folders, and returns the written path as a ``pathlib.Path``.
"""
from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import ConfigError, DataError
from ..files import atomic_file
from ..validation import as_float_array, check_number
from .grid import _as_filter_matrix, _check_image_shape, filter_grid, kernel_grid, tile_images

__all__ = ["save_filters", "save_kernels", "save_curves", "save_reconstructions", "save_activity_histogram",
           "save_unit_angles", "save_embeddings", "save_confusion_matrix", "save_precision_recall",
           "save_depth_curve"]

_DPI = 100


def _save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Render ``figure`` as PNG to ``path`` atomically and return ``Path(path)``."""
    path = Path(path)
    FigureCanvasAgg(figure)
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=_DPI)
    return path


def _grid_figure(grid: np.ndarray, title: str | None) -> tuple[Figure, Any]:
    """A figure showing ``grid`` (values in [0, 1]) in grey, each grid pixel at least 1 screen pixel."""
    height, width = grid.shape
    zoom = max(1.0, min(8.0, 600.0 / max(height, width)))
    title_inches = 0.4 if title else 0.0
    figure = Figure(figsize=(max(width * zoom / _DPI, 1.0), max(height * zoom / _DPI, 1.0) + title_inches))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0 - title_inches / figure.get_figheight()))
    axes.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    axes.set_xticks([])
    axes.set_yticks([])
    if title:
        axes.set_title(title, fontsize=10)
    return figure, axes


def save_filters(W: Any, path: str | os.PathLike, image_shape: Any, *, layout: Any = None,
                 title: str | None = None, normalize: str = "each", pad: int = 1) -> Path:
    """Write the rows of ``W`` ``(n_units, height*width)`` as a greyscale grid of images.

    The grid is :func:`filter_grid` ``(W, image_shape, layout=layout, pad=pad, normalize=normalize)``.
    """
    grid = filter_grid(W, image_shape, layout=layout, pad=pad, normalize=normalize)
    figure, _ = _grid_figure(grid, title)
    return _save_figure(figure, path)


def save_kernels(layers: Sequence[tuple[str, Any]], path: str | os.PathLike) -> Path:
    """Write the kernels of a convolutional model, one cell per map, one panel per layer.

    ``layers``: (title, kernels ``(n_maps, channels, k, k)``) pairs, drawn top to bottom as
    :func:`~sparseae.viz.grid.kernel_grid` (a second layer's map: a strip of its kernels over the
    maps below). The figure has one axes per layer.
    """
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or not layers:
        raise DataError("layers must be a non-empty list of (title, kernels) pairs")
    grids = [(str(title), kernel_grid(kernels)) for title, kernels in layers]
    title_inches = 0.35
    panels = []  # (title, grid, width in inches, height in inches)
    for title, grid in grids:
        zoom = max(1.0, min(8.0, 500.0 / max(grid.shape)))
        panels.append((title, grid, grid.shape[1] * zoom / _DPI, grid.shape[0] * zoom / _DPI))
    # about 0.075 inch a character of a 9-point title
    width = max(4.0, max(panel[2] for panel in panels) + 0.2, max(0.075 * len(panel[0]) for panel in panels))
    height = sum(panel[3] + title_inches for panel in panels) + 0.1
    figure = Figure(figsize=(width, height))
    top = height - 0.05
    for title, grid, panel_width, panel_height in panels:
        top -= title_inches + panel_height
        axes = figure.add_axes(((width - panel_width) / 2 / width, top / height, panel_width / width,
                                panel_height / height))
        axes.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(title, fontsize=9)
    return _save_figure(figure, path)


def _numeric(value: Any) -> float | None:
    """``float(value)`` for a finite real number (not bool), else None."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def save_curves(records: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
                keys: Sequence[str] | None = None) -> Path:
    """Plot per-epoch metrics against the epoch.

    ``records`` is a list with one dict per epoch, e.g. ``{"epoch": 1, "train_loss": 0.5,
    "val_loss": 0.6, "mean_l0": 12.0}``; a record without ``"epoch"`` counts as epoch ``index + 1``.
    The keys plotted are ``keys`` or, by default, every key with a numeric value in some record.
    Keys ending in ``_loss`` share the first panel; any others go to a second panel. A panel uses a
    log y scale when all of its values are > 0. Missing, non-numeric and NaN/inf values are skipped.
    Whole-number epochs get whole-number ticks; a curve of a single point is a marker labelled
    with its value.
    """
    epochs = _curve_epochs(records)
    keys = _curve_keys(records, keys)
    panels = [[key for key in keys if key.endswith("_loss")], [key for key in keys if not key.endswith("_loss")]]
    panels = [panel for panel in panels if panel]

    figure = Figure(figsize=(6.4, 3.2 * len(panels)))
    axes_list = figure.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
    for axes, panel in zip(axes_list, panels, strict=True):
        _draw_curve_panel(axes, panel, epochs, records)
    _epoch_ticks(axes_list[-1], epochs)
    axes_list[-1].set_xlabel("epoch")
    figure.tight_layout()
    return _save_figure(figure, path)


def _curve_epochs(records: Sequence[Mapping[str, Any]]) -> list[float]:
    """The epoch of each record (``index + 1`` where it names none); raises :class:`DataError`
    unless ``records`` is a non-empty list of dicts with finite epochs."""
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence) or not records:
        raise DataError("records must be a non-empty list of dicts, one per epoch")
    if not all(isinstance(record, Mapping) for record in records):
        raise DataError("every record must be a dict of metric name -> value")
    epochs = [_numeric(record.get("epoch", index + 1)) for index, record in enumerate(records)]
    if any(epoch is None for epoch in epochs):
        raise DataError("every record's 'epoch' must be a finite number")
    return epochs


def _curve_keys(records: Sequence[Mapping[str, Any]], keys: Sequence[str] | None) -> list[str]:
    """``keys`` checked against the records' numeric keys, or all of those (in first-seen order)."""
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(key for key in record if key != "epoch" and _numeric(record[key]) is not None))
    if keys is None:
        keys = list(seen)
    else:
        if isinstance(keys, str) or not all(isinstance(key, str) for key in keys):
            raise ConfigError(f"keys must be a list of metric names, got {keys!r}")
        missing = [key for key in keys if key not in seen]
        if missing:
            raise ConfigError(f"no numeric values for key(s) {missing}; available: {sorted(seen)}")
    if not keys:
        raise DataError("records hold no numeric metric to plot")
    return list(keys)


def _draw_curve_panel(axes, panel: Sequence[str], epochs: Sequence[float],
                      records: Sequence[Mapping[str, Any]]) -> None:
    """One curve per key of ``panel``, skipping missing values; a log scale when all are > 0."""
    all_values: list[float] = []
    for key in panel:
        points = [(epoch, _numeric(record.get(key))) for epoch, record in zip(epochs, records, strict=True)]
        points = [(epoch, value) for epoch, value in points if value is not None]
        xs, ys = zip(*points, strict=True)
        single = len(points) == 1
        line, = axes.plot(xs, ys, marker="o" if len(points) < 30 else None, markersize=6 if single else 3,
                          label=key)
        if single:
            axes.annotate(f"{ys[0]:.4g}", (xs[0], ys[0]), xytext=(6, 4), textcoords="offset points",
                          fontsize=8, color=line.get_color())
        all_values.extend(ys)
    if min(all_values) > 0:
        axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)


def _epoch_ticks(axes, epochs: Sequence[float]) -> None:
    """Whole-number ticks for whole-number epochs; one epoch gets a single tick at it."""
    if all(float(epoch).is_integer() for epoch in epochs):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(set(epochs)) == 1:  # one epoch: a tick at it, not a span of fractions around it
            axes.set_xticks([epochs[0]])
            axes.set_xlim(epochs[0] - 1, epochs[0] + 1)


def _as_image_rows(X: Any, name: str, image_shape: tuple[int, int]) -> np.ndarray:
    """``X`` as ``(n_samples, height*width)`` float64; ``(n, height, width)`` input is flattened."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim > 2:
        X = X.reshape(X.shape[0], -1)
    return _as_filter_matrix(X, name, image_shape)


def save_reconstructions(X: Any, X_hat: Any, path: str | os.PathLike, image_shape: Any, *,
                         n: int = 10) -> Path:
    """Show the first ``n`` inputs (top row) above their reconstructions (bottom row).

    ``X`` and ``X_hat`` have shape ``(n_samples, height*width)``. Both rows share one grey scale
    (min to max over the ``2n`` images shown), so intensities are comparable.
    """
    image_shape = _check_image_shape(image_shape)
    check_number(n, "n", low=1, integer=True)
    X = _as_image_rows(X, "X", image_shape)
    X_hat = _as_image_rows(X_hat, "X_hat", image_shape)
    if X.shape != X_hat.shape:
        raise DataError(f"X has shape {X.shape} but X_hat has shape {X_hat.shape}; they must match")
    n = min(int(n), X.shape[0])
    shown = np.concatenate([X[:n], X_hat[:n]])
    low, span = shown.min(), shown.max() - shown.min()
    shown = (shown - low) / span if span > 0 else np.full_like(shown, 0.5)
    pad = 1
    grid = tile_images(shown.reshape(2 * n, *image_shape), (2, n), pad=pad)
    figure, axes = _grid_figure(grid, None)
    height = image_shape[0]
    axes.set_yticks([pad + height / 2, 2 * pad + 1.5 * height], ["input", "reconstruction"], fontsize=8)
    figure.set_size_inches(figure.get_figwidth() + 1.0, figure.get_figheight())
    axes.set_position((1.0 / figure.get_figwidth(), 0.0, 1.0 - 1.0 / figure.get_figwidth(), 1.0))
    return _save_figure(figure, path)


def save_activity_histogram(activation_frequency: Any, path: str | os.PathLike, *,
                            dead_threshold: float = 0.0, bins: int = 50,
                            xlabel: str = "activation frequency", rule: str | None = None,
                            dead_label: str | None = None) -> Path:
    """Histogram of per-unit activity ``(n_units,)``, with dead units counted and marked.

    A unit is dead when its value is ``<= dead_threshold`` (with the default 0: never active).
    Live units are binned over ``[dead_threshold, max]`` in ``bins`` bins; the dead units are a
    separate red bar just left of the lowest bin, and the title gives their number. ``rule``:
    the dead-unit rule in words, shown in the title (e.g. ``"never nonzero"``). ``dead_label``: the
    dead bar's legend entry (default: the threshold), e.g. when the bar only stands beside the scale.
    """
    check_number(dead_threshold, "dead_threshold")
    check_number(bins, "bins", low=1, integer=True)
    if isinstance(activation_frequency, torch.Tensor):
        activation_frequency = activation_frequency.detach().cpu().numpy()
    values = np.asarray(activation_frequency)
    if values.ndim != 1:
        raise DataError(f"activation_frequency must be 1-D (n_units,), got shape {values.shape}")
    values = as_float_array(values.reshape(-1, 1), "activation_frequency", dtype=np.float64)[:, 0]
    dead = values <= dead_threshold
    n_dead, n_units = int(dead.sum()), values.size
    alive = values[~dead]
    low = float(dead_threshold)  # every live value is > low
    high = float(alive.max()) if alive.size else low + 1.0
    edges = np.linspace(low, high, int(bins) + 1)
    width = edges[1] - edges[0]

    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    axes.hist(alive, bins=edges, color="tab:blue", label=f"live units ({alive.size})")
    axes.bar([low - width], [n_dead], width=width, color="tab:red", align="center",
             label=dead_label or f"dead units (<= {dead_threshold:.3g})")
    if rule is not None:
        axes.axvline(low, color="tab:red", linestyle="--", linewidth=0.8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("units")
    title = f"{n_dead} dead of {n_units} units ({100.0 * n_dead / n_units:.1f}%)"
    axes.set_title(title if rule is None else f"{title}\ndead = {rule}", fontsize=10 if rule else None)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return _save_figure(figure, path)


def save_unit_angles(angles: Any, path: str | os.PathLike, *, part_below: float = 0.5,
                     categorical_above: float = 0.7, classifier_norms: Any = None, bins: int = 40) -> Path:
    """DrSAE's unit analysis (Rolfe & LeCun 2013, Fig. 3): the histogram of the angle between each
    unit's encoder row and decoder column ``angles`` (n_units,) in radians, with the part-unit
    (< ``part_below``) and categorical-unit (> ``categorical_above``) regions shaded; with
    ``classifier_norms`` (n_units,) — e.g. ‖C_{:,i}‖ — a second panel plots them against the angle."""
    check_number(bins, "bins", low=1, integer=True)
    values = as_float_array(np.asarray(angles, dtype=np.float64).reshape(-1, 1), "angles",
                            dtype=np.float64)[:, 0]
    n_part, n_cat = int((values < part_below).sum()), int((values > categorical_above).sum())
    panels = 1 if classifier_norms is None else 2
    figure = Figure(figsize=(6.4 * panels, 4.0))
    axes = figure.add_subplot(1, panels, 1)
    high = max(float(values.max()), categorical_above) * 1.05
    axes.hist(values, bins=np.linspace(0.0, high, int(bins) + 1), color="tab:blue")
    axes.axvspan(0.0, part_below, color="tab:green", alpha=0.12, label=f"part-units ({n_part})")
    axes.axvspan(categorical_above, high, color="tab:orange", alpha=0.12, label=f"categorical-units ({n_cat})")
    axes.set_xlabel("angle between encoder row E_i and decoder column D_i (rad)")
    axes.set_ylabel("units")
    axes.set_title(f"{values.size} units")
    axes.legend(fontsize=8)
    if classifier_norms is not None:
        norms = as_float_array(np.asarray(classifier_norms, dtype=np.float64).reshape(-1, 1),
                               "classifier_norms", dtype=np.float64)[:, 0]
        if norms.size != values.size:
            raise DataError(f"classifier_norms has {norms.size} values for {values.size} angles")
        scatter = figure.add_subplot(1, 2, 2)
        scatter.scatter(values, norms, s=8, color="tab:purple")
        scatter.set_xlabel("angle (rad)")
        scatter.set_ylabel("classifier weight norm")
    figure.tight_layout()
    return _save_figure(figure, path)


def save_embeddings(panels: Sequence[tuple[str, Any]], labels: Any, path: str | os.PathLike, *,
                    title: str | None = None, max_points: int = 10000, random_state: int = 0) -> Path:
    """Side-by-side scatter plots of 2-D codes coloured by label, e.g. a deep autoencoder's map
    of MNIST beside PCA's (Hinton & Salakhutdinov 2006, Fig. 3). ``panels``: (title, Z (n, 2))
    pairs over the same n samples; ``labels``: (n,) integer classes."""
    labels = np.asarray(labels)
    if not panels:
        raise DataError("save_embeddings needs at least one (title, codes) panel")
    arrays = []
    for name, Z in panels:
        Z = as_float_array(Z, f"codes of {name!r}")
        if Z.shape != (len(labels), 2):
            raise DataError(f"codes of {name!r} have shape {Z.shape}; expected ({len(labels)}, 2), one 2-D "
                            "point per label")
        arrays.append(Z)
    rng = np.random.default_rng(random_state)
    shown = np.sort(rng.choice(len(labels), size=min(max_points, len(labels)), replace=False))
    figure = Figure(figsize=(4.6 * len(panels), 4.6 + (0.3 if title else 0.0)))
    for k, ((name, _), Z) in enumerate(zip(panels, arrays, strict=True)):
        axes = figure.add_subplot(1, len(panels), k + 1)
        points = axes.scatter(Z[shown, 0], Z[shown, 1], c=labels[shown], cmap="tab10", s=2, alpha=0.7,
                              vmin=-0.5, vmax=9.5)
        axes.set_title(name, fontsize=10)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.colorbar(points, ax=figure.axes, ticks=range(10), fraction=0.02)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save_figure(figure, path)


def save_confusion_matrix(counts: Any, path: str | os.PathLike, *, class_names: Sequence[str] | None = None,
                          title: str | None = None) -> Path:
    """The confusion matrix ``counts`` ``(n_classes, n_classes)`` (row: true class, column:
    predicted): cells coloured by the fraction of their row, counts written in the cells (up to
    20 classes)."""
    if isinstance(counts, torch.Tensor):
        counts = counts.detach().cpu().numpy()
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise DataError(f"counts must be a square (n_classes, n_classes) matrix, got shape {counts.shape}")
    counts = as_float_array(counts, "counts", dtype=np.float64)
    if (counts < 0).any():
        raise DataError("counts must be non-negative")
    n = counts.shape[0]
    names = [str(k) for k in range(n)] if class_names is None else [str(name) for name in class_names]
    if len(names) != n:
        raise DataError(f"{len(names)} class names for {n} classes")
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = float(np.clip(0.45 * n + 1.6, 3.2, 7.0))
    figure = Figure(figsize=(side + 0.9, side))
    axes = figure.add_subplot()
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 20:
        for (i, j), value in np.ndenumerate(counts):
            if value:
                axes.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7 if n > 10 else 8,
                          color="white" if fractions[i, j] > 0.6 else "black")
    axes.set_xticks(range(n), names, fontsize=8)
    axes.set_yticks(range(n), names, fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if title:
        axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return _save_figure(figure, path)


def save_precision_recall(curves: Sequence[tuple[str, Any, Any]], path: str | os.PathLike, *,
                          title: str | None = None) -> Path:
    """Precision against recall for one or more methods: ``curves`` holds (name, precision (m,),
    recall (m,)) triples, e.g. from :func:`sparseae.retrieval.precision_recall_curve` at each
    Hamming radius. NaN points (nothing retrieved) are left out."""
    if isinstance(curves, (str, bytes)) or not isinstance(curves, Sequence) or not curves:
        raise DataError("curves must be a non-empty list of (name, precision, recall) triples")
    figure = Figure(figsize=(5.6, 4.4))
    axes = figure.add_subplot()
    for entry in curves:
        if not isinstance(entry, Sequence) or len(entry) != 3:
            raise DataError(f"each curve is a (name, precision, recall) triple, got {entry!r}")
        name, precision, recall = entry
        precision = np.asarray(precision, dtype=np.float64).ravel()
        recall = np.asarray(recall, dtype=np.float64).ravel()
        if precision.shape != recall.shape:
            raise DataError(f"curve {name!r}: {precision.size} precision values for {recall.size} recall values")
        shown = np.isfinite(precision) & np.isfinite(recall)
        axes.plot(recall[shown], precision[shown], marker="o" if shown.sum() <= 65 else None, markersize=3,
                  label=str(name))
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    if title:
        axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return _save_figure(figure, path)


def save_depth_curve(solver_curves: Mapping[str, Any], depths: Sequence[int], errors: Sequence[float],
                     path: str | os.PathLike, *, label: str = "LISTA (trained), depth T", goal_factor: int = 10,
                     title: str | None = None) -> Path:
    """A learned solver's error against its depth T beside iterative solvers' errors against their
    iterations k, on one log–log axis (Gregor & LeCun 2010's picture). ``solver_curves``: {name: error
    after iterations 1…n (n,)}; ``depths`` (m,) and ``errors`` (m,): the learned solver's; with
    ``goal_factor`` g > 0 and a solver named ``"FISTA"``, crosses mark FISTA at k = g·T (the goal: the
    learned T at or below them)."""
    curves = {str(name): np.asarray(curve, dtype=np.float64).ravel() for name, curve in solver_curves.items()}
    depths = [int(T) for T in depths]
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if not curves or any(curve.size == 0 for curve in curves.values()):
        raise DataError("solver_curves must map at least one solver name to a non-empty error curve")
    if not depths or len(depths) != errors.size or min(depths) < 1:
        raise DataError(f"depths (T ≥ 1) and errors must be non-empty and as long as each other, got "
                        f"{len(depths)} depths and {errors.size} errors")
    figure = Figure(figsize=(6.5, 4.2))
    axes = figure.add_subplot()
    for name, curve in curves.items():
        axes.loglog(np.arange(1, curve.size + 1), curve, label=f"{name}, k iterations")
    axes.loglog(depths, errors, "o-", label=label)
    fista = curves.get("FISTA")
    if goal_factor > 0 and fista is not None:
        ks = [goal_factor * T for T in depths if goal_factor * T <= fista.size]
        if ks:
            axes.loglog(ks, fista[np.asarray(ks) - 1], "x", color="grey",
                        label=f"FISTA at k = {goal_factor}·T (the goal: T below)")
    lowest = min(float(np.min(curve[curve > 0], initial=np.inf)) for curve in curves.values())
    axes.set_ylim(bottom=max(lowest, float(errors.min()) / 100))  # not down to where the solvers are exact
    axes.set_xlabel("k (solver iterations) or T (learned depth)")
    axes.set_ylabel("mean‖z − z*‖² / mean‖z*‖²")
    if title:
        axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return _save_figure(figure, path)

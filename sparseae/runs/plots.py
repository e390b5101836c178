"""The pictures of a run (its PNGs), drawn from the model, its history and the evaluation set."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Dataset
from ..models import Autoencoder, SupervisedAutoencoder
from ..models.drsae import DrSAE, encoder_decoder_angles
from ..models.local import LocalAutoencoder
from .metrics import (
    HASHING_MODELS,
    PROBE_MAX_SAMPLES,
    _subsample,
    code_kind,
    confusion_matrix,
    encode_decode,
    filter_matrix,
    hamming_precision_recall,
    kernel_layers,
    reports_reconstruction,
    unit_activity,
    unit_arrangement,
)


def write_curves(history: Sequence[dict[str, Any]], out_dir: Path) -> Path | None:
    """``curves.png``: every numeric per-epoch term of ``history`` (losses, then the other terms:
    reconstruction, sparsity penalties, error...); None for an empty history."""
    from ..viz import save_curves

    if not history:
        return None
    keys = [key for key in history[-1] if key not in ("epoch", "seconds")
            and isinstance(history[-1][key], (int, float))]
    return save_curves(list(history), out_dir / "curves.png", keys=keys or None)


def write_plots(model: Autoencoder, history: Sequence[dict[str, Any]], eval_set: Dataset,
                out_dir: Path, *, random_state: int = 0, firing: bool = False) -> list[Path]:
    """Write the run's PNGs into ``out_dir``; returns their paths.

    ``curves.png`` (:func:`write_curves`, when there is a history); ``filters.png`` and
    ``reconstructions.png`` (when the data has an ``image_shape``, the latter when
    :func:`reports_reconstruction`; the filters in the model's topographic grid or tree when it
    has grid or tree groups, a convolutional model's as kernels one per map,
    :func:`kernel_layers`, a ``local_sae``'s as each unit's own kernel on its sheet);
    ``activity.png`` (per unit, how often it is active for codes resting at 0, else the span of
    its values; dead units, by :func:`unit_activity`'s rule stated in the title, in red); for a
    model with a classifier head ``confusion.png``; for a hashing model (:data:`HASHING_MODELS`)
    ``precision_recall.png`` (:func:`hamming_precision_recall`); for DrSAE ``angles.png``
    (:func:`~sparseae.viz.save_unit_angles`).
    """
    paths = [write_curves(history, out_dir)]
    if eval_set.image_shape is not None:
        paths.append(_write_filters(model, eval_set.image_shape, out_dir))
        if reports_reconstruction(model):
            paths.append(_write_reconstructions(model, eval_set, out_dir))
    paths.append(_write_activity(model, eval_set, out_dir, random_state))
    if firing and code_kind(model) == "sparse":  # SAEs on harvested activations: SAEBench's log10 rates
        paths.append(_write_firing(model, eval_set, out_dir))
    if isinstance(model, SupervisedAutoencoder):
        paths.append(_write_confusion(model, eval_set, out_dir))
    if model.spec.get("name") in HASHING_MODELS:
        paths.append(_write_precision_recall(model, eval_set, out_dir, random_state))
    if isinstance(model, DrSAE):
        paths.append(_write_angles(model, out_dir))
    return [path for path in paths if path is not None]


def _write_filters(model: Autoencoder, image_shape: tuple[int, ...], out_dir: Path) -> Path:
    """``filters.png``: a convolutional model's kernels, a ``local_sae``'s units on their sheet,
    else the filter rows (a deep model's first layer) in the model's grid or tree when it has one."""
    from ..viz import save_filters, save_kernels
    from ..viz.tree import save_filter_tree

    path = out_dir / "filters.png"
    kernels = kernel_layers(model)
    if kernels is not None:
        return save_kernels(kernels, path)
    if isinstance(model, LocalAutoencoder):
        channels, size = model.encoder.input_shape[0], model.encoder.kernel_size
        sheet = model.sheet_shape
        title = (f"{sheet[0] * sheet[1]} units' own {size}×{size} filters on their {sheet[0]}×{sheet[1]} sheet"
                 + (f" ({channels} channels stacked)" if channels > 1 else ""))
        return save_filters(model.sheet_atoms().float().cpu().numpy(), path, (channels * size, size),
                            layout=sheet, title=title)
    W = filter_matrix(model)
    # a deep model's filters are its first layer's units, not the code units
    code_units = W.shape[0] == model.n_components
    arrangement = unit_arrangement(model) if code_units else None
    title = f"{W.shape[0]} filters" if code_units else f"{W.shape[0]} first-layer filters"
    if arrangement is not None and arrangement[0] == "tree":
        return save_filter_tree(W, arrangement[1], path, image_shape, title=f"{title}, tree layout")
    if arrangement is not None and arrangement[0] == "grid":
        layout = arrangement[1]
        return save_filters(W, path, image_shape, layout=layout,
                            title=f"{title}, topographic {layout[0]}×{layout[1]} grid")
    return save_filters(W, path, image_shape, title=title)


def _write_reconstructions(model: Autoencoder, eval_set: Dataset, out_dir: Path) -> Path:
    """``reconstructions.png``: the first 10 evaluation images beside their reconstructions."""
    from ..viz import save_reconstructions

    _, X_hat = encode_decode(model, eval_set.X[:10])
    return save_reconstructions(eval_set.X[:10], X_hat, out_dir / "reconstructions.png", eval_set.image_shape)


def _write_firing(model: Autoencoder, eval_set: Dataset, out_dir: Path) -> Path:
    """``firing.png``: the histogram of log10 per-latent firing rates (SAEBench's core statistic),
    on up to ``PROBE_MAX_SAMPLES`` evaluation rows; latents that never fire in red."""
    from ..evaluate.spliced import core_stats

    return write_firing_histogram(core_stats(model, eval_set.X, max_rows=PROBE_MAX_SAMPLES)["firing_rates"], out_dir)


def write_firing_histogram(rates: Any, out_dir: Path) -> Path:
    """``firing.png``: the histogram of the log10 of the per-latent firing rates ``rates``
    (n_components,) in [0, 1] (:func:`~sparseae.runs.metrics.firing_counts` checks them); the latents
    that never fire are a red bar just left of the rarest live one, counted in the title."""
    from ..viz import save_activity_histogram
    from .metrics import firing_counts

    firing_counts(rates)  # DataError unless one finite rate in [0, 1] per latent
    rates = np.asarray(rates, dtype=np.float64)
    live = rates > 0
    floor = float(np.log10(rates[live].min())) - 0.5 if live.any() else -1.0  # where the dead bar goes
    values = np.full(rates.shape, floor)
    values[live] = np.log10(rates[live])
    return save_activity_histogram(values, out_dir / "firing.png", dead_threshold=floor,
                                   xlabel="log10 firing rate (fraction of evaluation rows with z ≠ 0)",
                                   rule="never fires", dead_label=f"never fire ({int((~live).sum())})")


def _write_activity(model: Autoencoder, eval_set: Dataset, out_dir: Path, random_state: int) -> Path:
    """``activity.png``: each unit's activation frequency (sparse codes) or span of values, on up
    to ``PROBE_MAX_SAMPLES`` evaluation samples; dead units by :func:`unit_activity`'s rule."""
    from ..viz import save_activity_histogram

    rows = _subsample(eval_set.n_samples, PROBE_MAX_SAMPLES, np.random.default_rng(random_state))
    Z, _ = encode_decode(model, eval_set.X[rows], decode=False)
    stats = unit_activity(model, Z)
    if code_kind(model) == "sparse":
        values, xlabel = stats["activation_frequency"], "activation frequency (fraction of samples with z ≠ 0)"
    else:
        values, xlabel = stats["span"], "span of the unit's values over the samples (max − min)"
    return save_activity_histogram(values, out_dir / "activity.png", dead_threshold=stats["dead_limit"],
                                   xlabel=xlabel, rule=stats["dead_rule"])


def _write_confusion(model: SupervisedAutoencoder, eval_set: Dataset, out_dir: Path) -> Path | None:
    """``confusion.png`` of the classifier head (None when the evaluation set has no usable labels)."""
    from ..viz import save_confusion_matrix

    counts = confusion_matrix(model, eval_set)
    if counts is None:
        return None
    error = 1.0 - np.trace(counts) / counts.sum()
    return save_confusion_matrix(counts, out_dir / "confusion.png",
                                 title=f"classifier error {100 * error:.2f}% ({counts.sum()} samples)")


def _write_precision_recall(model: Autoencoder, eval_set: Dataset, out_dir: Path, random_state: int) -> Path | None:
    """``precision_recall.png`` of Hamming ranking with a hashing model's binary codes."""
    from ..viz import save_precision_recall

    curve = hamming_precision_recall(model, eval_set, random_state=random_state)
    if curve is None:
        return None
    return save_precision_recall([(f"{model.n_components}-bit codes", curve.precision, curve.recall)],
                                 out_dir / "precision_recall.png", title="Hamming ranking (radius 0, 1, 2, ...)")


def _write_angles(model: DrSAE, out_dir: Path) -> Path:
    """``angles.png``: DrSAE's encoder–decoder angles per unit, with the classifier's column norms."""
    from ..viz import save_unit_angles

    angles = encoder_decoder_angles(model)
    norms = model.head.weight.detach().float().norm(dim=0).cpu().numpy()
    return save_unit_angles(angles.angles, out_dir / "angles.png", part_below=angles.part_below,
                            categorical_above=angles.categorical_above, classifier_norms=norms)

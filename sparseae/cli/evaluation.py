"""What a trained model does on data: the metrics of a run and its pictures.

Shared by ``sparseae train`` (summary.json and the PNGs), ``evaluate``, ``plot`` and ``report``
(:mod:`sparseae.report`), so they always agree. Nothing here prints.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from ..config import RunConfig
from ..data import Dataset, load_dataset, unit_norm_rows
from ..errors import ConfigError, DataError
from ..groups import make_groups
from ..evaluate import (contraction_stats, explained_variance, linear_probe, mean_squared_error,
                        orientation_selectivity, reconstruction_error, sparsity_stats)
from ..evaluate.metrics import describe_dead_rule
from ..models import Autoencoder, SupervisedAutoencoder
from ..models.conv_stack import ConvStack
from ..models.convolutional import ConvAutoencoder
from ..models.local import LocalAutoencoder
from ..models.drsae import DrSAE, encoder_decoder_angles
from ..models.supervised import error_rate
from ..nn.amortized import ScaledTanhEncoder
from ..nn.jacobian import has_closed_form
from ..nn.penalties import ContractivePenalty, KLSparsity
from ..train.config import TrainConfig, check_device_name, device_problem
from ..validation import rows_as_tensor

if TYPE_CHECKING:
    from ..retrieval import PrecisionRecallCurve

#: At most this many samples are encoded for the linear probe's training and test sets each,
#: and for the activity plot (the metrics themselves use every sample).
PROBE_MAX_SAMPLES = 10_000
#: Fraction of the training set held out for the probe when there is no separate test set.
PROBE_TEST_FRACTION = 0.2
EVAL_BATCH_SIZE = 4096
#: Models whose codes are bits (thresholded at 0.5): their pictures add a precision-recall curve.
HASHING_MODELS = ("semantic_hashing",)
#: Items (of the evaluation set) in the precision-recall curve, and the queries among them.
RETRIEVAL_MAX_ITEMS = 2000
RETRIEVAL_QUERIES = 200
#: Samples (the evaluation set's first) whose encoder Jacobian the contraction metrics average.
CONTRACTION_MAX_SAMPLES = 2000


# ------------------------------------------------------------------------------------- data

def load_datasets(config: RunConfig) -> tuple[Dataset, Dataset]:
    """(training set, evaluation set); the evaluation set is the training set without ``data.test``."""
    train_set = load_dataset(config.data_name, **config.data_options)
    mean = np.asarray(train_set.X, dtype=np.float64).mean(axis=0) if config.normalize == "center_l2" else None
    train_set = _normalized(train_set, config.normalize, mean)
    spec = config.test_data_spec()
    if spec is None:
        return train_set, train_set
    options = {k: v for k, v in spec[1].items() if k != "normalize"}
    test_set = _normalized(load_dataset(spec[0], **options), config.normalize, mean)
    if test_set.n_features != train_set.n_features:
        raise DataError(f"the test set ({spec[0]}) has {test_set.n_features} features, the training set "
                        f"({config.data_name}) {train_set.n_features}")
    return train_set, test_set


def _normalized(dataset: Dataset, normalize: str, mean: np.ndarray | None = None) -> Dataset:
    """``l2``: every sample scaled to unit norm; ``center_l2``: the training set's mean subtracted
    first (Gao et al. 2024's input normalization for SAEs on activations)."""
    if normalize == "none":
        return dataset
    X = dataset.X
    if normalize == "center_l2":
        if mean.shape[0] != X.shape[1]:
            raise DataError(f"the evaluation set has {X.shape[1]} features, the training set {mean.shape[0]}")
        X = np.asarray(X, dtype=np.float32) - mean.astype(np.float32)
    return dataclasses.replace(dataset, X=unit_norm_rows(X))


def describe_data(config: RunConfig) -> str:
    """A short name of the evaluation set: ``mnist(split=test)`` (only the options that differ)."""
    spec = config.test_data_spec()
    if spec is None:
        return config.data_name
    changed = {k: v for k, v in spec[1].items() if config.data_options.get(k) != v}
    options = ", ".join(f"{k}={v}" for k, v in changed.items())
    return f"{spec[0]}({options})" if options else spec[0]


# ------------------------------------------------------------------------------------ model

def evaluation_device(requested: str | None, stored: Any = "auto") -> tuple[torch.device, str | None]:
    """Where a trained model runs to be evaluated or drawn, and a one-line note when that is not
    the run's device: ``requested`` (``--device``; :class:`ConfigError` when this machine lacks
    it), else ``stored`` (the run's ``train.device``) when this machine has it, else the CPU."""
    name = check_device_name(requested if requested is not None else stored,
                             "--device" if requested is not None else "train.device")
    device = TrainConfig(device=name).resolved_device()
    problem = device_problem(device)
    if problem is None:
        return device, None
    if requested is not None:
        raise ConfigError(f"--device {requested}: {problem}")
    return torch.device("cpu"), (f"The run was trained on train.device {stored!r}, but {problem}: "
                                 "using the CPU (choose with --device).")


@torch.no_grad()
def encode_decode(model: Autoencoder, X: np.ndarray, *, decode: bool = True,
                  batch_size: int = EVAL_BATCH_SIZE, progress: Callable[[int], Any] | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes ``(n, n_components)`` and reconstructions ``(n, n_features)`` of ``X``, in eval mode.

    ``progress(k)`` is called after each batch with its number of rows (e.g. a tqdm bar's update).
    """
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    was_training = model.training
    model.eval()
    codes, reconstructions = [], []
    try:
        for start in range(0, X.shape[0], batch_size):
            x = rows_as_tensor(X, start, start + batch_size, device=device, dtype=dtype)
            z = model.encode(x)
            codes.append(z.float().cpu().numpy())
            if decode:
                reconstructions.append(model.decode(z).float().cpu().numpy())
            if progress is not None:
                progress(x.shape[0])
    finally:
        model.train(was_training)
    return np.concatenate(codes), (np.concatenate(reconstructions) if decode else None)


def can_decode(model: Autoencoder) -> bool:
    """False for a model whose codes have no decoder (a ``conv_stack``'s pooled features): it has
    no reconstruction metrics or pictures."""
    return bool(getattr(model, "can_decode", True))


def reports_reconstruction(model: Autoencoder) -> bool:
    """Whether the reconstruction metrics and picture mean something: the model decodes and its
    last training reconstructed. Not for a classifier fine-tuned without its decoder (an
    ``mlp_classifier`` with ``reconstruction_weight`` 0: the CAE and stacked-DAE recipes), whose
    decoder still holds the pre-trained layers' weights for an encoder that moved on."""
    if not can_decode(model):
        return False
    if isinstance(model, SupervisedAutoencoder):
        return not (model.reconstruction_weight == 0 and model.needs_targets)
    return True


def code_range(model: Autoencoder) -> tuple[float, float] | None:
    """The interval of the model's code values ((0, 1) for sigmoid units), None when unbounded."""
    return getattr(model.encoder, "code_range", None)


def activity_threshold(model: Autoencoder) -> float:
    """When a unit counts as active: sigmoid-like codes in (0, 1) above one half, others above 0."""
    return 0.5 if code_range(model) == (0.0, 1.0) else 0.0


def code_kind(model: Autoencoder) -> str:
    """What the model's code values are, which decides the unit statistics that mean something:
    ``"bounded"`` (sigmoid or tanh units, :func:`code_range`), ``"dense"`` (linear codes, PSD's
    G·tanh predictor, a ``conv_stack``'s pooled and normalized features: nothing rests at 0) or
    ``"sparse"`` (codes that rest at exactly 0: ReLU, TopK, JumpReLU, shrinkage, inferred codes)."""
    if code_range(model) is not None:
        return "bounded"
    if isinstance(model, ConvStack) or isinstance(model.encoder, ScaledTanhEncoder):
        return "dense"
    activation = getattr(model.encoder, "activation_name", getattr(model.encoder, "activation", None))
    return "dense" if activation in ("identity", "tanh", "sigmoid") else "sparse"


def counts_active_units(model: Autoencoder) -> bool:
    """Whether "active units" (L0) mean something: for codes resting at 0 (active: nonzero) and
    for codes in (0, 1) (active: above one half); not for tanh or linear codes, never at rest."""
    return code_kind(model) == "sparse" or code_range(model) == (0.0, 1.0)


def unit_activity(model: Autoencoder, Z: Any) -> dict[str, Any]:
    """:func:`~sparseae.evaluate.sparsity_stats` of the codes ``Z`` (n, n_components) of ``model``,
    by the rules that fit its units: active above :func:`activity_threshold`; dead (see
    :func:`~sparseae.evaluate.metrics.dead_unit_mask`) when never nonzero for codes resting at 0,
    else when its values span at most 1% of the code range (of the widest unit's span for
    unbounded codes); adds ``dead_rule``, that rule in words."""
    threshold = activity_threshold(model)
    rule = "never_active" if code_kind(model) == "sparse" else "span"
    stats = sparsity_stats(Z, activation_range=code_range(model), threshold=threshold,
                           dead_threshold=threshold, dead_rule=rule)
    stats["dead_rule"] = describe_dead_rule(rule, stats["dead_limit"], activation_range=code_range(model))
    return stats


def sparsity_target(model: Autoencoder) -> float | None:
    """ρ of the model's KL sparsity penalty, or None when it has none."""
    for penalty in model.penalties.values():
        if isinstance(penalty, KLSparsity):
            return penalty.target
    return None


def reports_contraction(model: Autoencoder) -> bool:
    """Whether the metrics include Rifai et al.'s figures (mean ‖J_f(x)‖_F, saturated units): for
    a model with a contractive penalty, and for every one-layer sigmoid encoder (the models their
    Table 1 compares: AE, DAE, CAE), whose Jacobian has a closed form."""
    if any(isinstance(penalty, ContractivePenalty) for penalty in model.penalties.values()):
        return True
    return has_closed_form(model.encoder) and model.encoder.activation == "sigmoid"


def contraction_metrics(model: Autoencoder, X: Any) -> dict[str, float]:
    """``jacobian_norm``, ``jacobian_sq_per_entry`` and, for codes in (0, 1), ``saturated_fraction``
    of ``model`` on the first :data:`CONTRACTION_MAX_SAMPLES` rows of ``X`` (n, n_features)."""
    stats = contraction_stats(model, X[:CONTRACTION_MAX_SAMPLES])
    metrics = {"jacobian_norm": stats["jacobian_norm"], "jacobian_sq_per_entry": stats["jacobian_sq_per_entry"]}
    if code_range(model) == (0.0, 1.0):
        metrics["saturated_fraction"] = stats["saturated"]
    return metrics


def filter_matrix(model: Autoencoder) -> np.ndarray:
    """What each unit responds to, ``(n_components, n_features)``: the encoder's weight rows when
    the encoder is one linear map (UFLDL's W1), else the decoder's atoms."""
    weight = getattr(model.encoder, "weight", None)
    if not (isinstance(weight, torch.Tensor) and tuple(weight.shape) == (model.n_components, model.n_features)):
        weight = model.decoder.weight.t()
    return weight.detach().float().cpu().numpy()


def kernel_layers(model: Autoencoder) -> list[tuple[str, np.ndarray]] | None:
    """A convolutional model's filters as kernels, one per map and not one per map and location:
    (title, decoder filters ``(n_maps, channels, k, k)``) for a ``conv_sae``, and for each layer of
    a ``conv_stack`` (a higher layer's kernels read the pooled maps of the layer below); None for
    other models."""
    if isinstance(model, ConvStack):
        layers = list(model.layers)
    elif isinstance(model, ConvAutoencoder):
        layers = [model]
    else:
        return None
    result = []
    for index, layer in enumerate(layers):
        bank = layer.decoder.filter_bank().detach().float().cpu().numpy()
        n_maps, channels, size, _ = bank.shape
        title = f"{n_maps} maps, {size}×{size} kernels"
        if index > 0:
            title += f" over layer {index}'s {channels} pooled maps (a row per map)"
        elif channels > 1:
            title += f" over {channels} input channels (a row per map)"
        result.append((f"layer {index + 1}: {title}" if len(layers) > 1 else title, bank))
    return result


def _subsample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, size=limit, replace=False))


def compute_metrics(model: Autoencoder, train_set: Dataset, eval_set: Dataset, *,
                    random_state: int = 0, progress: Callable[[int], Any] | None = None,
                    pretrained: Autoencoder | None = None) -> dict[str, Any]:
    """The final metrics of ``model`` on ``eval_set`` (a flat dict of numbers).

    - ``reconstruction_error`` (mean per-sample ‖x − x̂‖²), ``mean_squared_error`` (per
      element), ``explained_variance`` (only when :func:`reports_reconstruction`);
    - ``mean_l0``, ``active_fraction``, ``activity_threshold`` when :func:`counts_active_units`: a
      unit is active above ``activity_threshold`` (0.5 for codes in (0, 1), else 0);
    - ``dead_units``, ``dead_fraction``, ``dead_rule`` (the rule in words, :func:`unit_activity`);
    - ``rho_hat_mean``/``_min``/``_max`` for bounded codes (sigmoid; tanh mapped to [0, 1]): the
      mean activation ρ̂ of the units; ``sparsity_target``: ρ, for models with KL sparsity;
    - ``orientation_selectivity``: mean over the filters (1 for a straight edge, near 0 for
      noise), when the data are images;
    - ``jacobian_norm``, ``jacobian_sq_per_entry`` and, for codes in (0, 1), ``saturated_fraction``
      (:func:`~sparseae.evaluate.contraction_stats` on the first 2,000 evaluation samples) when
      :func:`reports_contraction`; the same three, prefixed ``pretrained_``, of ``pretrained`` (a
      deep model's first greedily pre-trained layer, before fine-tuning: what Rifai et al. report);
    - ``classifier_error``: for a model with a classifier head, its error rate on the evaluation
      set (and, for DrSAE, ``units_n_part_units``, ``units_n_categorical_units``,
      ``units_median_angle``: the part/categorical split of the encoder–decoder angles);
    - ``probe_accuracy``, when the data has labels: a logistic regression on the codes, trained
      on up to 10,000 training samples and tested on up to 10,000 evaluation samples (or, without
      a separate evaluation set, on a held-out 20% of the training set).

    ``progress(k)``: called as the evaluation set is encoded, ``k`` rows at a time.
    """
    X = eval_set.X
    Z, X_hat = encode_decode(model, X, decode=reports_reconstruction(model), progress=progress)
    metrics: dict[str, Any] = {} if X_hat is None else {
        "reconstruction_error": reconstruction_error(X, X_hat),
        "mean_squared_error": mean_squared_error(X, X_hat),
        "explained_variance": explained_variance(X, X_hat),
    }
    stats = unit_activity(model, Z)
    if counts_active_units(model):
        metrics.update(activity_threshold=activity_threshold(model), mean_l0=stats["mean_l0"],
                       active_fraction=stats["active_fraction"])
    metrics.update(dead_units=stats["dead_units"], dead_fraction=stats["dead_fraction"],
                   dead_rule=stats["dead_rule"])
    if code_kind(model) == "bounded":
        rho_hat = stats["rho_hat"]
        metrics.update(rho_hat_mean=float(rho_hat.mean()), rho_hat_min=float(rho_hat.min()),
                       rho_hat_max=float(rho_hat.max()))
    target = sparsity_target(model)
    if target is not None:
        metrics["sparsity_target"] = target
    if eval_set.image_shape is not None:
        metrics["orientation_selectivity"] = float(
            orientation_selectivity(filter_matrix(model), eval_set.image_shape).mean())
    for prefix, which in (("", model), ("pretrained_", pretrained)):
        if which is not None and reports_contraction(which):
            metrics.update({prefix + k: v for k, v in contraction_metrics(which, X).items()})
    if train_set.y is not None and (eval_set is train_set or eval_set.y is not None):
        rng = np.random.default_rng(random_state)
        if eval_set is train_set:
            order = rng.permutation(len(X))
            n_test = max(1, int(round(len(X) * PROBE_TEST_FRACTION)))
            test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
            train_idx = train_idx[_subsample(len(train_idx), PROBE_MAX_SAMPLES, rng)]
            test_idx = test_idx[_subsample(len(test_idx), PROBE_MAX_SAMPLES, rng)]
            Z_train, Z_test = Z[train_idx], Z[test_idx]
            y_train, y_test = train_set.y[train_idx], train_set.y[test_idx]
        else:
            train_idx = _subsample(train_set.n_samples, PROBE_MAX_SAMPLES, rng)
            test_idx = _subsample(eval_set.n_samples, PROBE_MAX_SAMPLES, rng)
            Z_train, _ = encode_decode(model, train_set.X[train_idx], decode=False)
            Z_test, y_train, y_test = Z[test_idx], train_set.y[train_idx], eval_set.y[test_idx]
        try:
            probe = linear_probe(Z_train, y_train, Z_test, y_test, random_state=random_state)
        except DataError as exc:  # e.g. a single class: the probe is skipped, not the run
            metrics["probe_skipped"] = str(exc)
        else:
            metrics["probe_accuracy"] = probe["accuracy"]
    if isinstance(model, SupervisedAutoencoder) and eval_set.y is not None:
        labels = np.asarray(eval_set.y)
        if labels.min() >= 0 and labels.max() < model.n_classes:
            metrics["classifier_error"] = error_rate(model, X, labels)
        if isinstance(model, DrSAE):  # the paper's unit analysis
            metrics.update({f"units_{k}": v for k, v in encoder_decoder_angles(model).summary().items()
                            if k != "n_units"})  # n_units: the code units, among the facts
    return metrics


def unit_arrangement(model: Autoencoder) -> tuple[str, Any] | None:
    """Where the model's code units sit, to draw its filters there: ``("grid", (height, width))``
    for grid groups (unit i at row i // width, column i % width), ``("tree", parent)`` for tree
    groups or a tree-form model (its ``tree`` parameter: a parent list or spec), else None."""
    params = getattr(model, "spec", {}).get("params", {})
    if isinstance(params.get("groups"), dict):
        groups = make_groups(params["groups"])
        if groups.kind == "grid":
            return "grid", (groups.spec["height"], groups.spec["width"])
        if groups.kind == "tree":
            return "tree", groups.parent
    if params.get("tree") is not None:
        return "tree", params["tree"]
    return None


@torch.no_grad()
def class_predictions(model: SupervisedAutoencoder, X: np.ndarray, *,
                      batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """The classifier head's predicted class of every row of ``X`` (n, n_features) → (n,) int64."""
    parameter = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([
            model.predict_logits(rows_as_tensor(X, start, start + batch_size).to(parameter))
            .argmax(dim=1).cpu().numpy() for start in range(0, X.shape[0], batch_size)])
    finally:
        model.train(was_training)


def confusion_matrix(model: SupervisedAutoencoder, eval_set: Dataset) -> np.ndarray | None:
    """Counts ``(n_classes, n_classes)``: row = true class, column = the head's prediction; None
    without labels in 0..n_classes−1."""
    if eval_set.y is None:
        return None
    labels = np.asarray(eval_set.y).astype(np.int64)
    if labels.min() < 0 or labels.max() >= model.n_classes:
        return None
    predicted = class_predictions(model, eval_set.X)
    counts = np.zeros((model.n_classes, model.n_classes), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def hamming_precision_recall(model: Autoencoder, eval_set: Dataset, *, threshold: float = 0.5,
                             max_items: int = RETRIEVAL_MAX_ITEMS, n_queries: int = RETRIEVAL_QUERIES,
                             random_state: int = 0) -> PrecisionRecallCurve | None:
    """Precision and recall of Hamming ranking by radius (:func:`~sparseae.retrieval.precision_recall_curve`)
    on a random subsample of ``max_items`` labelled items: ``n_queries`` of them query the rest, an item
    being relevant when its label equals the query's. None without labels or with too few items."""
    from ..retrieval import binarize, hamming_distances, pack_bits, precision_recall_curve

    if eval_set.y is None or eval_set.n_samples < 2:
        return None
    rows = _subsample(eval_set.n_samples, max_items, np.random.default_rng(random_state))
    Z, _ = encode_decode(model, eval_set.X[rows], decode=False)
    packed = pack_bits(binarize(Z, threshold=threshold))
    labels = np.asarray(eval_set.y)[rows]
    order = np.random.default_rng(random_state + 1).permutation(len(rows))
    queries, database = order[:min(n_queries, len(rows) // 2)], order[min(n_queries, len(rows) // 2):]
    distances = hamming_distances(packed[queries], packed[database])
    return precision_recall_curve(labels[queries], labels[database], distances, n_bits=model.n_components)


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
                out_dir: Path, *, random_state: int = 0) -> list[Path]:
    """Write the run's PNGs into ``out_dir``; returns their paths.

    ``curves.png`` (:func:`write_curves`, when there is a history); ``filters.png`` and
    ``reconstructions.png`` (when the data has an ``image_shape``, the latter when
    :func:`reports_reconstruction`; the filters in the model's topographic grid or tree when it
    has grid or tree groups, a convolutional model's as kernels one per map,
    :func:`kernel_layers`, a ``local_sae``'s as each unit's own kernel on its sheet);
    ``activity.png`` (per unit, how often it is active for codes resting at 0, else the span of
    its values; dead units, by :func:`unit_activity`'s rule stated in the title, in red); for a model with a classifier head ``confusion.png``; for a hashing model
    (:data:`HASHING_MODELS`) ``precision_recall.png`` (:func:`hamming_precision_recall`); for
    DrSAE ``angles.png`` (:func:`~sparseae.viz.save_unit_angles`).
    """
    from ..viz import (save_activity_histogram, save_confusion_matrix, save_filters, save_kernels,
                       save_precision_recall, save_reconstructions, save_unit_angles)
    from ..viz.tree import save_filter_tree

    paths = []
    curves = write_curves(history, out_dir)
    if curves is not None:
        paths.append(curves)
    kernels = kernel_layers(model) if eval_set.image_shape is not None else None
    if kernels is not None:
        paths.append(save_kernels(kernels, out_dir / "filters.png"))
    elif eval_set.image_shape is not None and isinstance(model, LocalAutoencoder):
        channels, size = model.encoder.input_shape[0], model.encoder.kernel_size
        sheet = model.sheet_shape
        title = (f"{sheet[0] * sheet[1]} units' own {size}×{size} filters on their {sheet[0]}×{sheet[1]} sheet"
                 + (f" ({channels} channels stacked)" if channels > 1 else ""))
        paths.append(save_filters(model.sheet_atoms().float().cpu().numpy(), out_dir / "filters.png",
                                  (channels * size, size), layout=sheet, title=title))
    elif eval_set.image_shape is not None:
        W = filter_matrix(model)
        # a deep model's filters are its first layer's units, not the code units
        code_units = W.shape[0] == model.n_components
        arrangement = unit_arrangement(model) if code_units else None
        title = f"{W.shape[0]} filters" if code_units else f"{W.shape[0]} first-layer filters"
        if arrangement is not None and arrangement[0] == "tree":
            paths.append(save_filter_tree(W, arrangement[1], out_dir / "filters.png", eval_set.image_shape,
                                          title=f"{title}, tree layout"))
        elif arrangement is not None and arrangement[0] == "grid":
            layout = arrangement[1]
            paths.append(save_filters(W, out_dir / "filters.png", eval_set.image_shape, layout=layout,
                                      title=f"{title}, topographic {layout[0]}×{layout[1]} grid"))
        else:
            paths.append(save_filters(W, out_dir / "filters.png", eval_set.image_shape, title=title))
    if eval_set.image_shape is not None and reports_reconstruction(model):
        _, X_hat = encode_decode(model, eval_set.X[:10])
        paths.append(save_reconstructions(eval_set.X[:10], X_hat, out_dir / "reconstructions.png",
                                          eval_set.image_shape))
    rows = _subsample(eval_set.n_samples, PROBE_MAX_SAMPLES, np.random.default_rng(random_state))
    Z, _ = encode_decode(model, eval_set.X[rows], decode=False)
    stats = unit_activity(model, Z)
    if code_kind(model) == "sparse":
        values, xlabel = stats["activation_frequency"], "activation frequency (fraction of samples with z ≠ 0)"
    else:
        values, xlabel = stats["span"], "span of the unit's values over the samples (max − min)"
    paths.append(save_activity_histogram(values, out_dir / "activity.png", dead_threshold=stats["dead_limit"],
                                         xlabel=xlabel, rule=stats["dead_rule"]))
    if isinstance(model, SupervisedAutoencoder):
        counts = confusion_matrix(model, eval_set)
        if counts is not None:
            error = 1.0 - np.trace(counts) / counts.sum()
            paths.append(save_confusion_matrix(counts, out_dir / "confusion.png",
                                               title=f"classifier error {100 * error:.2f}% "
                                                     f"({counts.sum()} samples)"))
    if getattr(model, "spec", {}).get("name") in HASHING_MODELS:
        curve = hamming_precision_recall(model, eval_set, random_state=random_state)
        if curve is not None:
            paths.append(save_precision_recall([(f"{model.n_components}-bit codes", curve.precision, curve.recall)],
                                               out_dir / "precision_recall.png",
                                               title="Hamming ranking (radius 0, 1, 2, ...)"))
    if isinstance(model, DrSAE):
        angles = encoder_decoder_angles(model)
        norms = model.head.weight.detach().float().norm(dim=0).cpu().numpy()
        paths.append(save_unit_angles(angles.angles, out_dir / "angles.png", part_below=angles.part_below,
                                      categorical_above=angles.categorical_above, classifier_norms=norms))
    return paths

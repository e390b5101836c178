"""What a trained model does on data: the metrics of a run (summary.json, ``evaluate``, the report).

Shared by ``sparseae train``, ``evaluate``, ``plot`` and ``report`` (:mod:`sparseae.report`), so they
always agree. Nothing here prints.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import Dataset
from ..errors import DataError
from ..evaluate import (
    contraction_stats,
    explained_variance,
    linear_probe,
    mean_squared_error,
    orientation_selectivity,
    reconstruction_error,
    sparsity_stats,
)
from ..evaluate.metrics import describe_dead_rule
from ..evaluate.probe import confusion_matrix as label_confusion_matrix
from ..groups import make_groups
from ..inference import evaluating, map_rows, placement, row_batches
from ..models import Autoencoder, SupervisedAutoencoder
from ..models.conv_stack import ConvStack
from ..models.convolutional import ConvAutoencoder
from ..models.drsae import DrSAE, encoder_decoder_angles
from ..models.supervised import error_rate
from ..models.transcoder import Transcoder
from ..nn.amortized import ScaledTanhEncoder
from ..nn.jacobian import has_closed_form
from ..nn.penalties import ContractivePenalty, KLSparsity

if TYPE_CHECKING:
    from ..retrieval import PrecisionRecallCurve


#: At most this many samples are encoded for the linear probe's training and test sets each,
#: and for the activity plot (the metrics themselves use every sample).
PROBE_MAX_SAMPLES = 10_000
#: Fraction of the training set held out for the probe when there is no separate test set.
PROBE_TEST_FRACTION = 0.2
EVAL_BATCH_SIZE = 4096
#: Models whose codes are bits (thresholded at 0.5): their pictures add a precision-recall curve.
HASHING_MODELS = ("semantic_hashing", "binary_autoencoder")
#: Items (of the evaluation set) in the precision-recall curve, and the queries among them.
RETRIEVAL_MAX_ITEMS = 2000
RETRIEVAL_QUERIES = 200
#: Samples (the evaluation set's first) whose encoder Jacobian the contraction metrics average.
CONTRACTION_MAX_SAMPLES = 2000


# ------------------------------------------------------------------------------------- data


def encode_decode(model: Autoencoder, X: np.ndarray, *, decode: bool = True,
                  batch_size: int = EVAL_BATCH_SIZE, progress: Callable[[int], Any] | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes ``(n, n_components)`` and reconstructions ``(n, n_features)`` of ``X``, in eval mode.

    ``progress(k)`` is called after each batch with its number of rows (e.g. a tqdm bar's update).
    """
    device, dtype = placement(model)
    codes, reconstructions = [], []
    with evaluating(model):
        for _, x in row_batches(X, batch_size, device=device, dtype=dtype):
            z = model.encode(x)
            codes.append(z.float().cpu().numpy())
            if decode:
                reconstructions.append(model.decode(z).float().cpu().numpy())
            if progress is not None:
                progress(x.shape[0])
    return np.concatenate(codes), (np.concatenate(reconstructions) if decode else None)


def can_decode(model: Autoencoder) -> bool:
    """False for a model whose codes have no decoder (a ``conv_stack``'s pooled features): it has
    no reconstruction metrics or pictures."""
    return model.can_decode


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
    return model.code_range


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
    return "dense" if model.code_activation in ("identity", "tanh", "sigmoid") else "sparse"


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
    return model.unit_filters().detach().float().cpu().numpy()


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


def latent_firing_rates(Z: np.ndarray) -> np.ndarray:
    """Each latent's firing frequency (n_components,) float64: the share of the rows of the codes
    ``Z`` (n, n_components) where it is nonzero (SAELens's feature sparsity before its log10)."""
    if len(Z) == 0:
        raise DataError("firing rates need at least one encoded row")
    return (np.asarray(Z) != 0).mean(axis=0, dtype=np.float64)


#: A latent firing on fewer than this share of rows (but on some) is rare; on more than
#: :data:`DENSE_FIRING_RATE` (SAEBench's 10%), dense.
RARE_FIRING_RATE = 1e-4
DENSE_FIRING_RATE = 0.1


def firing_counts(rates: Any) -> dict[str, Any]:
    """Counts of the per-latent firing rates ``rates`` (n_components,) in [0, 1]: ``n_latents``,
    ``dead`` (never fire), ``rare`` (0 < rate < :data:`RARE_FIRING_RATE`), ``dense`` (rate >
    :data:`DENSE_FIRING_RATE`), and the ``median_rate`` and ``mean_rate``. :class:`DataError` for
    rates that are not finite numbers in [0, 1], or none."""
    try:
        values = np.asarray(rates, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("firing rates must be numbers in [0, 1]") from None
    if values.ndim != 1 or values.size == 0:
        raise DataError(f"firing rates must be a non-empty list, one per latent; got shape {values.shape}")
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise DataError("firing rates must be finite numbers in [0, 1]")
    return {"n_latents": int(values.size), "dead": int((values == 0).sum()),
            "rare": int(((values > 0) & (values < RARE_FIRING_RATE)).sum()),
            "dense": int((values > DENSE_FIRING_RATE).sum()),
            "median_rate": float(np.median(values)), "mean_rate": float(values.mean())}


def describe_firing(counts: dict[str, Any]) -> str:
    """One line of :func:`firing_counts`: dead, rare and dense latents of how many, median rate."""
    return (f"firing: {counts['dead']} of {counts['n_latents']} latents dead (never fire), {counts['rare']} rare "
            f"(fire on under {100 * RARE_FIRING_RATE:g}% of rows), {counts['dense']} dense (over "
            f"{100 * DENSE_FIRING_RATE:g}%); median firing rate {counts['median_rate']:.4g}")


def compute_metrics(model: Autoencoder, train_set: Dataset, eval_set: Dataset, *,
                    random_state: int = 0, progress: Callable[[int], Any] | None = None,
                    pretrained: Autoencoder | None = None, firing_rates: bool = False) -> dict[str, Any]:
    """The final metrics of ``model`` on ``eval_set`` (a flat dict of numbers).

    - ``reconstruction_error`` (mean per-sample ‖x − x̂‖²), ``mean_squared_error`` (per
      element), ``explained_variance`` (only when :func:`reports_reconstruction`); for a
      transcoder all three against the evaluation set's target rows (ŷ against y), and ``target_fvu``;
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
    ``firing_rates``: also ``firing_rates``, the list of :func:`latent_firing_rates` on the
    evaluation set, for a model whose codes rest at 0 (an SAE; :func:`code_kind` ``"sparse"``).
    """
    X = eval_set.X
    Z, X_hat = encode_decode(model, X, decode=reports_reconstruction(model), progress=progress)
    truth = X
    if isinstance(model, Transcoder):  # its decoder predicts the target rows, not X
        if eval_set.targets is None:
            raise DataError(f"a transcoder is evaluated on target rows; dataset {eval_set.name!r} has none")
        truth = eval_set.targets
    metrics: dict[str, Any] = {} if X_hat is None else {
        "reconstruction_error": reconstruction_error(truth, X_hat),
        "mean_squared_error": mean_squared_error(truth, X_hat),
        "explained_variance": explained_variance(truth, X_hat),
    }
    if X_hat is not None and truth is not X:
        metrics["target_fvu"] = 1.0 - metrics["explained_variance"]
    metrics.update(_code_metrics(model, Z, eval_set.image_shape))
    if firing_rates and code_kind(model) == "sparse" and Z.shape[1] == model.n_components:
        metrics["firing_rates"] = latent_firing_rates(Z).tolist()
    for prefix, which in (("", model), ("pretrained_", pretrained)):
        if which is not None and reports_contraction(which):
            metrics.update({prefix + k: v for k, v in contraction_metrics(which, X).items()})
    if train_set.y is not None and (eval_set is train_set or eval_set.y is not None):
        metrics.update(_probe_metrics(model, Z, train_set, eval_set, random_state))
    if isinstance(model, SupervisedAutoencoder) and eval_set.y is not None:
        metrics.update(_classifier_metrics(model, X, np.asarray(eval_set.y)))
    return metrics


def _code_metrics(model: Autoencoder, Z: np.ndarray, image_shape: tuple[int, ...] | None) -> dict[str, Any]:
    """Activity, dead units, mean activation ρ̂ and the sparsity target of the codes Z
    (n_samples, n_components); the filters' orientation selectivity when the data are images."""
    metrics: dict[str, Any] = {}
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
    if image_shape is not None:
        metrics["orientation_selectivity"] = float(
            orientation_selectivity(filter_matrix(model), image_shape).mean())
    return metrics


def _probe_metrics(model: Autoencoder, Z: np.ndarray, train_set: Dataset, eval_set: Dataset,
                   random_state: int) -> dict[str, Any]:
    """``probe_accuracy`` of a logistic regression on the codes (``probe_skipped`` with the reason
    when the labels cannot train one). ``Z``: the codes of ``eval_set`` (n_eval, n_components)."""
    rng = np.random.default_rng(random_state)
    if eval_set is train_set:  # a held-out share of the training set tests the probe
        order = rng.permutation(len(Z))
        n_test = max(1, int(round(len(Z) * PROBE_TEST_FRACTION)))
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
        return {"probe_skipped": str(exc)}
    return {"probe_accuracy": probe["accuracy"]}


def _classifier_metrics(model: SupervisedAutoencoder, X: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``classifier_error`` of the model's head on (X, labels) when the labels are its classes;
    DrSAE's part/categorical unit analysis."""
    metrics: dict[str, Any] = {}
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
    params = model.spec.get("params", {})
    if isinstance(params.get("groups"), dict):
        groups = make_groups(params["groups"])
        if groups.kind == "grid":
            return "grid", (groups.spec["height"], groups.spec["width"])
        if groups.kind == "tree":
            return "tree", groups.parent
    if params.get("tree") is not None:
        return "tree", params["tree"]
    return None


def class_predictions(model: SupervisedAutoencoder, X: np.ndarray, *,
                      batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """The classifier head's predicted class of every row of ``X`` (n, n_features) → (n,) int64."""
    return map_rows(model, X, lambda rows: model.predict_logits(rows).argmax(dim=1), batch_size=batch_size,
                    out_dtype=None)


def confusion_matrix(model: SupervisedAutoencoder, eval_set: Dataset) -> np.ndarray | None:
    """Counts ``(n_classes, n_classes)``: row = true class, column = the head's prediction; None
    without labels in 0..n_classes−1."""
    if eval_set.y is None:
        return None
    labels = np.asarray(eval_set.y).astype(np.int64)
    if labels.min() < 0 or labels.max() >= model.n_classes:
        return None
    predicted = class_predictions(model, eval_set.X)
    return label_confusion_matrix(labels, predicted, labels=np.arange(model.n_classes))


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

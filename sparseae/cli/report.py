"""What a trained model does on data: the metrics of a run and its pictures.

Shared by ``sparseae train`` (summary.json and the PNGs), ``evaluate`` and ``plot``, so the three
always agree. Nothing here prints.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config import RunConfig
from ..data import Dataset, load_dataset, unit_norm_rows
from ..errors import DataError
from ..evaluate import (explained_variance, linear_probe, mean_squared_error, orientation_selectivity,
                        reconstruction_error, sparsity_stats)
from ..models import Autoencoder, SupervisedAutoencoder
from ..models.drsae import DrSAE, encoder_decoder_angles
from ..models.supervised import error_rate
from ..nn.penalties import KLSparsity

#: At most this many samples are encoded for the linear probe's training and test sets each,
#: and for the activity plot (the metrics themselves use every sample).
PROBE_MAX_SAMPLES = 10_000
#: Fraction of the training set held out for the probe when there is no separate test set.
PROBE_TEST_FRACTION = 0.2
EVAL_BATCH_SIZE = 4096


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

@torch.no_grad()
def encode_decode(model: Autoencoder, X: np.ndarray, *, decode: bool = True,
                  batch_size: int = EVAL_BATCH_SIZE) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes ``(n, n_components)`` and reconstructions ``(n, n_features)`` of ``X``, in eval mode."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    was_training = model.training
    model.eval()
    codes, reconstructions = [], []
    try:
        for start in range(0, X.shape[0], batch_size):
            x = torch.as_tensor(np.asarray(X[start:start + batch_size]), device=device, dtype=dtype)
            z = model.encode(x)
            codes.append(z.float().cpu().numpy())
            if decode:
                reconstructions.append(model.decode(z).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(codes), (np.concatenate(reconstructions) if decode else None)


def code_range(model: Autoencoder) -> tuple[float, float] | None:
    """The interval of the model's code values ((0, 1) for sigmoid units), None when unbounded."""
    return getattr(model.encoder, "code_range", None)


def activity_threshold(model: Autoencoder) -> float:
    """When a unit counts as active: sigmoid-like codes in (0, 1) above one half, others above 0."""
    return 0.5 if code_range(model) == (0.0, 1.0) else 0.0


def sparsity_target(model: Autoencoder) -> float | None:
    """ρ of the model's KL sparsity penalty, or None when it has none."""
    for penalty in model.penalties.values():
        if isinstance(penalty, KLSparsity):
            return penalty.target
    return None


def filter_matrix(model: Autoencoder) -> np.ndarray:
    """What each unit responds to, ``(n_components, n_features)``: the encoder's weight rows when
    the encoder is one linear map (UFLDL's W1), else the decoder's atoms."""
    weight = getattr(model.encoder, "weight", None)
    if not (isinstance(weight, torch.Tensor) and tuple(weight.shape) == (model.n_components, model.n_features)):
        weight = model.decoder.weight.t()
    return weight.detach().float().cpu().numpy()


def _subsample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, size=limit, replace=False))


def compute_metrics(model: Autoencoder, train_set: Dataset, eval_set: Dataset, *,
                    random_state: int = 0) -> dict[str, Any]:
    """The final metrics of ``model`` on ``eval_set`` (a flat dict of numbers).

    - ``reconstruction_error`` (mean per-sample ‖x − x̂‖²), ``mean_squared_error`` (per
      element), ``explained_variance``;
    - ``mean_l0``, ``active_fraction``, ``dead_units``, ``dead_fraction``: a unit is active above
      ``activity_threshold`` (0.5 for codes in (0, 1) such as sigmoid units, else 0) and dead
      when never active;
    - ``rho_hat_mean``/``_min``/``_max``: the mean activation ρ̂ of the units (tanh codes mapped
      to [0, 1]); ``sparsity_target``: ρ, for models with KL sparsity;
    - ``orientation_selectivity``: mean over the filters (1 for a straight edge, near 0 for
      noise), when the data are images;
    - ``classifier_error``: for a model with a classifier head, its error rate on the evaluation
      set (and, for DrSAE, ``units_*``: the part/categorical split of the encoder–decoder angles);
    - ``probe_accuracy``, when the data has labels: a logistic regression on the codes, trained
      on up to 10,000 training samples and tested on up to 10,000 evaluation samples (or, without
      a separate evaluation set, on a held-out 20% of the training set).
    """
    X = eval_set.X
    Z, X_hat = encode_decode(model, X)
    metrics: dict[str, Any] = {
        "reconstruction_error": reconstruction_error(X, X_hat),
        "mean_squared_error": mean_squared_error(X, X_hat),
        "explained_variance": explained_variance(X, X_hat),
    }
    threshold = activity_threshold(model)
    stats = sparsity_stats(Z, activation_range=code_range(model), threshold=threshold,
                           dead_threshold=threshold)
    rho_hat = stats["rho_hat"]
    metrics.update(activity_threshold=threshold, mean_l0=stats["mean_l0"],
                   active_fraction=stats["active_fraction"],
                   dead_units=stats["dead_units"], dead_fraction=stats["dead_fraction"],
                   rho_hat_mean=float(rho_hat.mean()), rho_hat_min=float(rho_hat.min()),
                   rho_hat_max=float(rho_hat.max()))
    target = sparsity_target(model)
    if target is not None:
        metrics["sparsity_target"] = target
    if eval_set.image_shape is not None:
        metrics["orientation_selectivity"] = float(
            orientation_selectivity(filter_matrix(model), eval_set.image_shape).mean())
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
            metrics.update({f"units_{k}": v for k, v in encoder_decoder_angles(model).summary().items()})
    return metrics


def write_plots(model: Autoencoder, history: Sequence[dict[str, Any]], eval_set: Dataset,
                out_dir: Path, *, random_state: int = 0) -> list[Path]:
    """Write the run's PNGs into ``out_dir``; returns their paths.

    ``curves.png`` (per-epoch losses, when there is a history), ``filters.png`` and
    ``reconstructions.png`` (when the data has an ``image_shape``), ``activity.png`` (per-unit mean
    activation ρ̂ for bounded codes such as sigmoid units, activation frequency otherwise),
    and for DrSAE ``angles.png`` (:func:`~sparseae.viz.save_unit_angles`).
    """
    from ..viz import (save_activity_histogram, save_curves, save_filters, save_reconstructions,
                       save_unit_angles)

    paths = []
    if history:
        keys = [key for key in history[-1] if key not in ("epoch", "seconds")
                and isinstance(history[-1][key], (int, float))]
        paths.append(save_curves(list(history), out_dir / "curves.png", keys=keys or None))
    if eval_set.image_shape is not None:
        paths.append(save_filters(filter_matrix(model), out_dir / "filters.png", eval_set.image_shape,
                                  title=f"{model.n_components} filters"))
        _, X_hat = encode_decode(model, eval_set.X[:10])
        paths.append(save_reconstructions(eval_set.X[:10], X_hat, out_dir / "reconstructions.png",
                                          eval_set.image_shape))
    rows = _subsample(eval_set.n_samples, PROBE_MAX_SAMPLES, np.random.default_rng(random_state))
    Z, _ = encode_decode(model, eval_set.X[rows], decode=False)
    bounded = code_range(model)
    stats = sparsity_stats(Z, activation_range=bounded)
    paths.append(save_activity_histogram(stats["rho_hat"] if bounded else stats["activation_frequency"],
                                         out_dir / "activity.png"))
    if isinstance(model, DrSAE):
        angles = encoder_decoder_angles(model)
        norms = model.head.weight.detach().float().norm(dim=0).cpu().numpy()
        paths.append(save_unit_angles(angles.angles, out_dir / "angles.png", part_below=angles.part_below,
                                      categorical_above=angles.categorical_above, classifier_norms=norms))
    return paths

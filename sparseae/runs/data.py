"""The data of a run (its training and evaluation sets, as its config says) and where a trained
model runs to be evaluated."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ..config import RunConfig
from ..data import Dataset, load_dataset, unit_norm_rows
from ..devices import check_device_name, device_problem
from ..errors import ConfigError, DataError
from ..train.config import TrainConfig


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


def data_provenance(config: RunConfig) -> dict[str, Any] | None:
    """Where a ``shards`` run's activations came from (the folder's ``harvest.json``: model,
    layer, position, tokens... see :func:`sparseae.data.harvest.harvest_activations`), else None."""
    from ..data.harvest import read_provenance

    path = config.data_options.get("path") if config.data_name == "shards" else None
    return read_provenance(path) if isinstance(path, str) and path else None


def describe_data(config: RunConfig) -> str:
    """A short name of the evaluation set: ``mnist(split=test)`` (only the options that differ)."""
    spec = config.test_data_spec()
    if spec is None:
        return config.data_name
    changed = {k: v for k, v in spec[1].items() if config.data_options.get(k) != v}
    options = ", ".join(f"{k}={v}" for k, v in changed.items())
    return f"{spec[0]}({options})" if options else spec[0]


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

"""Evaluations of the learned features on other data: the self-taught learning probe (``probe``)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ..data import load_datasets
from .registry import FinishedRun, register_evaluation


@register_evaluation("probe", metrics=("transfer_accuracy", "transfer_raw_accuracy", "transfer_n_train",
                                       "transfer_n_test"))
def _probe(run: FinishedRun, *, data: Mapping[str, Any], test_fraction: float = 0.5, C: float = 1.0,
           seed: int = 0) -> dict[str, float]:
    """Self-taught learning (UFLDL): the run's model encodes *other* labelled data (``data``: changes
    of the run's data section, e.g. ``{classes: [0, 1, 2, 3, 4]}``), split ``test_fraction`` held out;
    a logistic regression on the codes against the same probe on the raw inputs
    (:func:`~sparseae.evaluate.probe.split_probe`, as ``sparseae probe --compare-raw``)."""
    from ...evaluate.probe import split_probe
    from ..metrics import encode_decode

    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"evaluate.data must be a non-empty mapping of data-section changes, got {data!r}")
    config = run.config.override({f"data.{key}": value for key, value in data.items()})
    dataset, _ = load_datasets(config)
    if dataset.y is None:
        raise DataError(f"dataset {config.data_name!r} has no labels: the probe needs labelled data")
    X = np.asarray(dataset.X)
    codes, _ = encode_decode(run.model, X, decode=False)
    result = split_probe(codes, dataset.y, X_raw=X, test_fraction=test_fraction, C=C, random_state=seed)
    return {"transfer_accuracy": result["accuracy"], "transfer_raw_accuracy": result["raw_accuracy"],
            "transfer_n_train": result["n_train"], "transfer_n_test": result["n_test"]}

"""Semantic hashing against ITQ on the run's labelled data (``hashing_vs_itq``)."""
from __future__ import annotations

import numpy as np

from ...errors import DataError
from ..data import load_datasets
from .registry import FinishedRun, register_evaluation

# ------------------------------------------------------------------------------ semantic hashing

@register_evaluation("hashing_vs_itq", metrics=("hashing_map", "hashing_precision_r2", "hashing_hit_r2", "itq_map",
                                                "itq_precision_r2", "itq_hit_r2", "hashing_map_gain",
                                                "hashing_queries"))
def _hashing_vs_itq(run: FinishedRun, *, n_per_class: int = 100, seed: int = 0, itq_iter: int = 50
                    ) -> dict[str, float]:
    """Semantic hashing (Salakhutdinov & Hinton 2009) on the run's labelled training set: ``n_per_class``
    random queries per class (:func:`~sparseae.retrieval.mnist_retrieval_split`, ``seed``; MNIST all:
    1,000 against the other 69,000), relevance = same label (labels only score). The run's bits
    (codes thresholded at 0.5) and ITQ's (``itq_iter`` iterations, fitted on the database) with
    as many bits: mAP of exhaustive Hamming ranking, precision within Hamming radius 2 (a query
    retrieving nothing counts 0) and the fraction of queries retrieving anything there
    (:mod:`sparseae.retrieval.metrics`); ``hashing_map_gain``: the run's mAP less ITQ's."""
    from ...retrieval import (
        ITQ,
        binarize,
        hamming_distances,
        mean_average_precision,
        mnist_retrieval_split,
        pack_bits,
        precision_within_radius,
    )
    from ..metrics import encode_decode

    dataset, _ = load_datasets(run.config)
    if dataset.y is None:
        raise DataError(f"dataset {run.config.data_name!r} has no labels: retrieval is scored by the labels")
    X, y = np.asarray(dataset.X), np.asarray(dataset.y)
    queries, database = mnist_retrieval_split(y, n_per_class=n_per_class, random_state=seed)
    codes, _ = encode_decode(run.model, X, decode=False)
    itq = ITQ(run.model.n_components, n_iter=itq_iter, random_state=seed).fit(X[database])
    bits = binarize(codes)
    metrics: dict[str, float] = {"hashing_queries": float(len(queries))}
    for name, (query_bits, database_bits) in (("hashing", (bits[queries], bits[database])),
                                              ("itq", (itq.encode(X[queries]), itq.encode(X[database])))):
        distances = hamming_distances(pack_bits(query_bits), pack_bits(database_bits))
        within = precision_within_radius(y[queries], y[database], distances, radius=2)
        metrics[f"{name}_map"] = float(mean_average_precision(y[queries], y[database], distances))
        metrics[f"{name}_precision_r2"], metrics[f"{name}_hit_r2"] = float(within.precision), float(within.hit_fraction)
    metrics["hashing_map_gain"] = metrics["hashing_map"] - metrics["itq_map"]
    return metrics

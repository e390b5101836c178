"""Retrieval metrics of Hamming ranking and hash lookup, and the MNIST query/database split.

Inputs: ``query_labels`` ``(q,)``, ``database_labels`` ``(n,)`` and ``distances`` ``(q, n)``
(e.g. from :func:`hamming_distances`). An item is relevant to a query when their labels are
equal. Work proceeds in blocks of queries, so memory stays bounded on a 1,000 × 69,000 problem.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import DataError
from ..validation import check_number
from .baselines import _rng

__all__ = ["mean_average_precision", "precision_within_radius", "precision_recall_curve",
           "mnist_retrieval_split", "RadiusPrecision", "PrecisionRecallCurve"]

BLOCK_ELEMENTS = 1 << 22  # (query, item) pairs per block


class RadiusPrecision(NamedTuple):
    precision: float      # mean over queries; a query with no item within the radius counts 0
    hit_fraction: float   # fraction of queries with at least one item within the radius


class PrecisionRecallCurve(NamedTuple):
    radius: np.ndarray     # (n_bits + 1,) Hamming radii 0..n_bits
    precision: np.ndarray  # (n_bits + 1,) NaN where no query retrieves anything
    recall: np.ndarray     # (n_bits + 1,)


def _labels(y: Any, name: str) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) == 0:
        raise DataError(f"{name} must be a non-empty 1-D array of labels, got shape {labels.shape}")
    return labels


def _inputs(query_labels: Any, database_labels: Any, distances: Any, *, integer: bool = False
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(q,)`` labels, ``(n,)`` labels and ``(q, n)`` distances (DataError)."""
    query = _labels(query_labels, "query_labels")
    database = _labels(database_labels, "database_labels")
    if isinstance(distances, torch.Tensor):
        distances = distances.detach().cpu().numpy()
    dist = np.asarray(distances)
    if dist.shape != (len(query), len(database)):
        raise DataError(f"distances must have shape (n_queries, n_database) = ({len(query)}, "
                        f"{len(database)}), got {dist.shape}")
    if dist.dtype.kind not in "iuf":
        raise DataError(f"distances must be numeric, got dtype {dist.dtype}")
    if dist.dtype.kind == "f" and not np.isfinite(dist).all():
        raise DataError("distances contain NaN or inf")
    if integer and (dist.dtype.kind == "f" and (dist != np.round(dist)).any() or (dist < 0).any()):
        raise DataError("distances must be non-negative integers (Hamming distances)")
    return query, database, dist


def mean_average_precision(query_labels: Any, database_labels: Any, distances: Any, *,
                           per_query: bool = False) -> float | np.ndarray:
    """Mean average precision of ranking the database by increasing distance.

    Ties are broken by database order (stable sort). For one query with ``R`` relevant items,
    ``AP = (1/R) Σ_k P@k · rel_k`` over the whole ranking; a query with no relevant item has
    AP 0. Returns the mean over queries, or the APs ``(q,)`` when ``per_query``.
    """
    query, database, dist = _inputs(query_labels, database_labels, distances)
    n = len(database)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    ap = np.empty(len(query))
    block = max(1, BLOCK_ELEMENTS // n)
    for start in range(0, len(query), block):
        order = np.argsort(dist[start:start + block], axis=1, kind="stable")
        relevant = database[order] == query[start:start + block, None]
        hits = np.cumsum(relevant, axis=1)
        n_relevant = hits[:, -1]
        total = np.sum((hits / ranks) * relevant, axis=1)
        ap[start:start + block] = np.where(n_relevant > 0, total / np.maximum(n_relevant, 1), 0.0)
    return ap if per_query else float(ap.mean())


def precision_within_radius(query_labels: Any, database_labels: Any, distances: Any,
                            radius: int = 2) -> RadiusPrecision:
    """Precision of hash lookup: the items within Hamming ``radius`` of each query.

    ``precision`` is the mean over queries of (relevant items within radius) / (items within
    radius), where a query that retrieves nothing counts as precision 0 (the convention of
    Salakhutdinov & Hinton and of ITQ); ``hit_fraction`` is the fraction of queries that
    retrieve at least one item.
    """
    query, database, dist = _inputs(query_labels, database_labels, distances, integer=True)
    check_number(radius, "radius", low=0, integer=True)
    precision = np.empty(len(query))
    retrieved_any = np.empty(len(query), dtype=bool)
    block = max(1, BLOCK_ELEMENTS // len(database))
    for start in range(0, len(query), block):
        within = dist[start:start + block] <= radius
        relevant = database[None, :] == query[start:start + block, None]
        n_within = within.sum(axis=1)
        n_good = (within & relevant).sum(axis=1)
        precision[start:start + block] = np.where(n_within > 0, n_good / np.maximum(n_within, 1), 0.0)
        retrieved_any[start:start + block] = n_within > 0
    return RadiusPrecision(float(precision.mean()), float(retrieved_any.mean()))


def precision_recall_curve(query_labels: Any, database_labels: Any, distances: Any, *,
                           n_bits: int | None = None) -> PrecisionRecallCurve:
    """Precision and recall of hash lookup at each Hamming radius ``0..n_bits``.

    Pooled over all (query, item) pairs (micro-averaged), so radii where few queries retrieve
    anything stay defined:
    ``precision(r) = #relevant pairs within r / #pairs within r`` (NaN when no pair is within
    ``r``) and ``recall(r) = #relevant pairs within r / #relevant pairs``. ``n_bits`` defaults
    to the largest distance.
    """
    query, database, dist = _inputs(query_labels, database_labels, distances, integer=True)
    largest = int(dist.max())
    if n_bits is None:
        n_bits = largest
    check_number(n_bits, "n_bits", low=0, integer=True)
    if largest > n_bits:
        raise DataError(f"distances reach {largest}, more than n_bits={n_bits}")
    levels = int(n_bits) + 1
    pairs, good = np.zeros(levels, dtype=np.int64), np.zeros(levels, dtype=np.int64)
    block = max(1, BLOCK_ELEMENTS // len(database))
    for start in range(0, len(query), block):
        d = dist[start:start + block].astype(np.int64)
        relevant = database[None, :] == query[start:start + block, None]
        pairs += np.bincount(d.ravel(), minlength=levels)
        good += np.bincount(d[relevant], minlength=levels)
    pairs, good = np.cumsum(pairs), np.cumsum(good)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pairs > 0, good / pairs, np.nan)
        recall = good / good[-1] if good[-1] > 0 else np.zeros(levels)
    return PrecisionRecallCurve(np.arange(levels), precision, recall)


def mnist_retrieval_split(y: Any, n_per_class: int = 100, random_state: Any = 0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Query and database indices for the semantic-hashing protocol: ``n_per_class`` random
    queries per class, the database is every other item (MNIST, all 70,000: 1,000 vs 69,000).

    Returns two sorted int64 index arrays that partition ``0..len(y)-1``. Raises
    :class:`DataError` when a class has ``n_per_class`` items or fewer (its database would be empty).
    """
    labels = _labels(y, "y")
    check_number(n_per_class, "n_per_class", low=1, integer=True)
    rng = _rng(random_state)
    classes, counts = np.unique(labels, return_counts=True)
    if (counts <= n_per_class).any():
        small = classes[counts <= n_per_class][0]
        raise DataError(f"class {small!r} has {counts[classes == small][0]} items; n_per_class="
                        f"{n_per_class} queries would leave none of it in the database")
    perm = rng.permutation(len(labels))
    order = perm[np.argsort(labels[perm], kind="stable")]  # grouped by class, random within class
    class_of = np.searchsorted(classes, labels[order])
    rank_in_class = np.arange(len(order)) - (np.cumsum(counts) - counts)[class_of]
    is_query = np.zeros(len(labels), dtype=bool)
    is_query[order[rank_in_class < n_per_class]] = True
    return np.flatnonzero(is_query), np.flatnonzero(~is_query)

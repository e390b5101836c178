"""Feature recovery against a known dictionary (issue 24): how well learned features match the true
ones of synthetic data (:func:`sparseae.data.synthetic.make_superposition`).

* :func:`max_cosine_similarity`: mean over true features of the best cosine with any learned decoder
  direction, and the same from the learned side.
* :func:`code_correlations` and :func:`match_latents`: Pearson correlations between learned and true
  codes, and the one-to-one matching (Hungarian algorithm) that maximizes their sum.
* :func:`absorption_rate`: how often the latent matched to a parent feature stays silent while a
  child's latent fires (feature absorption).
* :func:`recovery_scores`: those, the mean correlation of matched pairs (MCC), the F1 of firing of
  matched pairs, FVU and L0 in one dictionary.

Everything is computed in float64. Cosines and correlations are signed: the codes are non-negative, so
a direction −d is a different feature from d.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import DataError
from ..validation import check_number
from .metrics import fraction_of_variance_unexplained

__all__ = ["absorption_rate", "code_correlations", "firing_f1", "match_latents", "max_cosine_similarity",
           "recovery_scores"]

_ROWS = 8192  # samples per float64 chunk


def _matrix(A: Any, name: str) -> np.ndarray:
    if hasattr(A, "detach"):
        A = A.detach().cpu().numpy()
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise DataError(f"{name} must be a non-empty 2-D array, got shape {A.shape}")
    if A.dtype.kind not in "biuf":
        raise DataError(f"{name} must be numeric, got dtype {A.dtype}")
    if not np.isfinite(A).all():
        raise DataError(f"{name} holds NaN or infinite values")
    return A


def _unit_rows(A: np.ndarray) -> np.ndarray:
    A = A.astype(np.float64)
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    return np.divide(A, norms, out=np.zeros_like(A), where=norms > 0)


def max_cosine_similarity(learned: Any, true: Any) -> tuple[float, float]:
    """``learned`` (m, d) decoder directions and ``true`` (n, d) feature directions (any norms; a zero
    row has cosine 0 with everything). Returns (mean over true features of the largest cosine with a
    learned direction, mean over learned directions of the largest cosine with a true feature)."""
    learned, true = _matrix(learned, "learned directions"), _matrix(true, "true directions")
    if learned.shape[1] != true.shape[1]:
        raise DataError(f"learned directions have {learned.shape[1]} dimensions, true ones {true.shape[1]}")
    cosines = _unit_rows(true) @ _unit_rows(learned).T  # (n, m)
    return float(cosines.max(axis=1).mean()), float(cosines.max(axis=0).mean())


def code_correlations(Z: Any, Z_true: Any) -> np.ndarray:
    """Pearson correlation (m, n) between each learned code column of ``Z`` (n_samples, m) and each true
    code column of ``Z_true`` (n_samples, n), in float64; a constant column correlates 0 with all."""
    Z, Z_true = _matrix(Z, "codes"), _matrix(Z_true, "true codes")
    if Z.shape[0] != Z_true.shape[0]:
        raise DataError(f"codes have {Z.shape[0]} samples, true codes {Z_true.shape[0]}")
    n = Z.shape[0]
    sums, sums_true = np.zeros(Z.shape[1]), np.zeros(Z_true.shape[1])
    squares, squares_true = np.zeros(Z.shape[1]), np.zeros(Z_true.shape[1])
    cross = np.zeros((Z.shape[1], Z_true.shape[1]))
    for start in range(0, n, _ROWS):
        a = Z[start:start + _ROWS].astype(np.float64)
        b = Z_true[start:start + _ROWS].astype(np.float64)
        sums += a.sum(0)
        sums_true += b.sum(0)
        squares += np.einsum("ij,ij->j", a, a)
        squares_true += np.einsum("ij,ij->j", b, b)
        cross += a.T @ b
    covariance = cross / n - np.outer(sums / n, sums_true / n)
    std = np.sqrt(np.maximum(squares / n - (sums / n) ** 2, 0.0))
    std_true = np.sqrt(np.maximum(squares_true / n - (sums_true / n) ** 2, 0.0))
    scale = np.outer(std, std_true)
    tiny = 1e-12 * max(float(scale.max()), 1e-300)
    return np.divide(covariance, scale, out=np.zeros_like(covariance), where=scale > tiny).clip(-1.0, 1.0)


def match_latents(correlations: Any) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one matching of learned latents (rows of ``correlations`` (m, n)) to true features
    (columns) that maximizes the summed correlation (Hungarian algorithm, ``min(m, n)`` pairs).
    Returns (learned indices, true indices), each (min(m, n),) int64."""
    correlations = _matrix(correlations, "correlations")
    rows, cols = linear_sum_assignment(correlations, maximize=True)
    return rows.astype(np.int64), cols.astype(np.int64)


def firing_f1(Z: Any, Z_true: Any, learned: np.ndarray, true: np.ndarray, *, threshold: float = 0.0
              ) -> float:
    """Mean F1 of firing over the true features that fire at least once in ``Z_true`` (n_samples, n):
    for the pair (learned latent ``learned[i]``, true feature ``true[i]``), the prediction "latent >
    ``threshold``" scored against "feature > 0"; a true feature left unmatched scores 0."""
    Z, Z_true = _matrix(Z, "codes"), _matrix(Z_true, "true codes")
    check_number(threshold, "threshold", low=0.0)
    fires_true = Z_true > 0
    active = fires_true.any(axis=0)
    if not active.any():
        raise DataError("no true feature fires in these samples: F1 of firing is undefined")
    scores = np.zeros(Z_true.shape[1])
    predicted = Z[:, learned] > threshold
    actual = fires_true[:, true]
    hits = (predicted & actual).sum(0)
    denominator = predicted.sum(0) + actual.sum(0)
    scores[true] = np.divide(2.0 * hits, denominator, out=np.zeros(len(true)), where=denominator > 0)
    return float(scores[active].mean())


def absorption_rate(Z: Any, Z_true: Any, parents: Any, learned: np.ndarray, true: np.ndarray, *,
                    threshold: float = 0.0) -> tuple[float, float]:
    """Feature absorption: for each true parent feature p with children, over the samples where p and
    at least one of its direct children fire (``Z_true`` (n_samples, n) > 0), the fraction where p's
    matched latent is silent (≤ ``threshold`` in ``Z`` (n_samples, m)) while a matched child's latent
    is active. ``parents`` (n,) int: each feature's parent, −1 for a root; (``learned``, ``true``):
    the matching of :func:`match_latents`.

    Returns (absorption, parent miss): the mean of that fraction over the parents that are matched and
    have such samples, and as a control the mean over parents of the fraction of p's firings *without*
    any child where its latent is silent (a parent latent that is merely weak misses in both; one that
    is absorbed misses only with a child). NaN where no parent qualifies (no hierarchy, never fires)."""
    Z, Z_true = _matrix(Z, "codes"), _matrix(Z_true, "true codes")
    check_number(threshold, "threshold", low=0.0)
    parents = np.asarray(parents)
    if parents.shape != (Z_true.shape[1],) or parents.dtype.kind not in "iu":
        raise DataError(f"parents must be {Z_true.shape[1]} integers (one per true feature), got shape "
                        f"{parents.shape} of dtype {parents.dtype}")
    if ((parents < -1) | (parents >= Z_true.shape[1])).any():
        raise DataError(f"parents must be -1 or a feature index below {Z_true.shape[1]}")
    latent_of = dict(zip(np.asarray(true).tolist(), np.asarray(learned).tolist(), strict=True))
    rates, misses = [], []
    for parent in np.unique(parents[parents >= 0]):
        children = np.nonzero(parents == parent)[0]
        matched = [latent_of[c] for c in children.tolist() if c in latent_of]
        if parent not in latent_of or not matched:
            continue
        child_fires = (Z_true[:, children] > 0).any(axis=1)
        both, alone = (Z_true[:, parent] > 0) & child_fires, (Z_true[:, parent] > 0) & ~child_fires
        silent = Z[:, latent_of[parent]] <= threshold
        if both.any():
            rates.append((both & silent & (Z[:, matched] > threshold).any(axis=1)).sum() / both.sum())
        if alone.any():
            misses.append((alone & silent).sum() / alone.sum())
    return tuple(float(np.mean(values)) if values else float("nan") for values in (rates, misses))


def recovery_scores(X: Any, X_hat: Any, Z: Any, decoder: Any, dictionary: Any, codes: Any, *,
                    threshold: float = 0.0, parents: Any = None) -> dict[str, float]:
    """Scores of a learned model against the truth, on the same samples.

    ``X``, ``X_hat`` (n_samples, d): inputs and reconstructions; ``Z`` (n_samples, m): learned codes;
    ``decoder`` (m, d): learned directions (one row per latent); ``dictionary`` (n, d) and ``codes``
    (n_samples, n): the true ones. A latent is active where its code is > ``threshold``. Returns
    ``l0`` (mean active latents per sample), ``fvu``, ``mmcs`` (mean over true features of the best
    cosine with a learned direction), ``mmcs_learned`` (the same from the learned side), ``mcc`` (Σ of
    the matched code correlations / n: unmatched true features count 0), ``f1`` (:func:`firing_f1`) and
    ``dead`` (share of latents never active); with ``parents`` (n,) (each feature's parent, −1 for a
    root), also ``absorption`` and its control ``parent_miss`` (:func:`absorption_rate` on the same
    matching).
    """
    Z = _matrix(Z, "codes")
    check_number(threshold, "threshold", low=0.0)
    decoder, dictionary = _matrix(decoder, "decoder"), _matrix(dictionary, "dictionary")
    if decoder.shape[0] != Z.shape[1]:
        raise DataError(f"decoder has {decoder.shape[0]} rows but the codes have {Z.shape[1]} latents")
    if dictionary.shape[0] != _matrix(codes, "true codes").shape[1]:
        raise DataError(f"dictionary has {dictionary.shape[0]} rows but the true codes have "
                        f"{np.shape(codes)[1]} features")
    mmcs, mmcs_learned = max_cosine_similarity(decoder, dictionary)
    correlations = code_correlations(Z, codes)
    learned, true = match_latents(correlations)
    active = Z > threshold
    extra = {} if parents is None else dict(zip(
        ("absorption", "parent_miss"), absorption_rate(Z, codes, parents, learned, true, threshold=threshold),
        strict=True))
    return {"l0": float(active.sum() / Z.shape[0]), "fvu": float(fraction_of_variance_unexplained(X, X_hat)),
            "mmcs": mmcs, "mmcs_learned": mmcs_learned,
            "mcc": float(correlations[learned, true].sum() / correlations.shape[1]),
            "f1": firing_f1(Z, codes, learned, true, threshold=threshold),
            "dead": float(1.0 - active.any(axis=0).mean()), **extra}

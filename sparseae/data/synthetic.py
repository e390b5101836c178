"""Synthetic activations with a known dictionary: features in superposition (issue 24).

:func:`make_superposition` draws ``n_latents`` true feature directions in ``n_features`` dimensions
(more features than dimensions), fires each feature with a Zipf-like probability, correlates the
firing through a low-rank Gaussian copula, nests some features under a parent (a child fires only when
its parent fires), draws non-negative magnitudes and sums: ``x = Σ_i z_i d_i (+ noise)``. The true
dictionary and codes come back with the activations, so that a sparse autoencoder's features can be
scored against the truth (:mod:`sparseae.evaluate.recovery`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from ..errors import ConfigError
from ..validation import check_number

__all__ = ["SuperpositionData", "make_superposition", "zipf_firing_probabilities"]

#: Rows generated at a time (bounds the working arrays to ~``_CHUNK × n_latents × 8`` bytes).
_CHUNK = 8192


@dataclass(eq=False)
class SuperpositionData:
    """What :func:`make_superposition` returns.

    ``X`` (n_samples, n_features) float32: the activations. ``dictionary`` (n_latents, n_features)
    float32: the true feature directions, unit rows. ``codes`` (n_samples, n_latents) float32: the
    true non-negative codes (``X = codes @ dictionary + noise``). ``firing_probabilities``
    (n_latents,) float64: each feature's marginal firing probability (Zipf-like, decreasing).
    ``parents`` (n_latents,) int64: the parent of each feature, −1 for a root.
    """

    X: np.ndarray
    dictionary: np.ndarray
    codes: np.ndarray
    firing_probabilities: np.ndarray
    parents: np.ndarray

    @property
    def expected_l0(self) -> float:
        """Σ_i p_i: the expected number of active features per sample."""
        return float(self.firing_probabilities.sum())

    @property
    def mean_l0(self) -> float:
        """The mean number of active features per sample in this draw."""
        return float(np.count_nonzero(self.codes) / max(self.codes.shape[0], 1))


def zipf_firing_probabilities(n_latents: int, mean_active: float, exponent: float = 1.0) -> np.ndarray:
    """Firing probabilities ``p_i = min(1, c·(i + 1)^−exponent)`` (n_latents,) float64, decreasing, with c
    chosen so that ``Σ p_i = mean_active`` (the expected L0). ``exponent`` 0 gives equal probabilities."""
    check_number(n_latents, "n_latents", low=1, integer=True)
    check_number(exponent, "zipf_exponent", low=0.0)
    check_number(mean_active, "mean_active", low=0.0, high=n_latents, low_inclusive=False)
    ranks = np.arange(1, n_latents + 1, dtype=np.float64) ** -float(exponent)
    low, high = 0.0, float(mean_active) / ranks[-1]  # at c = high every c·r_i ≥ mean_active: Σ ≥ target
    for _ in range(200):  # bisection on c: Σ min(1, c·r_i) increases with c
        middle = 0.5 * (low + high)
        if np.minimum(1.0, middle * ranks).sum() < mean_active:
            low = middle
        else:
            high = middle
    return np.minimum(1.0, high * ranks)


def _check_options(n_samples, n_features, n_latents, mean_active, zipf_exponent, correlation,
                   correlation_rank, hierarchy_fraction, magnitude_mean, magnitude_std, noise_std,
                   random_state, child_similarity=0.0) -> None:
    check_number(n_samples, "n_samples", low=1, integer=True)
    check_number(n_features, "n_features", low=1, integer=True)
    check_number(n_latents, "n_latents", low=1, integer=True)
    check_number(mean_active, "mean_active", low=0.0, high=n_latents, low_inclusive=False)
    check_number(zipf_exponent, "zipf_exponent", low=0.0)
    check_number(correlation, "correlation", low=0.0, high=1.0, high_inclusive=False)
    check_number(correlation_rank, "correlation_rank", low=1, integer=True)
    check_number(hierarchy_fraction, "hierarchy_fraction", low=0.0, high=1.0, high_inclusive=False)
    check_number(child_similarity, "child_similarity", low=0.0, high=1.0, high_inclusive=False)
    if child_similarity > 0 and n_features < 2:
        raise ConfigError("child_similarity > 0 needs n_features >= 2 (a child direction off its parent's)")
    check_number(magnitude_mean, "magnitude_mean", low=0.0, low_inclusive=False)
    check_number(magnitude_std, "magnitude_std", low=0.0)
    check_number(noise_std, "noise_std", low=0.0)
    if random_state is not None and not isinstance(random_state, np.random.Generator):
        check_number(random_state, "random_state", low=0, integer=True)
    if n_samples * max(n_features, n_latents) > 2**31:
        raise ConfigError(f"{n_samples} samples of {n_latents} features do not fit in memory: ask for fewer")


def _hierarchy(n_latents: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """parents (n_latents,): a random ``fraction`` of features (never the first) get a parent drawn
    uniformly among the features before them (more frequent ones), so trees may be several levels deep."""
    parents = np.full(n_latents, -1, dtype=np.int64)
    n_children = min(int(round(fraction * n_latents)), n_latents - 1)
    if n_children:
        children = np.sort(rng.choice(np.arange(1, n_latents), size=n_children, replace=False))
        parents[children] = (rng.random(n_children) * children).astype(np.int64)
    return parents


def _tilt_children(dictionary: np.ndarray, parents: np.ndarray, similarity: float) -> None:
    """In place on ``dictionary`` (n_latents, n_features), unit rows: each child's row becomes
    ``s·d_parent + √(1 − s²)·u``, u its own random row with the parent's component removed (unit), so
    its cosine with its parent is exactly s. Children are visited in index order (a parent always
    precedes its children), so a grandchild leans on its already tilted parent. Uses no random draws."""
    for child in np.nonzero(parents >= 0)[0]:
        parent = dictionary[parents[child]]
        orthogonal = dictionary[child] - (dictionary[child] @ parent) * parent
        norm = np.linalg.norm(orthogonal)
        if norm < 1e-12:  # the child's draw is (numerically) its parent's direction: any other axis will do
            orthogonal = np.eye(dictionary.shape[1])[np.argmin(np.abs(parent))]
            orthogonal -= (orthogonal @ parent) * parent
            norm = np.linalg.norm(orthogonal)
        dictionary[child] = similarity * parent + np.sqrt(1.0 - similarity ** 2) * orthogonal / norm


def _features(n_latents: int, n_features: int, hierarchy_fraction: float, child_similarity: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(dictionary (n_latents, n_features) unit rows, parents (n_latents,)): random directions, the
    hierarchy, then the children tilted towards their parents when ``child_similarity`` > 0."""
    dictionary = rng.standard_normal((n_latents, n_features))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    parents = _hierarchy(n_latents, hierarchy_fraction, rng)
    if child_similarity > 0:
        _tilt_children(dictionary, parents, float(child_similarity))
    return dictionary, parents


def _thresholds(probabilities: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Copula thresholds Φ⁻¹(q_i) (n_latents,): q = p for a root, p_child / p_parent for a child
    (Φ⁻¹(1) = +inf: always fires, given its parent)."""
    conditional = probabilities.copy()
    children = parents >= 0
    conditional[children] = np.minimum(1.0, probabilities[children] / probabilities[parents[children]])
    return ndtri(conditional)


def _firing(rows: int, thresholds: np.ndarray, loadings: np.ndarray, correlation: float,
            parents: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean firing (rows, n_latents): the Gaussian copula g = L f + √(1 − ρ) ε (each g_i ~ N(0, 1))
    below each feature's threshold Φ⁻¹(q_i), then every child masked by its parent (in index order, so
    a grandchild sees its parent already masked)."""
    n_latents = thresholds.shape[0]
    g = rng.standard_normal((rows, n_latents), dtype=np.float32)
    if correlation > 0:
        g *= np.float32(np.sqrt(1.0 - correlation))
        g += rng.standard_normal((rows, loadings.shape[1]), dtype=np.float32) @ loadings.T.astype(np.float32)
    fires = g < thresholds
    for child in np.nonzero(parents >= 0)[0]:
        fires[:, child] &= fires[:, parents[child]]
    return fires


def make_superposition(n_samples: int = 50_000, n_features: int = 64, n_latents: int = 512, *,
                       mean_active: float = 8.0, zipf_exponent: float = 0.5, correlation: float = 0.3,
                       correlation_rank: int = 8, hierarchy_fraction: float = 0.2,
                       child_similarity: float = 0.0, magnitude_mean: float = 1.0, magnitude_std: float = 0.25,
                       noise_std: float = 0.0,
                       random_state: int | np.random.Generator | None = 0,
                       sample_seed: int | None = None) -> SuperpositionData:
    """``n_samples`` activations in ``n_features`` dimensions made of ``n_latents`` sparse features.

    * Dictionary: ``n_latents`` random Gaussian directions, unit rows (n_latents, n_features).
    * Firing: feature i fires with marginal probability ``p_i`` ∝ (i + 1)^−``zipf_exponent``, scaled so
      that Σ p_i = ``mean_active`` (:func:`zipf_firing_probabilities`).
    * Correlation: firing is ``g_i < Φ⁻¹(q_i)`` for a Gaussian copula ``g = L f + √(1 − ρ) ε`` with
      f ~ N(0, I_r), r = ``correlation_rank``, and the rows of L (n_latents, r) random of norm √ρ,
      ρ = ``correlation``: each g_i is N(0, 1), so the marginals stay q_i, and features whose rows of L
      point the same way fire together (0 turns it off).
    * Hierarchy: a share ``hierarchy_fraction`` of the features is given a parent among the more
      frequent features; a child fires only when its parent fires, with q_child = p_child / p_parent, so
      its marginal stays p_child when firing is independent (``correlation`` 0; close to it otherwise).
    * ``child_similarity`` s ∈ [0, 1): each child's direction is ``s·d_parent + √(1 − s²)·u`` (u a
      random unit vector orthogonal to d_parent), cosine exactly s with its parent: the set-up of
      feature absorption. 0 (the default) leaves the children's independent random directions, so
      earlier draws stay exactly the same.
    * Magnitudes: log-normal with mean ``magnitude_mean`` and standard deviation ``magnitude_std``
      (0: every active feature has magnitude ``magnitude_mean``).
    * ``noise_std``: isotropic Gaussian noise added to X.

    Seeded by ``random_state`` (an int or a ``np.random.Generator``); ``sample_seed``, when given,
    seeds the samples alone, so that another ``sample_seed`` draws new samples of the same features
    (a held-out set). Returns a
    :class:`SuperpositionData`; raises :class:`~sparseae.errors.ConfigError` for an option out of range.
    """
    _check_options(n_samples, n_features, n_latents, mean_active, zipf_exponent, correlation,
                   correlation_rank, hierarchy_fraction, magnitude_mean, magnitude_std, noise_std,
                   random_state, child_similarity)
    if sample_seed is not None:
        check_number(sample_seed, "sample_seed", low=0, integer=True)
    rng = np.random.default_rng(random_state)
    dictionary, parents = _features(n_latents, n_features, hierarchy_fraction, child_similarity, rng)
    probabilities = zipf_firing_probabilities(n_latents, mean_active, zipf_exponent)
    thresholds = _thresholds(probabilities, parents)
    loadings = rng.standard_normal((n_latents, correlation_rank))
    loadings *= np.sqrt(correlation) / np.linalg.norm(loadings, axis=1, keepdims=True)
    sigma2 = np.log1p((magnitude_std / magnitude_mean) ** 2)
    mu = np.log(magnitude_mean) - 0.5 * sigma2
    if sample_seed is not None:
        rng = np.random.default_rng(sample_seed)
    codes = np.zeros((n_samples, n_latents), dtype=np.float32)
    X = np.empty((n_samples, n_features), dtype=np.float32)
    for start in range(0, n_samples, _CHUNK):
        rows = min(_CHUNK, n_samples - start)
        fires = _firing(rows, thresholds, loadings, correlation, parents, rng)
        block = np.zeros((rows, n_latents))
        block[fires] = np.exp(mu + np.sqrt(sigma2) * rng.standard_normal(int(fires.sum())))
        x = block @ dictionary
        if noise_std > 0:
            x += noise_std * rng.standard_normal(x.shape)
        codes[start:start + rows] = block
        X[start:start + rows] = x
    return SuperpositionData(X, dictionary.astype(np.float32), codes, probabilities, parents)

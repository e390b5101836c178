"""A 2-D data set of known density near a curved 1-D manifold: :func:`make_spiral`, the data of the
DAE score-field reproduction (:mod:`sparseae.evaluate.manifold` computes its exact score)."""
from __future__ import annotations

import math

import numpy as np

from ..validation import check_number

__all__ = ["make_spiral"]


def make_spiral(n_samples: int, noise: float = 0.05, turns: float = 1.0, random_state: int = 0,
                n_centers: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Points near a 2-D spiral, drawn from ``p(x) = (1/m) Σ_i N(x; m_i, noise² I)``.

    The ``m = n_centers`` clean manifold points ``m_i`` lie evenly spaced in arc length on the
    spiral ``r = θ/θ_end``, ``θ ∈ [π/2, π/2 + 2π·turns]`` (with the defaults: radius in [0.2, 1],
    successive turns 0.8 apart, neighbouring centres ≈ 0.002 apart, far below ``noise``). Each
    sample picks a centre uniformly and adds N(0, noise² I).

    Returns ``(X, centers)``: float32 (n_samples, 2) and float64 (n_centers, 2).
    """
    check_number(n_samples, "n_samples", low=1, integer=True)
    check_number(noise, "noise", low=0.0, low_inclusive=False)
    check_number(turns, "turns", low=0.0, low_inclusive=False)
    check_number(random_state, "random_state", low=0, integer=True)
    check_number(n_centers, "n_centers", low=2, integer=True)
    theta_start = math.pi / 2
    theta_end = theta_start + 2 * math.pi * turns
    fine = np.linspace(theta_start, theta_end, 50 * n_centers)
    curve = np.stack([np.cos(fine), np.sin(fine)], axis=1) * (fine / theta_end)[:, None]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
    theta = np.interp(np.linspace(0.0, arc[-1], n_centers), arc, fine)
    centers = np.stack([np.cos(theta), np.sin(theta)], axis=1) * (theta / theta_end)[:, None]
    rng = np.random.default_rng(random_state)
    picks = rng.integers(n_centers, size=n_samples)
    X = centers[picks] + noise * rng.standard_normal((n_samples, 2))
    return X.astype(np.float32), centers

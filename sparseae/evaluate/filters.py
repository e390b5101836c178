"""Measures of what learned filters look like: localized, oriented (edge / Gabor-like).

Used to check the UFLDL exercise's claim (filters become localized oriented edges) with numbers
rather than by eye, against random filters as the baseline.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..validation import as_float_array, check_number


def _filters(W, image_shape: tuple[int, int]) -> np.ndarray:
    W = as_float_array(W, "W", dtype=np.float64)
    h, w = image_shape
    if W.shape[1] != h * w:
        raise DataError(f"filters have {W.shape[1]} weights, image_shape {image_shape} needs {h * w}")
    return W.reshape(-1, h, w)


def _orientation_moment(W, image_shape: tuple[int, int], pad_to: int) -> tuple[np.ndarray, np.ndarray]:
    """Σ_f P(f)·e^{2iθ(f)} and Σ_f P(f) over each filter's zero-padded power spectrum (DC removed)."""
    check_number(pad_to, "pad_to", low=max(image_shape), integer=True)
    filters = _filters(W, image_shape)
    filters = filters - filters.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(filters, s=(pad_to, pad_to))) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(pad_to), np.fft.fftfreq(pad_to), indexing="ij")
    phase = np.exp(2j * np.arctan2(fy, fx))
    phase[0, 0] = 0.0
    return (power * phase).sum(axis=(1, 2)), power.sum(axis=(1, 2))


def orientation_selectivity(W, image_shape: tuple[int, int], *, pad_to: int = 32) -> np.ndarray:
    """How concentrated each filter's spatial-frequency power is on one orientation: (n_filters,).

    R = |Σ_f P(f)·e^{2iθ(f)}| / Σ_f P(f) over the filter's zero-padded power spectrum P (DC
    removed), θ(f) the orientation of frequency f (angles doubled, since θ and θ+π are the same
    orientation). 1 for a pure grating or straight edge, near 0 for isotropic noise or a blob.
    """
    moment, total = _orientation_moment(W, image_shape, pad_to)
    return np.abs(moment) / np.maximum(total, 1e-300)


def preferred_orientation(W, image_shape: tuple[int, int], *, pad_to: int = 32) -> np.ndarray:
    """Each filter's dominant orientation in [0, π): half the angle of Σ_f P(f)·e^{2iθ(f)} (the
    power-weighted mean of doubled angles, as in :func:`orientation_selectivity`): (n_filters,)."""
    moment, _ = _orientation_moment(W, image_shape, pad_to)
    return (np.angle(moment) / 2) % np.pi


def orientation_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| between orientations (mod π), in [0, π/2]."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % np.pi
    return np.minimum(d, np.pi - d)


def topographic_smoothness(orientations, height: int, width: int, *, toroidal: bool = True,
                           n_permutations: int = 100, random_state: int = 0) -> dict[str, float]:
    """How smoothly orientation varies over a ``height``×``width`` map of units (unit i at row
    i // width, column i % width): the mean orientation difference between grid neighbours
    (right and down; wrapped when ``toroidal``) against the same orientations randomly permuted
    over the grid (``n_permutations`` draws). Returns ``neighbour`` and ``shuffled`` (radians;
    π/4 ≈ 0.785 for unrelated orientations) and their ratio (< 1: a topographic map)."""
    theta = np.asarray(orientations, dtype=np.float64)
    if theta.shape != (height * width,):
        raise DataError(f"{theta.shape[0] if theta.ndim else 0} orientations for a {height}×{width} map")
    check_number(n_permutations, "n_permutations", low=1, integer=True)
    grid = np.arange(height * width).reshape(height, width)
    if toroidal:
        pairs = [(grid, np.roll(grid, -1, axis=1)), (grid, np.roll(grid, -1, axis=0))]
    else:
        pairs = [(grid[:, :-1], grid[:, 1:]), (grid[:-1], grid[1:])]
    left = np.concatenate([a.ravel() for a, _ in pairs])
    right = np.concatenate([b.ravel() for _, b in pairs])
    neighbour = float(orientation_difference(theta[left], theta[right]).mean())
    rng = np.random.default_rng(random_state)
    shuffled = float(np.mean([orientation_difference(t[left], t[right]).mean()
                              for t in (rng.permutation(theta) for _ in range(n_permutations))]))
    return {"neighbour": neighbour, "shuffled": shuffled, "ratio": neighbour / shuffled}


def energy_concentration(W, image_shape: tuple[int, int], *, top_fraction: float = 0.25) -> np.ndarray:
    """Fraction of each filter's energy Σ(w − w̄)² held by its strongest ``top_fraction`` of
    pixels: (n_filters,). Localized filters score high; spread-out noise scores low."""
    check_number(top_fraction, "top_fraction", low=0.0, high=1.0, low_inclusive=False)
    filters = _filters(W, image_shape).reshape(-1, image_shape[0] * image_shape[1])
    energy = (filters - filters.mean(axis=1, keepdims=True)) ** 2
    k = max(1, int(round(top_fraction * energy.shape[1])))
    top = -np.sort(-energy, axis=1)[:, :k]
    return top.sum(axis=1) / np.maximum(energy.sum(axis=1), 1e-300)


def random_filter_baseline(n_filters: int, image_shape: tuple[int, int], *, random_state: int = 0) -> np.ndarray:
    """Gaussian white-noise filters (n_filters, h·w): the baseline the measures compare against."""
    return np.random.default_rng(random_state).standard_normal((n_filters, image_shape[0] * image_shape[1]))

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


def orientation_selectivity(W, image_shape: tuple[int, int], *, pad_to: int = 32) -> np.ndarray:
    """How concentrated each filter's spatial-frequency power is on one orientation: (n_filters,).

    R = |Σ_f P(f)·e^{2iθ(f)}| / Σ_f P(f) over the filter's zero-padded power spectrum P (DC
    removed), θ(f) the orientation of frequency f (angles doubled, since θ and θ+π are the same
    orientation). 1 for a pure grating or straight edge, near 0 for isotropic noise or a blob.
    """
    check_number(pad_to, "pad_to", low=max(image_shape), integer=True)
    filters = _filters(W, image_shape)
    filters = filters - filters.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(filters, s=(pad_to, pad_to))) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(pad_to), np.fft.fftfreq(pad_to), indexing="ij")
    phase = np.exp(2j * np.arctan2(fy, fx))
    phase[0, 0] = 0.0
    total = power.sum(axis=(1, 2))
    return np.abs((power * phase).sum(axis=(1, 2))) / np.maximum(total, 1e-300)


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

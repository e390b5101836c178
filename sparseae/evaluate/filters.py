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


def _neighbour_pairs(height: int, width: int, toroidal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unit indices of every right and down neighbour pair on the grid: two (n_pairs,) arrays."""
    grid = np.arange(height * width).reshape(height, width)
    if toroidal:
        pairs = [(grid, np.roll(grid, -1, axis=1)), (grid, np.roll(grid, -1, axis=0))]
    else:
        pairs = [(grid[:, :-1], grid[:, 1:]), (grid[:-1], grid[1:])]
    return (np.concatenate([a.ravel() for a, _ in pairs]), np.concatenate([b.ravel() for _, b in pairs]))


def topographic_smoothness(orientations, height: int, width: int, *, toroidal: bool = True,
                           n_permutations: int = 100, random_state: int = 0,
                           mask=None) -> dict[str, float]:
    """How smoothly orientation varies over a ``height``×``width`` map of units (unit i at row
    i // width, column i % width): the mean orientation difference between grid neighbours
    (right and down; wrapped when ``toroidal``) against the same orientations randomly permuted
    over the grid (``n_permutations`` draws). Returns ``neighbour`` and ``shuffled`` (radians;
    π/4 ≈ 0.785 for unrelated orientations) and their ratio (< 1: a topographic map).

    ``mask`` (n_units,) bool, e.g. ``orientation_selectivity(W) > 0.3``: only pairs of two masked
    units count (a non-oriented filter's orientation is noise), and each permutation moves units
    with their mask; ``pairs`` in the result is the number of neighbour pairs counted."""
    theta = np.asarray(orientations, dtype=np.float64)
    if theta.shape != (height * width,):
        raise DataError(f"{theta.shape[0] if theta.ndim else 0} orientations for a {height}×{width} map")
    check_number(n_permutations, "n_permutations", low=1, integer=True)
    keep = np.ones(theta.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if keep.shape != theta.shape:
        raise DataError(f"mask has shape {keep.shape}, the map has {theta.shape[0]} units")
    left, right = _neighbour_pairs(height, width, toroidal)
    counted = keep[left] & keep[right]
    if not counted.any():
        raise DataError("no pair of neighbouring units is in the mask")
    neighbour = float(orientation_difference(theta[left], theta[right])[counted].mean())
    rng = np.random.default_rng(random_state)
    shuffled = []
    for _ in range(n_permutations):
        order = rng.permutation(theta.size)
        both = keep[order][left] & keep[order][right]
        if both.any():
            shuffled.append(orientation_difference(theta[order][left], theta[order][right])[both].mean())
    shuffled_mean = float(np.mean(shuffled)) if shuffled else float("nan")
    return {"neighbour": neighbour, "shuffled": shuffled_mean, "ratio": neighbour / shuffled_mean,
            "pairs": int(counted.sum())}


def orientation_singularities(orientations, height: int, width: int) -> np.ndarray:
    """Pinwheel centres of a toroidal orientation map: (height, width) int array, +1 / −1 where the
    orientation turns by +π / −π around the 2×2 plaquette whose top-left unit is (r, c), else 0.
    Around a loop the wrapped orientation steps (each in (−π/2, π/2]) sum to a multiple of π; a
    non-zero sum is a singularity (a pinwheel, V1's ±½ winding). A smooth map has few; a random one
    has about one plaquette in three."""
    theta = np.asarray(orientations, dtype=np.float64)
    if theta.shape != (height * width,):
        raise DataError(f"{theta.shape[0] if theta.ndim else 0} orientations for a {height}×{width} map")
    grid = theta.reshape(height, width)
    corners = [grid, np.roll(grid, -1, axis=1), np.roll(np.roll(grid, -1, axis=0), -1, axis=1),
               np.roll(grid, -1, axis=0)]

    def step(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (b - a + np.pi / 2) % np.pi - np.pi / 2

    total = sum(step(corners[k], corners[(k + 1) % 4]) for k in range(4))
    return np.rint(total / np.pi).astype(np.int64)


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


def topographic_map(W, image_shape: tuple[int, int], height: int, width: int, *, selective: float = 0.3,
                    n_permutations: int = 100, toroidal: bool = True) -> dict[str, float]:
    """The topographic-map figures of filters ``W`` (height·width, h·w) laid out on a
    ``height``×``width`` grid (unit i at row i // width), as ``benchmarks/bench_topographic.py``
    prints them: ``ratio`` (neighbour / permuted orientation difference, :func:`topographic_smoothness`),
    ``ratio_selective`` over the units of orientation selectivity ≥ ``selective`` (``selective_units``
    of them; NaN when no two neighbours are selective), ``mean_selectivity``, ``pinwheels``
    (:func:`orientation_singularities`) and ``pinwheels_permuted`` (their mean count over
    ``n_permutations`` random layouts). ``toroidal=False``: a sheet whose edges do not wrap
    (neighbours and pinwheel plaquettes across an edge are left out)."""
    theta = preferred_orientation(W, image_shape)
    selectivity = orientation_selectivity(W, image_shape)
    chosen = selectivity >= selective
    every = topographic_smoothness(theta, height, width, toroidal=toroidal, n_permutations=n_permutations)
    try:
        masked = topographic_smoothness(theta, height, width, toroidal=toroidal, mask=chosen,
                                         n_permutations=n_permutations)["ratio"]
    except DataError:  # no two neighbouring units are selective (e.g. barely trained filters)
        masked = float("nan")

    def pinwheels(orientations) -> int:
        found = orientation_singularities(orientations, height, width)
        return int(np.count_nonzero(found if toroidal else found[:-1, :-1]))

    permuted = [pinwheels(np.random.default_rng(k).permutation(theta)) for k in range(n_permutations)]
    return {"ratio": every["ratio"], "ratio_selective": masked, "selective_units": int(chosen.sum()),
            "mean_selectivity": float(selectivity.mean()), "pinwheels": pinwheels(theta),
            "pinwheels_permuted": float(np.mean(permuted))}

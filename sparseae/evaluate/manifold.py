"""A 2-D data set of known density near a curved 1-D manifold, and the check that a denoising
autoencoder's reconstruction field r(x) − x points along the score ∇_x log p(x).

The density of :func:`make_spiral` is exact: a uniform mixture of isotropic Gaussians
``p(x) = (1/m) Σ_i N(x; m_i, s² I)`` centred on ``m`` points spaced evenly (in arc length)
along a spiral, so its score is known in closed form (:func:`mixture_score`).

Alain & Bengio (2014): a DAE trained with Gaussian corruption of small std σ and squared error
has ``r(x) − x ≈ σ² ∇ log p(x)``. Exactly, the optimal denoiser is ``E[x | x̃]``, and by Tweedie's
formula ``E[x | x̃] − x̃ = σ² ∇ log p_σ(x̃)`` with ``p_σ = p ∗ N(0, σ² I)``; for this mixture
``p_σ`` is the same mixture with std ``sqrt(s² + σ²)``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.spiral import make_spiral
from ..errors import DataError
from ..inference import evaluating, map_rows, placement, row_batches
from ..models.base import Autoencoder
from ..validation import as_float_array, check_number

__all__ = ["make_spiral", "mixture_log_density", "mixture_score", "reconstruction_field",
           "score_alignment", "grid", "near_manifold", "saturated_fraction", "contraction_stats",
           "code_statistics", "tangents_by_class", "score_field_figures"]

_CHUNK_ELEMENTS = 1 << 22  # rows × centers per block of the (n, m) distance matrix


def _distances(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """‖x − m_i‖: (n, m), from differences (not ‖x‖² + ‖m‖² − 2x·m, which cancels)."""
    return torch.cdist(x, centers, compute_mode="donot_use_mm_for_euclid_dist")


def _kernel_logits(x: torch.Tensor, centers: torch.Tensor, std: float) -> torch.Tensor:
    """−‖x − m_i‖² / (2 std²): (n, m)."""
    return _distances(x, centers).pow(2) / (-2.0 * std * std)


def _rows_per_block(n_centers: int) -> int:
    return max(1, _CHUNK_ELEMENTS // n_centers)


def _inputs(x: Any, centers: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (n, d) and ``centers`` (m, d) as float64 tensors, checked."""
    centers_t = torch.from_numpy(as_float_array(centers, "centers", dtype=np.float64))
    x_t = torch.from_numpy(as_float_array(x, "x", n_features=centers_t.shape[1], dtype=np.float64))
    return x_t, centers_t


def mixture_log_density(x: Any, centers: Any, std: float) -> np.ndarray:
    """log p(x) of the uniform mixture of N(m_i, std² I): (n,) float64, by logsumexp.

    ``x``: (n, d); ``centers``: (m, d)."""
    check_number(std, "std", low=0.0, low_inclusive=False)
    x_t, centers_t = _inputs(x, centers)
    m, d = centers_t.shape
    constant = -math.log(m) - 0.5 * d * math.log(2 * math.pi * std * std)
    parts = [torch.logsumexp(_kernel_logits(chunk, centers_t, std), dim=1)
             for chunk in x_t.split(_rows_per_block(m))]
    return (torch.cat(parts) + constant).numpy()


def mixture_score(x: Any, centers: Any, std: float) -> np.ndarray:
    """∇_x log p(x) of the uniform mixture of N(m_i, std² I): (n, d) float64.

    ``Σ_i w_i(x) (m_i − x) / std²`` with responsibilities
    ``w(x) = softmax_i(−‖x − m_i‖²/(2 std²))`` (stable far from every centre).
    ``x``: (n, d); ``centers``: (m, d)."""
    check_number(std, "std", low=0.0, low_inclusive=False)
    x_t, centers_t = _inputs(x, centers)
    parts = []
    for chunk in x_t.split(_rows_per_block(centers_t.shape[0])):
        weights = torch.softmax(_kernel_logits(chunk, centers_t, std), dim=1)  # (rows, m)
        parts.append((weights @ centers_t - chunk) / (std * std))
    return torch.cat(parts).numpy()


def reconstruction_field(model: nn.Module, points: Any, batch_size: int = 4096) -> np.ndarray:
    """r(x) − x = model(x) − x at ``points`` (n, d), in eval mode (no corruption): (n, d) float64.

    The model's training/eval mode is restored afterwards."""
    check_number(batch_size, "batch_size", low=1, integer=True)
    X = as_float_array(points, "points", n_features=model.n_features if isinstance(model, Autoencoder) else None,
                       dtype=np.float64)
    return map_rows(model, X, batch_size=batch_size, out_dtype=torch.float64) - X


def score_alignment(field: Any, score: Any, mask: Any = None) -> float:
    """Mean cosine similarity of the rows of ``field`` and ``score`` (n, d), over the rows where
    ``mask`` (n,) bool is true (all by default). A zero row counts as cosine 0."""
    field = as_float_array(field, "field", dtype=np.float64)
    score = as_float_array(score, "score", dtype=np.float64)
    if field.shape != score.shape:
        raise DataError(f"field has shape {field.shape} but score has shape {score.shape}; they must match")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (field.shape[0],):
            raise DataError(f"mask must have shape ({field.shape[0]},), got {mask.shape}")
        if not mask.any():
            raise DataError("mask selects no points")
        field, score = field[mask], score[mask]
    norms = np.linalg.norm(field, axis=1) * np.linalg.norm(score, axis=1)
    dots = np.einsum("nd,nd->n", field, score)
    cosine = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return float(cosine.mean())


def grid(low: float | Sequence[float] = -1.2, high: float | Sequence[float] = 1.2,
         n: int = 25) -> np.ndarray:
    """An ``n × n`` grid over the box [low, high]² (each bound a number or an (x, y) pair):
    (n², 2) float32, x varying fastest."""
    check_number(n, "n", low=2, integer=True)
    low_xy = np.broadcast_to(np.asarray(low, dtype=np.float64), (2,))
    high_xy = np.broadcast_to(np.asarray(high, dtype=np.float64), (2,))
    if not np.all(np.isfinite(low_xy)) or not np.all(np.isfinite(high_xy)) or np.any(high_xy <= low_xy):
        raise DataError(f"grid needs finite bounds with low < high, got low={low!r}, high={high!r}")
    xs, ys = (np.linspace(low_xy[i], high_xy[i], n) for i in range(2))
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def near_manifold(points: Any, centers: Any, radius: float) -> np.ndarray:
    """True where a point (n, d) lies within ``radius`` of its nearest centre (m, d): (n,) bool."""
    check_number(radius, "radius", low=0.0, low_inclusive=False)
    x_t, centers_t = _inputs(points, centers)
    nearest = [_distances(chunk, centers_t).min(dim=1).values
               for chunk in x_t.split(_rows_per_block(centers_t.shape[0]))]
    return (torch.cat(nearest) <= radius).numpy()


def saturated_fraction(codes: Any, low: float = 0.05, high: float = 0.95) -> float:
    """Fraction of code values below ``low`` or above ``high`` (sigmoid units; Rifai et al. 2011
    report 86% for their CAE on MNIST). codes: (n_samples, n_components)."""
    codes = np.asarray(codes)
    return float(((codes < low) | (codes > high)).mean())


#: Numbers the exact Jacobian of one batch may hold (n_components × batch × n_features): 100 MB.
JACOBIAN_BATCH_NUMBERS = 25_000_000


def contraction_stats(model: Autoencoder, X: Any, batch_size: int | None = None) -> dict[str, float]:
    """``jacobian_norm``: mean over ``X`` (n_samples, n_features) of ‖J_f(x)‖_F;
    ``jacobian_sq_per_entry``: mean of ‖J_f(x)‖²_F / (n_features · n_components), the mean squared
    entry of J (read this way, Rifai et al. 2011's Table 1 figure for their CAE, 0.73·10⁻⁴, and
    ours are of one size; the paper leaves its normalization implicit); ``saturated``:
    :func:`saturated_fraction` of the codes. Eval mode. ``batch_size`` (None: 1000 rows, fewer
    when the encoder has no closed-form Jacobian, so that one batch's exact Jacobian stays within
    :data:`JACOBIAN_BATCH_NUMBERS` numbers)."""
    from ..nn.jacobian import has_closed_form, jacobian_frobenius_sq

    X = as_float_array(X, "X", n_features=model.n_features)
    if batch_size is None:
        size = model.n_components * X.shape[1]
        batch_size = 1000 if has_closed_form(model.encoder) else max(1, min(1000, JACOBIAN_BATCH_NUMBERS // size))
    device, dtype = placement(model)
    squares, codes = [], []
    with evaluating(model, no_grad=False):  # the Jacobian needs gradients; the codes do not
        for _, x in row_batches(X, batch_size, device=device, dtype=dtype):
            with torch.no_grad():
                code = model.encode(x)
            squared = jacobian_frobenius_sq(model.encoder, x, code=code, create_graph=False)
            squares.append(squared.detach().double().cpu())
            codes.append(code.float().cpu().numpy())
    squares, codes = torch.cat(squares), np.concatenate(codes)
    return {"jacobian_norm": float(squares.sqrt().mean()),
            "jacobian_sq_per_entry": float(squares.mean()) / (X.shape[1] * codes.shape[1]),
            "saturated": saturated_fraction(codes)}


def code_statistics(model: Autoencoder, X: Any) -> dict[str, float]:
    """Over ``X`` (n_samples, n_features): :func:`contraction_stats` (``jacobian_norm``,
    ``saturated``, ...) and ``mse``, the reconstruction's mean squared error per input value."""
    X = as_float_array(X, "X", n_features=model.n_features)
    device, dtype = placement(model)
    total = 0.0
    with evaluating(model):
        for _, x in row_batches(X, 1000, device=device, dtype=dtype):
            total += float((model(x) - x).double().pow(2).sum())
    return {**contraction_stats(model, X), "mse": total / X.size}


def tangents_by_class(model: Autoencoder, X: Any, y: Any, *, k: int = 6, max_inputs: int = 10
                      ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The ``k`` leading tangents (right singular vectors of J_f(x), :func:`~sparseae.nn.jacobian.
    tangent_directions`) at the first input of each class of ``y`` (the first ``max_inputs`` inputs
    when ``y`` is None). Returns the inputs (m, n_features), directions (m, k, n_features) and
    singular values (m, k)."""
    from ..nn.jacobian import tangent_directions

    X = as_float_array(X, "X", n_features=model.n_features)
    if y is None:
        chosen = np.arange(min(max_inputs, len(X)))
    else:
        labels = np.asarray(y)
        chosen = np.array([np.flatnonzero(labels == label)[0] for label in np.unique(labels)][:max_inputs])
    device, dtype = placement(model)
    inputs = torch.as_tensor(X[chosen], device=device, dtype=dtype)
    with evaluating(model, no_grad=False):
        directions, singular_values = tangent_directions(model.encoder, inputs, k)
    return X[chosen], directions.detach().cpu(), singular_values.detach().cpu()


def score_field_figures(model: nn.Module, untrained: nn.Module, X: Any, centers: Any, noise: float,
                        sigma: float) -> dict[str, float]:
    """Alain & Bengio 2014 on :func:`make_spiral` data: how well a DAE's field r(x) − x at the points
    ``X`` (n, 2) within 2·``noise`` of the curve (``centers``) points along the exact score ∇log p.
    ``cosine`` (mean cosine, :func:`score_alignment`), ``untrained`` (the same for ``untrained``, the
    model at its initialization), ``optimal`` (the optimal denoiser's field σ²∇log p_σ, the ceiling at
    corruption ``sigma``), ``smoothed`` (the field against ∇log p_σ), ``sigma2_fit`` (least-squares c in
    r(x) − x ≈ c σ² ∇log p_σ; 1 for the optimal denoiser) and ``test_points`` (how many points count)."""
    near = near_manifold(X, centers, 2 * noise)
    score = mixture_score(X, centers, noise)
    field = reconstruction_field(model, X)
    smoothed = mixture_score(X, centers, math.hypot(noise, sigma))
    target = sigma ** 2 * smoothed[near]
    return {"cosine": score_alignment(field, score, near),
            "untrained": score_alignment(reconstruction_field(untrained, X), score, near),
            "optimal": score_alignment(smoothed, score, near), "smoothed": score_alignment(field, smoothed, near),
            "sigma2_fit": float(np.sum(field[near] * target) / np.sum(target * target)),
            "test_points": int(near.sum())}

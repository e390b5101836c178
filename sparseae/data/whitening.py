"""Whitening: ZCA on samples, and Olshausen & Field's 1/f filter on whole images.

* :class:`ZCAWhitening` — ``x ↦ W (x − μ)`` with ``W = U (Λ + εI)^{-1/2} Uᵀ`` where ``Σ = U Λ Uᵀ``
  is the sample covariance. ``W`` is symmetric, and of all whitening matrices it is the one closest to
  the identity, so whitened image patches still look like patches.
* :func:`whiten_images_1_over_f` — natural images have an amplitude spectrum falling like ``1/|f|``;
  multiplying the spectrum by ``|f| · exp(−(|f|/f₀)⁴)`` flattens it (the ``|f|`` ramp) and removes the
  noisy corner frequencies (the quartic roll-off). This is the preprocessing of Olshausen & Field (1996)
  behind the classic ``IMAGES.mat`` of the UFLDL sparse-autoencoder exercise.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from ..errors import DataError, NotFittedError
from ..validation import as_float_array, check_finite, check_number

logger = logging.getLogger(__name__)

__all__ = ["ZCAWhitening", "whiten_images_1_over_f", "ONE_OVER_F_CUTOFF"]

# f₀ of the 1/f filter as a fraction of the Nyquist frequency: Olshausen & Field's f₀ = 0.4·N
# cycles/image for an N-pixel image, i.e. 0.4 cycles/pixel = 0.8 × Nyquist.
ONE_OVER_F_CUTOFF = 0.8


def _output_dtype(X: Any) -> type:
    """float64 for float64 input, float32 for everything else (the library's working precision)."""
    dtype = getattr(X, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return np.float64 if dtype == torch.float64 else np.float32
    if dtype is not None and np.dtype(dtype) == np.float64:
        return np.float64
    return np.float32


class ZCAWhitening(TransformerMixin, BaseEstimator):
    """ZCA whitening of samples ``X (n_samples, n_features)``.

    ``fit`` computes the mean ``μ`` and the covariance ``Σ = (X − μ)ᵀ(X − μ) / n = U Λ Uᵀ``; then

    * ``transform(X) = (X − μ) W`` with ``W = U (Λ + εI)^{-1/2} Uᵀ`` (symmetric, so ``Wᵀ = W``);
    * ``inverse_transform(Z) = Z W⁻¹ + μ`` with ``W⁻¹ = U (Λ + εI)^{1/2} Uᵀ``.

    ``epsilon`` (ε ≥ 0) regularises small eigenvalues: as ε → 0 the whitened training data has
    covariance exactly ``I``; a larger ε damps directions of variance below ε (noise) instead of
    amplifying them. ε = 0 is refused on a singular covariance. ``n_components`` k keeps only the
    k directions of largest variance (PCA dimension reduction, then rotated back:
    ``W = U_k (Λ_k + εI)^{-1/2} U_kᵀ``, rank k): on image patches a low-pass that drops the
    high-frequency noise whitening would amplify; ``inverse_transform`` then restores the kept
    directions only. None keeps all. ``rotate_back=False`` is PCA whitening: the output is the k
    whitened coordinates ``(X − μ) U_k (Λ_k + εI)^{-1/2}`` (n, k), without the rank-k embedding
    in pixel space (a model fitted on them has no null space to put weight into); then
    ``components_`` is (d, k) and ``inverse_components_`` (k, d), so ``V @ inverse_components_``
    shows row vectors V (·, k) of the whitened space as pixel-space images.

    Fitted attributes: ``mean_`` (n_features,), ``components_`` = W and ``inverse_components_`` = W⁻¹
    (n_features, n_features), ``explained_variance_`` = Λ in descending order, ``n_features_in_``.
    Output dtype follows the input: float64 stays float64, anything else becomes float32.
    """

    def __init__(self, *, epsilon: float = 1e-2, n_components: int | None = None,
                 rotate_back: bool = True) -> None:
        self.epsilon = epsilon
        self.n_components = n_components
        self.rotate_back = rotate_back

    def fit(self, X: Any, y: Any = None) -> ZCAWhitening:
        """Estimate ``mean_``, ``components_`` and ``inverse_components_`` from ``X (n, d)``."""
        check_number(self.epsilon, "epsilon", low=0.0)
        data = as_float_array(X, "X", dtype=np.float64)
        if data.shape[0] < 2:
            raise DataError(f"ZCAWhitening needs at least 2 samples to estimate a covariance, got {data.shape[0]}")
        mean = data.mean(axis=0)
        centered = data - mean
        covariance = centered.T @ centered / data.shape[0]
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        eigenvalues = np.clip(eigenvalues, 0.0, None)  # eigh can return tiny negatives
        all_eigenvalues = eigenvalues
        if self.n_components is not None:
            check_number(self.n_components, "n_components", low=1, high=data.shape[1], integer=True)
            eigenvalues, eigenvectors = eigenvalues[-self.n_components:], eigenvectors[:, -self.n_components:]
        regularised = eigenvalues + float(self.epsilon)
        if regularised.min() <= 1e-12 * max(float(regularised.max()), 1e-300):
            raise DataError(
                "the covariance of X is singular (a direction has zero variance); "
                "ZCAWhitening needs epsilon > 0 for such data")
        self.mean_ = mean
        if self.rotate_back:
            whitening = (eigenvectors / np.sqrt(regularised)) @ eigenvectors.T
            colouring = (eigenvectors * np.sqrt(regularised)) @ eigenvectors.T
            self.components_ = (whitening + whitening.T) / 2  # exactly symmetric
            self.inverse_components_ = (colouring + colouring.T) / 2
        else:  # PCA whitening, largest variance first
            self.components_ = (eigenvectors / np.sqrt(regularised))[:, ::-1].copy()
            self.inverse_components_ = (eigenvectors * np.sqrt(regularised)).T[::-1].copy()
        self.explained_variance_ = all_eigenvalues[::-1].copy()
        self.n_features_in_ = data.shape[1]
        logger.debug("ZCA fitted on %d samples x %d features; eigenvalues in [%.3g, %.3g]",
                     data.shape[0], data.shape[1], eigenvalues.min(), eigenvalues.max())
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError("this ZCAWhitening is not fitted yet; call fit(X) first")

    def transform(self, X: Any) -> np.ndarray:
        """Whiten: ``(X − mean_) @ components_``, shape ``(n, d)`` (``(n, k)`` without ``rotate_back``)."""
        self._check_fitted()
        data = as_float_array(X, "X", n_features=self.n_features_in_, dtype=np.float64)
        return ((data - self.mean_) @ self.components_).astype(_output_dtype(X), copy=False)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Undo the whitening: ``X @ inverse_components_ + mean_``, shape ``(n, d)``."""
        self._check_fitted()
        data = as_float_array(X, "X", n_features=self.components_.shape[1], dtype=np.float64)
        return (data @ self.inverse_components_ + self.mean_).astype(_output_dtype(X), copy=False)

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "components_")


def _one_over_f_filter(height: int, width: int, cutoff: float) -> np.ndarray:
    """The filter ``|f| · exp(−(|f|/f₀)⁴)`` on the ``rfft2`` grid of a ``(height, width)`` image.

    Frequencies are in cycles per pixel (Nyquist = 0.5); ``f₀ = cutoff × 0.5``.
    """
    frequency_y = np.fft.fftfreq(height)[:, None]
    frequency_x = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(frequency_y ** 2 + frequency_x ** 2)
    f0 = cutoff * 0.5
    return radius * np.exp(-(radius / f0) ** 4)


def _whiten_stack(stack: np.ndarray, cutoff: float) -> np.ndarray:
    """Whiten a stack ``(n, H, W)`` of equally sized images; returns float64 ``(n, H, W)``."""
    n_images, height, width = stack.shape
    # Mirror-extend to (2H, 2W): the extended image is periodic without jumps at its borders, so the
    # FFT's wrap-around adds no artificial edges (which the |f| ramp would otherwise turn into bright
    # lines along the image border).
    extended = np.concatenate([stack, stack[:, ::-1, :]], axis=1)
    extended = np.concatenate([extended, extended[:, :, ::-1]], axis=2)
    spectrum = np.fft.rfft2(extended, axes=(-2, -1))
    spectrum *= _one_over_f_filter(2 * height, 2 * width, cutoff)
    whitened = np.fft.irfft2(spectrum, s=(2 * height, 2 * width), axes=(-2, -1))[:, :height, :width]
    whitened = whitened - whitened.mean(axis=(1, 2), keepdims=True)
    scale = whitened.std(axis=(1, 2), keepdims=True)
    if np.any(scale == 0):
        flat = int(np.nonzero(scale.reshape(-1) == 0)[0][0])
        raise DataError(f"image {flat} has no spatial variation (constant image); it cannot be whitened")
    return whitened / scale


def whiten_images_1_over_f(images: np.ndarray | Sequence[np.ndarray], *, cutoff: float = ONE_OVER_F_CUTOFF
                           ) -> np.ndarray | list[np.ndarray]:
    """Olshausen & Field whitening of whole grayscale images in the Fourier domain.

    Each image ``I (H, W)`` becomes ``IFFT(FFT(I) · |f| · exp(−(|f|/f₀)⁴))`` with ``|f|`` in cycles per
    pixel and ``f₀ = cutoff × Nyquist = cutoff × 0.5``, then is shifted to zero mean and scaled to unit
    variance (per image). The image is mirror-extended before the FFT so its borders add no artefacts.

    ``images``: one image ``(H, W)``, a stack ``(n, H, W)``, or a sequence of 2-D images of any sizes.
    Returns float64 of the same shape (a list for a sequence input).
    """
    check_number(cutoff, "cutoff", low=0.0, low_inclusive=False)
    if isinstance(images, (np.ndarray, torch.Tensor)):
        array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
        if array.ndim not in (2, 3):
            raise DataError(f"images must be (H, W) or (n, H, W), got shape {array.shape}")
        stack = _as_image_stack(array[None] if array.ndim == 2 else array)
        whitened = _whiten_stack(stack, float(cutoff))
        return whitened[0] if array.ndim == 2 else whitened
    result = []
    for index, image in enumerate(images):
        image_array = np.asarray(image)
        if image_array.ndim != 2:
            raise DataError(f"image {index} must be 2-D (H, W) grayscale, got shape {image_array.shape}")
        result.append(_whiten_stack(_as_image_stack(image_array[None]), float(cutoff))[0])
    if not result:
        raise DataError("no images given to whiten")
    return result


def _as_image_stack(stack: np.ndarray) -> np.ndarray:
    """Validate a stack ``(n, H, W)``: numeric, finite, at least 2×2; returns float64."""
    if stack.dtype.kind not in "biuf":
        raise DataError(f"images must be numeric, got dtype {stack.dtype}")
    if stack.shape[0] == 0:
        raise DataError("no images given to whiten")
    if stack.shape[1] < 2 or stack.shape[2] < 2:
        raise DataError(f"images must be at least 2x2 pixels, got {stack.shape[1]}x{stack.shape[2]}")
    stack = stack.astype(np.float64, copy=False)
    check_finite(stack, "images")
    return stack


def unit_norm_rows(X: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Each row scaled to unit L2 norm (DrSAE's MNIST input scaling); all-zero rows stay zero.
    X: (n_samples, n_features) → same shape, float32 unless X is float64."""
    X = np.asarray(X)
    X = X.astype(np.float64 if X.dtype == np.float64 else np.float32, copy=False)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, eps)

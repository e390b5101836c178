"""Image data: scikit-learn's 8×8 digits, its two sample photos, and patches or crops of them
(raw, 1/f-, ZCA- or PCA-whitened), float32/float64 rows ``(n, side²)`` flattened row-major.

Everything here ships with scikit-learn: no download.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..validation import check_bool, check_choice, check_number
from .whitening import ONE_OVER_F_CUTOFF, ZCAWhitening, whiten_images_1_over_f

__all__ = [
    "load_digits_data", "load_natural_images", "natural_image_patches", "pca_whitened_patches",
    "zca_whitened_crops", "extract_patches", "ufldl_normalize_patches", "block_average",
]


# -------------------------------------------------------------------------------------------- digits

def load_digits_data() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits: ``X`` float32 ``(1797, 64)`` in [0, 1] (pixels / 16), ``y`` int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    return X, digits.target.astype(np.int64)


# ----------------------------------------------------------------------------- natural image patches

_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601


@functools.lru_cache(maxsize=1)
def _sample_images_gray() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    images = []
    for rgb in load_sample_images().images:
        gray = rgb.astype(np.float64) @ _LUMA_WEIGHTS / 255.0
        gray.setflags(write=False)
        images.append(gray)
    return tuple(images)


@functools.lru_cache(maxsize=4)
def _sample_images_whitened(cutoff: float, downsample: int = 1) -> tuple[np.ndarray, ...]:
    reduced = [block_average(image, downsample) for image in _sample_images_gray()]
    whitened = whiten_images_1_over_f(reduced, cutoff=cutoff)
    for image in whitened:
        image.setflags(write=False)
    return tuple(whitened)


def block_average(image: np.ndarray, factor: int) -> np.ndarray:
    """``image (H, W)`` reduced ``factor``× by averaging ``factor × factor`` blocks:
    ``(H // factor, W // factor)``, the last rows and columns that fill no block dropped;
    ``factor`` 1 returns ``image`` itself."""
    check_number(factor, "downsample", low=1, integer=True)
    if factor == 1:
        return image
    if image.ndim != 2:
        raise DataError(f"images must be 2-D grayscale, got shape {image.shape}")
    height, width = image.shape[0] // factor, image.shape[1] // factor
    if height == 0 or width == 0:
        raise DataError(f"an image of {image.shape[0]}x{image.shape[1]} pixels cannot be reduced {factor}x")
    blocks = image[:height * factor, :width * factor].reshape(height, factor, width, factor)
    return blocks.mean(axis=(1, 3))


def load_natural_images() -> list[np.ndarray]:
    """scikit-learn's two sample photos (china.jpg, flower.jpg) as grayscale float64 ``(427, 640)`` in
    [0, 1] (BT.601 luma). Ship with scikit-learn: no download."""
    return [image.copy() for image in _sample_images_gray()]


def extract_patches(images: Sequence[np.ndarray], n_patches: int, patch_size: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``n_patches`` square patches at uniformly random positions, flattened row-major to
    ``(n_patches, patch_size²)`` (``patch[r, c]`` → column ``r·patch_size + c``).

    Each patch picks an image uniformly, then a top-left corner uniformly among the valid ones.
    Extraction is one fancy-indexing gather, no Python loop over patches.
    """
    check_number(n_patches, "n_patches", low=1, integer=True)
    check_number(patch_size, "patch_size", low=1, integer=True)
    images = [np.asarray(image) for image in images]
    if not images:
        raise DataError("no images to take patches from")
    if any(image.ndim != 2 for image in images):
        raise DataError(f"images must be 2-D grayscale, got shapes {[image.shape for image in images]}")
    heights = np.array([image.shape[0] for image in images])
    widths = np.array([image.shape[1] for image in images])
    smallest = int(min(heights.min(), widths.min()))
    if patch_size > smallest:
        raise ConfigError(f"patch_size must be <= {smallest} (the smallest image side), got {patch_size}")
    # One zero-padded stack, so every patch is gathered by a single index expression; corners are drawn
    # inside each image's own valid range, so the padding is never read.
    stack = np.zeros((len(images), int(heights.max()), int(widths.max())), dtype=np.result_type(*images))
    for index, image in enumerate(images):
        stack[index, :image.shape[0], :image.shape[1]] = image
    which = rng.integers(len(images), size=n_patches)
    tops = rng.integers(0, heights[which] - patch_size + 1)
    lefts = rng.integers(0, widths[which] - patch_size + 1)
    offsets = np.arange(patch_size)
    patches = stack[which[:, None, None],
                    tops[:, None, None] + offsets[None, :, None],
                    lefts[:, None, None] + offsets[None, None, :]]
    return patches.reshape(n_patches, patch_size * patch_size)


def ufldl_normalize_patches(patches: np.ndarray) -> np.ndarray:
    """UFLDL's ``normalizeData``: ``x ← x − mean(x)`` per patch (row); clip to ``±3σ`` with σ the std of
    all centred values; map [−1, 1] to [0.1, 0.9] (the range of a sigmoid decoder). Returns float32."""
    centered = patches - patches.mean(axis=1, keepdims=True)
    limit = 3.0 * float(centered.std())
    if limit == 0.0:
        return np.full(patches.shape, 0.5, dtype=np.float32)
    scaled = np.clip(centered, -limit, limit) / limit
    return ((scaled + 1.0) * 0.4 + 0.1).astype(np.float32)


def natural_image_patches(n_patches: int = 10000, patch_size: int = 8, *, whitening: str = "1/f",
                          random_state: int | np.random.Generator | None = 0, ufldl_normalize: bool = True,
                          images: Sequence[np.ndarray] | None = None, downsample: int = 1) -> np.ndarray:
    """Random grayscale patches of natural images, float32 ``(n_patches, patch_size²)``.

    The images are scikit-learn's two sample photos (no download) unless ``images`` (2-D grayscale
    arrays) are given. ``downsample``: reduce the images that many times first
    (:func:`block_average`), so that a patch spans more of the scene (3 for the UFLDL demo: the
    photos at full size are JPEGs with large smooth regions, and a third of a sparse
    autoencoder's units end switched off on them). ``whitening``: ``"1/f"`` whitens the whole images first
    (:func:`whiten_images_1_over_f`, the UFLDL/Olshausen preprocessing), ``"zca"`` fits
    :class:`ZCAWhitening` on the raw patches and applies it, ``"none"`` keeps grayscale in [0, 1].
    Positions come from ``np.random.default_rng(random_state)``. With ``ufldl_normalize`` the patches
    pass through :func:`ufldl_normalize_patches` and lie in [0.1, 0.9].
    """
    check_choice(whitening, "whitening", ("1/f", "zca", "none"))
    check_number(n_patches, "n_patches", low=1, integer=True)
    check_number(patch_size, "patch_size", low=1, integer=True)
    check_number(downsample, "downsample", low=1, integer=True)
    check_bool(ufldl_normalize, "ufldl_normalize")
    if random_state is not None and not isinstance(random_state, np.random.Generator):
        check_number(random_state, "random_state", low=0, integer=True)
    try:
        return _natural_image_patches(n_patches, patch_size, whitening, np.random.default_rng(random_state),
                                      ufldl_normalize, images, downsample)
    except MemoryError:
        raise ConfigError(f"{n_patches} patches of {patch_size}x{patch_size} pixels do not fit in memory: "
                          "ask for fewer (n_patches)") from None


def _natural_image_patches(n_patches: int, patch_size: int, whitening: str, rng: np.random.Generator,
                           ufldl_normalize: bool, images: Sequence[np.ndarray] | None, downsample: int
                           ) -> np.ndarray:
    if images is None and whitening == "1/f":
        source = _sample_images_whitened(ONE_OVER_F_CUTOFF, int(downsample))
    else:
        gray = _sample_images_gray() if images is None else [np.asarray(image) for image in images]
        source = [block_average(image, int(downsample)) for image in gray]
        if whitening == "1/f":
            source = whiten_images_1_over_f(source)
    patches = extract_patches(source, n_patches, patch_size, rng).astype(np.float64)
    if whitening == "zca":
        patches = ZCAWhitening().fit_transform(patches).astype(np.float64)
    if ufldl_normalize:
        return ufldl_normalize_patches(patches)
    return patches.astype(np.float32)


def pca_whitened_patches(n_patches: int = 5000, patch_size: int = 8, *, n_directions: int = 48,
                         epsilon: float = 0.1, random_state: int = 0) -> tuple[np.ndarray, ZCAWhitening]:
    """Patches of the sample images in PCA-whitened coordinates: ``(n_patches, n_directions)`` float64,
    and the fitted :class:`ZCAWhitening` (``inverse_components_`` maps a filter back to pixels).

    Each grayscale patch's mean is removed, all are scaled to unit variance, then whitened keeping
    the ``n_directions`` directions of largest variance (ε = ``epsilon`` on the eigenvalues,
    ``rotate_back=False``): the dropped high-frequency (JPEG) directions are not amplified, and a
    model sees no null space to park weight in (the topographic and tree-pruning reproductions)."""
    check_number(n_directions, "n_directions", low=1, high=patch_size * patch_size, integer=True)
    raw = natural_image_patches(n_patches, patch_size, whitening="none", ufldl_normalize=False,
                                random_state=random_state).astype(np.float64)
    raw -= raw.mean(axis=1, keepdims=True)
    raw /= raw.std()
    zca = ZCAWhitening(epsilon=epsilon, n_components=n_directions, rotate_back=False).fit(raw)
    return zca.transform(raw), zca


def zca_whitened_crops(n_crops: int = 6000, crop_size: int = 32, *, keep: float = 0.15, epsilon: float = 0.1,
                       random_state: int = 0) -> np.ndarray:
    """Crops of the sample images ZCA-whitened in pixel space: ``(n_crops, crop_size²)`` float32.

    Each grayscale crop's mean is removed, all are scaled to unit variance, whitened keeping the
    ``keep`` fraction of directions of largest variance (ε = ``epsilon``) and rotated back to pixels,
    then scaled to unit variance again: whole whitened images, whose dropped directions are the
    high-frequency (JPEG) noise whitening would amplify (the locally connected topographic recipe)."""
    check_number(keep, "keep", low=0.0, high=1.0, low_inclusive=False)
    raw = natural_image_patches(n_crops, crop_size, whitening="none", ufldl_normalize=False,
                                random_state=random_state).astype(np.float64)
    raw -= raw.mean(axis=1, keepdims=True)
    raw /= raw.std()
    zca = ZCAWhitening(epsilon=epsilon, n_components=max(1, int(round(keep * crop_size * crop_size))))
    white = zca.fit_transform(raw)
    return (white / white.std()).astype(np.float32)


def shifted_copies(X: np.ndarray, image_shape: tuple[int, int], copies: int, seed: int = 0) -> np.ndarray:
    """``copies`` copies of the image rows X (n, h·w), each row shifted by its own random (dy, dx) in
    {−1, 0, 1}² with the vacated border zero, as (copies·n, h·w) in X's dtype (copy c in rows c·n…).
    A cheap way to more training inputs for digits, whose borders are blank: no content is lost."""
    check_number(copies, "copies", low=0, integer=True)
    X = np.asarray(X)
    h, w = image_shape
    if X.ndim != 2 or X.shape[1] != h * w:
        raise DataError(f"shifted_copies needs rows of {h}×{w} = {h * w} pixels, got an array of shape {X.shape}")
    rng = np.random.default_rng(seed)
    images = X.reshape(-1, h, w)
    out = np.zeros((copies, *images.shape), dtype=X.dtype)
    for c in range(copies):
        shifts = rng.integers(-1, 2, size=(len(X), 2))
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
                out[c, rows, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                    images[rows, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out.reshape(copies * len(X), h * w)

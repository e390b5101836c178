"""Datasets: MNIST (see :mod:`.mnist`), digits, natural image patches, user arrays, and their registry.

Every loader returns float32 features ``X (n_samples, n_features)`` (and int64 labels ``y (n_samples,)``
where the data has them). :func:`load_dataset` builds a :class:`Dataset` by registered name, which is
how the CLI and config files refer to data. Nothing is ever downloaded unless asked for
(``load_mnist(download=True)``, CLI ``--download``).
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, DataNotFoundError
from ..registry import Registry
from ..validation import as_float_array, check_bool, check_choice, check_number, check_path, numpy_file_error
from .mnist import (
    DATA_DIR_ENV_VAR,
    MNIST_ENV_VAR,
    MNIST_SHA256,
    MNIST_URL,
    default_cache_dir,
    download_mnist,
    load_mnist,
    read_idx,
)
from .whitening import ONE_OVER_F_CUTOFF, ZCAWhitening, whiten_images_1_over_f

logger = logging.getLogger(__name__)

#: Input normalizations a run applies to its rows (``data.normalize``): none, unit norm, training
#: mean subtracted then unit norm. Read by the config, the run layer, the SAELens export and the
#: spliced-model metrics.
NORMALIZATIONS = ("none", "l2", "center_l2")

__all__ = [
    "DATASETS", "Dataset", "load_dataset", "load_mnist", "download_mnist", "read_idx",
    "default_cache_dir", "load_digits_data", "load_natural_images", "natural_image_patches",
    "pca_whitened_patches", "extract_patches", "ufldl_normalize_patches", "load_array", "load_labeled_array",
    "MNIST_URL", "MNIST_SHA256", "MNIST_ENV_VAR", "DATA_DIR_ENV_VAR", "NORMALIZATIONS",
]


DATASETS: Registry[Dataset] = Registry("dataset")


@dataclass(eq=False)
class Dataset:
    """Features ``X (n_samples, n_features)``, optional labels ``y (n_samples,)``, and the 2-D shape
    ``(height, width)`` a row reshapes to when the features are pixels (for filter plots), else None.
    ``targets``: rows ``(n_samples, n_targets)`` a model predicts from X (a paired harvest's MLP
    outputs, for a transcoder), else None; never normalized."""

    X: np.ndarray
    y: np.ndarray | None
    image_shape: tuple[int, int] | None
    name: str
    targets: Any = None

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.X):
            raise DataError(f"dataset {self.name!r}: {len(self.X)} samples but {len(self.y)} labels")
        if self.targets is not None and len(self.targets) != len(self.X):
            raise DataError(f"dataset {self.name!r}: {len(self.X)} samples but {len(self.targets)} target rows")
        if self.image_shape is not None and self.image_shape[0] * self.image_shape[1] != self.X.shape[1]:
            raise DataError(f"dataset {self.name!r}: image_shape {self.image_shape} does not match "
                            f"{self.X.shape[1]} features")

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])


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


# ------------------------------------------------------------------------------------- user arrays

_ARRAY_SUFFIXES = (".npy", ".npz", ".csv")


def _existing_file(path: str | os.PathLike) -> Path:
    check_path(path, "path")
    file = Path(path).expanduser()
    if not file.exists():
        raise DataNotFoundError(f"data file not found: {file}")
    if not file.is_file():
        raise DataError(f"{file} is not a file (a directory?); expected a {', '.join(_ARRAY_SUFFIXES)} file")
    return file


def _open_npz(file: Path) -> Any:
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{file}: cannot read as an .npz archive: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{file}: has the .npz extension but holds a single .npy array")
    return archive


def _check_npy_size(handle: Any, size: int, where: str) -> None:
    """Raise :class:`DataError` when the ``.npy`` header at the start of ``handle`` announces more
    data than the ``size`` bytes hold (a truncated or forged file), before NumPy allocates for it;
    a header NumPy cannot parse is left for ``np.load`` to report."""
    try:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(handle)
        start = handle.tell()
    except Exception:  # noqa: BLE001 — np.load says what is wrong with the header
        return
    if dtype.hasobject:
        return  # refused without unpickling by np.load(allow_pickle=False)
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if needed > size - start:
        raise DataError(f"{where} is truncated or corrupt: its header announces an array of shape "
                        f"{tuple(shape)} ({needed:,} bytes of data), but it holds {max(size - start, 0):,}")


def _npz_member(archive: Any, key: str, file: Path) -> np.ndarray:
    if key not in archive.files:
        raise DataError(f"{file}: no array named {key!r}; it holds {', '.join(archive.files) or 'nothing'}")
    try:
        member = f"{key}.npy" if f"{key}.npy" in archive.zip.namelist() else key
        with archive.zip.open(member) as handle:
            _check_npy_size(handle, archive.zip.getinfo(member).file_size, f"{file}: array {key!r}")
        return archive[key]
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{file}: array {key!r} is too large to load into memory") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise numpy_file_error(exc, f"{file}: cannot read array {key!r}") from None


def _is_header(line: str) -> bool:
    """True when no cell of the comma-separated ``line`` reads as a number."""
    for cell in line.split(","):
        try:
            float(cell)
            return False
        except ValueError:
            continue
    return True


def _load_csv(file: Path) -> np.ndarray:
    try:
        with open(file, encoding="utf-8-sig") as handle:
            first_line = handle.readline()
        skip = 1 if first_line.strip() and _is_header(first_line) else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data" → checked below
            data = np.loadtxt(file, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64,
                              encoding="utf-8-sig")
    except ValueError as exc:  # includes UnicodeDecodeError
        raise DataError(f"{file}: not a numeric CSV ({exc})") from None
    if data.size == 0:
        raise DataError(f"{file}: CSV has no data rows")
    return data


def load_array(path: str | os.PathLike, *, key: str | None = None, mmap: bool = True) -> np.ndarray:
    """Load a user array from ``.npy``, ``.npz`` or ``.csv``, as stored (no dtype or shape change).

    * ``.npy``: memory-mapped read-only (``np.memmap``) when ``mmap``, so it need not fit in memory.
    * ``.npz``: the array named ``key``, or the only array (read into memory: npz members are zipped).
    * ``.csv``: comma-separated numbers as float64 ``(rows, columns)``; a first line with no numeric
      cell is taken as a header and skipped.

    Raises :class:`DataNotFoundError` for a missing file, :class:`DataError` for an unknown extension,
    unreadable content, or an ambiguous npz; :class:`ConfigError` for ``key`` on a non-npz file.
    """
    file = _existing_file(path)
    suffix = file.suffix.lower()
    if suffix not in _ARRAY_SUFFIXES:
        raise DataError(f"{file}: unsupported file type {suffix or '(no extension)'!r}; "
                        f"use one of {', '.join(_ARRAY_SUFFIXES)}")
    if key is not None and suffix != ".npz":
        raise ConfigError(f"key={key!r} only applies to .npz files, not {file.name}")
    if suffix == ".npy":
        try:
            if not mmap:  # a memory map checks the size itself; a read would allocate first
                with open(file, "rb") as handle:
                    _check_npy_size(handle, os.fstat(handle.fileno()).st_size, str(file))
            return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except DataError:
            raise
        except MemoryError:
            raise DataError(f"{file} is too large to load into memory") from None
        except (OSError, ValueError, EOFError) as exc:
            raise numpy_file_error(exc, f"{file}: cannot read as a .npy array") from None
    if suffix == ".csv":
        return _load_csv(file)
    with _open_npz(file) as archive:
        if key is None:
            if len(archive.files) != 1:
                raise DataError(f"{file}: holds {len(archive.files)} arrays "
                                f"({', '.join(archive.files) or 'none'}); pass key= to choose one")
            key = archive.files[0]
        return _npz_member(archive, key, file)


def load_labeled_array(path: str | os.PathLike, *, x_key: str = "X", y_key: str = "y"
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels from one ``.npz``: ``(archive[x_key], archive[y_key])``; ``y`` must be 1-D
    with one label per row of ``X``."""
    file = _existing_file(path)
    if file.suffix.lower() != ".npz":
        raise DataError(f"{file}: labelled arrays are read from .npz files only")
    with _open_npz(file) as archive:
        X = _npz_member(archive, x_key, file)
        y = _npz_member(archive, y_key, file)
    if y.ndim != 1 or X.ndim == 0 or y.shape[0] != X.shape[0]:
        raise DataError(f"{file}: labels {y_key!r} of shape {y.shape} do not match features {x_key!r} "
                        f"of shape {X.shape} (need one label per row)")
    return X, y


# ------------------------------------------------------------------------------------------ registry

def select_classes(dataset: Dataset, classes: Sequence[int] | None) -> Dataset:
    """Only the samples whose label is in ``classes`` (None: all), e.g. MNIST digits 5–9 for
    UFLDL's self-taught learning exercise. Unknown labels are a :class:`ConfigError`."""
    if classes is None:
        return dataset
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__") or not len(classes):
        raise ConfigError(f"classes must be a non-empty list of labels, e.g. [5, 6, 7, 8, 9], got {classes!r}")
    try:
        wanted = np.asarray(list(classes))
    except (TypeError, ValueError):  # ragged nesting
        wanted = None
    if wanted is None or wanted.ndim != 1 or wanted.dtype.kind not in "biufUS":
        raise ConfigError(f"classes must be a flat list of labels, e.g. [5, 6, 7, 8, 9], got {classes!r}")
    unknown = np.setdiff1d(wanted, np.unique(dataset.y))
    if len(unknown):
        raise ConfigError(f"dataset {dataset.name!r} has no class {unknown[0].item()!r}; its classes are "
                          f"{np.unique(dataset.y).tolist()}")
    keep = np.isin(dataset.y, wanted)
    return Dataset(dataset.X[keep], dataset.y[keep], dataset.image_shape, dataset.name)


@DATASETS.register("mnist")
def _mnist_dataset(path: str | None = None, split: str = "train", download: bool = False,
                   cache_dir: str | None = None, classes: Sequence[int] | None = None,
                   n_samples: int | None = None) -> Dataset:
    # n_samples: only the first n images (after `classes`), e.g. a recipe's quick variant.
    if n_samples is not None:
        check_number(n_samples, "n_samples", low=1, integer=True)
    X, y = load_mnist(path, split=split, download=download, cache_dir=cache_dir)
    dataset = select_classes(Dataset(X, y, (28, 28), "mnist"), classes)
    if n_samples is None or n_samples >= dataset.n_samples:
        return dataset
    return Dataset(dataset.X[:n_samples], dataset.y[:n_samples], dataset.image_shape, dataset.name)


@DATASETS.register("digits")
def _digits_dataset(classes: Sequence[int] | None = None) -> Dataset:
    X, y = load_digits_data()
    return select_classes(Dataset(X, y, (8, 8), "digits"), classes)


@DATASETS.register("patches")
def _patches_dataset(n_patches: int = 10000, patch_size: int = 8, whitening: str = "1/f",
                     random_state: int | None = 0, ufldl_normalize: bool = True, downsample: int = 1) -> Dataset:
    X = natural_image_patches(n_patches, patch_size, whitening=whitening, random_state=random_state,
                              ufldl_normalize=ufldl_normalize, downsample=downsample)
    return Dataset(X, None, (patch_size, patch_size), "patches")


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


@DATASETS.register("whitened_patches")
def _whitened_patches_dataset(n_patches: int = 5000, patch_size: int = 8, n_directions: int = 48,
                              epsilon: float = 0.1, random_state: int = 0) -> Dataset:
    """:func:`pca_whitened_patches` (float64; no image shape: the features are whitened directions)."""
    X, _ = pca_whitened_patches(n_patches, patch_size, n_directions=n_directions, epsilon=epsilon,
                                random_state=random_state)
    return Dataset(X, None, None, "whitened_patches")


@DATASETS.register("spiral")
def _spiral_dataset(n_samples: int = 5000, noise: float = 0.05, turns: float = 1.0, random_state: int = 0,
                    n_centers: int = 2000) -> Dataset:
    """Points near a 2-D spiral of known density (:func:`sparseae.data.spiral.make_spiral`)."""
    from .spiral import make_spiral

    X, _ = make_spiral(n_samples, noise=noise, turns=turns, random_state=random_state, n_centers=n_centers)
    return Dataset(X, None, None, "spiral")


@DATASETS.register("shards")
def _shards_dataset(path: str) -> Dataset:
    """Sharded rows; a paired harvest's ``targets/`` sub-folder (``sparseae harvest --target``) gives
    the targets, row for row."""
    from .harvest import TARGETS_DIR
    from .shards import ShardedArray

    check_path(path, "path")
    X = ShardedArray(path)
    folder = Path(str(path).rstrip("/*"))
    targets = ShardedArray(folder / TARGETS_DIR) if (folder / TARGETS_DIR).is_dir() else None
    return Dataset(X, None, None, folder.name or "shards", targets)


@DATASETS.register("synthetic")
def _synthetic_dataset(n_samples: int = 50_000, n_features: int = 64, n_latents: int = 512,
                       mean_active: float = 8.0, zipf_exponent: float = 0.5, correlation: float = 0.3,
                       correlation_rank: int = 8, hierarchy_fraction: float = 0.2, magnitude_mean: float = 1.0,
                       magnitude_std: float = 0.25, noise_std: float = 0.0, random_state: int = 0,
                       sample_seed: int | None = None) -> Dataset:
    """Activations of features in superposition with a known dictionary
    (:func:`sparseae.data.synthetic.make_superposition`, whose true dictionary and codes are not kept here)."""
    from .synthetic import make_superposition

    data = make_superposition(n_samples, n_features, n_latents, mean_active=mean_active,
                              zipf_exponent=zipf_exponent, correlation=correlation,
                              correlation_rank=correlation_rank, hierarchy_fraction=hierarchy_fraction,
                              magnitude_mean=magnitude_mean, magnitude_std=magnitude_std, noise_std=noise_std,
                              random_state=random_state, sample_seed=sample_seed)
    return Dataset(data.X, None, None, "synthetic")


@DATASETS.register("array")
def _array_dataset(path: str, key: str | None = None, labels_key: str | None = None) -> Dataset:
    if labels_key is None:
        raw = load_array(path, key=key)
        y = None
    else:
        file = _existing_file(path)
        if file.suffix.lower() != ".npz":
            raise ConfigError(f"labels_key only applies to .npz files, not {file.name}")
        with _open_npz(file) as archive:
            if key is None:
                others = [name for name in archive.files if name != labels_key]
                if len(others) != 1:
                    raise DataError(f"{file}: cannot tell which array holds the features "
                                    f"({', '.join(others) or 'none'} besides {labels_key!r}); pass key=")
                key = others[0]
        raw, y = load_labeled_array(file, x_key=key, y_key=labels_key)
    X = as_float_array(raw, f"array file {Path(path).name}")
    return Dataset(X, y, None, Path(path).stem)


def load_dataset(name: str, **kwargs: Any) -> Dataset:
    """Build the registered dataset ``name`` (``"mnist"``, ``"digits"``, ``"patches"``, ``"array"``) with
    ``kwargs`` as its options; an option the dataset does not take is a :class:`ConfigError`."""
    builder = DATASETS.get(name)
    parameters = inspect.signature(builder).parameters
    unknown = [option for option in kwargs if option not in parameters]
    if unknown:
        valid = ", ".join(parameters) or "none"
        raise ConfigError(f"dataset {name!r} got unknown option {unknown[0]!r}; its options are: {valid}")
    missing = [option for option, parameter in parameters.items()
               if parameter.default is inspect.Parameter.empty and option not in kwargs]
    if missing:
        raise ConfigError(f"dataset {name!r} needs option {missing[0]!r}")
    return builder(**kwargs)

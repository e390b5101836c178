"""The dataset registry: names → loaders, the :class:`Dataset` they return, and the row normalizations.

The loaders live beside it: MNIST in :mod:`.mnist`, digits and natural-image patches in
:mod:`.images`, user arrays in :mod:`.arrays`. Every loader returns float32 features
``X (n_samples, n_features)`` (and int64 labels ``y (n_samples,)`` where the data has them).
:func:`load_dataset` builds a :class:`Dataset` by registered name, which is how the CLI and config
files refer to data. Nothing is ever downloaded unless asked for (``load_mnist(download=True)``,
CLI ``--download``).
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..registry import Registry
from ..validation import as_float_array, check_number, check_path
from .arrays import existing_file, load_array, load_labeled_array, open_npz
from .images import load_digits_data, natural_image_patches, pca_whitened_patches, zca_whitened_crops
from .mnist import load_mnist

logger = logging.getLogger(__name__)

#: Input normalizations a run applies to its rows (``data.normalize``): none, unit norm, training
#: mean subtracted then unit norm. Read by the config, the run layer, the SAELens export and the
#: spliced-model metrics.
NORMALIZATIONS = ("none", "l2", "center_l2")

__all__ = ["DATASETS", "Dataset", "load_dataset", "select_classes", "NORMALIZATIONS"]


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


@DATASETS.register("whitened_patches")
def _whitened_patches_dataset(n_patches: int = 5000, patch_size: int = 8, n_directions: int = 48,
                              epsilon: float = 0.1, random_state: int = 0) -> Dataset:
    """:func:`pca_whitened_patches` (float64; no image shape: the features are whitened directions)."""
    X, _ = pca_whitened_patches(n_patches, patch_size, n_directions=n_directions, epsilon=epsilon,
                                random_state=random_state)
    return Dataset(X, None, None, "whitened_patches")


@DATASETS.register("whitened_crops")
def _whitened_crops_dataset(n_crops: int = 6000, crop_size: int = 32, keep: float = 0.15, epsilon: float = 0.1,
                            random_state: int = 0) -> Dataset:
    """:func:`zca_whitened_crops` (images of ``crop_size``×``crop_size`` pixels)."""
    X = zca_whitened_crops(n_crops, crop_size, keep=keep, epsilon=epsilon, random_state=random_state)
    return Dataset(X, None, (crop_size, crop_size), "whitened_crops")


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
                       sample_seed: int | None = None, child_similarity: float = 0.0) -> Dataset:
    """Activations of features in superposition with a known dictionary
    (:func:`sparseae.data.synthetic.make_superposition`, whose true dictionary and codes are not kept here)."""
    from .synthetic import make_superposition

    data = make_superposition(n_samples, n_features, n_latents, mean_active=mean_active,
                              zipf_exponent=zipf_exponent, correlation=correlation,
                              correlation_rank=correlation_rank, hierarchy_fraction=hierarchy_fraction,
                              child_similarity=child_similarity, magnitude_mean=magnitude_mean,
                              magnitude_std=magnitude_std, noise_std=noise_std,
                              random_state=random_state, sample_seed=sample_seed)
    return Dataset(data.X, None, None, "synthetic")


@DATASETS.register("array")
def _array_dataset(path: str, key: str | None = None, labels_key: str | None = None) -> Dataset:
    if labels_key is None:
        raw = load_array(path, key=key)
        y = None
    else:
        file = existing_file(path)
        if file.suffix.lower() != ".npz":
            raise ConfigError(f"labels_key only applies to .npz files, not {file.name}")
        with open_npz(file) as archive:
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

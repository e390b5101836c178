"""Data: MNIST, scikit-learn digits, natural image patches, user arrays, whitening, and a registry.

``load_dataset(name, **options)`` builds any registered :class:`Dataset` by name.
"""
from .arrays import load_array, load_labeled_array
from .datasets import DATASETS, Dataset, load_dataset
from .images import (
    block_average,
    extract_patches,
    load_digits_data,
    load_natural_images,
    natural_image_patches,
    ufldl_normalize_patches,
)
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
from .shards import ShardedArray, store_activations, write_shards
from .synthetic import SuperpositionData, make_superposition
from .whitening import ONE_OVER_F_CUTOFF, ZCAWhitening, unit_norm_rows, whiten_images_1_over_f

__all__ = [
    "SuperpositionData", "make_superposition",
    "ShardedArray",
    "store_activations",
    "write_shards",
    "DATASETS", "Dataset", "load_dataset",
    "load_mnist", "download_mnist", "read_idx", "default_cache_dir",
    "MNIST_URL", "MNIST_SHA256", "MNIST_ENV_VAR", "DATA_DIR_ENV_VAR",
    "load_digits_data",
    "load_natural_images", "natural_image_patches", "extract_patches", "ufldl_normalize_patches",
    "block_average",
    "load_array", "load_labeled_array",
    "ZCAWhitening", "whiten_images_1_over_f", "ONE_OVER_F_CUTOFF", "unit_norm_rows",
]

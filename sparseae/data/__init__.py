"""Data: MNIST, scikit-learn digits, natural image patches, user arrays, whitening, and a registry.

``load_dataset(name, **options)`` builds any registered :class:`Dataset` by name.
"""
from .datasets import (
    DATA_DIR_ENV_VAR,
    DATASETS,
    MNIST_ENV_VAR,
    MNIST_SHA256,
    MNIST_URL,
    Dataset,
    block_average,
    default_cache_dir,
    download_mnist,
    extract_patches,
    load_array,
    load_dataset,
    load_digits_data,
    load_labeled_array,
    load_mnist,
    load_natural_images,
    natural_image_patches,
    read_idx,
    ufldl_normalize_patches,
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

"""Semantic hashing (Salakhutdinov & Hinton 2009): binary codes, a Hamming hash index with
radius lookup and exhaustive ranking, hashing baselines (LSH, PCA hashing, ITQ) and retrieval
metrics (mAP, precision within a Hamming radius, precision-recall by radius), and the binary
autoencoder trained by auxiliary coordinates (Carreira-Perpiñán & Raziperchikolaei 2015)."""
from .baselines import ITQ, PCAHashing, RandomProjectionLSH
from .binary_autoencoder import AnchorEmbedding, BinaryAutoencoder
from .codes import binarize, flip_masks, hamming_distances, n_bytes_for, pack_bits, unpack_bits
from .index import HammingIndex
from .metrics import (
    PrecisionRecallCurve,
    RadiusPrecision,
    mean_average_precision,
    mnist_retrieval_split,
    precision_recall_curve,
    precision_within_radius,
)

__all__ = [
    "AnchorEmbedding",
    "BinaryAutoencoder",
    "HammingIndex",
    "ITQ",
    "PCAHashing",
    "PrecisionRecallCurve",
    "RadiusPrecision",
    "RandomProjectionLSH",
    "binarize",
    "flip_masks",
    "hamming_distances",
    "mean_average_precision",
    "mnist_retrieval_split",
    "n_bytes_for",
    "pack_bits",
    "precision_recall_curve",
    "precision_within_radius",
    "unpack_bits",
]

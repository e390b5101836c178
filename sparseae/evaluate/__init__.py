"""Evaluation of trained autoencoders: reconstruction quality, code sparsity, linear probes."""
from .metrics import (
    SparsityAccumulator,
    explained_variance,
    fraction_of_variance_unexplained,
    mean_squared_error,
    reconstruction_error,
    sparsity_stats,
)
from .probe import confusion_matrix, linear_probe

__all__ = [
    "SparsityAccumulator",
    "confusion_matrix",
    "explained_variance",
    "fraction_of_variance_unexplained",
    "linear_probe",
    "mean_squared_error",
    "reconstruction_error",
    "sparsity_stats",
]

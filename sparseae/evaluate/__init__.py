"""Evaluation of trained autoencoders: reconstruction quality, code sparsity, linear probes,
and what the learned filters look like."""
from .filters import energy_concentration, orientation_selectivity, random_filter_baseline
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
    "energy_concentration",
    "orientation_selectivity",
    "random_filter_baseline",
    "explained_variance",
    "fraction_of_variance_unexplained",
    "linear_probe",
    "mean_squared_error",
    "reconstruction_error",
    "sparsity_stats",
]

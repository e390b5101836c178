"""Evaluation of trained autoencoders: reconstruction quality, code sparsity, linear probes,
what the learned filters look like, and the field a denoising autoencoder learns."""
from .features import TopActivations, top_activations
from .filters import energy_concentration, orientation_selectivity, random_filter_baseline
from .manifold import (
    contraction_stats,
    make_spiral,
    mixture_score,
    reconstruction_field,
    saturated_fraction,
    score_alignment,
)
from .metrics import (
    SparsityAccumulator,
    explained_variance,
    fraction_of_variance_unexplained,
    mean_squared_error,
    reconstruction_error,
    sparsity_stats,
)
from .probe import confusion_matrix, linear_probe
from .recovery import recovery_scores
from .tree import branch_similarity

__all__ = [
    "TopActivations",
    "top_activations",
    "SparsityAccumulator",
    "branch_similarity",
    "confusion_matrix",
    "contraction_stats",
    "energy_concentration",
    "orientation_selectivity",
    "random_filter_baseline",
    "explained_variance",
    "fraction_of_variance_unexplained",
    "linear_probe",
    "recovery_scores",
    "make_spiral",
    "mixture_score",
    "reconstruction_field",
    "saturated_fraction",
    "score_alignment",
    "mean_squared_error",
    "reconstruction_error",
    "sparsity_stats",
]

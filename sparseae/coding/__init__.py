"""Iterative sparse-coding inference: codes ``Z`` minimising ``½‖x − Dz‖² + λ‖z‖₁`` per row.

* :mod:`~sparseae.coding.prox`: proximal operators (soft thresholding and its non-negative form).
* :mod:`~sparseae.coding.solvers`: batched ISTA (Daubechies et al. 2004) and FISTA (Beck &
  Teboulle 2009), the Lasso objective, its duality gap and the Lipschitz constant of ``DᵀD``.
* :mod:`~sparseae.coding.encode`: :func:`sparse_encode`, scikit-learn's API: exact LARS-Lasso,
  coordinate descent, LARS, OMP (compiled with numba), thresholding and FISTA.
* :mod:`~sparseae.coding.dictionary`: inference as a module, dictionary helpers, re-initialization
  of unused atoms, atom recovery (dictionary learning, :func:`~sparseae.train.procedures.learn_dictionary`,
  trains a ``sparse_coding`` model).
* :mod:`~sparseae.coding.inhibition`: lateral inhibition, ``+ ½|z|ᵀS|z|`` in the energy: majorized
  ISTA/FISTA and coordinate descent; :mod:`~sparseae.coding.inhibition_matrix`: S's tree form, bound
  and gradient-ascent step.

``lista_from_dictionary`` and ``psd_code_quality`` live with their models
(:mod:`sparseae.models.lista`, :mod:`sparseae.models.psd`), which import this package (never the
other way: this package sits below ``nn`` and ``models``).
"""
from .dictionary import (
    AtomUsage,
    SparseInference,
    atom_recovery,
    check_dictionary,
    default_tolerance,
    dictionary_from_samples,
    unit_norm_atoms,
)
from .encode import sparse_encode
from .inhibition import (
    check_inhibition_matrix,
    inhibition_codes,
    inhibition_energy,
    inhibition_lipschitz,
    inhibition_stationarity,
)
from .inhibition_matrix import (
    coactivation,
    inhibition_ascent,
    inhibition_mask,
    project_inhibition,
    tree_inhibition,
    tree_relatives,
)
from .prox import L1Prox, ProximalOperator, nonnegative_soft_threshold, soft_threshold
from .solvers import (
    SparseCodeResult,
    duality_gap,
    fista,
    ista,
    lasso_l1_bound,
    lasso_objective,
    lipschitz_constant,
)

__all__ = [
    "AtomUsage",
    "SparseInference",
    "atom_recovery",
    "check_dictionary",
    "default_tolerance",
    "dictionary_from_samples",
    "unit_norm_atoms",
    "check_inhibition_matrix",
    "coactivation",
    "inhibition_ascent",
    "inhibition_codes",
    "inhibition_energy",
    "inhibition_lipschitz",
    "inhibition_mask",
    "inhibition_stationarity",
    "project_inhibition",
    "tree_inhibition",
    "tree_relatives",
    "L1Prox",
    "ProximalOperator",
    "SparseCodeResult",
    "duality_gap",
    "fista",
    "ista",
    "lasso_l1_bound",
    "lasso_objective",
    "lipschitz_constant",
    "nonnegative_soft_threshold",
    "soft_threshold",
    "sparse_encode",
]

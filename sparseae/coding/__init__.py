"""Iterative sparse-coding inference: codes ``Z`` minimising ``½‖x − Dz‖² + λ‖z‖₁`` per row.

* :mod:`~sparseae.coding.prox`: proximal operators (soft thresholding and its non-negative form).
* :mod:`~sparseae.coding.solvers`: batched ISTA (Daubechies et al. 2004) and FISTA (Beck &
  Teboulle 2009), the Lasso objective, its duality gap and the Lipschitz constant of ``DᵀD``.
"""
from .prox import L1Prox, ProximalOperator, nonnegative_soft_threshold, soft_threshold
from .solvers import (
    SparseCodeResult,
    duality_gap,
    fista,
    ista,
    lasso_objective,
    lipschitz_constant,
)

__all__ = [
    "L1Prox",
    "ProximalOperator",
    "SparseCodeResult",
    "duality_gap",
    "fista",
    "ista",
    "lasso_objective",
    "lipschitz_constant",
    "nonnegative_soft_threshold",
    "soft_threshold",
]

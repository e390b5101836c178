"""The lateral-inhibition sparse coder as a scikit-learn estimator (the ``lateral_inhibition`` model)."""
from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from .._sklearn_compat import Interval, StrOptions
from ..coding.inhibition import METHODS as INHIBITION_METHODS
from ..coding.inhibition_matrix import NORMS as BOUND_NORMS
from ..models.lateral_inhibition import INHIBITION_KINDS
from ..train import TrainConfig
from .base import BaseAutoencoderEstimator

__all__ = ["LateralInhibitionCoder"]


class LateralInhibitionCoder(BaseAutoencoderEstimator):
    """Sparse coding with lateral inhibition (Gregor, Szlam & LeCun 2011):
    ``z* = argmin_z ½‖x − Dz‖² + λ‖z‖₁ + ½|z|ᵀS|z|``; ``transform`` gives z*, ``inverse_transform`` Dz,
    ``score`` the negative mean energy. Training alternates, per minibatch, inference, one step on the
    dictionary D (unit-norm atoms) and, for a learned S, one projected gradient-ascent step on S.

    Parameters
    ----------
    n_components : int ≥ 1
        Code units (with ``tree``: the number of tree nodes).
    sparsity_weight : float > 0
        λ.
    inhibition : {"learned", "fixed"}
        Whether S is learned (ascent rate ``inhibition_rate``, bound ``inhibition_bound`` in
        ``bound_norm``: "row_sum", every unit's total inhibition ≤ β, or "frobenius", ‖S‖_F ≤ β) or
        stays as it starts.
    tree : list, dict or None
        Tree form: a parent list, ``{"parent": [...]}`` or ``{"depth": d, "branching": b}``; S is 0
        between a unit and its ancestors and descendants.
    inhibition_matrix : nested list or array (k, k) or None
        The starting (or fixed) S: ≥ 0, symmetric, zero diagonal. Default: ``inhibition_value`` on
        every pair allowed to inhibit.
    inhibition_value, inhibition_rate, inhibition_bound, bound_norm
        See above.
    nonnegative : bool
        Codes z ≥ 0.
    method : {"fista", "ista", "cod"}
        Inference solver (:func:`~sparseae.coding.inhibition.inhibition_codes`).
    inference_max_iter : int ≥ 1; inference_tol : float ≥ 0 or None
        Its iteration budget and relative-change tolerance (None: the working precision).
    reinit_unused_every : int ≥ 0
        Training batches after which atoms no code used move to data (0: never).

    Notes
    -----
    Training: ``optimizer`` ("adam" or "sgd": S and the atoms' norms are updated between steps),
    ``learning_rate`` (of D), ``batch_size``, ``max_epochs`` and the rest as in
    :class:`BaseAutoencoderEstimator`. Fitted attribute ``inhibition_``: S, float32 (k, k).
    """

    _parameter_constraints: ClassVar[dict] = {
        **{key: value for key, value in BaseAutoencoderEstimator._parameter_constraints.items() if key != "max_iter"},
        "optimizer": [StrOptions({"adam", "sgd"})],
        "sparsity_weight": [Interval(Real, 0, None, closed="neither")],
        "inhibition": [StrOptions(set(INHIBITION_KINDS))],
        "tree": [list, dict, None],
        "inhibition_matrix": ["array-like", None],
        "inhibition_value": [Interval(Real, 0, None, closed="left")],
        "inhibition_rate": [Interval(Real, 0, None, closed="left")],
        "inhibition_bound": [Interval(Real, 0, None, closed="neither")],
        "bound_norm": [StrOptions(set(BOUND_NORMS))],
        "nonnegative": ["boolean"],
        "method": [StrOptions(set(INHIBITION_METHODS))],
        "inference_max_iter": [Interval(Integral, 1, None, closed="left")],
        "inference_tol": [Interval(Real, 0, None, closed="left"), None],
        "reinit_unused_every": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, *, n_components: int = 64, sparsity_weight: float = 0.1, inhibition: str = "learned",
                 tree: list | dict | None = None, inhibition_matrix: Any = None, inhibition_value: float = 0.0,
                 inhibition_rate: float = 0.1, inhibition_bound: float = 1.0, bound_norm: str = "row_sum",
                 nonnegative: bool = False, method: str = "fista", inference_max_iter: int = 200,
                 inference_tol: float | None = None, reinit_unused_every: int = 100, optimizer: str = "adam",
                 learning_rate: float = 3e-3, batch_size: int = 256, max_epochs: int = 20,
                 validation_fraction: float = 0.0, n_iter_no_change: int | None = None, device: str = "auto",
                 random_state: int | None = None, verbose: bool = False) -> None:
        self.n_components = n_components
        self.sparsity_weight = sparsity_weight
        self.inhibition = inhibition
        self.tree = tree
        self.inhibition_matrix = inhibition_matrix
        self.inhibition_value = inhibition_value
        self.inhibition_rate = inhibition_rate
        self.inhibition_bound = inhibition_bound
        self.bound_norm = bound_norm
        self.nonnegative = nonnegative
        self.method = method
        self.inference_max_iter = inference_max_iter
        self.inference_tol = inference_tol
        self.reinit_unused_every = reinit_unused_every
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _model_spec(self) -> tuple[str, dict[str, Any]]:
        matrix = self.inhibition_matrix
        return "lateral_inhibition", {
            "sparsity_weight": float(self.sparsity_weight), "inhibition": self.inhibition, "tree": self.tree,
            "inhibition_matrix": None if matrix is None else np.asarray(matrix, dtype=np.float64).tolist(),
            "inhibition_value": float(self.inhibition_value), "inhibition_rate": float(self.inhibition_rate),
            "inhibition_bound": float(self.inhibition_bound), "bound_norm": self.bound_norm,
            "nonnegative": bool(self.nonnegative), "method": self.method,
            "inference_max_iter": int(self.inference_max_iter),
            "tol": None if self.inference_tol is None else float(self.inference_tol),
            "reinit_unused_every": int(self.reinit_unused_every)}

    def _training_config(self, seed: int) -> TrainConfig:
        return TrainConfig(optimizer=self.optimizer, learning_rate=self.learning_rate, batch_size=self.batch_size,
                           max_epochs=self.max_epochs, validation_fraction=self.validation_fraction,
                           n_iter_no_change=self.n_iter_no_change, random_state=seed, device=self.device,
                           progress=bool(self.verbose)).validate()

    @property
    def inhibition_(self) -> np.ndarray:
        """The (learned) inhibition matrix S, float32 (n_components, n_components)."""
        self._check_fitted()
        return self.model_.inhibition.detach().to("cpu").float().numpy().copy()

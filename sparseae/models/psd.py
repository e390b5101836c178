"""Predictive sparse decomposition, PSD (Kavukcuoglu, Ranzato & LeCun 2008).

Energy of x (n_features,) and a code z (n_components,), with this library's ½ on the reconstruction:

    E(x, z) = ½‖x − Dz‖² + λ‖z‖₁ + γ‖z − F(x)‖²,

i.e. half the paper's ``‖x − Bz‖² + λ_p‖z‖₁ + α‖z − F(x)‖²`` with ``λ = λ_p/2``, ``γ = α/2``.
``F(x) = G·tanh(Wx + b)`` (``encoder="tanh"``) or ``h_θ(Wx + b)`` (``encoder="shrink"``). Per batch:
``z* = argmin_z E(x, z)`` by FISTA started at F(x), without gradient; the loss ``E(x, z*)`` then
trains D through the reconstruction at z* and F through ``γ‖z* − F(x)‖²``; D's atoms are renormalized
after each step. ``encode(x) = F(x)`` is the fast code; :meth:`PSD.sparse_code` is z*. The model's
``penalties`` (``weight_decay`` on F's matrices, or any added by hand on the code F(x)) are added to
the loss and logged by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..coding.dictionary import SparseInference
from ..inference import evaluating, placement, row_batches
from ..nn.activations import upcast_half
from ..nn.amortized import ScaledTanhEncoder, ShrinkageEncoder, nonnegative_thresholds
from ..nn.penalties import ForwardPass, Penalty
from ..validation import as_float_array, check_choice, check_number
from .base import MODELS, Energy, encoder_weight_decay
from .sparse_coding import DictionaryModel, fitted_groups, sparsity_term

__all__ = ["PSD", "PSDCodeQuality", "psd", "psd_code_quality"]


class PSD(DictionaryModel):
    """PSD: ``encoder`` F (batch, n_features) → (batch, n_components), ``inference`` for z*,
    ``prediction_weight`` γ > 0. Loss terms (means over the batch): ``reconstruction`` ½‖x − Dz*‖²,
    ``l1`` λ‖z*‖₁ (no gradient), ``prediction`` γ‖z* − F(x)‖²; their sum is E(x, z*); then each of
    ``penalties``, which see F(x) as the code."""

    def __init__(self, encoder: nn.Module, n_features: int, n_components: int,
                 inference: SparseInference, prediction_weight: float, *,
                 penalties: dict[str, Penalty] | None = None, reinit_unused_every: int = 100,
                 constraints: tuple = (), init: str = "random") -> None:
        super().__init__(encoder, n_features, n_components, penalties=penalties,
                         reinit_unused_every=reinit_unused_every, constraints=constraints, init=init)
        self.inference = inference
        self.prediction_weight = float(prediction_weight)

    def sparse_code(self, x: torch.Tensor, z0: torch.Tensor | None = None,
                    prediction: torch.Tensor | None = None) -> torch.Tensor:
        """z* = argmin_z E(x, z) (batch, n_components), started at ``z0`` (default F(x)).
        ``prediction``: F(x) when already computed."""
        prediction = self.encode(x) if prediction is None else prediction
        return self.inference(x, self.dictionary, prediction if z0 is None else z0,
                              anchor=prediction, anchor_weight=self.prediction_weight)

    def energy_terms(self, x: torch.Tensor, z: torch.Tensor, prediction: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
        """The three terms of E(x, z), each (batch,), for x (batch, n_features), z and F(x)
        (batch, n_components)."""
        eta = upcast_half(self.decoder(z))
        return {"reconstruction": self.likelihood.nll(eta, x),
                self.inference.penalty_name: self.inference.penalty(z),
                "prediction": self.prediction_weight * (z - prediction).square().sum(dim=1)}

    def energy(self, x: torch.Tensor, x_input: torch.Tensor | None = None) -> Energy:
        """E(x, z*) by its three terms (batch means); the penalties see F(x) as the code, the loss
        reports z*."""
        x_input = x if x_input is None else x_input
        prediction = self.encode(x_input)
        code = self.sparse_code(x, prediction=prediction)
        terms = {name: value.mean() for name, value in self.energy_terms(x, code, prediction).items()}
        self.track_usage(x, code)
        step = ForwardPass(x=x, x_input=x_input, code=prediction, eta=self.decoder(code), model=self)
        return Energy(step, sum(terms.values()), {k: v.detach() for k, v in terms.items()}, code=code)


@MODELS.register("psd")
def psd(n_features: int, n_components: int, *, sparsity_weight: float = 0.1,
        prediction_weight: float = 1.0, encoder: str = "tanh", nonnegative: bool = False,
        inference_max_iter: int = 100, tol: float | None = None, reinit_unused_every: int = 100,
        groups: dict | None = None, group_eps: float = 0.0, weight_decay: float = 0.0,
        inference: str = "auto", init: str = "random") -> PSD:
    """PSD with λ = ``sparsity_weight``, γ = ``prediction_weight`` (> 0) and ``encoder`` ``"tanh"``
    (G·tanh(Wx + b)) or ``"shrink"`` (h_θ(Wx + b), per-unit θ ≥ 0 starting at λ; non-negative shrinkage
    when ``nonnegative``). Inference: FISTA from F(x), at most ``inference_max_iter`` iterations,
    ``tol`` (None: the working precision), ``z ≥ 0`` when ``nonnegative``. ``reinit_unused_every``:
    see ``sparse_coding``. ``weight_decay`` λ_w: + (λ_w/2)‖W‖² over F's weight matrices (D's atoms
    have unit norm).
    ``groups``: a group structure spec (:func:`sparseae.groups.make_groups`): λ Σ_j ‖z‖_{g_j}
    replaces λ‖z‖₁ (topographic PSD with grid windows, Kavukcuoglu et al. 2009); ``group_eps`` ε > 0
    smooths it to λ Σ_j √(‖z‖²_{g_j} + ε), inferred by accelerated gradient (as ``sparse_coding``).
    ``inference``: the solver of z* (as ``sparse_coding``; with γ the Lasso on ``[D; √(2γ)·I]``).
    ``init``: the atoms' start, ``"random"`` or ``"data"`` (as ``sparse_coding``).
    """
    check_choice(encoder, "encoder", ("tanh", "shrink"))
    check_number(prediction_weight, "prediction_weight (gamma)", low=0.0, low_inclusive=False)
    check_number(inference_max_iter, "inference_max_iter", low=1, integer=True)
    structure = fitted_groups(groups, n_components)
    solver = SparseInference(sparsity_weight, nonnegative=nonnegative, max_iter=inference_max_iter, tol=tol,
                             groups=structure, group_eps=group_eps, solver=inference,
                             term=sparsity_term(sparsity_weight, nonnegative, structure, group_eps))
    if encoder == "tanh":
        predictor: nn.Module = ScaledTanhEncoder(n_features, n_components)
        constraints: tuple = ()
    else:
        predictor = ShrinkageEncoder(n_features, n_components, n_steps=0, nonnegative=nonnegative,
                                     bias=True, threshold=sparsity_weight)
        constraints = (nonnegative_thresholds,)
    return PSD(predictor, n_features, n_components, solver, prediction_weight,
               penalties=encoder_weight_decay(weight_decay, predictor),
               reinit_unused_every=reinit_unused_every, constraints=constraints, init=init)


@dataclass
class PSDCodeQuality:
    """How close the fast code F(x) is to the inferred code z* over a data set.

    ``relative_code_error``: ``‖F(X) − Z*‖_F / ‖Z*‖_F``. Mean energies: ``energy_predicted`` E(x, F(x))
    (the prediction term is 0 there, so it is the sparse-coding energy ½‖x − DF(x)‖² + λ‖F(x)‖₁),
    ``energy_optimal`` E(x, z*), and ``energy_lasso`` min_z ½‖x − Dz‖² + λ‖z‖₁ (the sparse-coding
    optimum without the prediction term); ``energy_lasso ≤ energy_optimal ≤ energy_predicted``.
    """

    relative_code_error: float
    energy_predicted: float
    energy_optimal: float
    energy_lasso: float

    @property
    def energy_ratio(self) -> float:
        """``energy_predicted / energy_lasso`` (≥ 1): how much worse the fast code is than sparse coding."""
        return self.energy_predicted / self.energy_lasso if self.energy_lasso > 0 else float("inf")


def psd_code_quality(model: PSD, X: Any, *, batch_size: int = 1024) -> PSDCodeQuality:
    """:class:`PSDCodeQuality` of ``model`` on X (n_samples, n_features), in eval mode."""
    if not isinstance(model, PSD):
        raise TypeError(f"psd_code_quality needs a PSD model, got {type(model).__name__}")
    check_number(batch_size, "batch_size", low=1, integer=True)
    X = as_float_array(X, "X", n_features=model.n_features)
    device, dtype = placement(model)
    sums = np.zeros(5)  # ‖F − z*‖², ‖z*‖², E(F), E(z*), E_lasso
    with evaluating(model):
        for _, x in row_batches(X, batch_size, device=device, dtype=dtype):
            fast = model.encode(x)
            best = model.sparse_code(x, prediction=fast)
            lasso = model.inference(x, model.dictionary, best)
            energies = [float(sum(model.energy_terms(x, z, fast).values()).sum()) for z in (fast, best)]
            lasso_terms = model.energy_terms(x, lasso, fast)
            sums += [float((fast - best).square().sum()), float(best.square().sum()), *energies,
                     float((lasso_terms["reconstruction"] + lasso_terms[model.inference.penalty_name]).sum())]
    n = X.shape[0]
    relative = float(np.sqrt(sums[0] / sums[1])) if sums[1] > 0 else float("inf")
    return PSDCodeQuality(relative_code_error=relative, energy_predicted=float(sums[2] / n),
                          energy_optimal=float(sums[3] / n), energy_lasso=float(sums[4] / n))

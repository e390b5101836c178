"""LISTA, learned ISTA (Gregor & LeCun 2010): a fixed-depth network trained to predict optimal sparse codes.

``z⁰ = h_θ(W_e x)``, ``z^{k+1} = h_θ(W_e x + S z^k)`` for T = ``n_steps`` steps
(:class:`~sparseae.nn.amortized.ShrinkageEncoder`). The target is the Lasso code
``z* = argmin_z ½‖x − Dz‖² + λ‖z‖₁`` on a fixed dictionary D (a buffer), computed by FISTA without
gradient; the loss is ``‖z^T − z*‖²``. Initialized from D as ``W_e = Dᵀ/L``, ``S = I − DᵀD/L``,
``θ = λ/L`` (L = λ_max(DᵀD)), the untrained network computes T + 1 ISTA iterations from zero; training
makes it reach in T steps codes that ISTA and FISTA need many more iterations for. The model's
``penalties`` (``weight_decay`` on W_e and S, or any added by hand on the code z^T) are added to the
loss and logged by name.
"""
from __future__ import annotations

from typing import Any

import torch

from ..coding.dictionary import SparseInference, check_dictionary
from ..coding.solvers import fista, lasso_l1_bound, lasso_objective, lipschitz_constant
from ..errors import DataError
from ..groups import GroupStructure
from ..nn.activations import upcast_half
from ..nn.amortized import FixedDictionaryDecoder, ShrinkageEncoder, nonnegative_thresholds
from ..nn.likelihoods import GaussianLikelihood
from ..nn.penalties import ForwardPass, Penalty, WeightDecay
from ..validation import check_bool, check_number
from .base import MODELS, Autoencoder, Energy, create_model, encoder_weight_decay
from .sparse_coding import sparsity_term

__all__ = ["LISTA", "lista", "lista_from_dictionary"]


class LISTA(Autoencoder):
    """LISTA with a :class:`ShrinkageEncoder` ``encoder``, a :class:`FixedDictionaryDecoder` ``decoder``
    (so ``decode`` reconstructs ``Dz``) and the ``inference`` that computes the targets.

    Loss terms (means over the batch): ``code_prediction`` ‖z^T − z*‖² and ``reconstruction``
    ``w·½‖x − Dz^T‖²`` with w = ``reconstruction_weight`` (0 by default: Gregor & LeCun train on the code
    alone; the term is still logged, as every model's loss has one), then each of ``penalties``.
    The trainer passes precomputed optimal codes as ``train(model, X, y=Z_star)`` (``target_kind``
    ``"values"``); without them each batch's z* is computed by FISTA.
    """

    #: The trainer's ``y`` for this model: per-sample optimal codes (n_samples, n_components).
    target_kind = "values"

    def __init__(self, encoder: ShrinkageEncoder, decoder: FixedDictionaryDecoder,
                 inference: SparseInference, reconstruction_weight: float = 0.0,
                 penalties: dict[str, Penalty] | None = None) -> None:
        super().__init__(encoder, decoder, GaussianLikelihood(), penalties, constraints=[nonnegative_thresholds])
        self.inference = inference
        self.reconstruction_weight = float(reconstruction_weight)
        #: L = λ_max(DᵀD)·1.01 of the fixed dictionary, set with it.
        self.register_buffer("lipschitz", torch.ones(()))
        # (x, x._version, D, D._version, z*) of the latest target: the same batch asked again (a
        # gradient check, an evaluation after a step) reuses z*, which depends on x and D only.
        self._latest_target: tuple | None = None

    @property
    def dictionary(self) -> torch.Tensor:
        """D (n_features, n_components), fixed."""
        return self.decoder.weight

    @torch.no_grad()
    def init_from_dictionary(self, D: Any) -> None:
        """Set the dictionary D (n_features, n_components) and make the encoder ISTA on it:
        ``W_e = Dᵀ/L``, ``S = I − DᵀD/L``, ``θ = λ/L`` with L from :func:`lipschitz_constant`."""
        D = check_dictionary(D, self.n_features, self.n_components)
        self.decoder.weight.copy_(D)
        self.lipschitz.copy_(lipschitz_constant(self.decoder.weight))
        self.encoder.init_from_dictionary(self.decoder.weight, float(self.lipschitz), self.inference.lam)

    def code_groups(self) -> list[GroupStructure]:
        """The penalties' group structures, then the inference's (when it has groups)."""
        own = self.inference.groups
        return super().code_groups() + ([own] if own is not None else [])

    def optimal_code(self, x: torch.Tensor) -> torch.Tensor:
        """The target z* (batch, n_components) of x (batch, n_features) by the model's inference
        (``"auto"``: the exact Lasso on the CPU, FISTA from zero on a GPU)."""
        D, latest = self.dictionary, self._latest_target
        if (latest is not None and latest[0] is x and latest[1] == x._version and latest[2] is D
                and latest[3] == D._version):
            return latest[4]
        target = self.inference(x, D, L=self.lipschitz)
        self._latest_target = (x, x._version, D, D._version, target)
        return target

    @torch.no_grad()
    def safeguarded_encode(self, x: torch.Tensor, fallback_iter: int) -> tuple[torch.Tensor, torch.Tensor]:
        """z^T (batch, n_components) of x (batch, n_features), each row checked against the Lasso's certificate
        ``‖z*‖₁ ≤ ‖x‖²/(4λ)`` (:func:`~sparseae.coding.lasso_l1_bound`, true for every dictionary): a row whose
        code leaves that ball is recomputed by ``fallback_iter`` FISTA iterations from zero on the model's
        dictionary, and the solver's code replaces it when its Lasso objective is lower (safeguarded learned
        optimization, as Heaton et al. 2023). Returns the codes and the mask (batch,) of the rows replaced.
        Deep untied nets can blow up on an input unlike their training rows: there the solver's code is used."""
        check_number(fallback_iter, "fallback_iter", low=1, integer=True)
        code = self.encode(x)
        lam = self.inference.lam
        flagged = code.abs().sum(dim=1) > lasso_l1_bound(x, lam)
        if bool(flagged.any()):
            rows = x[flagged]
            solved = fista(rows, self.dictionary, lam, L=self.lipschitz, max_iter=fallback_iter, stop="none",
                           nonnegative=self.inference.nonnegative).codes.to(code.dtype)
            better = lasso_objective(rows, self.dictionary, solved, lam) < lasso_objective(rows, self.dictionary,
                                                                                            code[flagged], lam)
            flagged[flagged.clone()] = better
            code = code.clone()
            code[flagged] = solved[better]
        return code, flagged

    def energy(self, x: torch.Tensor, x_input: torch.Tensor | None = None, *,
               targets: torch.Tensor | None = None) -> Energy:
        """``targets``: precomputed z* (batch, n_components), e.g. cached for a data set whose
        dictionary does not change; computed by :meth:`optimal_code` when None."""
        if targets is None:
            targets = self.optimal_code(x)
        elif tuple(targets.shape) != (x.shape[0], self.n_components):
            raise DataError(f"targets must be the optimal codes, shape (batch, n_components) = "
                            f"{(x.shape[0], self.n_components)}, got {tuple(targets.shape)}")
        x_input = x if x_input is None else x_input
        code = self.encode(x_input)
        eta = self.decoder(code)
        z = upcast_half(code)
        reconstruction = self.likelihood.nll(upcast_half(eta), x).mean()
        terms = {"code_prediction": (z - targets.to(z.dtype)).square().sum(dim=1).mean(),
                 "reconstruction": self.reconstruction_weight * reconstruction}
        step = ForwardPass(x=x, x_input=x_input, code=code, eta=eta, model=self)
        return Energy(step, sum(terms.values()), {k: v.detach() for k, v in terms.items()})


@MODELS.register("lista")
def lista(n_features: int, n_components: int, *, n_steps: int = 3, sparsity_weight: float = 0.1,
          nonnegative: bool = False, inference_max_iter: int = 1000, tol: float | None = None,
          reconstruction_weight: float = 0.0, weight_decay: float = 0.0,
          inference: str = "auto", untied: bool = False, layer_thresholds: bool = False) -> LISTA:
    """LISTA with T = ``n_steps`` ≥ 1 steps for the Lasso λ = ``sparsity_weight`` (``z ≥ 0`` and
    non-negative shrinkage when ``nonnegative``); targets by ``inference`` (FISTA: at most
    ``inference_max_iter`` iterations, ``tol``: None solves to the working precision).
    ``weight_decay`` λ_w: + (λ_w/2)‖W‖² over W_e and S. Starts as ISTA on a random unit-norm
    dictionary; set the real one with :meth:`LISTA.init_from_dictionary` or build with
    :func:`lista_from_dictionary`. ``inference``: the targets' solver (as ``sparse_coding``:
    ``"auto"`` is the exact Lasso on the CPU). ``untied``: a separate S_k per step (n_steps, n_components,
    n_components) instead of Gregor & LeCun's shared S; ``layer_thresholds``: a θ_k per shrinkage
    (n_steps + 1, n_components) instead of one θ (both start as ISTA).
    """
    check_number(n_steps, "n_steps (T)", low=1, integer=True)
    check_number(reconstruction_weight, "reconstruction_weight", low=0.0)
    check_number(inference_max_iter, "inference_max_iter", low=1, integer=True)
    check_bool(untied, "untied")
    check_bool(layer_thresholds, "layer_thresholds")
    solver = SparseInference(sparsity_weight, nonnegative=nonnegative, max_iter=inference_max_iter, tol=tol,
                             term=sparsity_term(sparsity_weight, nonnegative, None, 0.0), solver=inference)
    encoder = ShrinkageEncoder(n_features, n_components, n_steps, nonnegative=nonnegative, untied=untied,
                               layer_thresholds=layer_thresholds)
    penalties = encoder_weight_decay(weight_decay, encoder)
    if "weight_decay" in penalties:  # W_e and S only: per-layer thresholds θ (n_steps + 1, n) are no weights
        penalties["weight_decay"] = WeightDecay(weight_decay, names=[name for name in penalties["weight_decay"].names
                                                                     if name != "encoder.threshold"])
    model = LISTA(encoder, FixedDictionaryDecoder(n_components, n_features), solver, reconstruction_weight, penalties)
    if model.dictionary.device.type != "meta":  # a shapes-only build (io.load_model's size check)
        model.init_from_dictionary(model.dictionary.clone())
    return model


def lista_from_dictionary(D: Any, lam: float, n_steps: int, **params: Any) -> LISTA:
    """A ``lista`` model for the dictionary D (n_features, n_components), λ = ``lam`` and T = ``n_steps``,
    initialized as ISTA on D, in D's dtype; ``params``: the other arguments of :func:`lista`."""
    D = check_dictionary(D)
    model = create_model("lista", D.shape[0], D.shape[1], n_steps=n_steps, sparsity_weight=lam, **params)
    model.to(dtype=D.dtype)
    model.init_from_dictionary(D)
    return model

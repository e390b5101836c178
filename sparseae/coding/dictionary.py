"""Dictionary learning: sparse inference as a module, atom usage and re-initialization, atom recovery.

Dictionary learning (Olshausen & Field 1996; the online form of Mairal et al. 2009) alternates

1. inference: ``z* = argmin_z ½‖x − Dz‖² + λ‖z‖₁`` for a minibatch, by FISTA with ``D`` fixed
   (:class:`SparseInference`, no gradient);
2. learning: a gradient step on ``½‖x − Dz*‖²`` in ``D`` followed by the projection of each atom (column)
   onto the unit sphere, so that ``λ‖z‖₁`` cannot be shrunk by growing the atoms.

The ``sparse_coding`` model (:mod:`sparseae.models.sparse_coding`) runs exactly this under the ordinary
trainer: its loss is ``½‖x − Dz*‖² + λ‖z*‖₁`` with ``z*`` computed without gradient — the value of
``min_z E(x, z)``, whose gradient in ``D`` at the minimizer is the partial derivative at fixed ``z*``
(the envelope theorem), so a finite-difference check of the loss agrees with autograd when ``z*`` is
solved to the working precision. Atoms that no code uses stay where they are forever (their gradient
is zero); :class:`AtomUsage` counts each atom's use over a window of batches and moves the unused ones
onto normalized inputs of the latest batch.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..errors import ConfigError, DataError
from ..tensors import upcast_half
from ..validation import as_float_array, check_choice, check_number
from .encode import sparse_encode
from .prox import L1Prox, group_penalty, l1_penalty
from .solvers import fista, lipschitz_constant

__all__ = [
    "INFERENCE_SOLVERS",
    "SparseInference",
    "AtomUsage",
    "default_tolerance",
    "unit_norm_atoms",
    "dictionary_from_samples",
    "check_dictionary",
    "atom_recovery",
]

logger = logging.getLogger(__name__)

#: What a model's ``inference`` parameter (``SparseInference(solver=...)``) accepts: ``"auto"``,
#: ``"fista"`` (batched FISTA in torch) or a Lasso algorithm of :func:`~sparseae.coding.sparse_encode`.
INFERENCE_SOLVERS = ("auto", "fista", "lasso_lars", "lasso_cd")
_EXACT_SOLVERS = ("lasso_lars", "lasso_cd")


def default_tolerance(dtype: torch.dtype) -> float:
    """Stopping tolerance of inference that solves to the working precision: ``100·eps(dtype)`` on
    the relative change of the codes (1.2e-5 in float32, 2.2e-14 in float64)."""
    return 100.0 * torch.finfo(dtype).eps


class SparseInference(nn.Module):
    """``z* = argmin_z ½‖x − Dz‖² + λ‖z‖₁ [+ γ‖z − a‖²]`` per row (``z ≥ 0`` when ``nonnegative``), by
    :func:`~sparseae.coding.sparse_encode` or :func:`~sparseae.coding.solvers.fista` (``solver``)
    under ``torch.no_grad()`` and in full precision.

    ``lam`` λ > 0; ``max_iter`` ≥ 1; ``tol`` the relative-change tolerance, ``None`` for
    :func:`default_tolerance` of the data's dtype. ``groups`` replaces λ‖z‖₁ by λ Σ_j ‖z‖_{g_j}
    (FISTA with :class:`~sparseae.coding.prox.GroupProx`); with ``group_eps`` ε > 0 by the smooth
    λ Σ_j √(‖z‖²_{g_j} + ε), solved by accelerated gradient
    (:func:`~sparseae.coding.smooth.smooth_group_codes`; UFLDL's topographic sparse coding). No
    parameters: a module so that a model's repr shows its inference settings.

    ``solver`` (a model's ``inference`` parameter, :data:`INFERENCE_SOLVERS`): when the problem is
    the Lasso (ℓ1 or non-negative ℓ1, no groups; PSD's anchor term keeps it one, with the stacked
    dictionary ``[D; √(2γ)·I]``), ``"lasso_lars"`` or ``"lasso_cd"`` solve it by
    :func:`~sparseae.coding.sparse_encode` with ``alpha = λ`` (the same per-row objective; the
    batch mean does not move the minimizer): exact codes, compiled, float64 inside, returned in
    the data's dtype; ``max_iter`` then bounds LARS steps or CD sweeps, at least 1,000, and ``tol``
    is unused (CD stops on its duality gap, 1e-10 relative). ``"fista"``: always FISTA in torch.
    ``"auto"`` (default): ``"lasso_lars"`` for a Lasso on the CPU, FISTA otherwise (group
    penalties, GPU tensors). NaN or inf in x or D is a :class:`DataError` on every path.
    :meth:`solver_for` names the solver a device gets.
    """

    def __init__(self, lam: float, *, nonnegative: bool = False, max_iter: int = 200,
                 tol: float | None = None, groups=None, group_eps: float = 0.0, term: Any = None,
                 solver: str = "auto") -> None:
        super().__init__()
        check_choice(solver, "inference", INFERENCE_SOLVERS)
        check_number(lam, "sparsity_weight (lambda)", low=0.0, low_inclusive=False)
        check_number(max_iter, "max_iter", low=1, integer=True)
        if tol is not None:
            check_number(tol, "tol", low=0.0)
        if groups is not None and nonnegative:
            raise ConfigError("group sparsity with non-negative codes is not supported: use one of them")
        self.lam, self.nonnegative, self.max_iter, self.tol = float(lam), bool(nonnegative), max_iter, tol
        #: None for the ℓ1 penalty, else a GroupStructure: λ Σ_j ‖z‖_{g_j} by :class:`GroupProx`.
        self.groups = groups
        check_number(group_eps, "group_eps", low=0.0)
        if group_eps > 0 and groups is None:
            raise ConfigError("group_eps smooths a group penalty: it needs groups")
        self.group_eps = float(group_eps)
        self._prox = None
        #: The energy term whose value (``term.energy(z)`` per row) and prox (``term.prox()``) this
        #: inference uses, e.g. a :class:`sparseae.nn.penalties.CodePenalty` of weight λ that the model
        #: builder passes; None: λ‖z‖₁ or the group norms computed here from ``lam`` and ``groups``.
        self.term = term
        if term is not None:
            if float(term.weight) != self.lam:
                raise ConfigError(f"the inference's lambda {self.lam:g} differs from its term's weight {term.weight:g}")
            if not self.group_eps:
                self._prox = term.prox()
        elif groups is not None and not self.group_eps:
            from .prox import GroupProx
            self._prox = GroupProx(groups)
        self.solver = solver
        if solver in _EXACT_SOLVERS and not self.is_lasso:
            raise ConfigError(f"inference={solver!r} solves the Lasso (l1 penalty) only; this model's "
                              "sparsity term is a group penalty: use inference='auto' or 'fista'")

    @property
    def is_lasso(self) -> bool:
        """True when the problem is the Lasso ½‖x − Dz‖² + λ‖z‖₁ (z ≥ 0 when non-negative): no
        group penalty, the plain ℓ1 prox; what :func:`~sparseae.coding.sparse_encode` solves."""
        if self.groups is not None or self.group_eps:
            return False
        return self._prox is None if self.term is None else type(self._prox) is L1Prox

    @property
    def positive(self) -> bool:
        """True when the codes are held ≥ 0 (the flag, or the term's non-negative ℓ1 prox)."""
        return self.nonnegative or bool(getattr(self._prox, "nonnegative", False))

    def solver_for(self, device: torch.device | str) -> str:
        """The solver :meth:`forward` uses for finite inputs on ``device``: ``"lasso_lars"`` or
        ``"lasso_cd"`` (:func:`~sparseae.coding.sparse_encode`), ``"fista"`` (batched FISTA in torch,
        also for group penalties) or ``"smooth"`` (accelerated gradient, ``group_eps`` > 0)."""
        if self.group_eps:
            return "smooth"
        if self.solver == "auto":
            return "lasso_lars" if self.is_lasso and torch.device(device).type == "cpu" else "fista"
        return self.solver

    @property
    def penalty_name(self) -> str:
        """``"l1"`` or ``"group"``: the name of the sparsity term in loss terms."""
        return "l1" if self.groups is None else "group"

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        """λ‖z‖₁ or λ Σ_j ‖z‖_{g_j} per row: (batch,)."""
        if self.term is not None:
            return self.term.energy(z)
        if self.groups is None:
            return l1_penalty(z, self.lam)
        return group_penalty(z, self.groups, self.lam, self.group_eps)

    def forward(self, x: torch.Tensor, D: torch.Tensor, z0: torch.Tensor | None = None, *,
                anchor: torch.Tensor | None = None, anchor_weight: float = 0.0,
                L: torch.Tensor | float | None = None) -> torch.Tensor:
        """Codes (batch, n_components) of x (batch, n_features) on D (n_features, n_components).

        ``z0``: warm start (batch, n_components). ``anchor`` a (batch, n_components) with
        ``anchor_weight`` γ > 0 adds ``γ‖z − a‖²`` (PSD's prediction term); it is solved as the Lasso
        ``½‖[x, √(2γ)·a] − [D; √(2γ)·I] z‖² + λ‖z‖₁``, whose Lipschitz constant is ``L(D) + 2γ``.
        ``L``: the Lipschitz constant of D when known (a fixed dictionary), else power iteration.
        """
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            x = upcast_half(x.detach())
            D = D.detach().to(x.dtype)
            tol = default_tolerance(x.dtype) if self.tol is None else self.tol
            exact = self.solver_for(x.device) in _EXACT_SOLVERS and x.shape[0] > 0
            if anchor is not None and anchor_weight > 0:
                scale = math.sqrt(2.0 * anchor_weight)
                if not exact:  # FISTA's step size; the exact solvers need none
                    L = (lipschitz_constant(D) if L is None else L) + 2.0 * anchor_weight
                identity = torch.eye(D.shape[1], dtype=D.dtype, device=D.device)
                x = torch.cat([x, scale * anchor.detach().to(x.dtype)], dim=1)
                D = torch.cat([D, scale * identity], dim=0)
            if exact:
                solver = self.solver_for(x.device)
                init = z0.detach().to(x.dtype) if solver == "lasso_cd" and z0 is not None else None
                return sparse_encode(x, D.T, algorithm=solver, alpha=self.lam, positive=self.positive,
                                     init=init, max_iter=max(int(self.max_iter), 1000))
            if self.group_eps:
                from .smooth import smooth_group_codes

                return smooth_group_codes(x, D, self.lam, self.groups, self.group_eps, L=L, z0=z0,
                                          max_iter=self.max_iter, tol=tol)
            return fista(x, D, self.lam, L=L, z0=None if z0 is None else z0.detach(),
                         max_iter=self.max_iter, tol=tol, nonnegative=self.nonnegative, prox=self._prox,
                         stop="relative_change").codes

    def extra_repr(self) -> str:
        return (f"lam={self.lam:g}, nonnegative={self.nonnegative}, max_iter={self.max_iter}, "
                f"tol={'auto' if self.tol is None else f'{self.tol:g}'}"
                + ("" if self.solver == "auto" else f", solver={self.solver}")
                + ("" if self.groups is None else f", {self.groups.kind} groups")
                + (f", group_eps={self.group_eps:g}" if self.group_eps else ""))


def unit_norm_atoms(samples: torch.Tensor) -> torch.Tensor:
    """Samples (m, n_features) as unit-norm atoms (n_features, m); a zero sample becomes a random
    Gaussian direction (drawn from the global RNG)."""
    samples = samples.detach()
    norms = samples.norm(dim=1, keepdim=True)
    flat = norms.squeeze(1) <= torch.finfo(samples.dtype).tiny
    if bool(flat.any()):
        samples = samples.clone()
        samples[flat] = torch.randn(int(flat.sum()), samples.shape[1]).to(samples)
        norms = samples.norm(dim=1, keepdim=True)
    return (samples / norms).t()


class AtomUsage(nn.Module):
    """Counts how many codes use each atom over windows of ``window`` training batches; at the end of a
    window, :meth:`reinitialize` moves the atoms no code used onto random inputs of the latest batch,
    normalized (at most one atom per input of that batch; the rest wait for the next window).

    Buffers, saved with the model so that a resumed run replays exactly: ``counts`` (n_components,)
    int64 and ``n_batches`` () int64. ``window = 0`` turns it off. Random picks come from the global
    RNG, so training is deterministic under ``torch.manual_seed`` (which the trainer sets every epoch).
    Under torch.distributed it does nothing (with one warning): ranks see different batches and would
    replace atoms differently.
    """

    def __init__(self, n_components: int, window: int) -> None:
        super().__init__()
        check_number(window, "reinit_unused_every", low=0, integer=True)
        self.window = window
        self.register_buffer("counts", torch.zeros(n_components, dtype=torch.long))
        self.register_buffer("n_batches", torch.zeros((), dtype=torch.long))
        self._latest: torch.Tensor | None = None  # the latest batch (batch, n_features), not saved

    def update(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Record one training batch x (batch, n_features) and its codes z (batch, n_components)."""
        if self.window == 0:
            return
        self.counts += (z.detach() != 0).sum(dim=0)
        self.n_batches += 1
        self._latest = x.detach()

    @torch.no_grad()
    def reinitialize(self, D: torch.Tensor) -> int:
        """At the end of a window, overwrite the unused atoms of D (n_features, n_components) in place and
        start a new window; returns the number of atoms replaced (0 before the window is over)."""
        if self.window == 0 or self._latest is None or int(self.n_batches) < self.window:
            return 0
        if distributed.is_distributed():
            if not getattr(self, "_warned", False):
                logger.warning("unused atoms are not re-initialized under torch.distributed")
                self._warned = True
            return 0
        unused = torch.nonzero(self.counts == 0).flatten()
        n = min(len(unused), self._latest.shape[0])
        if n:
            rows = torch.randperm(self._latest.shape[0])[:n].to(self._latest.device)
            D[:, unused[:n]] = unit_norm_atoms(self._latest[rows].to(D.dtype))
        self.counts.zero_()
        self.n_batches.zero_()
        return n

    def extra_repr(self) -> str:
        return f"window={self.window}"


def check_dictionary(D: Any, n_features: int | None = None, n_components: int | None = None) -> torch.Tensor:
    """D as a finite 2-D float tensor (n_features, n_components), or :class:`DataError` naming the
    expected shape."""
    if isinstance(D, torch.Tensor):
        dtype = D.dtype if D.is_floating_point() else torch.get_default_dtype()
        array = as_float_array(D.detach().cpu(), "dictionary D", dtype=np.float64)
        tensor = torch.from_numpy(array).to(dtype)
    else:
        tensor = torch.from_numpy(as_float_array(D, "dictionary D", dtype=np.float64))
    expected = (n_features if n_features is not None else tensor.shape[0],
                n_components if n_components is not None else tensor.shape[1])
    if tuple(tensor.shape) != expected:
        raise DataError(f"dictionary D must have shape (n_features, n_components) = {expected}, "
                        f"got {tuple(tensor.shape)}")
    return tensor


def dictionary_from_samples(X: Any, n_components: int, *, generator: torch.Generator | None = None
                            ) -> torch.Tensor:
    """A dictionary (n_features, n_components) of ``n_components`` distinct random rows of X
    (n_samples, n_features), normalized."""
    X = torch.from_numpy(as_float_array(X, "X"))
    check_number(n_components, "n_components", low=1, integer=True)
    if n_components > X.shape[0]:
        raise DataError(f"a dictionary of {n_components} atoms drawn from the data needs at least as many "
                        f"samples; X has {X.shape[0]}")
    rows = torch.randperm(X.shape[0], generator=generator)[:n_components]
    return unit_norm_atoms(X[rows])


def atom_recovery(D_true: Any, D: Any) -> torch.Tensor:
    """For each atom of ``D_true`` (n_features, k_true), the largest ``|cos|`` with an atom of ``D``
    (n_features, k): (k_true,) in [0, 1]. Its mean is the usual recovery score of dictionary learning."""
    D_true = check_dictionary(D_true).double()
    D = check_dictionary(D, n_features=D_true.shape[0]).double()
    unit_true = D_true / D_true.norm(dim=0, keepdim=True).clamp_min(1e-300)
    unit = D / D.norm(dim=0, keepdim=True).clamp_min(1e-300)
    return (unit_true.t() @ unit).abs().amax(dim=1)



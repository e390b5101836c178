"""Batched proximal-gradient solvers for sparse coding (ISTA and FISTA).

For a dictionary ``D`` of shape ``(n_features, n_components)`` whose columns are the atoms and a
batch ``X`` of shape ``(batch, n_features)``, each row ``x`` of ``X`` gets the code ``z`` (a row of
``Z``, shape ``(batch, n_components)``) minimising the Lasso objective

    F(z) = ½‖x − D z‖² + λ‖z‖₁            (optionally subject to z ≥ 0).

``λ`` may be a number or a positive tensor broadcastable to ``(batch, n_components)`` (per-unit
weights, ``λ‖z‖₁ → Σⱼ λⱼ|zⱼ|``). With ``f(z) = ½‖x − Dz‖²``, ``∇f(z) = Dᵀ(Dz − x)`` is
``L``-Lipschitz with ``L = λ_max(DᵀD)``, and one proximal-gradient step is

    z ← prox_{(λ/L)‖·‖₁}(z − ∇f(z)/L).

* ISTA (Daubechies, Defrise & De Mol 2004) iterates that step; ``F(z_k) − F* = O(1/k)``.
* FISTA (Beck & Teboulle 2009) takes the step at an extrapolated point
  ``y_k = z_k + ((t_{k−1} − 1)/t_k)(z_k − z_{k−1})`` with ``t_{k+1} = (1 + √(1 + 4t_k²))/2``;
  ``F(z_k) − F* = O(1/k²)``. Optional adaptive restart (O'Donoghue & Candès 2015) resets the
  momentum (``t ← 1``, ``y ← z_k``) of the samples where it is going the wrong way.

The whole minibatch is updated at once (rows are independent problems sharing ``D``). No Python
loop runs over samples or atoms and the loop over iterations makes no host–device
synchronisation except the stopping test, run every ``check_every`` iterations.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..validation import check_choice, check_finite, check_number
from .prox import L1Prox, ProximalOperator, l1_penalty

__all__ = [
    "SparseCodeResult",
    "lipschitz_constant",
    "lasso_objective",
    "lasso_l1_bound",
    "duality_gap",
    "ista",
    "fista",
    "LIPSCHITZ_SAFETY",
    "GRAM_MAX_COMPONENTS",
]

#: Factor by which :func:`lipschitz_constant` inflates the power-iteration estimate. Power
#: iteration approaches ``λ_max(DᵀD)`` from below; a step ``1/L`` with ``L`` a little above the
#: true constant keeps every proximal-gradient step a descent step.
LIPSCHITZ_SAFETY = 1.01

#: Largest ``n_components`` for which the solvers precompute the Gram matrix ``DᵀD`` by default
#: (it takes ``n_components²`` numbers).
GRAM_MAX_COMPONENTS = 4096

_STOP_RULES = ("relative_change", "duality_gap", "none")
_RESTARTS = ("gradient", "objective")


@dataclass
class SparseCodeResult:
    """Output of :func:`ista` / :func:`fista`.

    ``codes``: ``(batch, n_components)``; ``n_iter``: iterations run; ``objective``: ``F`` of each
    code, ``(batch,)``; ``converged``: whether the stopping test passed (always ``False`` with
    ``stop="none"``); ``history``: mean objective over the batch after each iteration
    (``n_iter`` floats) when ``return_history=True``, else ``None``.
    """

    codes: torch.Tensor
    n_iter: int
    objective: torch.Tensor
    converged: bool
    history: list[float] | None = None


# --------------------------------------------------------------------------------------------
# input checks


def _as_matrix(A: Any, name: str) -> torch.Tensor:
    """Return ``A`` as a 2-D floating tensor (numpy arrays accepted), or raise :class:`DataError`."""
    if not isinstance(A, torch.Tensor):
        try:
            # a read-only array (a memmap opened "r") is copied: torch cannot share it safely
            A = torch.as_tensor(np.require(np.asarray(A), requirements="W"))
        except Exception as exc:  # ragged lists, objects
            raise DataError(f"{name} cannot be read as a numeric array: {exc}") from None
    if A.is_complex():
        raise DataError(f"{name} is complex; sparse coding needs real numbers")
    if A.dtype == torch.bool or not (A.is_floating_point() or A.dtype in _INT_DTYPES):
        raise DataError(f"{name} must hold real numbers, got dtype {A.dtype}")
    if A.ndim != 2:
        raise DataError(f"{name} must be 2-D, got shape {tuple(A.shape)}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise DataError(f"{name} is empty (shape {tuple(A.shape)})")
    if not A.is_floating_point():
        A = A.to(torch.get_default_dtype())
    return A.detach()


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_problem(X: Any, D: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``X`` ``(batch, n_features)`` and ``D`` ``(n_features, n_components)``; return
    both in their common floating dtype."""
    X = _as_matrix(X, "X")
    D = _as_matrix(D, "D")
    if D.shape[0] != X.shape[1]:
        raise DataError(
            f"D has shape {tuple(D.shape)} (n_features, n_components) but X has shape "
            f"{tuple(X.shape)} (batch, n_features): the atoms (columns of D) have {D.shape[0]} "
            f"entries, X rows have {X.shape[1]} features"
        )
    if X.device != D.device:
        raise DataError(f"X is on {X.device} but D is on {D.device}; put both on the same device")
    dtype = torch.promote_types(X.dtype, D.dtype)
    X, D = X.to(dtype), D.to(dtype)
    check_finite(X, "X")
    check_finite(D, "D")
    return X, D


def _check_codes(Z: Any, X: torch.Tensor, D: torch.Tensor, name: str) -> torch.Tensor:
    """Validate codes ``(batch, n_components)`` against ``X`` and ``D``."""
    Z = _as_matrix(Z, name)
    expected = (X.shape[0], D.shape[1])
    if tuple(Z.shape) != expected:
        raise DataError(f"{name} must have shape (batch, n_components) = {expected}, "
                        f"got {tuple(Z.shape)}")
    if Z.device != X.device:
        raise DataError(f"{name} is on {Z.device} but X is on {X.device}")
    Z = Z.to(X.dtype)
    check_finite(Z, name)
    return Z


def _check_lam(lam: Any, X: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Return ``λ`` as a tensor broadcastable to ``(batch, n_components)`` (0-dim for a number)."""
    if isinstance(lam, (torch.Tensor, np.ndarray)) and np.ndim(lam) > 0:
        lam_t = torch.as_tensor(lam).detach()
        if lam_t.is_complex() or lam_t.dtype == torch.bool:
            raise ConfigError(f"lam must hold real numbers, got dtype {lam_t.dtype}")
        lam_t = lam_t.to(device=X.device, dtype=X.dtype)
        target = (X.shape[0], D.shape[1])
        try:
            ok = torch.broadcast_shapes(lam_t.shape, target) == torch.Size(target)
        except RuntimeError:
            ok = False
        if not ok:
            raise ConfigError(f"lam of shape {tuple(lam_t.shape)} does not broadcast to "
                              f"(batch, n_components) = {target}")
        if not bool(torch.isfinite(lam_t).all()) or not bool((lam_t > 0).all()):
            raise ConfigError("lam must be > 0 and finite everywhere (the ℓ1 weight); "
                              f"got min {float(lam_t.min())}")
        return lam_t
    if isinstance(lam, (torch.Tensor, np.ndarray)):
        lam = lam.item()
    if isinstance(lam, (int, float, np.number)) and not isinstance(lam, bool) and float(lam) <= 0:
        raise ConfigError(f"lam must be > 0 (the ℓ1 weight; lam = 0 is least squares, not sparse "
                          f"coding), got {lam!r}")
    check_number(lam, "lam", low=0, low_inclusive=False)
    return torch.tensor(float(lam), dtype=X.dtype, device=X.device)


def _check_L(L: Any, D: torch.Tensor) -> torch.Tensor:
    if isinstance(L, torch.Tensor):
        if L.numel() != 1:
            raise ConfigError(f"L must be a single number, got a tensor of shape {tuple(L.shape)}")
        value = L.detach().reshape(()).to(device=D.device, dtype=D.dtype)
        check_number(float(value), "L", low=0, low_inclusive=False)
        return value
    check_number(L, "L", low=0, low_inclusive=False)
    return torch.tensor(float(L), dtype=D.dtype, device=D.device)


# --------------------------------------------------------------------------------------------
# objective, duality gap, Lipschitz constant


def lipschitz_constant(D: torch.Tensor, n_iter: int = 50, tol: float = 1e-6,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Lipschitz constant of ``z ↦ Dᵀ(Dz − x)``: ``λ_max(DᵀD)`` times :data:`LIPSCHITZ_SAFETY` (1.01).

    ``D``: ``(n_features, n_components)``. Power iteration ``v ← DᵀDv / ‖DᵀDv‖`` with the Rayleigh
    quotient ``‖Dv‖²`` as the estimate (two matrix-vector products per iteration, no
    eigendecomposition), stopped after ``n_iter`` iterations or when the estimate changes by
    less than ``tol`` relative. The estimate approaches ``λ_max`` from below, hence the 1 %
    inflation. The start vector is Gaussian from ``generator`` (a fixed-seed private generator
    when ``None``, so results are reproducible and the global RNG is untouched).
    Returns a 0-dim tensor with ``D``'s dtype and device (0 for an all-zero ``D``).
    """
    check_number(n_iter, "n_iter", low=1, integer=True)
    check_number(tol, "tol", low=0)
    D = _as_matrix(D, "D")
    check_finite(D, "D")
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        v = torch.randn(D.shape[1], generator=generator, device=generator.device,
                        dtype=D.dtype).to(D.device)
        v = v / v.norm()
        estimate = torch.zeros((), dtype=D.dtype, device=D.device)
        for i in range(n_iter):
            u = D @ v
            new = u @ u  # Rayleigh quotient vᵀDᵀDv with ‖v‖ = 1
            w = D.T @ u
            norm = w.norm()
            # one host sync per power iteration: a one-off cost, outside the solver loops
            if float(norm) == 0.0:
                return new * LIPSCHITZ_SAFETY
            v = w / norm
            if i > 0 and float((new - estimate).abs()) <= tol * float(new):
                estimate = new
                break
            estimate = new
        return estimate * LIPSCHITZ_SAFETY


def lasso_objective(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, lam: Any) -> torch.Tensor:
    """``F(z) = ½‖x − Dz‖² + Σⱼ λⱼ|zⱼ|`` for each row: ``X`` ``(batch, n_features)``, ``D``
    ``(n_features, n_components)``, ``Z`` ``(batch, n_components)``; returns ``(batch,)``.
    ``lam``: a number > 0 or a positive tensor broadcastable to ``Z``.
    """
    X, D = _check_problem(X, D)
    Z = _check_codes(Z, X, D, "Z")
    lam_t = _check_lam(lam, X, D)
    return _objective(X, D, Z, lam_t, l1_penalty)


def lasso_l1_bound(X: torch.Tensor, lam: float) -> torch.Tensor:
    """``‖x‖²/(4λ)`` for each row of X (batch, n_features): a bound on ``‖z*‖₁`` of the Lasso solution
    ``z* = argmin ½‖x − Dz‖² + λ‖z‖₁`` (signed or ``z ≥ 0``) for every dictionary D; returns (batch,).
    At the optimum ``λ‖z*‖₁ = xᵀDz* − ‖Dz*‖²`` (the optimality condition times z*), and
    ``xᵀu − ‖u‖² ≤ ‖x‖²/4`` for any u. A code far outside the ball is no approximation of z*."""
    check_number(lam, "lam", low=0.0, low_inclusive=False)
    return X.square().sum(dim=-1) / (4.0 * float(lam))


def _objective(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, lam: torch.Tensor,
               penalty: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    residual = torch.addmm(X, Z, D.T, beta=-1)  # Dz − x, (batch, n_features)
    return 0.5 * residual.square().sum(dim=1) + penalty(Z, lam)


def duality_gap(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, lam: Any, *,
                nonnegative: bool = False) -> torch.Tensor:
    """Lasso duality gap of each row, ``(batch,)``, always ≥ 0 and 0 exactly at the optimum.

    The dual of ``min_z ½‖x − Dz‖² + Σλⱼ|zⱼ|`` is ``max_θ ½‖x‖² − ½‖x − θ‖²`` subject to
    ``|dⱼᵀθ| ≤ λⱼ`` (``dⱼᵀθ ≤ λⱼ`` when ``z ≥ 0`` is imposed). The standard dual point is the
    residual ``r = x − Dz`` scaled into the feasible set, ``θ = s·r`` with
    ``s = min(1, 1 / maxⱼ(|dⱼᵀr| / λⱼ))``. The gap ``P(z) − D(θ)`` is evaluated in the
    cancellation-free form ``½(1 − s)²‖r‖² + (Σλⱼ|zⱼ| − s·zᵀDᵀr)``, both terms ≥ 0 (rounding
    is clamped at 0). For ``nonnegative=True``, ``Z`` is assumed to be ≥ 0.
    """
    X, D = _check_problem(X, D)
    Z = _check_codes(Z, X, D, "Z")
    lam_t = _check_lam(lam, X, D)
    return _duality_gap(X, D, Z, lam_t, nonnegative)[0]


def _duality_gap(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, lam: torch.Tensor,
                 nonnegative: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the gap and the primal objective, both ``(batch,)``."""
    r = torch.addmm(X, Z, D.T, alpha=-1)  # x − Dz, (batch, n_features)
    corr = r @ D  # Dᵀr per row, (batch, n_components)
    if lam.ndim == 0:  # maxⱼ |dⱼᵀr| / λ without a (batch, k) temporary
        worst = (corr.amax(dim=1) if nonnegative
                 else torch.linalg.vector_norm(corr, ord=float("inf"), dim=1)) / lam
    else:
        worst = ((corr if nonnegative else corr.abs()) / lam).amax(dim=1)
    s = 1.0 / worst.clamp_min(1.0)  # (batch,)
    half_rr = 0.5 * torch.linalg.vecdot(r, r)
    penalty = l1_penalty(Z, lam)
    gap = (1.0 - s).square() * half_rr + (penalty - s * torch.linalg.vecdot(Z, corr))
    return gap.clamp_min(0.0), half_rr + penalty


# --------------------------------------------------------------------------------------------
# solvers


def _use_gram(gram: bool | None, n_features: int, n_components: int) -> bool:
    if gram is not None:
        return bool(gram)
    # a Gram step costs batch·k² multiply-adds, a step with D costs 2·batch·n·k
    return n_components <= 2 * n_features and n_components <= GRAM_MAX_COMPONENTS


def _solve(X: Any, D: Any, lam: Any, *, accelerated: bool, L: Any, z0: Any, max_iter: int,
           tol: float, nonnegative: bool, prox: ProximalOperator | None, stop: str,
           return_history: bool, check_every: int, gram: bool | None,
           restart: str | None) -> SparseCodeResult:
    prox = _check_options(max_iter=max_iter, tol=tol, check_every=check_every, stop=stop, restart=restart,
                          gram=gram, prox=prox, nonnegative=nonnegative)
    X, D = _check_problem(X, D)
    lam_t = _check_lam(lam, X, D)
    Z = (torch.zeros(X.shape[0], D.shape[1], dtype=X.dtype, device=X.device) if z0 is None
         else _check_codes(z0, X, D, "z0").clone())
    nonneg_dual = isinstance(prox, L1Prox) and prox.nonnegative

    with torch.no_grad():
        L_t = lipschitz_constant(D) if L is None else _check_L(L, D)
        L_t = L_t.clamp_min(torch.finfo(D.dtype).tiny)  # all-zero D: every code is 0
        inv_L = 1.0 / L_t
        threshold: float | torch.Tensor = lam_t * inv_L  # λ/L, broadcasts to (batch, k)
        if threshold.ndim == 0:
            # a number lets the prox use a fused kernel; this is a set-up sync, not a per-step one
            threshold = float(threshold)
        gradient = _GradientStep(X, D, inv_L, _use_gram(gram, D.shape[0], D.shape[1]), Z)

        def objective(Zk: torch.Tensor) -> torch.Tensor:
            return _objective(X, D, Zk, lam_t, prox.penalty)

        momentum = (_Momentum(Z, restart, objective(Z) if restart == "objective" else None)
                    if accelerated else None)
        needs_objective = return_history or (momentum is not None and restart == "objective")
        history: list[torch.Tensor] = []
        converged = False
        n_iter = 0
        Y = momentum.Y if momentum is not None else Z  # FISTA's extrapolated point, its own buffer
        for n_iter in range(1, max_iter + 1):
            Z_prev = Z
            Z = prox(gradient(Y), threshold)
            if Z.data_ptr() == gradient.out.data_ptr():  # a prox that worked in place: the buffer is now Z
                gradient.out = torch.empty_like(Z)
            F = objective(Z) if needs_objective else None
            Y = momentum.advance(Z, Z_prev, F) if momentum is not None else Z
            if return_history:
                history.append(F.mean())
            if stop != "none" and (n_iter % check_every == 0 or n_iter == max_iter):
                step = momentum.step if momentum is not None else None
                if _stop_test(stop, tol, X, D, Z, Z_prev, step, lam_t, nonneg_dual):
                    converged = True
                    break

        final = objective(Z)
        hist = torch.stack(history).tolist() if return_history else None
    return SparseCodeResult(codes=Z, n_iter=n_iter, objective=final, converged=converged,
                            history=hist)


def _check_options(*, max_iter: int, tol: float, check_every: int, stop: str, restart: str | None,
                   gram: bool | None, prox: ProximalOperator | None, nonnegative: bool) -> ProximalOperator:
    """The solver options checked (:class:`ConfigError` otherwise); returns the prox to use."""
    check_number(max_iter, "max_iter", low=1, integer=True)
    check_number(tol, "tol", low=0)
    check_number(check_every, "check_every", low=1, integer=True)
    check_choice(stop, "stop", _STOP_RULES)
    if restart is not None:
        check_choice(restart, "restart", _RESTARTS)
    if gram is not None and not isinstance(gram, bool):
        raise ConfigError(f"gram must be True, False or None (automatic), got {gram!r}")
    if prox is None:
        prox = L1Prox(nonnegative=nonnegative)
    elif not isinstance(prox, ProximalOperator):
        raise ConfigError(f"prox must be a ProximalOperator, got {type(prox).__name__}")
    elif nonnegative and not (isinstance(prox, L1Prox) and prox.nonnegative):
        raise ConfigError("nonnegative=True conflicts with the given prox; pass "
                          "L1Prox(nonnegative=True) or leave prox=None")
    if stop == "duality_gap" and not isinstance(prox, L1Prox):
        raise ConfigError("stop='duality_gap' needs the ℓ1 prox (L1Prox): the dual point is "
                          "only known for the Lasso")
    return prox


class _GradientStep:
    """``y ↦ y − ∇f(y)/L`` for ``f(y) = ½‖x − Dy‖²``, written into the buffer ``out`` (batch, k).

    Work buffers are reused across iterations (out= products): on the CPU, allocating fresh
    (batch, k) tensors each step costs as much as the elementwise work itself."""

    def __init__(self, X: torch.Tensor, D: torch.Tensor, inv_L: torch.Tensor, use_gram: bool,
                 Z: torch.Tensor) -> None:
        self.out = torch.empty_like(Z)  # the gradient step before the prox
        self.X, self.D, self.use_gram = X, D, use_gram
        if use_gram:
            # z − ∇f(z)/L = z(I − DᵀD/L) + Dᵀx/L: one (batch, k)×(k, k) product per step
            self.M = D.T @ D
            self.M.mul_(-inv_L)
            self.M.diagonal().add_(1.0)
            self.C = (X @ D).mul_(inv_L)
        else:
            # z − Dᵀ(Dz − x)/L with two products through D: (batch, k)×(k, n), (batch, n)×(n, k)
            self.D_over_L = D * inv_L
            self.R = torch.empty_like(X)  # residual Dy − x, (batch, n_features)

    def __call__(self, Y: torch.Tensor) -> torch.Tensor:
        if self.use_gram:
            return torch.addmm(self.C, Y, self.M, out=self.out)
        torch.addmm(self.X, Y, self.D.T, beta=-1, out=self.R)
        return torch.addmm(Y, self.R, self.D_over_L, alpha=-1, out=self.out)


class _Momentum:
    """FISTA's extrapolation ``y = z_k + m (z_k − z_{k−1})``, ``m = (t_k − 1)/t_{k+1}``,
    ``t_{k+1} = (1 + √(1 + 4t_k²))/2``. With ``restart`` each row has its own ``t``, reset to 1
    (momentum 0) where the step ``z_k − y`` points against the motion (``"gradient"``) or the
    objective rose (``"objective"``; ``F0``: the objective per row at the start)."""

    def __init__(self, Z: torch.Tensor, restart: str | None, F0: torch.Tensor | None) -> None:
        self.Y = Z.clone()  # the extrapolated point, its own buffer
        self.step = torch.empty_like(Z)  # z_k − z_{k−1}
        self.restart = restart
        self.scratch = torch.empty_like(Z) if restart == "gradient" else None
        self.t: float | torch.Tensor = 1.0
        if restart is not None:
            self.t = torch.ones(Z.shape[0], 1, dtype=Z.dtype, device=Z.device)
        self.F_prev = F0

    def advance(self, Z: torch.Tensor, Z_prev: torch.Tensor, F: torch.Tensor | None) -> torch.Tensor:
        """The next extrapolated point from ``z_k = Z``, ``z_{k−1} = Z_prev`` and the objective
        ``F`` at ``Z`` (needed by the ``"objective"`` restart)."""
        t, step, Y = self.t, self.step, self.Y
        torch.sub(Z, Z_prev, out=step)
        if self.restart is None:
            t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
            self.t = t_next
            return torch.add(Z, step, alpha=(t - 1.0) / t_next, out=Y)
        t_next = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
        momentum = (t - 1.0) / t_next
        if self.restart == "gradient":
            # generalised-gradient test: the step z_k − y_k points against the motion
            torch.sub(Y, Z, out=self.scratch).mul_(step)
            bad = self.scratch.sum(dim=1, keepdim=True) > 0
        else:
            bad = (F > self.F_prev).unsqueeze(1)
            self.F_prev = F
        momentum = momentum.masked_fill(bad, 0.0)
        self.t = t_next.masked_fill(bad, 1.0)
        return torch.addcmul(Z, momentum, step, out=Y)  # y = z_k + momentum·(z_k − z_{k−1})


def _stop_test(stop: str, tol: float, X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, Z_prev: torch.Tensor,
               step: torch.Tensor | None, lam: torch.Tensor, nonneg_dual: bool) -> bool:
    """Whether ``stop`` is met at ``Z``: ``‖z_k − z_{k−1}‖ ≤ tol·‖z_{k−1}‖`` (``step``: that
    difference when already computed), or the summed duality gap ≤ tol·the summed objective.
    A host sync."""
    tiny = torch.finfo(X.dtype).tiny
    if stop == "relative_change":
        change = torch.linalg.vector_norm(step if step is not None else Z - Z_prev)
        scale = torch.linalg.vector_norm(Z_prev).clamp_min(tiny)
        return bool(change <= tol * scale)  # the periodic host sync
    gap, primal = _duality_gap(X, D, Z, lam, nonneg_dual)
    return bool(gap.sum() <= tol * primal.sum().clamp_min(tiny))


_SOLVER_DOC = """

    ``X``: ``(batch, n_features)``; ``D``: ``(n_features, n_components)``, columns are atoms
    (unit norm is usual but not required); ``lam``: ``λ > 0``, a number or a positive tensor
    broadcastable to ``(batch, n_components)``. Numpy arrays are accepted; ``X`` and ``D`` are
    promoted to their common floating dtype and must be on the same device. Runs under
    ``torch.no_grad()``.

    Keyword arguments:

    * ``L``: Lipschitz constant of ``∇f`` (default :func:`lipschitz_constant` of ``D``).
    * ``z0``: warm start ``(batch, n_components)`` (default zeros).
    * ``max_iter`` (≥ 1), ``tol`` (≥ 0).
    * ``nonnegative``: constrain ``z ≥ 0`` (uses :func:`~sparseae.coding.prox.nonnegative_soft_threshold`).
    * ``prox``: a :class:`~sparseae.coding.prox.ProximalOperator` (default ``L1Prox(nonnegative)``).
    * ``stop``: ``"relative_change"`` stops when ``‖Z_k − Z_{k−1}‖_F / max(‖Z_{k−1}‖_F, tiny) ≤ tol``
      over the whole batch; ``"duality_gap"`` when ``Σᵢ gapᵢ ≤ tol·Σᵢ Fᵢ`` over the batch (see
      :func:`duality_gap`; ℓ1 prox only), which certifies that the batch-mean objective is within
      ``tol`` (relative) of its optimum; ``"none"`` runs ``max_iter`` iterations.
      The test costs a host sync, so it runs every ``check_every`` iterations (and at ``max_iter``).
      In float32 the relative duality gap bottoms out near 1e-5 (it magnifies the rounding of
      ``Dᵀr``) although the objective is accurate to ~1e-7: use float64 for tighter gap tolerances.
    * ``return_history``: record the batch-mean objective after each iteration (one extra
      product per iteration).
    * ``gram``: ``True`` precomputes ``M = I − DᵀD/L`` ``(k, k)`` and ``DᵀX/L`` so a step is one
      ``(batch, k)×(k, k)`` product; ``False`` uses two products through ``D``
      (``2·n_features·k`` per row instead of ``k²``). ``None`` (default) picks the Gram form
      when ``n_components ≤ 2·n_features`` (fewer flops) and ``n_components ≤``
      :data:`GRAM_MAX_COMPONENTS`.

    Returns a :class:`SparseCodeResult`.
    """


def ista(X: torch.Tensor, D: torch.Tensor, lam: Any, *, L: Any = None, z0: Any = None,
         max_iter: int = 100, tol: float = 1e-5, nonnegative: bool = False,
         prox: ProximalOperator | None = None, stop: str = "relative_change",
         return_history: bool = False, check_every: int = 10,
         gram: bool | None = None) -> SparseCodeResult:
    return _solve(X, D, lam, accelerated=False, L=L, z0=z0, max_iter=max_iter, tol=tol,
                  nonnegative=nonnegative, prox=prox, stop=stop, return_history=return_history,
                  check_every=check_every, gram=gram, restart=None)


ista.__doc__ = """ISTA (Daubechies, Defrise & De Mol 2004): ``z_{k+1} = prox_{λ/L}(z_k − Dᵀ(Dz_k − x)/L)``
    for every row at once; the objective decreases monotonically, ``F(z_k) − F* = O(1/k)``.""" \
    + _SOLVER_DOC


def fista(X: torch.Tensor, D: torch.Tensor, lam: Any, *, L: Any = None, z0: Any = None,
          max_iter: int = 100, tol: float = 1e-5, nonnegative: bool = False,
          prox: ProximalOperator | None = None, stop: str = "relative_change",
          return_history: bool = False, check_every: int = 10, gram: bool | None = None,
          restart: str | None = "gradient") -> SparseCodeResult:
    return _solve(X, D, lam, accelerated=True, L=L, z0=z0, max_iter=max_iter, tol=tol,
                  nonnegative=nonnegative, prox=prox, stop=stop, return_history=return_history,
                  check_every=check_every, gram=gram, restart=restart)


fista.__doc__ = """FISTA (Beck & Teboulle 2009): ``z_k = prox_{λ/L}(y_k − Dᵀ(Dy_k − x)/L)``,
    ``t_{k+1} = (1 + √(1 + 4t_k²))/2``, ``y_{k+1} = z_k + ((t_k − 1)/t_{k+1})(z_k − z_{k−1})``,
    for every row at once; ``F(z_k) − F* = O(1/k²)``.

    ``restart`` (adaptive restart, O'Donoghue & Candès 2015), decided per sample without a host
    sync: ``"objective"`` resets the momentum (``t ← 1``, ``y_{k+1} ← z_k``) of a sample whose
    objective increased, ``F(z_k) > F(z_{k−1})`` (one extra product per iteration to evaluate
    ``F``); ``"gradient"`` (default) resets it when ``(y_k − z_k)ᵀ(z_k − z_{k−1}) > 0``, the
    cheap proxy for the same event; ``None`` is plain FISTA.""" + _SOLVER_DOC

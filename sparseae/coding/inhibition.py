"""Sparse coding with lateral inhibition (Gregor, Szlam & LeCun 2011): the energy and its batched solvers.

For a dictionary ``D`` ``(n_features, k)``, a batch ``X`` ``(batch, n_features)`` and an inhibition
matrix ``S`` ``(k, k)`` (``S ≥ 0``, symmetric, zero diagonal), each row gets a code ``z`` minimising

    E(z) = ½‖x − Dz‖² + λ‖z‖₁ + ½|z|ᵀS|z|          (optionally subject to z ≥ 0).

A large ``S_ij`` charges ``z_i`` and ``z_j`` for being on together. ``E`` is not convex in general
(``S`` has a zero diagonal, so it is indefinite), but it is convex in each coordinate alone: along
``z_i`` it is ``½‖d_i‖²z_i² − (d_iᵀr_i)z_i + (λ + (S|z|)_i)|z_i|``, a Lasso in one variable whose weight
``λ + (S|z|)_i`` the other units set. It is convex as a whole when ``λ_max(S) ≤ λ_min(DᵀD)``.

Solvers (``method``), every row of the batch at once, no Python loop over samples or units:

* ``"ista"``: majorization–minimization. With ``f = ½‖x − Dz‖²`` (``∇f`` is ``L_D``-Lipschitz,
  ``L_D = λ_max(DᵀD)``) and ``g(u) = ½uᵀSu`` at ``u = |z|``, for ``L ≥ L_D + λ_max(S)``
  ``E(z) ≤ f(y) + ∇f(y)ᵀ(z − y) + (L/2)‖z − y‖² + Σᵢ (λ + (S|y|)ᵢ)|zᵢ| + const`` (using
  ``‖|z| − |y|‖ ≤ ‖z − y‖``), with equality at ``z = y``. Its minimiser is one soft-thresholding
  step with per-unit thresholds ``(λ + (S|y|)ᵢ)/L``: ``z ← h_{(λ + S|z|)/L}(z − ∇f(z)/L)``.
  ``E`` decreases monotonically. ``S = 0`` gives plain ISTA.
* ``"fista"``: the same step from an extrapolated point (Beck & Teboulle 2009), accepted only where it
  lowers ``E`` (per sample); a sample whose step is refused restarts its momentum, so its next step
  is an ISTA step (always kept). Monotone as well.
* ``"cod"``: greedy coordinate descent (Li & Osher 2009; Gregor & LeCun 2010, as in the paper): each
  iteration, every sample minimises ``E`` exactly along its coordinate that would move the most;
  ``O(k)`` work per sample per iteration. Monotone.

What they converge to: a point where no single coordinate can lower ``E`` — for every unit,
``z_i ≠ 0``: ``d_iᵀ(Dz − x) + (λ + (S|z|)_i)·sign(z_i) = 0``; ``z_i = 0``:
``|d_iᵀ(Dz − x)| ≤ λ + (S|z|)_i`` (with ``z ≥ 0``: ``d_iᵀ(Dz − x) + λ + (S|z|)_i ≥ 0``). These are the
first-order conditions of ``E``: a local minimum in general, the global one in the convex case
(:func:`inhibition_stationarity` measures how far a code is from them).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..validation import check_choice, check_number
from .inhibition_matrix import inhibition_penalty
from .prox import l1_penalty, nonnegative_soft_threshold, soft_threshold
from .solvers import SparseCodeResult, _check_codes, _check_L, _check_lam, _check_problem, lipschitz_constant

__all__ = ["check_inhibition_matrix", "inhibition_energy", "inhibition_stationarity",
           "inhibition_lipschitz", "inhibition_codes", "METHODS"]

METHODS = ("ista", "fista", "cod")
_STOP_RULES = ("relative_change", "stationarity", "none")
#: Relative tolerance of the symmetry and zero-diagonal checks on a user's ``S``.
SYMMETRY_TOLERANCE = 1e-6


def check_inhibition_matrix(S: Any, n_components: int, *, dtype: torch.dtype | None = None,
                            device: torch.device | str | None = None) -> torch.Tensor:
    """``S`` as a finite ``(n_components, n_components)`` tensor with ``S ≥ 0``, ``S = Sᵀ`` and a zero
    diagonal (up to :data:`SYMMETRY_TOLERANCE` × max S; the result is exactly symmetric with an exact
    zero diagonal), or :class:`~sparseae.errors.ConfigError` saying what is wrong."""
    if not isinstance(S, torch.Tensor):
        try:
            S = torch.as_tensor(np.asarray(S, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"the inhibition matrix S cannot be read as a numeric array: {exc}") from None
    S = S.detach()
    if S.is_complex() or S.dtype == torch.bool:
        raise ConfigError(f"the inhibition matrix S must hold real numbers, got dtype {S.dtype}")
    expected = (n_components, n_components)
    if tuple(S.shape) != expected:
        raise ConfigError(f"the inhibition matrix S must have shape (n_components, n_components) = "
                          f"{expected}, got {tuple(S.shape)}")
    S = S.to(dtype=dtype or (S.dtype if S.is_floating_point() else torch.get_default_dtype()), device=device)
    if not bool(torch.isfinite(S).all()):
        raise ConfigError("the inhibition matrix S holds NaN or inf")
    if bool((S < 0).any()):
        i, j = (int(v) for v in torch.nonzero(S < 0)[0])
        raise ConfigError(f"the inhibition matrix S must be ≥ 0 (inhibition only); S[{i}, {j}] = {float(S[i, j]):g}")
    scale = SYMMETRY_TOLERANCE * max(float(S.abs().max()), 1e-300)
    asymmetry = (S - S.T).abs()
    if float(asymmetry.max()) > scale:
        i, j = (int(v) for v in torch.nonzero(asymmetry == asymmetry.max())[0])
        raise ConfigError(f"the inhibition matrix S must be symmetric; S[{i}, {j}] = {float(S[i, j]):g} but "
                          f"S[{j}, {i}] = {float(S[j, i]):g}")
    if float(S.diagonal().abs().max()) > scale:
        i = int(S.diagonal().abs().argmax())
        raise ConfigError(f"the inhibition matrix S must have a zero diagonal (a unit does not inhibit "
                          f"itself); S[{i}, {i}] = {float(S[i, i]):g}")
    S = 0.5 * (S + S.T)
    S.fill_diagonal_(0.0)
    return S


def _abs_energy(R: torch.Tensor, Z: torch.Tensor, lam: torch.Tensor, ZS: torch.Tensor) -> torch.Tensor:
    """``½‖r‖² + Σλ|z| + ½|z|ᵀS|z|`` per row from the residual ``R`` and ``ZS = |Z|S``: (batch,)."""
    return 0.5 * R.square().sum(1) + l1_penalty(Z, lam) + inhibition_penalty(Z.abs(), None, ZS)


def inhibition_energy(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, lam: Any, S: torch.Tensor) -> torch.Tensor:
    """``E = ½‖x − Dz‖² + Σⱼλⱼ|zⱼ| + ½|z|ᵀS|z|`` of each row: (batch,). Differentiable (autograd) in
    ``X`` ``(batch, n)``, ``D`` ``(n, k)``, ``Z`` ``(batch, k)`` and ``S`` ``(k, k)``; ``∂E/∂S = ½|z||z|ᵀ``.
    Shapes and ``λ > 0`` are checked; ``S`` is used as given (see :func:`check_inhibition_matrix`)."""
    if not (isinstance(S, torch.Tensor) and tuple(S.shape) == (D.shape[-1], D.shape[-1])):
        raise ConfigError(f"S must be a ({D.shape[-1]}, {D.shape[-1]}) tensor")
    lam_t = _check_lam(lam, X.detach(), D.detach())
    return 0.5 * (X - Z @ D.T).square().sum(1) + l1_penalty(Z, lam_t) + inhibition_penalty(Z.abs(), S)


def _violation(grad: torch.Tensor, Z: torch.Tensor, weight: torch.Tensor, nonnegative: bool) -> torch.Tensor:
    """Largest violation of the first-order conditions per row (see the module docstring): (batch,)."""
    on = grad + weight * Z.sign()
    off = (-grad - weight) if nonnegative else (grad.abs() - weight)
    return torch.where(Z != 0, on.abs(), off.clamp_min(0.0)).amax(dim=1)


def inhibition_stationarity(X: Any, D: Any, Z: Any, lam: Any, S: Any, *, nonnegative: bool = False) -> torch.Tensor:
    """How far each code is from the first-order conditions of ``E``: ``max_i`` of
    ``|d_iᵀ(Dz − x) + (λ + (S|z|)_i)·sign z_i|`` over units that are on and
    ``max(0, |d_iᵀ(Dz − x)| − λ − (S|z|)_i)`` over units that are off (one-sided with ``z ≥ 0``):
    (batch,), 0 exactly at a point no single coordinate can improve."""
    X, D = _check_problem(X, D)
    Z = _check_codes(Z, X, D, "Z")
    lam_t = _check_lam(lam, X, D)
    S = check_inhibition_matrix(S, D.shape[1], dtype=X.dtype, device=X.device)
    grad = (Z @ D.T - X) @ D
    return _violation(grad, Z, lam_t + Z.abs() @ S, nonnegative)


def inhibition_lipschitz(D: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """``L = λ_max(DᵀD) + ρ(S)``, the step constant of the majorized ISTA step (0-dim tensor):
    ``λ_max(DᵀD)`` by power iteration (:func:`~sparseae.coding.solvers.lipschitz_constant`, 1 % above),
    ``λ_max(S)`` bounded by its largest row sum (Gershgorin; exact for ``S ≥ 0`` with equal row sums),
    an upper bound that keeps every step a descent step at ``O(k²)`` cost."""
    return lipschitz_constant(D) + S.sum(dim=1).max().to(D.dtype)


def inhibition_codes(X: Any, D: Any, lam: Any, S: Any, *, method: str = "fista", L: Any = None,
                     z0: Any = None, max_iter: int = 200, tol: float = 1e-5, nonnegative: bool = False,
                     stop: str = "relative_change", check_every: int = 10,
                     return_history: bool = False) -> SparseCodeResult:
    """Codes ``(batch, k)`` minimising ``E`` of each row of ``X`` (see the module docstring).

    ``X`` ``(batch, n_features)``, ``D`` ``(n_features, k)``, ``lam`` λ > 0 (a number or a tensor
    broadcastable to ``(batch, k)``), ``S`` ``(k, k)`` checked by :func:`check_inhibition_matrix`.
    ``method``: ``"ista"``, ``"fista"`` or ``"cod"``. ``L``: the step constant of ista/fista (default
    :func:`inhibition_lipschitz`). ``z0``: warm start (default zeros). ``nonnegative``: ``z ≥ 0``.
    ``stop``: ``"relative_change"`` — ista/fista: the prox step ``‖T(Y_k) − Y_k‖_F ≤ tol·‖Z_{k−1}‖_F``
    over the batch (for ista ``‖Z_k − Z_{k−1}‖_F``); cod: the largest coordinate move of the batch
    ``≤ tol·max|Z|``; ``"stationarity"``: the batch's largest :func:`inhibition_stationarity`
    ``≤ tol·min λ``; ``"none"``: ``max_iter`` iterations. Tested every ``check_every`` iterations
    (one host sync each). ``return_history``: the batch-mean energy after each iteration. Runs
    under ``torch.no_grad()``; returns a :class:`~sparseae.coding.solvers.SparseCodeResult`
    (``objective``: ``E`` per row).
    """
    check_choice(method, "method", METHODS)
    check_choice(stop, "stop", _STOP_RULES)
    check_number(max_iter, "max_iter", low=1, integer=True)
    check_number(tol, "tol", low=0)
    check_number(check_every, "check_every", low=1, integer=True)
    X, D = _check_problem(X, D)
    lam_t = _check_lam(lam, X, D)
    S = check_inhibition_matrix(S, D.shape[1], dtype=X.dtype, device=X.device)
    Z = (torch.zeros(X.shape[0], D.shape[1], dtype=X.dtype, device=X.device) if z0 is None
         else _check_codes(z0, X, D, "z0").clone())
    if nonnegative:
        Z.clamp_(min=0.0)
    with torch.no_grad():
        solver = _coordinate_descent if method == "cod" else _proximal_gradient
        extra = {} if method == "cod" else {
            "accelerated": method == "fista",
            "L": (inhibition_lipschitz(D, S) if L is None else _check_L(L, D)).clamp_min(torch.finfo(D.dtype).tiny)}
        Z, n_iter, converged, history = solver(X, D, lam_t, S, Z, nonnegative=nonnegative, max_iter=max_iter,
                                               tol=tol, stop=stop, check_every=check_every,
                                               return_history=return_history, **extra)
        R = X - Z @ D.T
        objective = _abs_energy(R, Z, lam_t, Z.abs() @ S)
    return SparseCodeResult(codes=Z, n_iter=n_iter, objective=objective, converged=converged,
                            history=torch.stack(history).tolist() if return_history else None)


def _stationary(X, D, Z, lam, S, nonnegative, tol) -> bool:
    grad = (Z @ D.T - X) @ D
    worst = _violation(grad, Z, lam + Z.abs() @ S, nonnegative).max()
    return bool(worst <= tol * lam.min())  # the periodic host sync


def _proximal_gradient(X, D, lam, S, Z, *, nonnegative, max_iter, tol, stop, check_every, return_history,
                       accelerated, L):
    """Majorized ISTA, or its monotone accelerated form; returns (Z, n_iter, converged, history)."""
    prox = nonnegative_soft_threshold if nonnegative else soft_threshold
    inv_L = 1.0 / L
    D_over_L = D * inv_L
    tiny = torch.finfo(X.dtype).tiny

    def state(Zk):  # residual x − Dz, |z|S and E: (batch, n), (batch, k), (batch,)
        R = X - Zk @ D.T
        ZS = Zk.abs() @ S
        return R, ZS, _abs_energy(R, Zk, lam, ZS)

    def step(Y, R_Y, YS):  # h_{(λ + S|y|)/L}(y − ∇f(y)/L), ∇f(y) = −Dᵀr
        return prox(torch.addmm(Y, R_Y, D_over_L), (lam + YS) * inv_L)

    R, ZS, E = state(Z)
    Y, R_Y, YS = Z, R, ZS
    t = torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)
    plain = torch.ones(X.shape[0], dtype=torch.bool, device=X.device)
    history, converged, n_iter = [], False, 0
    for n_iter in range(1, max_iter + 1):
        Z_prev = Z
        U = step(Y, R_Y, YS)
        R_U, US, E_U = state(U)
        testing = stop != "none" and (n_iter % check_every == 0 or n_iter == max_iter)
        if testing and stop == "relative_change":
            # the size of the prox step from y (0 only at a stationary y), not z's change, which is 0
            # for a sample whose extrapolated step was refused
            done = bool(torch.linalg.vector_norm(U - Y) <= tol * torch.linalg.vector_norm(Z).clamp_min(tiny))
        if accelerated:
            # per sample: keep an extrapolated step only if E went down; a plain step (from y = z)
            # is a descent step by construction and always kept (E's rounding cannot stall it)
            accept = ((E_U <= E) | plain).unsqueeze(1)
            t_next = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
            momentum = torch.where(accept, (t - 1.0) / t_next, torch.zeros_like(t))
            t = torch.where(accept, t_next, torch.ones_like(t))
            Z, R_prev = torch.where(accept, U, Z), R
            R, ZS, E = torch.where(accept, R_U, R), torch.where(accept, US, ZS), torch.where(accept[:, 0], E_U, E)
            plain = momentum[:, 0] == 0
            Y = Z + momentum * (Z - Z_prev)   # a refused sample restarts from its own z
            R_Y = R + momentum * (R - R_prev)  # the residual is affine in z
            YS = Y.abs() @ S
        else:
            Z, R, ZS, E = U, R_U, US, E_U
            Y, R_Y, YS = Z, R, ZS
        if return_history:
            history.append(E.mean())
        if testing:
            if stop == "stationarity":
                done = _stationary(X, D, Z, lam, S, nonnegative, tol)
            if done:
                converged = True
                break
    return Z, n_iter, converged, history


def _coordinate_descent(X, D, lam, S, Z, *, nonnegative, max_iter, tol, stop, check_every, return_history):
    """Greedy coordinate descent, one coordinate per sample per iteration; returns (Z, n_iter,
    converged, history). ``B = Dᵀx − (DᵀD − diag)z`` and the thresholds ``W = λ + |z|S`` are updated
    in O(k) per sample and recomputed exactly at every stopping test (no drift)."""
    prox = nonnegative_soft_threshold if nonnegative else soft_threshold
    G = D.T @ D
    G_diag = G.diagonal().clone()
    inv_diag = 1.0 / G_diag.clamp_min(torch.finfo(X.dtype).tiny)
    C = X @ D
    lam_full = lam.expand(X.shape[0], D.shape[1])
    rows = torch.arange(X.shape[0], device=X.device)
    tiny = torch.finfo(X.dtype).tiny

    def exact(Zk):
        return C - Zk @ G + Zk * G_diag, lam_full + Zk.abs() @ S

    B, W = exact(Z)
    history, converged, n_iter = [], False, 0
    for n_iter in range(1, max_iter + 1):
        change = prox(B, W) * inv_diag - Z  # the exact minimiser along each coordinate, minus z
        unit = change.abs().argmax(dim=1)  # (batch,)
        delta = change[rows, unit]
        old = Z[rows, unit]
        Z[rows, unit] = old + delta
        B.addcmul_(delta.unsqueeze(1), G[unit], value=-1.0)
        B[rows, unit] += delta * G_diag[unit]  # B_i excludes unit i itself
        W.addcmul_(((old + delta).abs() - old.abs()).unsqueeze(1), S[unit])
        if return_history:
            history.append(_abs_energy(X - Z @ D.T, Z, lam, Z.abs() @ S).mean())
        if stop != "none" and (n_iter % check_every == 0 or n_iter == max_iter):
            B, W = exact(Z)
            if stop == "relative_change":
                move = (prox(B, W) * inv_diag - Z).abs().max()
                done = bool(move <= tol * Z.abs().max().clamp_min(tiny))
            else:
                done = _stationary(X, D, Z, lam, S, nonnegative, tol)
            if done:
                converged = True
                break
    return Z, n_iter, converged, history

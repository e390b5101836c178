"""Coordinate-descent kernels for the Lasso on the Gram form ``G`` ``(k, k)``, ``C`` ``(n_samples, k)``:
active-set sweeps, Newton steps on the support, and a duality-gap stop; codes into ``Z`` ``(n_samples, k)``."""
from __future__ import annotations

import math

import numba
import numpy as np

from .common import _DEPENDENT_REL, _backward, _chol_append, _forward, _jit, _rows_combination

__all__ = ["cd_batch"]


@_jit(nogil=True)
def _cd_gap(c, xx, z, corr, alpha, positive):
    """From ``corr = Dᵀ(x − Dz)`` in O(k): the duality gap, the gap of the problem restricted
    to the atoms with ``z_j ≠ 0``, and the primal objective."""
    k = c.shape[0]
    zc = 0.0
    zcorr = 0.0
    l1 = 0.0
    worst = 0.0
    worst_active = 0.0
    for j in range(k):
        zj = z[j]
        zc += zj * c[j]
        zcorr += zj * corr[j]
        l1 += abs(zj)
        v = corr[j] if positive else abs(corr[j])
        if v > worst:
            worst = v
        if zj != 0.0 and v > worst_active:
            worst_active = v
    rr = max(xx - zc - zcorr, 0.0)  # ‖x − Dz‖² = ‖x‖² − zᵀDᵀx − zᵀDᵀr
    s = 1.0 if worst <= alpha else alpha / worst
    gap = 0.5 * (1.0 - s) ** 2 * rr + (alpha * l1 - s * zcorr)
    s = 1.0 if worst_active <= alpha else alpha / worst_active
    gap_active = 0.5 * (1.0 - s) ** 2 * rr + (alpha * l1 - s * zcorr)
    return max(gap, 0.0), max(gap_active, 0.0), 0.5 * rr + alpha * l1


@_jit(nogil=True, fastmath={"contract"})
def _cd_update(G, j, alpha, positive, z, corr):
    """Exact minimisation over ``z_j`` (``corr`` follows)."""
    gjj = G[j, j]
    if gjj <= 0.0:
        return
    old = z[j]
    u = corr[j] + gjj * old
    if positive:
        new = (u - alpha) / gjj if u > alpha else 0.0
    elif u > alpha:
        new = (u - alpha) / gjj
    elif u < -alpha:
        new = (u + alpha) / gjj
    else:
        new = 0.0
    delta = new - old
    if delta != 0.0:
        z[j] = new
        k = G.shape[0]
        for i in range(k):
            corr[i] -= delta * G[j, i]


@_jit(nogil=True)
def _cd_refresh(G, c, z, act, n_active, corr, w):
    """``corr = c − G z`` from scratch over the atoms ``act[:n_active]`` (``w``: scratch)."""
    for p in range(n_active):
        w[p] = z[act[p]]
    _rows_combination(G, act, w, n_active, corr)
    for j in range(c.shape[0]):
        corr[j] = c[j] - corr[j]


@_jit(nogil=True)
def _cd_newton_point(G, c, alpha, z, act, n_active, L, rhs, y, u, tmp):
    """Factor ``G_AA = LLᵀ`` and solve ``G_AA u = c_A − α sign(z_A)``; False (nothing solved)
    when the support is linearly dependent."""
    for p in range(n_active):
        d2 = _chol_append(G, L, act, p, act[p])
        if d2 <= _DEPENDENT_REL * G[act[p], act[p]]:
            return False
        L[p, p] = math.sqrt(d2)
        rhs[p] = c[act[p]] - (alpha if z[act[p]] > 0.0 else -alpha)
    _forward(L, rhs, y, 0, n_active)
    _backward(L, y, u, n_active, tmp)
    return True


@_jit(nogil=True)
def _cd_segment(z, act, n_active, corr, L, w, ltd):
    """Turn ``w`` from ``u`` into ``Δ = u − z_A`` and return ``(g, h, s)`` of the objective on the
    segment, ``f(t) = g·t + ½h·t² + α Σ|z_p + tΔ_p|``: ``g = −Δᵀ corr_A``, ``h = ‖LᵀΔ‖²``
    (``ltd``: scratch for ``LᵀΔ``), ``s`` the slope of ``Σ|z_p + tΔ_p|`` at ``t = 0⁺``."""
    g = 0.0
    slope_l1 = 0.0
    for p in range(n_active):
        zp = z[act[p]]
        w[p] -= zp  # w is now Δ
        g -= w[p] * corr[act[p]]
        slope_l1 += w[p] if zp > 0.0 else -w[p]
        ltd[p] = 0.0
    for p in range(n_active):
        dp = w[p]
        for q in range(p + 1):
            ltd[q] += L[p, q] * dp
    h = 0.0
    for p in range(n_active):
        h += ltd[p] * ltd[p]
    return g, h, slope_l1


@_jit(nogil=True)
def _cd_line_search(z, act, n_active, w, g, h, slope_l1, alpha, positive, crossed):
    """The minimiser ``t ∈ [0, 1]`` of ``f`` (:func:`_cd_segment`), walked across the points
    where coordinates cross zero (with ``positive`` it stops at the first); returns ``(t, True)``
    when no coordinate changes sign up to ``t = 1`` (``u`` is the minimiser), else ``(t, False)``.
    ``crossed``: scratch, 1 for a coordinate that has crossed zero on the walk."""
    for p in range(n_active):
        crossed[p] = 0.0
    t = 0.0
    first = True
    while True:
        t_next = 1.0  # the next point where a coordinate reaches zero
        nxt = -1
        for p in range(n_active):
            zp = z[act[p]]
            if crossed[p] == 0.0 and zp * w[p] < 0.0:
                tp = -zp / w[p]
                if tp < t_next:
                    t_next = tp
                    nxt = p
        if first and nxt < 0:  # u keeps the signs of z: it is the minimiser
            return 1.0, True
        first = False
        slope = g + h * t + alpha * slope_l1  # f'(t⁺)
        if slope >= 0.0:
            return t, False
        root = t - slope / h if h > 0.0 else 2.0
        if root <= t_next:
            return root, False
        if nxt < 0:
            return 1.0, False
        t = t_next
        if positive:  # crossing zero would leave the feasible set
            return t, False
        slope_l1 += 2.0 * abs(w[nxt])  # |z_p + tΔ_p| turns from decreasing to increasing
        crossed[nxt] = 1.0


@_jit(nogil=True)
def _cd_polish(G, c, alpha, positive, z, corr, act, n_active, L, rhs, y, w, tmp):
    """Newton step on the support ``A`` with an exact line search: ``u`` solves
    ``G_AA u = c_A − α sign(z_A)``, and ``z_A`` moves to the minimiser of the true objective on
    the segment ``z_A + t(u − z_A)``, ``t ∈ [0, 1]`` (convex, piecewise quadratic: walked across
    the points where coordinates cross zero; with ``positive`` it stops at the first). Returns
    ``True`` when ``u`` itself was reached (the exact minimiser for this support and signs).
    ``corr`` must be ``c − Gz`` on entry; it is recomputed on exit."""
    if n_active == 0 or n_active > L.shape[0]:
        return False
    if not _cd_newton_point(G, c, alpha, z, act, n_active, L, rhs, y, w, tmp):
        return False
    g, h, slope_l1 = _cd_segment(z, act, n_active, corr, L, w, rhs)
    t, reached = _cd_line_search(z, act, n_active, w, g, h, slope_l1, alpha, positive, tmp)
    for p in range(n_active):  # z_A += tΔ; a coordinate that crossed to (near) zero is zero
        j = act[p]
        zp = z[j]
        v = zp + t * w[p]
        if zp * w[p] < 0.0 and (abs(v) <= 1e-13 * abs(zp) or (positive and v < 0.0)):
            v = 0.0
        z[j] = v
    _cd_refresh(G, c, z, act, n_active, corr, w)
    return reached


@_jit(nogil=True)
def _collect(z, act):
    n = 0
    for j in range(z.shape[0]):
        if z[j] != 0.0:
            act[n] = j
            n += 1
    return n


@_jit(nogil=True)
def _cd_sample(G, c, xx, alpha, positive, tol, max_iter, z, corr, act, order, L, rhs, y, w,
               tmp):
    """Coordinate descent from the code already in ``z``. A sweep over every atom (in decreasing
    ``|dⱼᵀx|``, so the strongest atoms take the signal before their coherent neighbours) lets
    violators in; then sweeps over the non-zero atoms alternate with Newton steps on their
    support (exact when the signs hold) until that sub-problem is solved. Stops when the duality
    gap is ``≤ tol · objective``. Returns the full sweeps (``-max_iter`` if not converged)."""
    k = c.shape[0]
    for j in range(k):
        if positive and z[j] < 0.0:
            z[j] = 0.0
        w[j] = -abs(c[j])
    order[:] = np.argsort(w)
    n_active = _collect(z, act)
    _cd_refresh(G, c, z, act, n_active, corr, w)
    for sweep in range(1, max_iter + 1):
        for i in range(k):  # full sweep
            _cd_update(G, order[i], alpha, positive, z, corr)
        n_active = _collect(z, act)
        _cd_refresh(G, c, z, act, n_active, corr, w)  # drop the drift of the incremental updates
        gap, _, primal = _cd_gap(c, xx, z, corr, alpha, positive)
        if gap <= tol * primal:
            return sweep
        for _inner in range(max_iter):  # the active set until its sub-problem is solved
            for p in range(n_active):
                _cd_update(G, act[p], alpha, positive, z, corr)
            n_active = _collect(z, act)
            gap, gap_active, primal = _cd_gap(c, xx, z, corr, alpha, positive)
            if gap <= tol * primal or gap_active <= 0.1 * tol * primal:
                break
            if _cd_polish(G, c, alpha, positive, z, corr, act, n_active, L, rhs, y, w,
                          tmp):
                break
            n_active = _collect(z, act)
    n_active = _collect(z, act)
    _cd_refresh(G, c, z, act, n_active, corr, w)
    gap, _, primal = _cd_gap(c, xx, z, corr, alpha, positive)
    return max_iter if gap <= tol * primal else -max_iter


@_jit(nogil=True)
def _cd_block(G, C, xx, alpha, positive, tol, max_iter, Z, sweeps, start, stop, cap):
    k = G.shape[0]
    corr = np.empty(k)
    act = np.empty(k, np.int64)
    order = np.empty(k, np.int64)
    L = np.empty((cap, cap))
    rhs = np.empty(cap)
    y = np.empty(cap)
    w = np.empty(k)
    tmp = np.empty(cap)
    for i in range(start, stop):
        sweeps[i] = _cd_sample(G, C[i], xx[i], alpha, positive, tol, max_iter, Z[i], corr, act,
                               order, L, rhs, y, w, tmp)


@_jit(nogil=True, parallel=True)
def cd_batch(G, C, xx, alpha, positive, tol, max_iter, cap, Z, sweeps, n_blocks):
    """Coordinate descent for every row of ``C``, starting from ``Z`` (zeros or a warm start);
    ``cap = min(n_features, k)`` bounds the supports given Newton steps; ``sweeps`` gets the
    full sweeps per row, negative where ``max_iter`` was reached unconverged."""
    n = C.shape[0]
    for b in numba.prange(n_blocks):
        _cd_block(G, C, xx, alpha, positive, tol, max_iter, Z, sweeps, b * n // n_blocks,
                  (b + 1) * n // n_blocks, cap)

"""Compiled per-sample sparse-coding kernels (numba), used by :func:`sparseae.coding.sparse_encode`.

Every kernel works on the Gram form of the problem: ``G = DᵀD`` ``(k, k)`` and the correlations
``C = XD`` ``(n_samples, k)`` (``D`` ``(n_features, k)``, columns are atoms), all float64 and
C-contiguous. Codes are written into ``Z`` ``(n_samples, k)``. Samples are independent: the batch
is cut into blocks, ``prange`` spreads the blocks over numba's threads, and each block allocates
its workspace once.

This module imports numba; :mod:`sparseae.coding.encode` imports it on the first call that needs
it, so the rest of the library works without numba. Functions compile on their first call and
are cached on disk (``cache=True``) where the package folder is writable.
"""
from __future__ import annotations

import math
import threading

import numba
import numpy as np

__all__ = ["lars_batch", "omp_batch", "cd_batch", "run_parallel"]


def _jit(**options):
    """``numba.njit(cache=True, **options)``, without the cache where numba cannot locate one."""
    def wrap(fn):
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(cache=False, **options)(fn)
    return wrap


#: ``1 ± aⱼ`` below this means atom ``j`` moves with the active set (a duplicate): no event.
_EQUIANGULAR_EPS = 1e-12
#: A new atom whose squared distance to the active span is below this (relative to ``‖dⱼ‖²``)
#: is linearly dependent on the active atoms and is not added.
_DEPENDENT_REL = 1e-10


# --------------------------------------------------------------------------------------------
# small dense helpers. ``_FAST`` lets LLVM fuse multiply-adds and reorder the short dot products
# so they vectorise (it changes rounding only; no NaN/inf assumptions).

_FAST = {"contract", "reassoc"}


@_jit(nogil=True, fastmath=_FAST)
def _rows_combination(G, act, w, n, out):
    """``out = Σ_{p<n} w[p]·G[act[p], :]`` (``G`` symmetric: ``G[:, A] w``), four rows a pass."""
    k = G.shape[1]
    for j in range(k):
        out[j] = 0.0
    p = 0
    while p + 4 <= n:
        r0, r1, r2, r3 = act[p], act[p + 1], act[p + 2], act[p + 3]
        w0, w1, w2, w3 = w[p], w[p + 1], w[p + 2], w[p + 3]
        for j in range(k):
            out[j] += (w0 * G[r0, j] + w1 * G[r1, j]) + (w2 * G[r2, j] + w3 * G[r3, j])
        p += 4
    while p < n:
        wp = w[p]
        r = act[p]
        for j in range(k):
            out[j] += wp * G[r, j]
        p += 1


# --------------------------------------------------------------------------------------------
# Cholesky factor of G[A, A]: lower triangular, rows in the order atoms entered


@_jit(nogil=True, fastmath=_FAST)
def _chol_append(G, L, act, n_active, j):
    """Fill row ``n_active`` of ``L`` for atom ``j`` (forward substitution); return ``d²``, the
    squared distance of atom ``j`` to the span of the active atoms (the new pivot squared)."""
    d2 = G[j, j]
    for p in range(n_active):
        s = G[act[p], j]
        for q in range(p):
            s -= L[p, q] * L[n_active, q]
        s /= L[p, p]
        L[n_active, p] = s
        d2 -= s * s
    return d2


@_jit(nogil=True, fastmath=_FAST)
def _forward(L, b, y, start, n):
    """``y[p] = (b[p] − L[p, :p]·y[:p]) / L[p, p]`` for ``start ≤ p < n`` (rows before ``start``
    of ``y`` are already solved)."""
    for p in range(start, n):
        s = b[p]
        for q in range(p):
            s -= L[p, q] * y[q]
        y[p] = s / L[p, p]


@_jit(nogil=True, fastmath=_FAST)
def _backward(L, y, out, n, tmp):
    """``out = L⁻ᵀ y`` on the leading ``n × n`` block, by rows of ``L`` (contiguous axpys)."""
    for p in range(n):
        tmp[p] = y[p]
    for p in range(n - 1, -1, -1):
        o = tmp[p] / L[p, p]
        out[p] = o
        for q in range(p):
            tmp[q] -= L[p, q] * o


@_jit(nogil=True)
def _chol_delete(L, n, i, x):
    """Remove row and column ``i`` of the ``n × n`` factor: shift, then a rank-1 update of the
    trailing block with the removed column (``x`` is scratch)."""
    for r in range(i, n - 1):
        for c in range(i):
            L[r, c] = L[r + 1, c]
        x[r] = L[r + 1, i]
        for c in range(i, r + 1):
            L[r, c] = L[r + 1, c + 1]
    for p in range(i, n - 1):  # L22 L22ᵀ + x xᵀ by plane rotations
        lpp = L[p, p]
        r = math.hypot(lpp, x[p])
        cos = r / lpp
        sin = x[p] / lpp
        L[p, p] = r
        for q in range(p + 1, n - 1):
            L[q, p] = (L[q, p] + sin * x[q]) / cos
            x[q] = cos * x[q] - sin * L[q, p]


# --------------------------------------------------------------------------------------------
# LARS (plain LAR and the Lasso homotopy; Efron, Hastie, Johnstone & Tibshirani 2004)

_BIG = 1e300


@_jit(nogil=True, fastmath={"contract"})
def _lars_steps(a, corr, state, lam, positive, g, side):
    """For every inactive atom the step ``γ ≥ 0`` in λ at which its correlation reaches
    ``±(λ − γ)`` (``_BIG`` if never): ``g[j]``, and ``side[j]`` the sign reached. Branch-free,
    so it vectorises."""
    k = a.shape[0]
    for j in range(k):
        aj = a[j]
        cj = corr[j]
        t1 = 1.0 - aj
        t2 = 1.0 + aj
        g1 = (lam - cj) / t1 if t1 > _EQUIANGULAR_EPS else _BIG
        g2 = (lam + cj) / t2 if (t2 > _EQUIANGULAR_EPS and not positive) else _BIG
        up = g1 <= g2
        gj = g1 if up else g2
        side[j] = 1.0 if up else -1.0
        g[j] = gj if state[j] == 0 else _BIG


@_jit(nogil=True)
def _lars_start(c, positive, z, corr, state):
    """Reset one sample's workspace (``corr = c``, ``z = 0``, every atom inactive) and return
    ``(λ, j)``: the largest correlation (``|c_j|``, or ``c_j`` with ``positive``) and its atom,
    ``j = -1`` when none is above 0."""
    lam = 0.0
    j0 = -1
    for j in range(c.shape[0]):
        corr[j] = c[j]
        z[j] = 0.0
        state[j] = 0
        v = c[j] if positive else abs(c[j])
        if v > lam:
            lam = v
            j0 = j
    return lam, j0


@_jit(nogil=True)
def _lars_reentry(a, corr, lam, positive, dropped, dropped_sign, g, side):
    """The atom that just left sits on the boundary it left through: only the other side counts
    for it (none with ``positive``); fixes its ``g`` and ``side`` from :func:`_lars_steps`."""
    if dropped_sign != side[dropped]:
        return
    g[dropped] = _BIG
    if not positive:
        t2 = 1.0 + dropped_sign * a[dropped]
        if t2 > _EQUIANGULAR_EPS:
            g[dropped] = (lam + dropped_sign * corr[dropped]) / t2
            side[dropped] = -dropped_sign


@_jit(nogil=True)
def _lars_event(g, zA, w, n_active, lam, alpha, lasso):
    """The next knot of the path: ``(γ, event, idx)``, the step in λ to it (≥ 0) and what happens
    there: 0 λ reaches ``alpha``; 1 inactive atom ``idx`` enters; 2 (``lasso`` only) the
    coefficient at active position ``idx`` reaches 0."""
    gamma = lam - alpha
    event = 0
    idx = -1
    for j in range(g.shape[0]):
        if g[j] < gamma:
            gamma = g[j]
            idx = j
    if idx >= 0:
        event = 1
    if lasso:
        for p in range(n_active):
            if zA[p] * w[p] < 0.0:
                gp = -zA[p] / w[p]
                if gp < gamma:
                    gamma = gp
                    event = 2
                    idx = p
    if gamma < 0.0:
        gamma = 0.0
    return gamma, event, idx


@_jit(nogil=True)
def _lars_move(zA, w, n_active, corr, a, gamma):
    """Walk the path by ``γ`` in λ: ``z_A += γw``, ``corr −= γa``."""
    for p in range(n_active):
        zA[p] += gamma * w[p]
    for j in range(corr.shape[0]):
        corr[j] -= gamma * a[j]


@_jit(nogil=True)
def _lars_drop(L, act, sgn, zA, state, n_active, idx, tmp):
    """Remove active position ``idx`` (its coefficient reached 0): downdate the factor, shift the
    active arrays, make the dropped atom and the excluded ones (the span changed) inactive.
    Returns the new number of active atoms."""
    dropped = act[idx]
    _chol_delete(L, n_active, idx, tmp)
    for p in range(idx, n_active - 1):
        act[p] = act[p + 1]
        sgn[p] = sgn[p + 1]
        zA[p] = zA[p + 1]
    for j in range(state.shape[0]):
        if state[j] == 2:
            state[j] = 0
    state[dropped] = 0
    return n_active - 1


@_jit(nogil=True)
def _lars_add(G, L, act, sgn, zA, state, n_active, j, sign):
    """Atom ``j`` enters with ``sign``: a row of the factor and a zero coefficient. One the active
    set cannot take (full, or linearly dependent on it) is excluded instead (``state`` 2).
    Returns the new number of active atoms."""
    if n_active >= L.shape[0]:  # min(n_features, k): a larger active set is linearly dependent
        state[j] = 2
        return n_active
    d2 = _chol_append(G, L, act, n_active, j) if n_active > 0 else G[j, j]
    if n_active > 0 and d2 <= _DEPENDENT_REL * G[j, j]:
        state[j] = 2
        return n_active
    L[n_active, n_active] = math.sqrt(d2)
    act[n_active] = j
    sgn[n_active] = sign
    zA[n_active] = 0.0
    state[j] = 1
    return n_active + 1


@_jit(nogil=True)
def _lars_finish(G, c, L, act, sgn, n_active, lam, z, zA, b, y, tmp):
    """Solve ``G_AA z_A = c_A − λ s_A`` afresh (drops the drift of the incremental updates) and
    write ``z_A`` into ``z`` (``b``: scratch)."""
    for p in range(n_active):
        b[p] = c[act[p]] - lam * sgn[p]
    _forward(L, b, y, 0, n_active)
    _backward(L, y, zA, n_active, tmp)
    for p in range(n_active):
        z[act[p]] = zA[p]


@_jit(nogil=True)
def _lars_sample(G, c, alpha, positive, lasso, max_active, max_steps, z,
                 corr, a, g, side, state, L, act, sgn, zA, w, y, tmp):
    """LARS on one sample from ``c = Dᵀx``: the Lasso path down to ``λ = alpha`` when ``lasso``
    (atoms leave the active set when their coefficient reaches 0), else plain LAR stopped at the
    knot where atom ``max_active + 1`` would enter. Writes the code into ``z``; returns steps.
    ``state[j]``: 0 inactive, 1 active, 2 excluded (linearly dependent on the active atoms).
    ``y = L⁻¹ s_A`` is kept between steps: an entering atom adds one row, a leaving one
    invalidates the rows from its position on."""
    lam, j0 = _lars_start(c, positive, z, corr, state)
    if j0 < 0 or lam <= alpha:
        return 0
    n_active = _lars_add(G, L, act, sgn, zA, state, 0, j0, 1.0 if c[j0] > 0 else -1.0)
    n_solved = 0  # rows of y = L⁻¹ s_A that are up to date
    steps = 0
    dropped = -1  # the atom that just left, and the side it left through (no re-entry there)
    dropped_sign = 0.0
    while steps < max_steps:
        steps += 1
        _forward(L, sgn, y, n_solved, n_active)
        n_solved = n_active
        _backward(L, y, w, n_active, tmp)  # w = G_AA⁻¹ s_A: z_A moves by γw as λ drops by γ
        _rows_combination(G, act, w, n_active, a)  # a = G[:, A] w
        _lars_steps(a, corr, state, lam, positive, g, side)
        if dropped >= 0:
            _lars_reentry(a, corr, lam, positive, dropped, dropped_sign, g, side)
        gamma, event, idx = _lars_event(g, zA, w, n_active, lam, alpha, lasso)
        _lars_move(zA, w, n_active, corr, a, gamma)
        lam -= gamma
        dropped = -1
        if event == 0:
            lam = alpha
            break
        if event == 2:
            dropped = act[idx]
            dropped_sign = sgn[idx]
            n_active = _lars_drop(L, act, sgn, zA, state, n_active, idx, tmp)
            n_solved = min(n_solved, idx)
        elif not lasso and n_active >= max_active:
            break
        else:
            n_active = _lars_add(G, L, act, sgn, zA, state, n_active, idx, side[idx])
    _lars_finish(G, c, L, act, sgn, n_active, lam, z, zA, a, y, tmp)
    return steps


@_jit(nogil=True)
def _lars_block(G, C, alpha, positive, lasso, max_active, max_steps, Z, steps, start, stop):
    k = G.shape[0]
    cap = max(1, min(max_active, k))
    corr = np.empty(k)
    a = np.empty(k)
    g = np.empty(k)
    side = np.empty(k)
    state = np.empty(k, np.uint8)
    L = np.empty((cap, cap))
    act = np.empty(cap, np.int64)
    sgn = np.empty(cap)
    zA = np.empty(cap)
    w = np.empty(cap)
    y = np.empty(cap)
    tmp = np.empty(cap)
    for i in range(start, stop):
        steps[i] = _lars_sample(G, C[i], alpha, positive, lasso, max_active, max_steps, Z[i],
                                corr, a, g, side, state, L, act, sgn, zA, w, y, tmp)


@_jit(nogil=True, parallel=True)
def lars_batch(G, C, alpha, positive, lasso, max_active, max_steps, Z, steps, n_blocks):
    """LARS for every row of ``C``; ``max_active`` caps the active set (``min(n_features, k)``
    for the Lasso, ``n_nonzero_coefs`` for LAR). ``steps`` ``(n_samples,)`` gets the steps run."""
    n = C.shape[0]
    for b in numba.prange(n_blocks):
        _lars_block(G, C, alpha, positive, lasso, max_active, max_steps, Z, steps,
                    b * n // n_blocks, (b + 1) * n // n_blocks)


# --------------------------------------------------------------------------------------------
# OMP (batch OMP, Rubinstein, Zibulevsky & Elad 2008)


@_jit(nogil=True)
def _omp_sample(G, c, xx, max_atoms, tol, z, corr, used, L, act, cA, gam, y, tmp):
    """OMP on one sample: at most ``max_atoms`` atoms, and stop once the squared residual norm is
    ``≤ tol`` (``tol < 0``: no residual test). Writes ``z``; returns the number of atoms."""
    k = c.shape[0]
    gmax = 0.0
    for j in range(k):
        corr[j] = c[j]
        z[j] = 0.0
        used[j] = False
        if G[j, j] > gmax:
            gmax = G[j, j]
    if tol >= 0.0 and xx <= tol:
        return 0
    n_active = 0
    while n_active < max_atoms:
        j0 = -1
        best = 0.0
        for j in range(k):
            v = abs(corr[j])
            if v > best and not used[j]:
                best = v
                j0 = j
        if j0 < 0 or best * best <= 1e-26 * xx * gmax:  # residual orthogonal to every atom
            break
        d2 = _chol_append(G, L, act, n_active, j0)
        if d2 <= _DEPENDENT_REL * G[j0, j0]:
            break  # the chosen atom is in the span of the selected ones
        L[n_active, n_active] = math.sqrt(d2)
        act[n_active] = j0
        cA[n_active] = c[j0]
        used[j0] = True
        n_active += 1
        _forward(L, cA, y, n_active - 1, n_active)  # y = L⁻¹ c_A grows by one row
        _backward(L, y, gam, n_active, tmp)  # least squares on the selected atoms
        if tol >= 0.0:
            # ‖x − D_A γ‖² = ‖x‖² − c_Aᵀ G_AA⁻¹ c_A = ‖x‖² − ‖y‖²
            yy = 0.0
            for p in range(n_active):
                yy += y[p] * y[p]
            if xx - yy <= tol:
                break
        if n_active < max_atoms:
            _rows_combination(G, act, gam, n_active, corr)
            for j in range(k):
                corr[j] = c[j] - corr[j]
    for p in range(n_active):
        z[act[p]] = gam[p]
    return n_active


@_jit(nogil=True)
def _omp_block(G, C, xx, max_atoms, tol, Z, counts, start, stop):
    k = G.shape[0]
    cap = max(max_atoms, 1)
    corr = np.empty(k)
    used = np.empty(k, np.bool_)
    L = np.empty((cap, cap))
    act = np.empty(cap, np.int64)
    cA = np.empty(cap)
    gam = np.empty(cap)
    y = np.empty(cap)
    tmp = np.empty(cap)
    for i in range(start, stop):
        counts[i] = _omp_sample(G, C[i], xx[i], max_atoms, tol, Z[i], corr, used, L, act, cA,
                                gam, y, tmp)


@_jit(nogil=True, parallel=True)
def omp_batch(G, C, xx, max_atoms, tol, Z, counts, n_blocks):
    """OMP for every row of ``C`` (``xx``: ``‖x‖²`` per row); ``counts`` gets the atoms used."""
    n = C.shape[0]
    for b in numba.prange(n_blocks):
        _omp_block(G, C, xx, max_atoms, tol, Z, counts, b * n // n_blocks,
                   (b + 1) * n // n_blocks)


# --------------------------------------------------------------------------------------------
# coordinate descent on the Gram matrix, with active sets and a duality-gap stop


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


# --------------------------------------------------------------------------------------------

_LOCK = threading.Lock()  # numba's "workqueue" threading layer is not re-entrant


def _serial(kernel, *args) -> None:
    """What ``kernel(*args, 1)`` computes (one block: every row of ``C``, each kernel's second
    argument), by the block function called in this thread: no parallel region, so none of the
    threading layer's start-up and hand-over (numba's OpenMP layer added 25–35 ms a call on a
    loaded 2-core machine, 30× a small batch's solve), and the ``parallel=True`` wrapper is not
    compiled when only one thread is used."""
    n = args[1].shape[0]
    if kernel is lars_batch:
        _lars_block(*args, 0, n)
    elif kernel is omp_batch:
        _omp_block(*args, 0, n)
    elif kernel is cd_batch:  # its block takes ``cap`` last
        G, C, xx, alpha, positive, tol, max_iter, cap, Z, sweeps = args
        _cd_block(G, C, xx, alpha, positive, tol, max_iter, Z, sweeps, 0, n, cap)
    else:
        kernel(*args, 1)


def run_parallel(kernel, n_threads: int, n_samples: int, *args) -> None:
    """Call ``kernel(*args, n_blocks)`` on ``n_threads`` numba threads; the batch is cut into
    blocks handed out one at a time, so uneven samples balance across threads. One thread runs
    the single block in this thread (:func:`_serial`: the same codes)."""
    n_threads = max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    if n_threads == 1:
        _serial(kernel, *args)
        return
    n_blocks = max(1, min(n_samples, 16 * n_threads))
    with _LOCK:
        previous = numba.get_num_threads()
        numba.set_num_threads(n_threads)
        chunk = numba.set_parallel_chunksize(1)
        try:
            kernel(*args, n_blocks)
        finally:
            numba.set_parallel_chunksize(chunk)
            numba.set_num_threads(previous)

"""LARS kernels: plain LAR and the Lasso homotopy (Efron, Hastie, Johnstone & Tibshirani 2004) on the
Gram form ``G`` ``(k, k)``, ``C`` ``(n_samples, k)``; codes into ``Z`` ``(n_samples, k)``."""
from __future__ import annotations

import math

import numba
import numpy as np

from .common import _DEPENDENT_REL, _backward, _chol_append, _chol_delete, _forward, _jit, _rows_combination

__all__ = ["lars_batch"]

#: ``1 ± aⱼ`` below this means atom ``j`` moves with the active set (a duplicate): no event.
_EQUIANGULAR_EPS = 1e-12

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

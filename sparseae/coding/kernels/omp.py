"""OMP kernels: batch OMP (Rubinstein, Zibulevsky & Elad 2008) on the Gram form ``G`` ``(k, k)``,
``C`` ``(n_samples, k)``; codes into ``Z`` ``(n_samples, k)``."""
from __future__ import annotations

import math

import numba
import numpy as np

from .common import _DEPENDENT_REL, _backward, _chol_append, _forward, _jit, _rows_combination

__all__ = ["omp_batch"]


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

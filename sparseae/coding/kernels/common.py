"""What the solver kernels share: the :func:`_jit` decorator, the row combination ``G[:, A] w`` and the
Cholesky factor of ``G[A, A]`` (append a row, delete one, the two triangular solves).

``G`` ``(k, k)`` is the Gram matrix ``DᵀD``; ``L`` ``(cap, cap)`` the lower-triangular factor of the
active block, rows in the order atoms entered; ``act`` ``(cap,)`` the active atoms.
"""
from __future__ import annotations

import math

import numba


def _jit(**options):
    """``numba.njit(cache=True, **options)``, without the cache where numba cannot locate one."""
    def wrap(fn):
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(cache=False, **options)(fn)
    return wrap


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

"""Hashing baselines for semantic hashing: random-projection LSH, PCA hashing and ITQ.

Each hasher is fitted on data ``X`` ``(n, n_features)`` and encodes rows into bool bits
``(n, n_bits)`` as ``(x − mean) · W > 0`` for a projection ``W`` ``(n_features, n_bits)``:

* :class:`RandomProjectionLSH` — ``W`` Gaussian (Charikar 2002, sign random projections);
* :class:`PCAHashing` — ``W`` the top ``n_bits`` principal directions;
* :class:`ITQ` — PCA followed by the orthogonal rotation that minimises the quantisation loss
  ``‖B − VR‖²_F`` (Gong & Lazebnik 2011, iterative quantisation).
"""
from __future__ import annotations

import abc
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, NotFittedError
from ..validation import as_float_array, check_number

__all__ = ["RandomProjectionLSH", "PCAHashing", "ITQ"]

BLOCK_ROWS = 8192  # rows converted to float64 at a time


def _rng(random_state: Any) -> np.random.Generator:
    """A numpy Generator from None, a seed ≥ 0 or a Generator (ConfigError otherwise)."""
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)) or random_state < 0:
        raise ConfigError(f"random_state must be None, a non-negative integer or a numpy Generator, "
                          f"got {random_state!r}")
    return np.random.default_rng(random_state)


def _project(X: np.ndarray, mean: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``(X − mean) W`` in float64, ``(n, d) → (n, k)``, in blocks of rows."""
    out = np.empty((len(X), W.shape[1]), dtype=np.float64)
    for start in range(0, len(X), BLOCK_ROWS):
        out[start:start + BLOCK_ROWS] = (np.asarray(X[start:start + BLOCK_ROWS], np.float64) - mean) @ W
    return out


def _mean(X: np.ndarray) -> np.ndarray:
    """Column means ``(d,)`` in float64."""
    total = np.zeros(X.shape[1])
    for start in range(0, len(X), BLOCK_ROWS):
        total += np.asarray(X[start:start + BLOCK_ROWS], np.float64).sum(axis=0)
    return total / len(X)


def _principal_directions(X: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and the top ``n_components`` covariance eigenvectors ``(d, n_components)``."""
    mean = _mean(X)
    scatter = np.zeros((X.shape[1], X.shape[1]))
    for start in range(0, len(X), BLOCK_ROWS):
        block = np.asarray(X[start:start + BLOCK_ROWS], np.float64) - mean
        scatter += block.T @ block
    eigenvalues, eigenvectors = np.linalg.eigh(scatter / max(len(X) - 1, 1))
    top = np.argsort(eigenvalues)[::-1][:n_components]
    components = eigenvectors[:, top]
    # fix each sign (largest-magnitude entry positive) so the codes do not depend on LAPACK
    signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(n_components)])
    return mean, components * np.where(signs == 0, 1.0, signs)


class _Hasher(abc.ABC):
    """Shared ``fit`` / ``encode``: subclasses set ``mean_`` and ``projection_`` in ``_fit``."""

    _needs_pca = False

    def __init__(self, n_bits: int):
        check_number(n_bits, "n_bits", low=1, integer=True)
        self.n_bits = int(n_bits)

    @abc.abstractmethod
    def _fit(self, X: np.ndarray) -> None:
        """Set ``mean_`` (n_features,) and ``projection_`` (n_features, n_bits) from X."""

    def fit(self, X: Any) -> _Hasher:
        """Learn the hash functions from ``X`` ``(n, n_features)``, n ≥ 2; returns ``self``."""
        X = as_float_array(X, "X")
        if len(X) < 2:
            raise DataError(f"X has {len(X)} sample; fitting a hasher needs at least 2")
        if self._needs_pca and self.n_bits > X.shape[1]:
            raise ConfigError(f"n_bits={self.n_bits} exceeds the {X.shape[1]} features of X; "
                              f"{type(self).__name__} has at most n_features bits")
        self.n_features_in_ = X.shape[1]
        self._fit(X)
        return self

    def encode(self, X: Any) -> np.ndarray:
        """Bits ``(X − mean_) · projection_ > 0``: bool ``(n, n_bits)``."""
        if not hasattr(self, "projection_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")
        X = as_float_array(X, "X", n_features=self.n_features_in_)
        return _project(X, self.mean_, self.projection_) > 0

    def fit_encode(self, X: Any) -> np.ndarray:
        """``fit(X)`` then ``encode(X)``."""
        return self.fit(X).encode(X)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_bits={self.n_bits})"


class RandomProjectionLSH(_Hasher):
    """Sign of ``n_bits`` random Gaussian projections of the centred data (any ``n_bits`` ≥ 1)."""

    def __init__(self, n_bits: int, random_state: Any = None):
        super().__init__(n_bits)
        _rng(random_state)  # validate now; the generator itself is made in fit
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        rng = _rng(self.random_state)
        self.mean_ = _mean(X)
        self.projection_ = rng.standard_normal((X.shape[1], self.n_bits))


class PCAHashing(_Hasher):
    """Sign of the projections on the top ``n_bits`` principal directions (n_bits ≤ n_features)."""

    _needs_pca = True

    def _fit(self, X: np.ndarray) -> None:
        self.mean_, self.projection_ = _principal_directions(X, self.n_bits)


class ITQ(_Hasher):
    """Iterative quantisation: PCA to ``V`` ``(n, n_bits)``, then an orthogonal ``R`` learned by
    alternating ``B = sign(VR)`` and the Procrustes step ``R = U Wᵀ`` where ``Vᵀ B = U S Wᵀ``.

    After ``fit``: ``rotation_`` ``(n_bits, n_bits)``, ``loss_history_`` (``‖B − VR‖²_F`` after
    each iteration, non-increasing) and ``projection_ = components · rotation_``.
    """

    _needs_pca = True

    def __init__(self, n_bits: int, n_iter: int = 50, random_state: Any = None):
        super().__init__(n_bits)
        check_number(n_iter, "n_iter", low=1, integer=True)
        _rng(random_state)
        self.n_iter, self.random_state = int(n_iter), random_state

    def _fit(self, X: np.ndarray) -> None:
        rng = _rng(self.random_state)
        self.mean_, components = _principal_directions(X, self.n_bits)
        V = _project(X, self.mean_, components)
        rotation = np.linalg.qr(rng.standard_normal((self.n_bits, self.n_bits)))[0]
        history = []
        for _ in range(self.n_iter):
            B = np.where(V @ rotation > 0, 1.0, -1.0)      # fix R, best B
            U, _, Wt = np.linalg.svd(V.T @ B)             # fix B, best orthogonal R (Procrustes)
            rotation = U @ Wt
            history.append(float(np.sum((B - V @ rotation) ** 2)))
        self.rotation_ = rotation
        self.loss_history_ = np.asarray(history)
        self.projection_ = components @ rotation

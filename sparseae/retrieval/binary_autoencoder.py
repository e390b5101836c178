"""Binary autoencoder hashing trained by the method of auxiliary coordinates (MAC), after
Carreira-Perpiñán & Raziperchikolaei (CVPR 2015, "Hashing with binary autoencoders").

Encoder ``h(x) = step(A φ(x) + a)`` gives bits ``(n, n_bits)``; decoder ``f(z) = B z + c``
reconstructs ``φ(x)`` ``(n, d)``; the goal is ``min Σ ‖φ(x_n) − f(h(x_n))‖²``. MAC introduces a
binary code ``z_n`` per sample and alternates, for a rising penalty ``μ``:

* Z-step: ``z_n = argmin_z ‖φ(x_n) − f(z)‖² + μ ‖z − h(x_n)‖²`` over ``{0, 1}^n_bits``
  (:func:`z_step`: exact enumeration for few bits, else alternating single-bit minimisation);
* f-step: ``B, c`` by least squares of ``φ(X)`` on ``Z``;
* h-step: one L2-regularised logistic regression per bit, ``Z[:, l]`` from ``φ(X)``.

``φ`` is either the identity on the inputs (linear hash functions, the paper's setting) or an
RBF anchor layer (:class:`AnchorEmbedding`: each input described by its affinities to k-means
anchors, as in anchor-graph hashing, Liu et al. 2011) beside the weighted inputs, which makes
the hash functions non-linear in the pixels. The MAC starts from ITQ on ``φ`` and keeps the
iterate whose codes reconstruct a held-out part of the training rows best (no labels are used).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError, NotFittedError
from ..validation import as_float_array, check_choice, check_number
from .baselines import BLOCK_ROWS, ITQ, _Hasher, _rng

__all__ = ["AnchorEmbedding", "BinaryAutoencoder", "fit_model", "mac_objective", "z_step"]

EXACT_MAX_BITS = 16          # z_step "auto" enumerates all codes up to this many bits
ENUMERATION_ELEMENTS = 1 << 22  # (row, code) pairs scored at once by the exact Z-step


# ------------------------------------------------------------------------------- anchor layer

class AnchorEmbedding:
    """RBF anchor features ``φ(x)`` ``(n, n_anchors)``: affinities to k-means anchors.

    Each row keeps its ``n_nearest`` anchors with weights ``exp(−(d² − d²_min) / σ²)``
    normalised to sum 1 (σ² the mean squared distance to the ``n_nearest``-th anchor); every
    column is then divided by the square root of its total weight on the fitting data, so that
    frequently used anchors do not dominate (the degree normalisation of anchor graphs).
    """

    def __init__(self, n_anchors: int = 300, n_nearest: int = 3, *, kmeans_iter: int = 10,
                 kmeans_samples: int = 10000, random_state: Any = 0):
        check_number(n_anchors, "n_anchors", low=2, integer=True)
        check_number(n_nearest, "n_nearest", low=1, integer=True)
        check_number(kmeans_iter, "kmeans_iter", low=0, integer=True)
        check_number(kmeans_samples, "kmeans_samples", low=2, integer=True)
        if n_nearest > n_anchors:
            raise ConfigError(f"n_nearest={n_nearest} exceeds n_anchors={n_anchors}")
        _rng(random_state)
        self.n_anchors, self.n_nearest, self.kmeans_iter = int(n_anchors), int(n_nearest), int(kmeans_iter)
        self.kmeans_samples, self.random_state = int(kmeans_samples), random_state

    def fit(self, X: Any) -> AnchorEmbedding:
        """Anchors by Lloyd's k-means on up to ``kmeans_samples`` rows of ``X`` ``(n, D)``."""
        X = as_float_array(X, "X")
        if len(X) < self.n_anchors:
            raise DataError(f"X has {len(X)} samples, fewer than n_anchors={self.n_anchors}")
        rng = _rng(self.random_state)
        sample = np.asarray(X[np.sort(rng.choice(len(X), min(len(X), self.kmeans_samples), replace=False))],
                            np.float64)
        anchors = sample[rng.choice(len(sample), self.n_anchors, replace=False)].copy()
        for _ in range(self.kmeans_iter):
            nearest = _squared_distances(sample, anchors).argmin(axis=1)
            counts = np.bincount(nearest, minlength=self.n_anchors)
            sums = np.zeros_like(anchors)
            np.add.at(sums, nearest, sample)
            used = counts > 0  # an empty cluster keeps its anchor
            anchors[used] = sums[used] / counts[used, None]
        self.anchors_ = anchors
        distances = np.sort(_squared_distances(sample[:5000], anchors), axis=1)
        self.bandwidth_ = max(float(distances[:, self.n_nearest - 1].mean()), 1e-12)
        self.column_scale_ = np.ones(self.n_anchors)
        weight = np.zeros(self.n_anchors)
        for start in range(0, len(X), BLOCK_ROWS):
            weight += self.transform(X[start:start + BLOCK_ROWS]).sum(axis=0)
        self.column_scale_ = 1.0 / np.sqrt(weight + 1e-6 * weight.max())
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``φ(X)``: float64 ``(n, n_anchors)``, ``n_nearest`` non-zeros per row."""
        if not hasattr(self, "anchors_"):
            raise NotFittedError("this AnchorEmbedding is not fitted yet; call fit(X) first")
        X = as_float_array(X, "X", n_features=self.anchors_.shape[1])
        out = np.zeros((len(X), self.n_anchors))
        for start in range(0, len(X), BLOCK_ROWS):
            d2 = _squared_distances(np.asarray(X[start:start + BLOCK_ROWS], np.float64), self.anchors_)
            nearest = np.argpartition(d2, self.n_nearest - 1, axis=1)[:, :self.n_nearest]
            d2 = np.take_along_axis(d2, nearest, axis=1)
            weights = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / self.bandwidth_)
            weights /= weights.sum(axis=1, keepdims=True)
            np.put_along_axis(out[start:start + BLOCK_ROWS], nearest, weights, axis=1)
        return out * self.column_scale_


def _squared_distances(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``‖x_i − y_j‖²`` ``(n, m)`` for rows of ``X`` ``(n, D)`` and ``Y`` ``(m, D)``, clipped at 0."""
    return np.maximum((X * X).sum(axis=1)[:, None] - 2.0 * X @ Y.T + (Y * Y).sum(axis=1)[None, :], 0.0)


# --------------------------------------------------------------------------------- the steps

def mac_objective(X: np.ndarray, Z: np.ndarray, H: np.ndarray, B: np.ndarray, c: np.ndarray,
                  mu: float) -> float:
    """``Σ_n ‖x_n − B z_n − c‖² + μ ‖z_n − h_n‖²`` for ``X`` ``(n, d)``, bits ``Z``, ``H`` ``(n, L)``,
    ``B`` ``(d, L)``, ``c`` ``(d,)``."""
    Z, H = np.asarray(Z, np.float64), np.asarray(H, np.float64)
    return float(((X - Z @ B.T - c) ** 2).sum() + mu * ((Z - H) ** 2).sum())


def z_step(X: np.ndarray, B: np.ndarray, c: np.ndarray, H: np.ndarray, mu: float, *,
           Z0: np.ndarray | None = None, method: str = "auto", max_sweeps: int = 20) -> np.ndarray:
    """Binary codes ``Z`` bool ``(n, L)`` minimising ``‖x_n − B z_n − c‖² + μ ‖z_n − h_n‖²`` row by row.

    ``X`` ``(n, d)``, ``B`` ``(d, L)``, ``c`` ``(d,)``, ``H`` ``(n, L)`` the encoder's bits.
    ``method``: ``"exact"`` scores all ``2^L`` codes (the global minimum; L ≤ 20); ``"alternate"``
    minimises one bit at a time given the others, sweeping until no bit changes (a point no single
    bit flip improves; starts from ``Z0``, default ``H``); ``"auto"``: exact for L ≤ 16.
    """
    check_choice(method, "method", ("auto", "exact", "alternate"))
    check_number(mu, "mu", low=0.0)
    H = np.asarray(H, np.float64)
    n_bits = B.shape[1]
    if H.shape != (len(X), n_bits):
        raise DataError(f"H must have shape {(len(X), n_bits)}, got {H.shape}")
    G = B.T @ B
    # with z² = z and h² = h: E(z) = zᵀGz − 2 zᵀ(Bᵀ(x − c) + μh − μ/2) + const
    linear = (X - c) @ B + mu * H - mu / 2
    if method == "exact" or (method == "auto" and n_bits <= EXACT_MAX_BITS):
        if n_bits > 20:
            raise ConfigError(f"the exact Z-step enumerates 2^{n_bits} codes; use method='alternate' above 20 bits")
        return _z_exact(linear, G)
    Z = (H if Z0 is None else np.asarray(Z0, np.float64)).copy()
    S = Z @ G  # S[n, l] = Σ_k G_lk z_nk, kept up to date as bits flip
    diagonal = np.diag(G)
    for _ in range(max_sweeps):
        changed = 0
        for bit in range(n_bits):  # the gain of z_l = 1 over z_l = 0, the others fixed
            gain = diagonal[bit] + 2.0 * (S[:, bit] - diagonal[bit] * Z[:, bit]) - 2.0 * linear[:, bit]
            flip = np.flatnonzero((gain < 0) != (Z[:, bit] > 0.5))
            if len(flip):
                step = 1.0 - 2.0 * Z[flip, bit]
                Z[flip, bit] += step
                S[flip] += step[:, None] * G[bit]
                changed += len(flip)
        if not changed:
            break
    return Z > 0.5


def _z_exact(linear: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Enumerate every code: argmin over ``2^L`` of ``zᵀGz − 2 zᵀ linear_n`` for each row."""
    n_bits = G.shape[0]
    codes = ((np.arange(1 << n_bits)[:, None] >> np.arange(n_bits)[None, :]) & 1).astype(np.float64)
    quadratic = np.einsum("kl,lm,km->k", codes, G, codes)
    best = np.empty(len(linear), dtype=np.int64)
    block = max(1, ENUMERATION_ELEMENTS // len(codes))
    for start in range(0, len(linear), block):
        best[start:start + block] = (quadratic[None, :] - 2.0 * linear[start:start + block] @ codes.T).argmin(axis=1)
    return codes[best] > 0.5


def f_step(X: np.ndarray, Z: np.ndarray, ridge: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Decoder ``B`` ``(d, L)``, ``c`` ``(d,)`` by least squares of ``X`` ``(n, d)`` on the bits ``Z``
    (a tiny ridge keeps a constant bit solvable)."""
    Z1 = np.hstack([np.asarray(Z, np.float64), np.ones((len(Z), 1))])
    W = np.linalg.solve(Z1.T @ Z1 + ridge * len(Z) * np.eye(Z1.shape[1]), Z1.T @ X)
    return W[:-1].T, W[-1]


def h_step(X: np.ndarray, Z: np.ndarray, A: np.ndarray, a: np.ndarray, *, l2: float,
           max_iter: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Encoder ``A`` ``(d, L)``, ``a`` ``(L,)``: one logistic regression per bit of ``Z`` on ``X``
    ``(n, d)``, mean cross-entropy + ``(l2/2)‖A‖²``, by L-BFGS from the current ``A``, ``a``."""
    inputs = torch.from_numpy(np.hstack([X, np.ones((len(X), 1))]))
    targets = torch.from_numpy(np.asarray(Z, np.float64))
    W = torch.from_numpy(np.vstack([A, a])).clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([W], max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(inputs @ W, targets, reduction="sum")
        loss = loss / len(X) + 0.5 * l2 * (W[:-1] ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    W = W.detach().numpy()
    return W[:-1].copy(), W[-1].copy()


# ------------------------------------------------------------------------------ the hasher

class BinaryAutoencoder(_Hasher):
    """Binary autoencoder ``h(x) = step(A φ(x) + a)``, ``f(z) = B z + c`` trained by MAC.

    ``n_anchors`` > 0: ``φ(x)`` is an :class:`AnchorEmbedding` with ``n_anchors`` anchors and
    ``n_nearest`` neighbours, followed by the inputs themselves when ``input_weight`` > 0; 0:
    ``φ(x) = x`` (linear hash functions). The features are centred and each block divided by its
    overall standard deviation, the inputs' block then multiplied by ``input_weight``. MAC runs
    on up to ``max_samples`` rows, ``validation_fraction`` of the rest (at most ``max_samples``)
    held out; it starts from ITQ and runs ``n_iter`` iterations with
    ``μ_i = mu · mean‖B_l‖² · mu_growth^i`` (``mean‖B_l‖²``: the decoder's mean squared column
    norm at the start), stopping early once ``Z = h(X)``.
    ``l2``: the h-step's weight decay. The encoder kept is the iterate (ITQ included) with the
    lowest held-out reconstruction error ``min_f ‖φ(x) − f(h(x))‖²``.

    After ``fit``: ``A_`` ``(d, n_bits)``, ``a_`` ``(n_bits,)``, ``B_`` ``(d, n_bits)``, ``c_`` ``(d,)``,
    ``history_`` (one dict per iterate: ``mu``, ``objective`` = MAC objective per sample after
    the Z-step and after the f-step, ``mismatch`` = fraction of bits with ``Z ≠ h(X)``,
    ``reconstruction`` and ``validation`` = nested errors per sample), ``best_iteration_`` and
    ``fit_seconds_``.
    """

    def __init__(self, n_bits: int, *, n_anchors: int = 300, n_nearest: int = 3, input_weight: float = 0.5,
                 n_iter: int = 5, mu: float = 0.01, mu_growth: float = 1.6, l2: float = 1e-4, max_samples: int = 10000,
                 validation_fraction: float = 0.1, z_method: str = "auto", random_state: Any = 0):
        super().__init__(n_bits)
        check_number(n_anchors, "n_anchors", low=0, integer=True)
        if n_anchors:
            AnchorEmbedding(n_anchors, n_nearest)  # validates n_anchors ≥ 2, n_nearest
        check_number(input_weight, "input_weight", low=0.0)
        check_number(n_iter, "n_iter", low=0, integer=True)
        check_number(mu, "mu", low=0.0, low_inclusive=False)
        check_number(mu_growth, "mu_growth", low=1.0)
        check_number(l2, "l2", low=0.0)
        check_number(max_samples, "max_samples", low=2, integer=True)
        check_number(validation_fraction, "validation_fraction", low=0.0, high=1.0, high_inclusive=False)
        check_choice(z_method, "z_method", ("auto", "exact", "alternate"))
        _rng(random_state)
        self.n_anchors, self.n_nearest, self.n_iter = int(n_anchors), int(n_nearest), int(n_iter)
        self.input_weight = float(input_weight)
        self.mu, self.mu_growth, self.l2 = float(mu), float(mu_growth), float(l2)
        self.max_samples, self.validation_fraction = int(max_samples), float(validation_fraction)
        self.z_method, self.random_state = z_method, random_state

    def features(self, X: Any) -> np.ndarray:
        """The standardised ``φ(X)`` the codes are computed from: float64 ``(n, d)``."""
        if not hasattr(self, "A_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")
        return self._features(as_float_array(X, "X", n_features=self.n_features_in_))

    def _raw_features(self, X: np.ndarray) -> np.ndarray:
        """``φ(X)`` before standardisation: the anchor affinities, then the inputs when
        ``input_weight`` > 0; the inputs alone without anchors."""
        if self.embedding_ is None:
            return np.asarray(X, np.float64)
        parts = [self.embedding_.transform(X)]
        if self.input_weight > 0:
            parts.append(np.asarray(X, np.float64))
        return np.hstack(parts)

    def _features(self, X: np.ndarray) -> np.ndarray:
        return (self._raw_features(X) - self.feature_mean_) / self.feature_scale_

    def _fit(self, X: np.ndarray) -> None:
        started = time.perf_counter()
        rng = _rng(self.random_state)
        seed = int(rng.integers(2**31))
        self.embedding_ = AnchorEmbedding(self.n_anchors, self.n_nearest, random_state=seed).fit(X) \
            if self.n_anchors else None
        raw = self._raw_features(X)
        if self.n_bits > raw.shape[1]:
            raise ConfigError(f"n_bits={self.n_bits} exceeds the {raw.shape[1]} features the hash functions "
                              "read; use fewer bits or more anchors")
        self.feature_mean_ = raw.mean(axis=0)
        self.feature_scale_ = self._block_scales(raw - self.feature_mean_)
        order = rng.permutation(len(X))
        n_valid = min(int(self.validation_fraction * len(X)), self.max_samples)
        valid = (raw[order[:n_valid]] - self.feature_mean_) / self.feature_scale_
        train = (raw[order[n_valid:n_valid + self.max_samples]] - self.feature_mean_) / self.feature_scale_
        if len(train) < 2:
            raise DataError(f"X has {len(X)} samples; the binary autoencoder needs at least 2 to train on")
        self._mac(train, valid, seed)
        self.fit_seconds_ = time.perf_counter() - started

    def _block_scales(self, centred: np.ndarray) -> np.ndarray:
        """Per-column divisors ``(d,)``: each block (anchors, inputs) to overall standard deviation 1,
        then the inputs' block to ``input_weight``."""
        blocks = [slice(0, centred.shape[1])]
        if self.embedding_ is not None and self.input_weight > 0:
            blocks = [slice(0, self.n_anchors), slice(self.n_anchors, centred.shape[1])]
        scale = np.empty(centred.shape[1])
        for k, block in enumerate(blocks):
            scale[block] = max(float(centred[:, block].std()), 1e-12) / (self.input_weight if k else 1.0)
        return scale

    def _nested(self, train: np.ndarray, valid: np.ndarray, A: np.ndarray, a: np.ndarray) -> tuple[float, float]:
        """Per-sample ``min_f ‖φ − f(h(φ))‖²`` on the training rows, and with that f on the held-out rows."""
        B, c = f_step(train, train @ A + a > 0)
        errors = [float(((rows - (rows @ A + a > 0) @ B.T - c) ** 2).sum(axis=1).mean()) if len(rows) else np.nan
                  for rows in (train, valid)]
        return errors[0], errors[1]

    def _mac(self, train: np.ndarray, valid: np.ndarray, seed: int) -> None:
        itq = ITQ(self.n_bits, random_state=seed).fit(train)
        A, a = itq.projection_, -itq.mean_ @ itq.projection_
        Z = train @ A + a > 0
        B, c = f_step(train, Z)
        mu = self.mu * float(np.mean(np.sum(B * B, axis=0)))
        n = len(train)
        history = [{"mu": 0.0, "objective": [], "mismatch": 0.0,
                    **dict(zip(("reconstruction", "validation"), self._nested(train, valid, A, a), strict=True))}]
        best = (history[0]["validation" if len(valid) else "reconstruction"], 0, A, a)
        for iteration in range(1, self.n_iter + 1):
            H = train @ A + a > 0
            Z = z_step(train, B, c, H, mu, Z0=Z, method=self.z_method)
            objective = [mac_objective(train, Z, H, B, c, mu) / n]
            B, c = f_step(train, Z)
            objective.append(mac_objective(train, Z, H, B, c, mu) / n)
            A, a = h_step(train, Z, A, a, l2=self.l2)
            mismatch = float(np.mean(Z != (train @ A + a > 0)))
            errors = self._nested(train, valid, A, a)
            history.append({"mu": mu, "objective": objective, "mismatch": mismatch,
                            "reconstruction": errors[0], "validation": errors[1]})
            score = errors[1] if len(valid) else errors[0]
            if score < best[0]:
                best = (score, iteration, A, a)
            if mismatch == 0.0:
                break
            mu *= self.mu_growth
        _, self.best_iteration_, self.A_, self.a_ = best
        self.B_, self.c_ = f_step(train, train @ self.A_ + self.a_ > 0)
        self.history_ = history

    def encode(self, X: Any) -> np.ndarray:
        """Bits ``A φ(x) + a > 0``: bool ``(n, n_bits)``."""
        F = self.features(X)
        return F @ self.A_ + self.a_ > 0

    def decode(self, bits: Any) -> np.ndarray:
        """``f(z) = B z + c`` in standardised feature units: ``(n, n_bits)`` bits → ``(n, d)``."""
        if not hasattr(self, "A_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")
        Z = np.asarray(bits)
        if Z.ndim != 2 or Z.shape[1] != self.n_bits:
            raise DataError(f"bits must have shape (n, {self.n_bits}), got {Z.shape}")
        return Z.astype(np.float64) @ self.B_.T + self.c_

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_bits={self.n_bits}, n_anchors={self.n_anchors})"


def fit_model(model: Any, X: Any, *, random_state: int = 0) -> list[dict[str, float]]:
    """Fit a ``binary_autoencoder`` registry model on ``X`` ``(n, n_features)``: a
    :class:`BinaryAutoencoder` with the model's settings, copied into it. Returns one record per
    MAC iterate (``epoch``, ``train_loss`` and ``val_loss`` = nested reconstruction error of φ per
    sample, ``mismatch``, ``mu``, ``seconds``)."""
    hasher = BinaryAutoencoder(model.n_components, random_state=random_state, **model.mac_settings()).fit(X)
    model.load_hasher(hasher, X)
    seconds = hasher.fit_seconds_ / len(hasher.history_)
    return [{"epoch": epoch, "train_loss": record["reconstruction"], "val_loss": record["validation"],
             "mismatch": record["mismatch"], "mu": record["mu"], "seconds": seconds}
            for epoch, record in enumerate(hasher.history_, start=1)]

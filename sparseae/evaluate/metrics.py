"""Reconstruction and sparsity metrics for autoencoder codes.

Every function accepts numpy arrays or torch tensors (any device; tensors are detached and copied
to the host) and returns Python floats or numpy arrays. Inputs with more than two dimensions, such
as image batches ``(n_samples, channels, height, width)``, are flattened to
``(n_samples, n_features)``. Sums are taken in float64.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..validation import as_float_array, check_choice, check_finite, check_number

__all__ = [
    "reconstruction_error",
    "mean_squared_error",
    "explained_variance",
    "fraction_of_variance_unexplained",
    "sparsity_stats",
    "SparsityAccumulator",
    "DEAD_RULES",
    "DEAD_SPAN_FRACTION",
    "dead_unit_mask",
    "describe_dead_rule",
]

_ROWS_PER_CHUNK = 65536

#: How a unit is judged dead: ``"never_active"`` (codes that rest at 0) or ``"span"`` (codes that
#: rest at some other level); see :func:`dead_unit_mask`.
DEAD_RULES = ("never_active", "span")
#: Under the ``"span"`` rule a unit is dead when its values span at most this fraction of the scale.
DEAD_SPAN_FRACTION = 0.01


def _as_matrix(X: Any, name: str, *, flatten: bool = True) -> np.ndarray:
    """Return ``X`` as a finite 2-D float array ``(n_samples, n_features)``.

    Tensors are moved to the host; with ``flatten``, arrays with more than two dimensions are
    flattened per sample (otherwise they are refused).
    float32 and float64 inputs keep their dtype (no copy of a float32 memmap), others become float64.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    elif not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except Exception as exc:  # ragged lists and other things numpy refuses
            raise DataError(f"{name} cannot be read as a numeric array: {exc}") from None
    if flatten and X.ndim > 2:
        X = X.reshape(X.shape[0], -1)
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    return as_float_array(X, name, dtype=dtype)


def _as_matching_pair(X: Any, X_hat: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``X`` and ``X_hat`` as 2-D float arrays of the same shape."""
    X = _as_matrix(X, "X")
    X_hat = _as_matrix(X_hat, "X_hat")
    if X.shape != X_hat.shape:
        raise DataError(f"X has shape {X.shape} but X_hat has shape {X_hat.shape}; they must match")
    return X, X_hat


def _squared_error_sum(X: np.ndarray, X_hat: np.ndarray) -> float:
    """Σ_ij (X_ij − X̂_ij)², in float64, chunked over rows so memmaps are not loaded at once."""
    total = 0.0
    for start in range(0, X.shape[0], _ROWS_PER_CHUNK):
        stop = start + _ROWS_PER_CHUNK
        diff = np.asarray(X[start:stop], dtype=np.float64) - np.asarray(X_hat[start:stop], dtype=np.float64)
        total += float(np.einsum("ij,ij->", diff, diff))
    return total


def reconstruction_error(X: Any, X_hat: Any) -> float:
    """Mean per-sample squared L2 error: ``(1/n) Σ_i ‖x_i − x̂_i‖²``.

    ``X`` and ``X_hat`` have shape ``(n_samples, n_features)`` (or any shape ``(n_samples, ...)``,
    flattened per sample). The error of each sample is summed over its features.
    """
    X, X_hat = _as_matching_pair(X, X_hat)
    return _squared_error_sum(X, X_hat) / X.shape[0]


def mean_squared_error(X: Any, X_hat: Any) -> float:
    """Mean squared error per element: ``(1/(n·d)) Σ_ij (X_ij − X̂_ij)²``.

    Equals :func:`reconstruction_error` divided by the number of features ``d``.
    """
    X, X_hat = _as_matching_pair(X, X_hat)
    return _squared_error_sum(X, X_hat) / X.size


def explained_variance(X: Any, X_hat: Any) -> float:
    """Fraction of the data's variance the reconstruction explains: ``1 − FVU``.

    ``1 − Σ_i ‖x_i − x̂_i‖² / Σ_i ‖x_i − x̄‖²`` where ``x̄`` is the per-feature mean of ``X`` over
    samples. It is 1 for a perfect reconstruction, 0 for predicting the mean, and negative for a
    reconstruction worse than the mean. When ``X`` has no variance at all (every row equal) it is
    1.0 for a perfect reconstruction and 0.0 otherwise, as scikit-learn's ``r2_score`` does.
    """
    X, X_hat = _as_matching_pair(X, X_hat)
    residual = _squared_error_sum(X, X_hat)
    mean = np.zeros(X.shape[1], dtype=np.float64)
    for start in range(0, X.shape[0], _ROWS_PER_CHUNK):
        mean += np.asarray(X[start:start + _ROWS_PER_CHUNK], dtype=np.float64).sum(axis=0)
    mean /= X.shape[0]
    total = 0.0
    for start in range(0, X.shape[0], _ROWS_PER_CHUNK):
        centred = np.asarray(X[start:start + _ROWS_PER_CHUNK], dtype=np.float64) - mean
        total += float(np.einsum("ij,ij->", centred, centred))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def fraction_of_variance_unexplained(X: Any, X_hat: Any) -> float:
    """FVU ``= Σ_i ‖x_i − x̂_i‖² / Σ_i ‖x_i − x̄‖² = 1 − explained_variance(X, X_hat)``."""
    return 1.0 - explained_variance(X, X_hat)


def _check_thresholds(threshold: float, dead_threshold: float) -> None:
    check_number(threshold, "threshold", low=0.0)
    check_number(dead_threshold, "dead_threshold", low=0.0)


def dead_unit_mask(max_abs: np.ndarray, span: np.ndarray, *, rule: str = "never_active",
                   dead_threshold: float = 0.0,
                   activation_range: tuple[float, float] | None = None) -> tuple[np.ndarray, float]:
    """Which units are dead, ``(n_units,)`` bool, and the limit the rule compared against.

    A unit is dead when it never leaves its resting level on the data:

    - ``"never_active"``, for codes that rest at exactly 0 (ReLU, TopK, JumpReLU, shrinkage and
      inferred sparse codes): ``max_i |z_ij| <= dead_threshold`` (with 0: never nonzero);
    - ``"span"``, for codes that rest elsewhere (sigmoid, tanh, linear): its span over the inputs
      ``max_i z_ij − min_i z_ij`` is at most :data:`DEAD_SPAN_FRACTION` of the scale, the width of
      ``activation_range`` (sigmoid (0, 1): 0.01; tanh (−1, 1): 0.02) or, for unbounded codes, the
      widest unit's span ("variance ~0"). A sigmoid unit at rest near ρ that rises to 0.02 on some
      input is alive; one that outputs ρ ± 0.001 on every input is dead.

    ``max_abs``: ``max_i |z_ij|``; ``span``: ``max_i z_ij − min_i z_ij``, both ``(n_units,)``.
    """
    check_choice(rule, "dead_rule", DEAD_RULES)
    if rule == "never_active":
        limit = float(dead_threshold)
        return max_abs <= limit, limit
    if activation_range is not None:
        scale = activation_range[1] - activation_range[0]
    else:
        scale = float(span.max()) if span.size else 0.0
    limit = DEAD_SPAN_FRACTION * scale
    return span <= limit, limit


def describe_dead_rule(rule: str, limit: float, *, activation_range: tuple[float, float] | None = None) -> str:
    """The rule of :func:`dead_unit_mask` in words, for a caption: ``"never nonzero"``,
    ``"max − min over inputs ≤ 0.01 (1% of the range 0 to 1)"``..."""
    check_choice(rule, "dead_rule", DEAD_RULES)
    if rule == "never_active":
        return "never nonzero" if limit == 0 else f"|z| ≤ {limit:g} on every input"
    percent = f"{100 * DEAD_SPAN_FRACTION:g}%"
    if activation_range is not None:
        low, high = activation_range
        return f"max − min over inputs ≤ {limit:.3g} ({percent} of the range {low:g} to {high:g})"
    return f"max − min over inputs ≤ {limit:.3g} ({percent} of the widest unit's)"


def _check_activation_range(activation_range: Any) -> tuple[float, float] | None:
    """Return ``(low, high)`` as floats with ``low < high``, or None; raise ConfigError otherwise."""
    if activation_range is None:
        return None
    try:
        low, high = activation_range
    except (TypeError, ValueError):
        raise ConfigError(f"activation_range must be a pair (low, high), got {activation_range!r}") from None
    check_number(low, "activation_range[0]")
    check_number(high, "activation_range[1]")
    if not low < high:
        raise ConfigError(f"activation_range must have low < high, got {activation_range!r}")
    return float(low), float(high)


class SparsityAccumulator:
    """Exact sparsity statistics of codes seen one minibatch at a time.

    Call :meth:`update` with each code batch ``Z_batch`` of shape ``(batch, n_units)``; the running
    sums stay on the batch's device and no update waits for the device (no ``.item()``, no checks
    that read values), so it can run inside a GPU evaluation loop. :meth:`compute` returns the same
    dictionary as :func:`sparsity_stats` over the concatenation of all batches; NaN or inf in any
    batch is reported there, as a :class:`DataError`.

    Definitions (``n`` samples, ``m`` units):

    - a unit is *active* on a sample when ``|z| > threshold``;
    - ``mean_l0 = (1/n) Σ_i #{j : |z_ij| > threshold}`` and ``active_fraction = mean_l0 / m``;
    - ``activation_frequency[j] = (1/n) #{i : |z_ij| > threshold}``;
    - ``rho_hat[j] = (1/n) Σ_i a(z_ij)`` where ``a`` is the identity, or with
      ``activation_range=(low, high)`` the map ``a(z) = (z − low)/(high − low)`` onto [0, 1]
      (``(-1, 1)`` gives UFLDL's ``(z + 1)/2`` for tanh codes);
    - a unit is *dead* by ``dead_rule`` (:func:`dead_unit_mask`): with ``"never_active"`` when
      ``|z_ij| <= dead_threshold`` for every sample ``i``, with ``"span"`` when its values barely
      move (``max − min`` at most 1% of the scale); ``dead_fraction = dead_units / m``.

    "Active" and "dead" always look at the raw codes ``z``, not at the mapped values.
    """

    def __init__(self, *, threshold: float = 0.0, dead_threshold: float = 0.0,
                 activation_range: tuple[float, float] | None = None, dead_rule: str = "never_active") -> None:
        _check_thresholds(threshold, dead_threshold)
        check_choice(dead_rule, "dead_rule", DEAD_RULES)
        self.threshold = float(threshold)
        self.dead_threshold = float(dead_threshold)
        self.activation_range = _check_activation_range(activation_range)
        self.dead_rule = dead_rule
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self.n_samples = 0
        self.n_units: int | None = None
        self._active_count: torch.Tensor | None = None  # (n_units,) int64
        self._value_sum: torch.Tensor | None = None  # (n_units,) float64 (float32 on MPS)
        self._max_abs: torch.Tensor | None = None  # (n_units,)
        self._max: torch.Tensor | None = None  # (n_units,) signed
        self._min: torch.Tensor | None = None  # (n_units,) signed

    @torch.no_grad()
    def update(self, Z_batch: Any) -> None:
        """Add a batch of codes of shape ``(batch, n_units)`` (torch tensor or numpy array)."""
        if not isinstance(Z_batch, torch.Tensor):
            try:
                Z_batch = torch.as_tensor(np.asarray(Z_batch))
            except Exception as exc:
                raise DataError(f"Z_batch cannot be read as a numeric array: {exc}") from None
        Z_batch = Z_batch.detach()
        if Z_batch.ndim != 2:
            raise DataError(f"Z_batch must be 2-D (batch, n_units), got shape {tuple(Z_batch.shape)}")
        if Z_batch.is_complex() or Z_batch.dtype == torch.bool:
            raise DataError(f"Z_batch must hold real numbers, got dtype {Z_batch.dtype}")
        if Z_batch.shape[1] == 0:
            raise DataError("Z_batch has 0 units")
        if self.n_units is None:
            self._start(Z_batch)
        elif Z_batch.shape[1] != self.n_units:
            raise DataError(f"Z_batch has {Z_batch.shape[1]} units, earlier batches had {self.n_units}")
        elif Z_batch.device != self._value_sum.device:
            raise DataError(f"Z_batch is on {Z_batch.device}, earlier batches were on {self._value_sum.device}")
        if Z_batch.shape[0] == 0:
            return
        values = Z_batch.to(self._value_sum.dtype)
        magnitude = values.abs()
        self._active_count += (magnitude > self.threshold).sum(dim=0)
        self._max_abs = torch.maximum(self._max_abs, magnitude.amax(dim=0))
        self._max = torch.maximum(self._max, values.amax(dim=0))
        self._min = torch.minimum(self._min, values.amin(dim=0))
        if self.activation_range is not None:
            low, high = self.activation_range
            values = (values - low) / (high - low)
        self._value_sum += values.sum(dim=0)
        self.n_samples += int(Z_batch.shape[0])

    def _start(self, Z_batch: torch.Tensor) -> None:
        device = Z_batch.device
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.n_units = int(Z_batch.shape[1])
        self._active_count = torch.zeros(self.n_units, dtype=torch.int64, device=device)
        self._value_sum = torch.zeros(self.n_units, dtype=dtype, device=device)
        self._max_abs = torch.zeros(self.n_units, dtype=dtype, device=device)
        self._max = torch.full((self.n_units,), -torch.inf, dtype=dtype, device=device)
        self._min = torch.full((self.n_units,), torch.inf, dtype=dtype, device=device)

    def compute(self) -> dict[str, Any]:
        """Return the statistics of every sample seen (see the class docstring for the keys).

        Keys: ``mean_l0``, ``active_fraction``, ``rho_hat`` (ndarray ``(n_units,)``),
        ``activation_frequency`` (ndarray ``(n_units,)``), ``span`` (ndarray ``(n_units,)``: max − min
        of each unit's raw values), ``dead_units`` (int), ``dead_fraction``, ``dead_limit`` (what
        :func:`dead_unit_mask` compared against), ``n_samples``, ``n_units``. Raises
        :class:`DataError` if no sample was seen or a batch held NaN or inf.
        """
        if self.n_samples == 0:
            raise DataError("no samples seen: call update() with at least one non-empty batch first")
        value_sum = self._value_sum.cpu().numpy().astype(np.float64)
        max_abs = self._max_abs.cpu().numpy().astype(np.float64)
        if not (np.isfinite(value_sum).all() and np.isfinite(max_abs).all()):
            raise DataError("the codes contain NaN or inf")
        active_count = self._active_count.cpu().numpy()
        n, m = self.n_samples, self.n_units
        mean_l0 = float(active_count.sum()) / n
        span = (self._max - self._min).cpu().numpy().astype(np.float64)
        dead, limit = dead_unit_mask(max_abs, span, rule=self.dead_rule, dead_threshold=self.dead_threshold,
                                     activation_range=self.activation_range)
        dead_units = int(dead.sum())
        return {
            "mean_l0": mean_l0,
            "active_fraction": mean_l0 / m,
            "rho_hat": value_sum / n,
            "activation_frequency": active_count.astype(np.float64) / n,
            "span": span,
            "dead_units": dead_units,
            "dead_fraction": dead_units / m,
            "dead_limit": limit,
            "n_samples": n,
            "n_units": m,
        }


def sparsity_stats(Z: Any, *, threshold: float = 0.0, dead_threshold: float = 0.0,
                   activation_range: tuple[float, float] | None = None,
                   dead_rule: str = "never_active") -> dict[str, Any]:
    """Sparsity statistics of a code matrix ``Z`` of shape ``(n_samples, n_units)``.

    A unit is *active* on a sample when ``|z| > threshold``; it is *dead* by ``dead_rule``
    (:func:`dead_unit_mask`): with ``"never_active"`` when ``|z| <= dead_threshold`` on every
    sample, with ``"span"`` when its values span at most 1% of the scale. Returns a dict:

    - ``mean_l0``: mean over samples of the number of active units, ``(1/n) Σ_i ‖z_i‖_0``;
    - ``active_fraction``: ``mean_l0 / n_units``;
    - ``rho_hat``: ndarray ``(n_units,)``, each unit's mean activation ``(1/n) Σ_i a(z_ij)``, the
      ρ̂ of the KL sparsity penalty; ``a`` is the identity (sigmoid / [0, 1] codes) or, with
      ``activation_range=(low, high)``, ``(z − low)/(high − low)``, so ``(-1, 1)`` maps tanh codes
      to ``(z + 1)/2`` as UFLDL does;
    - ``activation_frequency``: ndarray ``(n_units,)``, fraction of samples where the unit is active;
    - ``span``: ndarray ``(n_units,)``, each unit's ``max − min`` over the samples;
    - ``dead_units`` (int), ``dead_fraction`` (``dead_units / n_units``) and ``dead_limit`` (what
      the rule compared the units against; :func:`describe_dead_rule` says it in words);
    - ``n_samples``, ``n_units``.

    Large arrays (memmaps included) are processed in row chunks with :class:`SparsityAccumulator`.
    """
    accumulator = SparsityAccumulator(threshold=threshold, dead_threshold=dead_threshold,
                                      activation_range=activation_range, dead_rule=dead_rule)
    if isinstance(Z, torch.Tensor):
        Z = Z.detach()
        if Z.ndim != 2:
            raise DataError(f"Z must be 2-D (n_samples, n_units), got shape {tuple(Z.shape)}")
        if Z.shape[0] == 0 or Z.shape[1] == 0:
            raise DataError(f"Z is empty (shape {tuple(Z.shape)})")
        if Z.is_floating_point():
            check_finite(Z, "Z")
        accumulator.update(Z)
        return accumulator.compute()
    Z = _as_matrix(Z, "Z", flatten=False)
    for start in range(0, Z.shape[0], _ROWS_PER_CHUNK):
        accumulator.update(torch.from_numpy(np.ascontiguousarray(Z[start:start + _ROWS_PER_CHUNK])))
    return accumulator.compute()

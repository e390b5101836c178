"""Checks on user input that turn bad data and bad hyperparameters into clear errors, and the
reading of user arrays as tensors."""
from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, DataError


class DiskRows:
    """Base of the row stores on disk that are read by index and never copied whole
    (:class:`~sparseae.data.shards.ShardedArray`); array checks pass them through as they are."""


def as_float_array(X: Any, name: str = "X", *, n_features: int | None = None,
                   dtype: np.dtype | type = np.float32, allow_memmap: bool = True) -> np.ndarray:
    """Return ``X`` as a 2-D float array ``(n_samples, n_features)``, or raise :class:`DataError`.

    Rejects non-numeric data, NaN/inf, empty data, arrays that are not 2-D (a 1-D array is
    refused, as scikit-learn does), and a feature count other than ``n_features`` when given.
    A ``np.memmap`` or a :class:`~sparseae.data.shards.ShardedArray` of the right dtype is returned
    as it is (no copy) when ``allow_memmap``.
    """
    if isinstance(X, torch.Tensor):
        if X.layout != torch.strided:
            raise DataError(f"{name} is a sparse tensor ({X.layout}); pass a dense one (X.to_dense())")
        X = X.detach().cpu().numpy()
    if allow_memmap and isinstance(X, (np.memmap, DiskRows)) and X.dtype == dtype and X.ndim == 2:
        array = X
    else:
        try:
            array = np.asarray(X)
        except Exception as exc:  # ragged lists, objects numpy refuses
            raise DataError(f"{name} cannot be read as a numeric array: {exc}") from None
        if array.dtype.kind not in "biuf":
            if array.dtype.kind == "c":
                raise DataError(f"{name} is complex; sparseae needs real numbers")
            if array.dtype.kind in "mM":  # NumPy would cast dates and durations to numbers
                raise DataError(f"{name} holds dates or durations (dtype {array.dtype}), not numbers")
            try:
                with np.errstate(over="ignore", invalid="ignore"):  # inf is reported below
                    array = array.astype(dtype)
            except (TypeError, ValueError):
                raise DataError(f"{name} holds non-numeric values (dtype {array.dtype})") from None
    if array.ndim != 2:
        hint = " (reshape a single feature with X.reshape(-1, 1) or a single sample with X.reshape(1, -1))" \
            if array.ndim == 1 else ""
        raise DataError(f"{name} must be 2-D (n_samples, n_features), got shape {array.shape}{hint}")
    if array.shape[0] == 0:
        raise DataError(f"{name} is empty: 0 samples (shape {array.shape})")
    if array.shape[1] == 0:
        raise DataError(f"{name} has 0 features (shape {array.shape})")
    if n_features is not None and array.shape[1] != n_features:
        raise DataError(f"{name} has {array.shape[1]} features, but the model expects {n_features}")
    if array.dtype != dtype and not isinstance(array, (np.memmap, DiskRows)):
        return _cast(array, dtype, name)  # checked finite
    check_finite(array, name)
    return array


def _cast(array: np.ndarray, dtype: np.dtype | type, name: str) -> np.ndarray:
    """``array.astype(dtype)``, checked finite; finite values beyond ``dtype``'s range are a
    :class:`DataError` saying so (NumPy would warn on stderr and make them inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.astype(dtype)
    row = _first_nonfinite_row(cast)
    if row is not None:
        check_finite(array, name)  # NaN or inf already in the data: that message
        raise DataError(f"{name} has values beyond {cast.dtype}'s range (|x| > "
                        f"{np.finfo(cast.dtype).max:.4g}, first at row {row}); rescale the data")
    return cast


def check_finite(array: np.ndarray | torch.Tensor, name: str = "X", chunk_rows: int = 65536) -> None:
    """Raise :class:`DataError` naming the first row with NaN or inf (chunked, so memmaps stay cheap)."""
    if isinstance(array, torch.Tensor):
        bad = ~torch.isfinite(array)
        if bool(bad.any()):
            row = int(bad.reshape(bad.shape[0], -1).any(dim=1).nonzero()[0, 0])
            raise DataError(f"{name} contains NaN or inf (first at row {row})")
        return
    row = _first_nonfinite_row(array, chunk_rows)
    if row is not None:
        raise DataError(f"{name} contains NaN or inf (first at row {row})")


def _first_nonfinite_row(array: np.ndarray, chunk_rows: int = 65536) -> int | None:
    """The first row of ``array`` holding NaN or inf, or None (read ~32 MiB at a time)."""
    row_bytes = max(1, int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize)
    chunk_rows = max(1, min(chunk_rows, (32 << 20) // row_bytes))
    for start in range(0, array.shape[0], chunk_rows):
        block = np.asarray(array[start:start + chunk_rows])
        if block.dtype.kind == "f" and not np.isfinite(block).all():
            return start + int(np.nonzero(~np.isfinite(block).reshape(block.shape[0], -1).all(axis=1))[0][0])
    return None


def numpy_file_error(exc: Exception, message: str) -> DataError:
    """The :class:`DataError` ``message: why`` for a ``.npy``/``.npz`` NumPy refused; an array of
    Python objects (only unpickling reads it, and sparseae never unpickles) is said plainly."""
    if "allow_pickle" in str(exc) or "Python objects" in str(exc):
        return DataError(f"{message}: it holds Python objects (dtype object), which sparseae never "
                         "unpickles; save a numeric array")
    return DataError(f"{message}: {exc}")


def check_number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_inclusive: bool = True, high_inclusive: bool = True, integer: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a real (or integer) number inside the bounds."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not isinstance(value, numbers.Integral) and not np.isfinite(float(value)):  # an int is finite (and may be
        raise ConfigError(f"{name} must be finite, got {value!r}")              # too large for a float)
    if low is not None and (value < low or (value == low and not low_inclusive)):
        bound = ">=" if low_inclusive else ">"
        raise ConfigError(f"{name} must be {bound} {low}, got {value!r}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        bound = "<=" if high_inclusive else "<"
        raise ConfigError(f"{name} must be {bound} {high}, got {value!r}")


def check_bool(value: Any, name: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is ``True`` or ``False`` (not ``"yes"``, not 1)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


def check_path(value: Any, name: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a non-empty path (a string or ``os.PathLike``)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, (str, bytes)) or not value:
        raise ConfigError(f"{name} must be a file or folder path, got {value!r}")
    if "\0" in (value if isinstance(value, str) else value.decode("latin-1")):
        raise ConfigError(f"{name} must be a file or folder path, got {value!r} (it holds a NUL character)")


def check_choice(value: Any, name: str, choices: tuple[str, ...] | list[str]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def as_class_labels(y: Any, n_samples: int, name: str = "y", *, n_classes: int | None = None) -> np.ndarray:
    """Return ``y`` as an int64 array (n_samples,) of class indices ``0 … n_classes−1``, or raise
    :class:`DataError` (missing, wrong length, not integers, negative or out of range)."""
    if y is None:
        raise DataError(f"{name} (class labels) is required for discriminative training")
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise DataError(f"{name} must be 1-D (n_samples,), got shape {labels.shape}")
    if len(labels) != n_samples:
        raise DataError(f"{name} has {len(labels)} labels for {n_samples} samples")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or not (labels == np.round(labels)).all():
            raise DataError(f"{name} must hold integer class indices (found NaN/inf or fractions)")
    elif labels.dtype.kind not in "iub":
        raise DataError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if len(labels) and labels.min() < 0:
        raise DataError(f"{name} has a negative class index ({labels.min()})")
    if n_classes is not None and len(labels) and labels.max() >= n_classes:
        raise DataError(f"{name} has class index {labels.max()} but the model has {n_classes} classes")
    return labels


def rows_as_tensor(X: Any, start: int, stop: int, *, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """Rows ``start:stop`` of ``X`` (an array, a read-only memory map, a ShardedArray or a tensor)
    as a ``(stop - start, n_features)`` tensor on ``device`` in ``dtype``. Rows of a read-only
    memory map are copied first: torch does not wrap read-only memory (it warns)."""
    if isinstance(X, torch.Tensor):
        return X[start:stop].to(device=device, dtype=dtype)
    rows = np.asarray(X[start:stop])
    if not rows.flags.writeable:
        rows = rows.copy()
    return torch.as_tensor(rows, device=device, dtype=dtype)

"""The library's exception types.

Every error a user can cause derives from :class:`SparseAEError`; the CLI turns any of them into a
one-line message and exit status 2. Each also derives from the built-in type a Python user would
expect (``ValueError``, ``FileNotFoundError``...), so ``except ValueError`` keeps working and
scikit-learn's estimator checks recognise them.
"""
from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError


class SparseAEError(Exception):
    """Base class of every error raised on purpose by sparseae."""


class ConfigError(SparseAEError, ValueError):
    """A hyperparameter or config entry is invalid (unknown key, value out of range, wrong type)."""


class DataError(SparseAEError, ValueError):
    """Input data is unusable: NaN/inf, non-numeric, empty, wrong shape or dtype."""


class DataNotFoundError(SparseAEError, FileNotFoundError):
    """A dataset file could not be found where it was looked for (the message lists the places)."""


class CheckpointError(SparseAEError, ValueError):
    """A saved model or checkpoint is missing, corrupt, or belongs to another model."""


class DivergenceError(SparseAEError, FloatingPointError):
    """Training produced a NaN/inf loss; the model was restored to its last good state."""


class NotFittedError(SparseAEError, _SklearnNotFittedError):
    """A model or estimator was used before it was trained."""


class OutputExistsError(SparseAEError, FileExistsError):
    """Writing would replace a file or folder the user already has (pass overwrite=True to allow)."""

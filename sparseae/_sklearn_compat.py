"""The one module that imports from scikit-learn what the estimators need.

Everything private to scikit-learn (parameter constraints, ``_fit_context``) is imported here and
nowhere else, so a change in scikit-learn's internals is fixed in one place. scikit-learn ≥ 1.6 is
required (``validate_data`` became public there, and ``ensure_all_finite`` replaced
``force_all_finite``).
"""
from __future__ import annotations

from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .errors import ConfigError


class ParameterError(ConfigError, InvalidParameterError):
    """A hyperparameter of an estimator breaks its declared constraints.

    Both a :class:`~sparseae.errors.ConfigError` (what sparseae users catch) and scikit-learn's
    ``InvalidParameterError`` (what scikit-learn's estimator checks expect), with
    scikit-learn's message unchanged.
    """


__all__ = [
    "BaseEstimator",
    "ClassNamePrefixFeaturesOutMixin",
    "Interval",
    "InvalidParameterError",
    "ParameterError",
    "SklearnNotFittedError",
    "StrOptions",
    "TransformerMixin",
    "_fit_context",
    "check_array",
    "check_is_fitted",
    "validate_data",
]

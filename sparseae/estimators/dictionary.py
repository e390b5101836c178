"""scikit-learn's sparse-coding estimators over sparseae's solvers: a drop-in import swap.

:class:`SparseCoder`, :class:`DictionaryLearning` and :class:`MiniBatchDictionaryLearning` take
``sklearn.decomposition``'s parameters (same names, defaults and meanings, scikit-learn 1.9) and
set the same fitted attributes. Codes come from :func:`sparseae.coding.sparse_encode` (compiled
LARS, coordinate descent, OMP; float64 inside, the input's dtype out), so ``transform`` gives
scikit-learn's codes on the same dictionary within the solvers' tolerance. Learning differs
where it is faster:

* :class:`DictionaryLearning` alternates exact codes of all of ``X`` and one block-coordinate
  sweep over the atoms (scikit-learn's algorithm and SVD start);
* :class:`MiniBatchDictionaryLearning` runs the online learner of Mairal et al.
  (:class:`~sparseae.coding.online.OnlineDictionaryLearner`): its dictionary starts from random
  samples (normalized) instead of a randomized SVD; stopping (``tol``, ``max_no_improvement``)
  follows scikit-learn's rules.

Shapes: ``X`` (n_samples, n_features) → codes (n_samples, n_components) (× 2 with
``split_sign``); ``components_`` (n_components, n_features).
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils.extmath import svd_flip

from .._sklearn_compat import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    Interval,
    InvalidParameterError,
    ParameterError,
    SklearnNotFittedError,
    StrOptions,
    TransformerMixin,
    _fit_context,
    check_array,
    check_is_fitted,
    validate_data,
)
from ..coding.encode import sparse_encode
from ..coding.online import OnlineDictionaryLearner, _rng, update_dictionary
from ..errors import ConfigError, DataError, NotFittedError, SparseAEError

__all__ = ["SparseCoder", "DictionaryLearning", "MiniBatchDictionaryLearning"]

_TRANSFORM_CONSTRAINTS: dict[str, list[Any]] = {
    "transform_algorithm": [StrOptions({"lasso_lars", "lasso_cd", "lars", "omp", "threshold"})],
    "transform_n_nonzero_coefs": [Interval(Integral, 1, None, closed="left"), None],
    "transform_alpha": [Interval(Real, 0, None, closed="left"), None],
    "split_sign": ["boolean"],
    "n_jobs": [Integral, None],
    "positive_code": ["boolean"],
    "transform_max_iter": [Interval(Integral, 0, None, closed="left")],
}


def _data_error(exc: ValueError) -> Exception:
    """scikit-learn's validation error as a one-line :class:`DataError` (ours pass through)."""
    if isinstance(exc, SparseAEError):
        return exc
    return DataError(" ".join(str(exc).split()) or repr(exc))


class _BaseSparseCoding(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shared transform / inverse_transform of the three estimators."""

    def _validate_params(self) -> None:
        try:
            super()._validate_params()
        except InvalidParameterError as exc:
            raise ParameterError(str(exc)) from None

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        try:
            return validate_data(self, X, dtype=[np.float64, np.float32], reset=reset)
        except ValueError as exc:
            raise _data_error(exc) from None

    def _encode(self, X: np.ndarray, dictionary: np.ndarray) -> np.ndarray:
        """scikit-learn's ``_transform`` on validated ``X``: codes (n_samples, n_components)."""
        algorithm = self.transform_algorithm
        if self.positive_code and algorithm in ("omp", "lars"):
            raise ConfigError(f"positive_code=True is not supported by "
                              f"transform_algorithm={algorithm!r}")
        alpha = self.transform_alpha
        if alpha is None:
            alpha = getattr(self, "alpha", None)
        dictionary = np.asarray(dictionary, dtype=np.float64)
        n_features, k = dictionary.shape[1], dictionary.shape[0]
        if X.shape[1] != n_features:
            raise DataError(f"X has {X.shape[1]} features but the dictionary has {n_features}")
        if algorithm in ("omp", "lars"):
            # scikit-learn ignores alpha here: a fixed number of atoms per code.
            n_nonzero = self.transform_n_nonzero_coefs
            if n_nonzero is None:
                n_nonzero = int(min(max(n_features / 10, 1), k))
            code = sparse_encode(X, dictionary, algorithm=algorithm, n_nonzero_coefs=n_nonzero,
                                 max_iter=max(int(self.transform_max_iter), 1),
                                 n_jobs=self.n_jobs)
        else:
            code = sparse_encode(X, dictionary, algorithm=algorithm,
                                 alpha=1.0 if alpha is None else float(alpha),
                                 max_iter=max(int(self.transform_max_iter), 1),
                                 n_jobs=self.n_jobs, positive=bool(self.positive_code))
        code = np.asarray(code, dtype=X.dtype)
        if self.split_sign:
            code = np.concatenate([np.maximum(code, 0), -np.minimum(code, 0)], axis=1)
        return code

    def _decode(self, code: Any, dictionary: np.ndarray) -> np.ndarray:
        try:
            code = check_array(code, dtype=[np.float64, np.float32], input_name="code")
        except ValueError as exc:
            raise _data_error(exc) from None
        k = dictionary.shape[0] * (2 if self.split_sign else 1)
        if code.shape[1] != k:
            raise DataError(f"the codes have {code.shape[1]} columns but this "
                            f"{type(self).__name__} expects {k}")
        if self.split_sign:
            half = code.shape[1] // 2
            code = code[:, :half] - code[:, half:]
        return code @ np.asarray(dictionary, dtype=code.dtype)

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self)
        except SklearnNotFittedError:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) "
                                 "before using it") from None

    def transform(self, X: Any) -> np.ndarray:
        """Sparse codes of ``X`` (n_samples, n_features) → (n_samples, n_components) by
        ``transform_algorithm``, in ``X``'s float dtype."""
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        return self._encode(X, self.components_)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Reconstructions ``codes @ components_`` (n_samples, n_features)."""
        self._check_fitted()
        return self._decode(X, self.components_)

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class SparseCoder(_BaseSparseCoding):
    """Sparse codes over a fixed ``dictionary`` (n_components, n_features): scikit-learn's
    ``SparseCoder`` (same parameters) solved by :func:`~sparseae.coding.sparse_encode`.

    ``transform_algorithm`` one of ``lasso_lars``, ``lasso_cd``, ``lars``, ``omp`` (default),
    ``threshold``; ``transform_alpha`` the ℓ1 weight / threshold (default 1; ignored by ``omp``
    and ``lars``, which use ``transform_n_nonzero_coefs``, default ``n_features // 10``);
    ``split_sign``; ``n_jobs`` threads; ``positive_code``; ``transform_max_iter``.
    Attributes after ``fit``: ``n_components_``, ``n_features_in_`` (``feature_names_in_``).
    """

    _parameter_constraints: ClassVar[dict] = {"dictionary": ["array-like"],
                                              **_TRANSFORM_CONSTRAINTS}

    def __init__(self, dictionary: Any, *, transform_algorithm: str = "omp",
                 transform_n_nonzero_coefs: int | None = None, transform_alpha: float | None = None,
                 split_sign: bool = False, n_jobs: int | None = None, positive_code: bool = False,
                 transform_max_iter: int = 1000) -> None:
        self.dictionary = dictionary
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.split_sign = split_sign
        self.n_jobs = n_jobs
        self.positive_code = positive_code
        self.transform_max_iter = transform_max_iter

    def _dictionary(self) -> np.ndarray:
        try:
            D = check_array(self.dictionary, dtype=np.float64, input_name="dictionary")
        except ValueError as exc:
            raise _data_error(exc) from None
        return D

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> SparseCoder:
        """Validate the parameters and ``X`` (only its shape is used)."""
        X = self._validate_X(X, reset=True)
        D = self._dictionary()
        if X.shape[1] != D.shape[1]:
            raise DataError(f"X has {X.shape[1]} features but the dictionary (n_components, "
                            f"n_features) = {D.shape} has {D.shape[1]}")
        self.n_components_ = D.shape[0]
        return self

    def _check_fitted(self) -> None:
        pass  # stateless: transform works without fit, as scikit-learn's

    def transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Sparse codes of ``X`` (n_samples, n_features) → (n_samples, n_components)."""
        D = self._dictionary()
        try:
            X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        except ValueError as exc:
            raise _data_error(exc) from None
        return self._encode(X, D)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Reconstructions ``codes @ dictionary`` (n_samples, n_features)."""
        return self._decode(X, self._dictionary())

    @property
    def _n_features_out(self) -> int:
        return self._dictionary().shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def _svd_start(X: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's start: ``X = U S Vᵀ``, codes ``U`` and atoms ``S Vᵀ`` (sign-fixed),
    cut or zero-padded to ``n_components``."""
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    U, Vt = svd_flip(U, Vt)
    D = S[:, None] * Vt
    r = len(D)
    if n_components <= r:
        return U[:, :n_components], D[:n_components]
    return (np.c_[U, np.zeros((len(U), n_components - r))],
            np.r_[D, np.zeros((n_components - r, D.shape[1]))])


class DictionaryLearning(_BaseSparseCoding):
    """Batch dictionary learning, scikit-learn's ``DictionaryLearning`` (same parameters and
    attributes): ``min_{U,V} ½‖X − UV‖²_F + α‖U‖₁,₁`` with atoms (rows of V) of norm ≤ 1,
    alternating exact codes of all of X (``fit_algorithm`` ``"lars"``: LARS-Lasso, ``"cd"``:
    coordinate descent warm-started from the previous codes) and one block-coordinate sweep
    over the atoms, from the SVD of X; stops when the cost falls by less than ``tol`` times
    itself, or after ``max_iter`` iterations.

    Attributes: ``components_`` (n_components, n_features), ``error_`` (cost per iteration),
    ``n_iter_``, ``n_features_in_`` (``feature_names_in_``).
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "fit_algorithm": [StrOptions({"lars", "cd"})],
        "code_init": [np.ndarray, None],
        "dict_init": [np.ndarray, None],
        "callback": [callable, None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "positive_dict": ["boolean"],
        **_TRANSFORM_CONSTRAINTS,
    }

    def __init__(self, n_components: int | None = None, *, alpha: float = 1, max_iter: int = 1000,
                 tol: float = 1e-8, fit_algorithm: str = "lars", transform_algorithm: str = "omp",
                 transform_n_nonzero_coefs: int | None = None, transform_alpha: float | None = None,
                 n_jobs: int | None = None, code_init: Any = None, dict_init: Any = None,
                 callback: Any = None, verbose: bool = False, split_sign: bool = False,
                 random_state: Any = None, positive_code: bool = False,
                 positive_dict: bool = False, transform_max_iter: int = 1000) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.fit_algorithm = fit_algorithm
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.n_jobs = n_jobs
        self.code_init = code_init
        self.dict_init = dict_init
        self.callback = callback
        self.verbose = verbose
        self.split_sign = split_sign
        self.random_state = random_state
        self.positive_code = positive_code
        self.positive_dict = positive_dict
        self.transform_max_iter = transform_max_iter

    def fit(self, X: Any, y: Any = None) -> DictionaryLearning:
        """Learn the dictionary from ``X`` (n_samples, n_features)."""
        self.fit_transform(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Learn the dictionary and return the codes of ``X`` from the last iteration
        (n_samples, n_components), in ``X``'s dtype."""
        X_in = self._validate_X(X, reset=True)
        X = np.ascontiguousarray(X_in, dtype=np.float64)
        rng = _rng(self.random_state)
        k = X.shape[1] if self.n_components is None else int(self.n_components)
        if self.code_init is not None and self.dict_init is not None:
            code = np.array(self.code_init, dtype=np.float64)
            D = np.array(self.dict_init, dtype=np.float64)
            if D.shape != (k, X.shape[1]) or code.shape != (X.shape[0], k):
                raise DataError(f"code_init and dict_init must have shapes {(X.shape[0], k)} and "
                                f"{(k, X.shape[1])}, got {code.shape} and {D.shape}")
        else:
            code, D = _svd_start(X, k)
        D = np.ascontiguousarray(D)
        method = "lasso_" + self.fit_algorithm
        errors: list[float] = []
        ii = -1
        for ii in range(int(self.max_iter)):
            code = sparse_encode(X, D, algorithm=method, alpha=float(self.alpha),
                                 init=code if method == "lasso_cd" else None,
                                 max_iter=max(int(self.transform_max_iter), 1),
                                 n_jobs=self.n_jobs, positive=bool(self.positive_code),
                                 check_input=False)
            n = X.shape[0]
            update_dictionary(D, code.T @ code / n, code.T @ X / n, X, rng=rng,
                              positive=bool(self.positive_dict))
            residual = X - code @ D
            cost = float(0.5 * np.einsum("ij,ij->", residual, residual)
                         + self.alpha * np.abs(code).sum())
            errors.append(cost)
            if self.verbose:
                print(f"DictionaryLearning iteration {ii + 1}: cost {cost:.6g}")
            if ii > 0 and errors[-2] - errors[-1] < self.tol * errors[-1]:
                break
            if ii % 5 == 0 and self.callback is not None:
                self.callback(locals())
        self.components_ = D.astype(X_in.dtype)
        self.error_ = errors
        self.n_iter_ = ii + 1
        return code.astype(X_in.dtype)


class MiniBatchDictionaryLearning(_BaseSparseCoding):
    """Mini-batch dictionary learning, scikit-learn's ``MiniBatchDictionaryLearning`` (same
    parameters and attributes), by the online learner of Mairal et al. 2009
    (:class:`~sparseae.coding.online.OnlineDictionaryLearner`: exact codes by
    ``fit_algorithm``, statistics A and B, one block-coordinate sweep per batch).

    ``max_iter`` passes over the data (at most), ``batch_size`` samples per step, ``shuffle``;
    early stopping as scikit-learn's: after the first ``min(100, n_samples / batch_size)``
    steps, stop when the dictionary moves by ≤ ``tol`` (‖ΔV‖_F / n_components) or when an
    exponentially weighted batch cost has not improved for ``max_no_improvement`` steps.
    ``dict_init`` (n_components, n_features) is the start (else random samples, normalized).
    ``partial_fit`` runs one step on the batch it is given.

    Attributes: ``components_``, ``n_iter_`` (passes), ``n_steps_`` (batches),
    ``n_features_in_`` (``feature_names_in_``).
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "fit_algorithm": [StrOptions({"cd", "lars"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "dict_init": [None, np.ndarray],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "positive_dict": ["boolean"],
        "callback": [None, callable],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_no_improvement": [Interval(Integral, 0, None, closed="left"), None],
        **_TRANSFORM_CONSTRAINTS,
    }

    def __init__(self, n_components: int | None = None, *, alpha: float = 1, max_iter: int = 1_000,
                 fit_algorithm: str = "lars", n_jobs: int | None = None, batch_size: int = 256,
                 shuffle: bool = True, dict_init: Any = None, transform_algorithm: str = "omp",
                 transform_n_nonzero_coefs: int | None = None, transform_alpha: float | None = None,
                 verbose: bool = False, split_sign: bool = False, random_state: Any = None,
                 positive_code: bool = False, positive_dict: bool = False,
                 transform_max_iter: int = 1000, callback: Any = None, tol: float = 1e-3,
                 max_no_improvement: int | None = 10) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.fit_algorithm = fit_algorithm
        self.n_jobs = n_jobs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.dict_init = dict_init
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.verbose = verbose
        self.split_sign = split_sign
        self.random_state = random_state
        self.positive_code = positive_code
        self.positive_dict = positive_dict
        self.transform_max_iter = transform_max_iter
        self.callback = callback
        self.tol = tol
        self.max_no_improvement = max_no_improvement

    def _learner(self, X: np.ndarray) -> OnlineDictionaryLearner:
        k = X.shape[1] if self.n_components is None else int(self.n_components)
        dict_init = self.dict_init
        if dict_init is not None:
            dict_init = np.asarray(dict_init, dtype=np.float64)
            if dict_init.shape != (k, X.shape[1]):
                raise DataError(f"dict_init must have shape (n_components, n_features) = "
                                f"{(k, X.shape[1])}, got {dict_init.shape}")
        learner = OnlineDictionaryLearner(
            k, float(self.alpha), algorithm="lasso_" + self.fit_algorithm,
            positive_code=bool(self.positive_code), positive_dict=bool(self.positive_dict),
            dict_init=dict_init, n_jobs=self.n_jobs, random_state=self.random_state,
            coder_max_iter=max(int(self.transform_max_iter), 1))
        return learner

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> MiniBatchDictionaryLearning:
        """Learn the dictionary from ``X`` (n_samples, n_features)."""
        X_in = self._validate_X(X, reset=True)
        X = np.ascontiguousarray(X_in, dtype=np.float64)
        learner = self._learner(X)
        n_samples = X.shape[0]
        batch_size = min(int(self.batch_size), n_samples)
        order = learner.rng.permutation(n_samples) if self.shuffle else np.arange(n_samples)
        X_train = X[order]
        learner.initialize(X_train)
        per_epoch = math.ceil(n_samples / batch_size)
        n_steps = int(self.max_iter) * per_epoch
        ewa_cost = ewa_min = None
        no_improvement = 0
        old = learner.components_.copy()
        i = -1
        for i in range(n_steps):
            start = (i % per_epoch) * batch_size
            X_batch = X_train[start:start + batch_size]
            batch_cost = learner.partial_fit(X_batch)
            step = i + 1
            stop = False
            if step > min(100, n_samples / batch_size):
                weight = min(X_batch.shape[0] / (n_samples + 1), 1.0)
                ewa_cost = batch_cost if ewa_cost is None else \
                    ewa_cost * (1 - weight) + batch_cost * weight
                change = float(np.linalg.norm(learner.components_ - old)) / learner.n_components
                if self.tol > 0 and change <= self.tol:
                    stop = True
                elif ewa_min is None or ewa_cost < ewa_min:
                    no_improvement, ewa_min = 0, ewa_cost
                else:
                    no_improvement += 1
                    stop = self.max_no_improvement is not None and \
                        no_improvement >= self.max_no_improvement
            if self.verbose:
                print(f"Minibatch step {step}/{n_steps}: mean batch cost {batch_cost:.6g}")
            if stop:
                break
            if self.callback is not None:
                self.callback(locals())
            old[:] = learner.components_
        self._online = learner
        self.n_steps_ = i + 1
        self.n_iter_ = int(math.ceil(self.n_steps_ / per_epoch))
        self.components_ = learner.components_.astype(X_in.dtype)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any = None) -> MiniBatchDictionaryLearning:
        """One online step on the mini-batch ``X`` (batch, n_features)."""
        first = not hasattr(self, "components_")
        X_in = self._validate_X(X, reset=first)
        X = np.ascontiguousarray(X_in, dtype=np.float64)
        if first:
            self._online = self._learner(X)
            self.n_steps_ = 0
        self._online.partial_fit(X)
        self.n_steps_ += 1
        self.components_ = self._online.components_.astype(X_in.dtype)
        return self

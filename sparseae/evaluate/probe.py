"""Linear probes: how linearly decodable class labels are from learned codes.

scikit-learn is imported inside the functions, so importing this module stays cheap.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..validation import as_float_array, check_number

__all__ = ["linear_probe", "split_probe", "confusion_matrix"]


def _as_labels(y: Any, name: str) -> np.ndarray:
    """Return labels as a 1-D array ``(n_samples,)``; a column ``(n, 1)`` is flattened."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    try:
        labels = np.asarray(y)
    except Exception as exc:
        raise DataError(f"{name} cannot be read as an array of labels: {exc}") from None
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{name} must be 1-D (n_samples,), got shape {labels.shape}")
    if labels.shape[0] == 0:
        raise DataError(f"{name} is empty")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise DataError(f"{name} contains NaN or inf")
    if labels.dtype.kind == "c":
        raise DataError(f"{name} is complex; labels must be integers or strings")
    return labels


def linear_probe(Z_train: Any, y_train: Any, Z_test: Any, y_test: Any, *, C: float = 1.0,
                 max_iter: int = 1000, standardize: bool = True, random_state: int | None = 0
                 ) -> dict[str, Any]:
    """Fit a multinomial logistic regression on codes and report its test accuracy.

    ``Z_train`` ``(n_train, n_units)`` and ``Z_test`` ``(n_test, n_units)`` are codes (numpy or
    torch); ``y_train`` ``(n_train,)`` and ``y_test`` ``(n_test,)`` are class labels (integers or
    strings). The classifier is ``StandardScaler`` (when ``standardize``) followed by scikit-learn's
    ``LogisticRegression`` (lbfgs, L2 penalty of inverse strength ``C``), which minimises
    ``Σ_i −log softmax(W z_i + b)_{y_i} + ‖W‖² / (2C)``.

    Returns a dict with ``accuracy`` (on the test set), ``train_accuracy``, ``classifier`` (the
    fitted ``Pipeline``), ``n_classes`` and ``converged`` (False when lbfgs stopped at
    ``max_iter``; the ConvergenceWarning itself is suppressed).

    Raises :class:`DataError` when codes and labels differ in length, the two code sets differ in
    width, the training labels have fewer than 2 classes, or a test label never occurs in training.
    """
    check_number(C, "C", low=0.0, low_inclusive=False)
    check_number(max_iter, "max_iter", low=1, integer=True)
    if not isinstance(standardize, (bool, np.bool_)):
        raise ConfigError(f"standardize must be True or False, got {standardize!r}")
    Z_train = as_float_array(Z_train, "Z_train", dtype=np.float64)
    Z_test = as_float_array(Z_test, "Z_test", dtype=np.float64, n_features=Z_train.shape[1])
    y_train, y_test, classes = _probe_labels(y_train, y_test, len(Z_train), len(Z_test))

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps: list[tuple[str, Any]] = [("scaler", StandardScaler())] if standardize else []
    steps.append(("logistic", LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter,
                                                 random_state=random_state)))
    classifier = Pipeline(steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(Z_train, y_train)
    n_iter = int(np.max(classifier.named_steps["logistic"].n_iter_))
    return {
        "accuracy": float(classifier.score(Z_test, y_test)),
        "train_accuracy": float(classifier.score(Z_train, y_train)),
        "classifier": classifier,
        "n_classes": int(len(classes)),
        "converged": n_iter < max_iter,
    }


def split_probe(Z: Any, y: Any, *, X_raw: Any = None, test_fraction: float = 0.5, C: float = 1.0,
                random_state: int = 0) -> dict[str, Any]:
    """Self-taught learning's probe: a random ``test_fraction`` of the samples held out (seeded by
    ``random_state``), :func:`linear_probe` on the codes ``Z`` (n, n_units) of the rest, and on the raw
    inputs ``X_raw`` (n, n_features) too when given. Returns ``accuracy``, ``train_accuracy``,
    ``raw_accuracy`` (None without ``X_raw``), ``n_train`` and ``n_test``."""
    check_number(test_fraction, "test_fraction", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    labels = _as_labels(y, "y")
    order = np.random.default_rng(random_state).permutation(len(labels))
    n_test = max(1, int(round(test_fraction * len(labels))))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    Z = as_float_array(Z, "Z", dtype=np.float64)
    probe = linear_probe(Z[train], labels[train], Z[test], labels[test], C=C, random_state=random_state)
    raw = None
    if X_raw is not None:
        X_raw = as_float_array(X_raw, "X_raw", dtype=np.float64)
        raw = linear_probe(X_raw[train], labels[train], X_raw[test], labels[test], C=C,
                           random_state=random_state)["accuracy"]
    return {"accuracy": probe["accuracy"], "train_accuracy": probe["train_accuracy"], "raw_accuracy": raw,
            "n_train": int(len(train)), "n_test": int(len(test))}


def _probe_labels(y_train: Any, y_test: Any, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y_train, y_test, the training classes) checked: one label per code, at least 2 classes,
    every test label seen in training, comparable types. Raises :class:`DataError`."""
    y_train = _as_labels(y_train, "y_train")
    y_test = _as_labels(y_test, "y_test")
    if len(y_train) != n_train:
        raise DataError(f"Z_train has {n_train} samples but y_train has {len(y_train)} labels")
    if len(y_test) != n_test:
        raise DataError(f"Z_test has {n_test} samples but y_test has {len(y_test)} labels")
    try:
        classes = np.unique(y_train)
        unseen = np.setdiff1d(np.unique(y_test), classes)
    except TypeError:
        raise DataError("labels mix types that cannot be compared (e.g. strings and numbers)") from None
    if len(classes) < 2:
        raise DataError(f"y_train must hold at least 2 classes to fit a classifier, got {len(classes)}")
    if len(unseen):
        shown = ", ".join(map(repr, unseen[:5].tolist())) + (", ..." if len(unseen) > 5 else "")
        raise DataError(f"y_test holds {len(unseen)} label(s) never seen in y_train: {shown}")
    return y_train, y_test, classes


def confusion_matrix(y_true: Any, y_pred: Any, *, labels: Any = None, normalize: str | None = None
                     ) -> np.ndarray:
    """scikit-learn's ``confusion_matrix`` (rows: true class, columns: predicted), accepting tensors.

    Returns an ndarray ``(n_classes, n_classes)``; ``normalize`` is ``None``, ``"true"``,
    ``"pred"`` or ``"all"`` as in scikit-learn.
    """
    y_true = _as_labels(y_true, "y_true")
    y_pred = _as_labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise DataError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

    return sklearn_confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize)

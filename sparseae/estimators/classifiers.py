"""Classifiers whose features are learned with a reconstruction: :class:`DrSAEClassifier` and
:class:`StackedClassifier`; their shared behaviour (labels, predict, score) is
:class:`HeadClassifierMixin`."""
from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils import check_consistent_length, column_or_1d
from sklearn.utils.multiclass import check_classification_targets

from .._sklearn_compat import Interval
from ..data import unit_norm_rows
from ..errors import CheckpointError, DataError, SparseAEError
from ..models import Autoencoder
from ..train import TrainConfig
from ..train.procedures import fit_drsae
from .base import BaseAutoencoderEstimator

__all__ = ["DrSAEClassifier", "HeadClassifierMixin"]


class HeadClassifierMixin(ClassifierMixin):
    """Classification through the model's head (``model_.predict_logits``): label encoding in
    ``fit``, ``decision_function``, ``predict_proba``, ``predict``, accuracy ``score`` and the
    saved ``classes_``. Put it before :class:`BaseAutoencoderEstimator` in the bases; the model
    spec should read ``n_classes`` from ``len(self.classes_)``."""

    def fit(self, X: Any, y: Any = None):
        """Train on ``X`` (n_samples, n_features) with the labels ``y`` (n_samples,)."""
        if y is None:
            raise DataError(f"{type(self).__name__} requires y to be passed, but the target y is None "
                            "(it needs class labels: fit(X, y))")
        self._validate_X(X, reset=True)  # empty, non-finite or non-numeric X is refused first
        try:
            y = column_or_1d(y, warn=True)
            check_consistent_length(X, y)
            check_classification_targets(y)
        except ValueError as exc:
            if isinstance(exc, SparseAEError):
                raise
            raise DataError(str(exc)) from None
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"y has only one class ({classes[0]!r}); a classifier needs at least 2 classes")
        self.classes_ = classes
        return super().fit(X, encoded)

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores (n_samples, n_classes); for two classes the (n_samples,) margin of class 1."""
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        with self._inference() as model:
            logits = torch.cat([model.predict_logits(x).float().cpu() for x in self._batches(X, model)])
        if len(self.classes_) == 2:
            return (logits[:, 1] - logits[:, 0]).numpy()
        return logits.numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), softmax of the head's scores."""
        scores = torch.from_numpy(np.asarray(self.decision_function(X), dtype=np.float64))
        if scores.ndim == 1:
            scores = torch.stack([torch.zeros_like(scores), scores], dim=1)
        return torch.softmax(scores, dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (n_samples,), from ``classes_``."""
        self._check_fitted()
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on ``(X, y)``; labels never seen by ``fit`` are a :class:`DataError`."""
        self._check_fitted()
        unseen = np.setdiff1d(np.unique(np.asarray(y)), self.classes_)
        if len(unseen):
            raise DataError(f"y has classes not seen at fit time: {unseen[:5].tolist()}")
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def _fitted_state(self) -> dict[str, Any]:
        return {"classes": self.classes_.tolist()}

    def _restore_fitted_state(self, state: dict[str, Any]) -> None:
        classes = state.get("classes")
        if not isinstance(classes, list) or len(classes) != self.model_.n_classes:
            raise CheckpointError("the saved classifier's classes do not match its model")
        self.classes_ = np.asarray(classes)


class DrSAEClassifier(HeadClassifierMixin, BaseAutoencoderEstimator):
    """Discriminative recurrent sparse autoencoder (Rolfe & LeCun 2013) as a classifier.

    ``fit(X, y)`` initializes from the data, pre-trains ``pretrain_epochs`` epochs without labels
    (reconstruction + L1) and then trains every parameter with the classifier's cross-entropy
    added, for ``max_epochs`` epochs (early stopping on the held-out ``validation_fraction``'s
    error when ``n_iter_no_change`` is set). ``predict``/``predict_proba``/``decision_function``
    use the classifier head; ``transform`` gives the non-negative sparse codes z^T;
    ``score`` is accuracy. The defaults are the authors' (784-400^11-10 on MNIST: SGD, learning
    rate 5e-3, minibatches of 10, 100 pre-training epochs) — slow on a CPU.

    Parameters
    ----------
    n_components : int ≥ 1
        Hidden units.
    n_steps : int ≥ 1
        T, the number of recurrent encoder steps.
    sparsity_weight : float > 0
        λ of λ‖z‖₁ (0.09).
    reconstruction_weight : float > 0
        Weight of ½‖x − Dz‖² (5).
    pretrain_epochs : int ≥ 0
        Unsupervised epochs before discriminative training (0 skips them).
    normalize_input : bool
        Scale each sample to unit L2 norm first (the paper's MNIST preprocessing); applies in
        every method, so ``inverse_transform`` reconstructs the normalized samples.

    Notes
    -----
    The training parameters are those of :class:`BaseAutoencoderEstimator` (``max_epochs`` counts
    the discriminative epochs). Fitted attributes add ``classes_`` (n_classes,).
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseAutoencoderEstimator._parameter_constraints,
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "sparsity_weight": [Interval(Real, 0, None, closed="neither")],
        "reconstruction_weight": [Interval(Real, 0, None, closed="neither")],
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
        "normalize_input": ["boolean"],
    }

    def __init__(self, *, n_components: int = 400, n_steps: int = 11, sparsity_weight: float = 0.09,
                 reconstruction_weight: float = 5.0, pretrain_epochs: int = 100,
                 normalize_input: bool = True, optimizer: str = "sgd", learning_rate: float = 5e-3,
                 batch_size: int = 10, max_epochs: int = 100, max_iter: int = 400,
                 validation_fraction: float = 0.0, n_iter_no_change: int | None = None,
                 device: str = "auto", random_state: int | None = None, verbose: bool = False) -> None:
        self.n_components = n_components
        self.n_steps = n_steps
        self.sparsity_weight = sparsity_weight
        self.reconstruction_weight = reconstruction_weight
        self.pretrain_epochs = pretrain_epochs
        self.normalize_input = normalize_input
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _model_spec(self) -> tuple[str, dict[str, Any]]:
        # classes_ is set by fit before the model is built; 2 stands in before that (load checks).
        return "drsae", {"n_classes": len(getattr(self, "classes_", ())) or 2, "n_steps": self.n_steps,
                         "sparsity_weight": self.sparsity_weight,
                         "reconstruction_weight": self.reconstruction_weight}

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        X = super()._validate_X(X, reset=reset)
        return unit_norm_rows(X) if self.normalize_input else X

    def _train(self, model: Autoencoder, X: np.ndarray, y: Any, config: TrainConfig) -> list[dict[str, float]]:
        validating = config.validation_fraction > 0
        pretrain_config = TrainConfig(**{**config.__dict__, "max_epochs": max(self.pretrain_epochs, 1),
                                         "n_iter_no_change": None})
        train_config = TrainConfig(**{**config.__dict__, "monitor": "error" if validating else "loss"})
        results = fit_drsae(model, X, y, pretrain_config=pretrain_config, train_config=train_config,
                            pretrain=self.pretrain_epochs > 0, seed=config.random_state)
        history = [{**r, "phase": "pretrain"} for r in (results["pretrain"].history if results["pretrain"] else [])]
        return history + [{**r, "phase": "train"} for r in results["train"].history]

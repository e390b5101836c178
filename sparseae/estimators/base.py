"""The machinery every sparseae estimator shares: fit / transform / inverse_transform / score / save / load.

Each estimator is a thin, scikit-learn-conformant wrapper: ``__init__`` only stores its keyword
arguments, ``fit`` validates them (``_parameter_constraints``) and the data, builds the model with
:func:`~sparseae.models.create_model` and trains it with :func:`sparseae.train.train` (the one
training loop of the library). All the machinery lives in :class:`BaseAutoencoderEstimator`; a
concrete estimator only says which registered model it builds (:meth:`~BaseAutoencoderEstimator._model_spec`).

Shapes: ``X`` (n_samples, n_features) → codes ``Z`` (n_samples, n_components) → reconstructions
(n_samples, n_features). Outputs are ``float32`` NumPy arrays.

Example (``X``: digits scaled to [0, 1], shape (n_samples, 64))::

    from sparseae.estimators import SparseAutoencoder
    sae = SparseAutoencoder(n_components=64, sparsity_target=0.05, random_state=0)
    Z = sae.fit(X).transform(X)          # (n_samples, 64), mean activation ≈ 0.05
    X_hat = sae.inverse_transform(Z)     # (n_samples, 64)
"""
from __future__ import annotations

import abc
import contextlib
import copy
import os
import warnings
from collections.abc import Iterator
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

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
from ..errors import CheckpointError, ConfigError, DataError, NotFittedError, SparseAEError
from ..inference import evaluating, placement, row_batches
from ..io import load_model, read_config, save_model
from ..models import Autoencoder, create_model
from ..train import TrainConfig, evaluate_loss, train
from ..train.batches import BatchSource
from ..train.config import OPTIMIZERS
from ..validation import check_finite

__all__ = ["BaseAutoencoderEstimator"]

#: Rows per forward pass in transform / inverse_transform / score (memory stays bounded).
_INFERENCE_BATCH = 4096
#: The key under which :meth:`BaseAutoencoderEstimator.save` stores the estimator in ``extra``.
_EXTRA_KEY = "estimator"
#: Every concrete estimator class by "module.QualName", so that ``load`` can rebuild the right one.
_ESTIMATOR_CLASSES: dict[str, type[BaseAutoencoderEstimator]] = {}
#: Marks a model packed by ``__getstate__``.
_PICKLED_MODEL = "__sparseae_model__"

_TRAINING_CONSTRAINTS: dict[str, list[Any]] = {
    "optimizer": [StrOptions(set(OPTIMIZERS))],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
    "device": [str],
    "random_state": [Interval(Integral, 0, None, closed="left"), None],
    "verbose": ["boolean"],
}


def _class_key(cls: type) -> str:
    """The name a saved estimator records: ``sparseae.estimators.<Class>`` for ours (stable when
    a class moves between submodules), ``module.QualName`` for a user's subclass."""
    if cls.__module__.startswith("sparseae.estimators"):
        return f"sparseae.estimators.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


class BaseAutoencoderEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator,
                               metaclass=abc.ABCMeta):
    """Shared machinery of the autoencoder estimators (not used directly).

    Subclasses declare their hyperparameters as keyword-only ``__init__`` arguments (stored
    unchanged), extend ``_parameter_constraints`` and implement :meth:`_model_spec`. The training
    parameters below are common to all of them and map one-to-one onto
    :class:`~sparseae.train.TrainConfig`.

    Other Parameters
    ----------------
    optimizer : {"adam", "sgd", "lbfgs"}
        ``lbfgs`` runs full-batch L-BFGS for ``max_iter`` iterations; the others run
        ``max_epochs`` passes of minibatches of ``batch_size``.
    learning_rate : float > 0
        Step size (for L-BFGS, the initial step of its line search; 1 is the usual value).
    batch_size, max_epochs, max_iter : int ≥ 1
    validation_fraction : float in [0, 1)
        Fraction of ``X`` held out to monitor ``val_loss`` (and early stopping).
    n_iter_no_change : int ≥ 1 or None
        Stop after this many epochs without improvement of the monitored loss and keep the best
        weights; None trains for the full budget.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda[:N]"`` or ``"mps"`` (whether this
        machine has it is checked by ``fit``). Training runs there; the fitted ``model_`` is moved
        back to the CPU and inference runs on the CPU.
    random_state : int ≥ 0 or None
        Seeds the initialisation and every random draw of training (fitting twice with the same
        seed gives the same model). None draws a fresh seed from NumPy's global generator. The
        global torch random state is left as it was.
    verbose : bool
        Show a progress bar per training phase on stderr, named after it (``train``; a stacked
        model's ``pretrain layer k/n`` and ``fine-tune``).

    Attributes
    ----------
    model_ : :class:`~sparseae.models.Autoencoder`
        The trained torch module (on the CPU, in eval mode).
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Only when ``X`` had string column names (a DataFrame).
    components_ : ndarray, shape (n_components, n_features_in_)
        The decoder's atoms as rows (float32).
    history_ : list of dict
        One record per epoch from the trainer (``train_loss``, each loss term, ``val_loss``...).
    n_iter_ : int
        Epochs run (for L-BFGS an epoch is ``lbfgs_iter_per_epoch`` = 50 iterations).
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        **_TRAINING_CONSTRAINTS,
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _ESTIMATOR_CLASSES[_class_key(cls)] = cls

    # ------------------------------------------------------------------ what a subclass says
    @abc.abstractmethod
    def _model_spec(self) -> tuple[str, dict[str, Any]]:
        """``(registered model name, its parameters)`` without ``n_features``/``n_components``."""

    # ------------------------------------------------------------------ scikit-learn plumbing
    def _validate_params(self) -> None:
        """scikit-learn's constraint check, raising an error that is also a ``ConfigError``."""
        try:
            super()._validate_params()
        except InvalidParameterError as exc:
            raise ParameterError(str(exc)) from None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    @property
    def _n_features_out(self) -> int:
        """Number of output features of ``transform`` (for ``get_feature_names_out``)."""
        return self.model_.n_components

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output names ``"<classname><i>"`` for i < n_components, e.g. ``sparseautoencoder0``."""
        self._check_fitted()
        return super().get_feature_names_out(input_features)

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self)
        except SklearnNotFittedError:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) "
                                 "(or load a saved one) before using it") from None

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        """``X`` as a finite float32 array (n_samples, n_features); bad data → :class:`DataError`."""
        try:
            with np.errstate(over="raise"):
                X = validate_data(self, X, dtype=np.float32, ensure_all_finite=False, reset=reset)
        except FloatingPointError:
            raise DataError("X holds values beyond the float32 range (|x| > 3.4e38); rescale it") from None
        except ValueError as exc:
            if isinstance(exc, SparseAEError):
                raise
            raise DataError(str(exc)) from None
        # Checked after the cast, so values that overflow float32 are caught as well.
        check_finite(X, "X")
        return X

    def _training_config(self, seed: int) -> TrainConfig:
        return TrainConfig(optimizer=self.optimizer, learning_rate=self.learning_rate,
                           batch_size=self.batch_size, max_epochs=self.max_epochs,
                           lbfgs_max_iter=self.max_iter, validation_fraction=self.validation_fraction,
                           n_iter_no_change=self.n_iter_no_change, random_state=seed,
                           device=self.device, progress=bool(self.verbose)).validate()

    def _build_model(self, n_features: int) -> Autoencoder:
        name, params = self._model_spec()
        reserved = sorted({"n_features", "n_components"} & set(params))
        if reserved:
            raise ConfigError(f"{', '.join(reserved)} cannot be given as model parameters: "
                              "n_features comes from X and n_components is its own parameter")
        try:
            return create_model(name, n_features, self.n_components, **params)
        except TypeError as exc:  # a builder refusing a value of the wrong type
            raise ConfigError(f"cannot build model {name!r} with {params!r}: {exc}") from None

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> BaseAutoencoderEstimator:
        """Train the autoencoder on ``X`` (n_samples, n_features); ``y`` is ignored.

        Raises :class:`~sparseae.errors.ConfigError` for invalid hyperparameters,
        :class:`~sparseae.errors.DataError` for unusable data (NaN/inf, wrong shape) and
        :class:`~sparseae.errors.DivergenceError` if the loss becomes NaN/inf.
        """
        original = X
        X = self._validate_X(X, reset=True)
        if isinstance(original, np.memmap) and original.dtype == np.float32 \
                and original.shape == X.shape and np.may_share_memory(original, X):
            X = original  # the trainer streams a memory map batch by batch instead of loading it
        if self.random_state is None:
            seed = int(np.random.randint(np.iinfo(np.int32).max))
        else:
            seed = int(self.random_state)
        config = self._training_config(seed)
        device = config.training_device()
        cuda_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices), warnings.catch_warnings():
            # A read-only input (e.g. a memory map opened "r") is only ever read.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            torch.manual_seed(seed)
            model = self._build_model(X.shape[1])
            history = self._train(model, X, y, config)
        model.to("cpu").eval()
        self.model_ = model
        self.history_ = list(history)
        self.n_iter_ = len(history)
        self.components_ = self._components(model)
        return self

    def _train(self, model: Autoencoder, X: np.ndarray, y: Any, config: TrainConfig) -> list[dict[str, float]]:
        """Train ``model`` (already built and seeded); returns the per-epoch history."""
        return train(model, X, config).history

    @staticmethod
    def _components(model: Autoencoder) -> np.ndarray:
        with torch.no_grad():
            return model.decoder.weight.detach().to("cpu", torch.float32).t().contiguous().numpy().copy()

    # ------------------------------------------------------------------ inference
    @contextlib.contextmanager
    def _inference(self) -> Iterator[Autoencoder]:
        """The model for inference, in eval mode and without gradients (its mode is restored).

        On the CPU a float32 model is run as a float64 copy and its outputs rounded to float32:
        a float32 matrix product's rounding depends on a row's position in the batch (MKL's
        blocking), so a sample's code would depend on the samples beside it (scikit-learn's
        sample-order check); in float64 that difference is ~1e-16 and vanishes in the rounding.
        Elsewhere (a GPU) the model runs as it is.
        """
        model = self.model_
        if self._model_device(model).type == "cpu" and any(p.dtype == torch.float32 for p in model.parameters()):
            with torch.no_grad():
                model = copy.deepcopy(model).double()
        with evaluating(model):
            yield model

    def _batches(self, A: np.ndarray, model: Autoencoder) -> Iterator[torch.Tensor]:
        """Row blocks of ``A`` as tensors on ``model``'s device, in its dtype."""
        device, dtype = placement(model)
        for _, rows in row_batches(A, _INFERENCE_BATCH, device=device, dtype=dtype):
            yield rows

    @staticmethod
    def _model_device(model: Autoencoder) -> torch.device:
        parameter = next(model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def transform(self, X: Any) -> np.ndarray:
        """Codes of ``X`` (n_samples, n_features) → (n_samples, n_components), float32."""
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        with self._inference() as model:
            codes = [model.encode(x).float().cpu() for x in self._batches(X, model)]
        return torch.cat(codes).numpy()

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Reconstructions (the likelihood's mean) of codes ``Z`` (n_samples, n_components) →
        (n_samples, n_features), float32."""
        self._check_fitted()
        try:
            Z = check_array(Z, dtype=np.float32, ensure_all_finite=False, input_name="Z")
        except ValueError as exc:
            if isinstance(exc, SparseAEError):
                raise
            raise DataError(str(exc)) from None
        check_finite(Z, "Z")
        n_components = self.model_.n_components
        if Z.shape[1] != n_components:
            raise DataError(f"Z has {Z.shape[1]} columns, but this {type(self).__name__} has "
                            f"{n_components} components")
        with self._inference() as model:
            parts = [model.decode(z).float().cpu() for z in self._batches(Z, model)]
        return torch.cat(parts).numpy()

    def score(self, X: Any, y: Any = None) -> float:
        """Negative mean training criterion on ``X``: −(reconstruction NLL + penalties).

        Higher is better (scikit-learn's convention), so model selection maximizes it. The
        criterion is exactly the one training minimizes, penalties (sparsity, weight decay)
        included, averaged over samples; batch statistics such as the KL sparsity's mean
        activation ρ̂ are taken over blocks of at least 1024 samples. ``y`` is ignored.
        """
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        model = self.model_
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            source = BatchSource(X, self._model_device(model))
            record = evaluate_loss(model, source, self.batch_size)
        return -float(record["val_loss"])

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """Pickle ``model_`` as its spec and weights, not as a module object (a model may hold
        functions that pickle cannot name); :meth:`__setstate__` rebuilds it."""
        state = dict(super().__getstate__())
        model = state.get("model_")
        if isinstance(model, Autoencoder) and model.spec:
            state["model_"] = {_PICKLED_MODEL: True, "spec": model.spec, "training": model.training,
                               "state_dict": {k: v.detach().to("cpu").clone()
                                              for k, v in model.state_dict().items()}}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        packed = state.get("model_")
        if isinstance(packed, dict) and packed.get(_PICKLED_MODEL):
            state = dict(state)
            params = dict(packed["spec"]["params"])
            n_features, n_components = params.pop("n_features"), params.pop("n_components")
            model = create_model(packed["spec"]["name"], n_features, n_components, **params)
            model.load_state_dict(packed["state_dict"])
            state["model_"] = model.train(packed["training"])
        super().__setstate__(state)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Save the fitted estimator to the folder ``path`` (``model.safetensors`` + ``config.json``).

        The estimator's class and parameters go into the config's ``extra``, so
        :meth:`load` rebuilds an estimator that transforms identically. Refuses to replace an
        existing folder unless ``overwrite`` (:class:`~sparseae.errors.OutputExistsError`).
        """
        self._check_fitted()
        params = self.get_params(deep=False)
        state: dict[str, Any] = {
            "class": _class_key(type(self)),
            "params": params,
            "n_features_in": int(self.n_features_in_),
            "n_iter": int(self.n_iter_),
            "history": self.history_,
        }
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in"] = [str(name) for name in self.feature_names_in_]
        state["fitted"] = self._fitted_state()
        return save_model(self.model_, path, overwrite=overwrite, extra={_EXTRA_KEY: state})

    @classmethod
    def load(cls, path: str | os.PathLike) -> BaseAutoencoderEstimator:
        """Rebuild a fitted estimator saved by :meth:`save` (JSON and safetensors; no pickle).

        Called on a base class, returns the class that was saved. A folder holding a bare model
        (saved with :func:`sparseae.io.save_model`, e.g. by the CLI) loads as an
        :class:`AutoencoderEstimator`. Raises :class:`~sparseae.errors.CheckpointError` when the
        folder holds another estimator or is not a sparseae model.
        """
        from .autoencoders import AutoencoderEstimator  # its subclass: defined after this module

        config = read_config(path)
        extra = config.get("extra") or {}
        state = extra.get(_EXTRA_KEY) if isinstance(extra, dict) else None
        if state is None:
            if not issubclass(AutoencoderEstimator, cls):
                raise CheckpointError(f"{path} holds a bare {config['model']!r} model, not a saved "
                                      f"{cls.__name__}; load it with AutoencoderEstimator.load")
            params = dict(config["params"])
            params.pop("n_features", None)
            state = {"class": _class_key(AutoencoderEstimator),
                     "params": {"model": config["model"], "n_components": params.pop("n_components", None),
                                "model_params": params},
                     "n_features_in": config["params"].get("n_features")}
        if not isinstance(state, dict) or not isinstance(state.get("params"), dict):
            raise CheckpointError(f"{path}: its estimator record is corrupt")
        klass = _ESTIMATOR_CLASSES.get(state.get("class"))
        if klass is None:
            raise CheckpointError(f"{path} was saved by the estimator {state.get('class')!r}, which is "
                                  "not defined here (import the module that defines it first)")
        if not issubclass(klass, cls):
            raise CheckpointError(f"{path} holds a {klass.__name__}, not a {cls.__name__}; use "
                                  f"{klass.__name__}.load")
        try:
            estimator = klass(**state["params"])
            estimator._validate_params()
            expected_name, _ = estimator._model_spec()
        except (TypeError, ConfigError) as exc:
            raise CheckpointError(f"{path}: its estimator parameters are invalid: {exc}") from None
        if expected_name != config["model"]:
            raise CheckpointError(f"{path}: the estimator builds {expected_name!r} but the saved "
                                  f"model is {config['model']!r}")
        model = load_model(path, map_location="cpu").eval()
        if state.get("n_features_in") not in (None, model.n_features):
            raise CheckpointError(f"{path}: n_features_in ({state['n_features_in']}) does not match "
                                  f"the model ({model.n_features})")
        estimator.model_ = model
        estimator.n_features_in_ = model.n_features
        if state.get("feature_names_in") is not None:
            estimator.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
        estimator.history_ = list(state.get("history") or [])
        estimator.n_iter_ = int(state.get("n_iter", len(estimator.history_)))
        estimator.components_ = estimator._components(model)
        estimator._restore_fitted_state(state.get("fitted") or {})
        return estimator

    def _fitted_state(self) -> dict[str, Any]:
        """Fitted attributes beyond the model, as JSON (a subclass adds its own, e.g. ``classes_``)."""
        return {}

    def _restore_fitted_state(self, state: dict[str, Any]) -> None:
        """Set what :meth:`_fitted_state` saved (``self.model_`` is already loaded)."""

"""Stacks pre-trained greedily, layer by layer, then fine-tuned end to end:
:class:`StackedAutoencoder` (a deep autoencoder, a transformer) and :class:`StackedClassifier`
(an MLP, e.g. the stacked denoising autoencoder of Vincent et al. 2010)."""
from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from .._sklearn_compat import Interval, StrOptions
from ..models import Autoencoder
from ..nn.activations import ACTIVATIONS
from ..train import TrainConfig, train
from ..train.procedures import pretrain_deep_model
from .base import BaseAutoencoderEstimator
from .classifiers import HeadClassifierMixin

__all__ = ["StackedAutoencoder", "StackedClassifier"]

_STACK_CONSTRAINTS: dict[str, list[Any]] = {
    "hidden": [tuple, list],
    "layer_model": [str],
    "layer_params": [dict, list, None],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "likelihood": [str],
    "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
    "pretrain_learning_rate": [Interval(Real, 0, None, closed="neither"), None],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
}


class _StackedMixin:
    """Greedy layer-wise pre-training of the estimator's model before its fine-tuning."""

    def _train(self, model: Autoencoder, X: np.ndarray, y: Any, config: TrainConfig) -> list[dict[str, float]]:
        history: list[dict[str, float]] = []
        if self.pretrain_epochs > 0:
            pretrain_config = TrainConfig(**{**config.__dict__, "max_epochs": self.pretrain_epochs,
                                             "learning_rate": self.pretrain_learning_rate or config.learning_rate,
                                             "n_iter_no_change": None, "validation_fraction": 0.0})
            results = pretrain_deep_model(model, X, pretrain_config, layer_model=self.layer_model,
                                          layer_params=self.layer_params)
            for k, result in enumerate(results):
                history += [{**record, "phase": f"pretrain_layer{k + 1}"} for record in result.history]
        if y is not None and config.validation_fraction > 0:
            config = TrainConfig(**{**config.__dict__, "monitor": "error"})
        label = "fine-tune" if self.pretrain_epochs > 0 else "train"
        finetune = train(model, X, config, y=y, progress_label=label).history
        return history + [{**record, "phase": "finetune"} for record in finetune]


class StackedAutoencoder(_StackedMixin, BaseAutoencoderEstimator):
    """Deep autoencoder n_features-hidden…-n_components, pre-trained layer by layer and then
    fine-tuned on the reconstruction (Hinton & Salakhutdinov 2006). ``transform`` gives the
    top codes, ``inverse_transform`` decodes them through the mirror decoder.

    Parameters
    ----------
    n_components : int ≥ 1
        Code size (the top layer).
    hidden : tuple of int
        Sizes of the layers between the input and the code, e.g. (1000, 500, 250).
    layer_model : str
        The registered preset each layer is pre-trained as (``autoencoder``, ``denoising_ae``,
        ``contractive_ae``, ``sparse_ae_kl``…); ``layer_params`` are its parameters: one dict
        for every layer, or a list of dicts, one per layer (``len(hidden) + 1`` of them).
    activation, code_activation : str
        Hidden units and code units (``identity`` gives a linear code layer).
    likelihood : str
        Reconstruction term of the deep model (``bernoulli`` for data in [0, 1]).
    pretrain_epochs : int ≥ 0
        Epochs per layer of greedy pre-training (0: fine-tune from a random start).
    pretrain_learning_rate : float > 0 or None
        Pre-training's step size (None: ``learning_rate``).
    weight_decay : float ≥ 0
        λ of the fine-tuning's (λ/2)Σ‖W‖² over the weight matrices (pre-training: set it per
        layer in ``layer_params``).

    Notes
    -----
    The training parameters (of the fine-tuning) and the fitted attributes are those of
    :class:`BaseAutoencoderEstimator`; ``history_`` records have a ``phase``.
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseAutoencoderEstimator._parameter_constraints, **_STACK_CONSTRAINTS,
        "code_activation": [StrOptions(set(ACTIVATIONS))],
    }

    def __init__(self, *, n_components: int = 30, hidden: tuple = (1000, 500, 250),
                 layer_model: str = "autoencoder", layer_params: dict | list | None = None,
                 activation: str = "sigmoid", code_activation: str = "identity",
                 likelihood: str = "bernoulli", pretrain_epochs: int = 10,
                 pretrain_learning_rate: float | None = None, weight_decay: float = 0.0,
                 optimizer: str = "adam",
                 learning_rate: float = 1e-3, batch_size: int = 128, max_epochs: int = 20,
                 max_iter: int = 400, validation_fraction: float = 0.0,
                 n_iter_no_change: int | None = None, device: str = "auto",
                 random_state: int | None = None, verbose: bool = False) -> None:
        self.n_components = n_components
        self.hidden = hidden
        self.layer_model = layer_model
        self.layer_params = layer_params
        self.activation = activation
        self.code_activation = code_activation
        self.likelihood = likelihood
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_learning_rate = pretrain_learning_rate
        self.weight_decay = weight_decay
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
        return "deep_autoencoder", {"hidden": [int(h) for h in self.hidden], "activation": self.activation,
                                    "code_activation": self.code_activation, "likelihood": self.likelihood,
                                    "weight_decay": self.weight_decay}


class StackedClassifier(HeadClassifierMixin, _StackedMixin, BaseAutoencoderEstimator):
    """An MLP n_features-hidden…-n_components-n_classes whose layers are pre-trained greedily
    as autoencoders (denoising by default: the stacked denoising autoencoder), then fine-tuned on
    the labels with cross-entropy (early stopping on the held-out ``validation_fraction``'s error
    when ``n_iter_no_change`` is set). ``transform`` gives the top hidden layer.

    Parameters
    ----------
    n_components : int ≥ 1
        Units of the top hidden layer.
    hidden : tuple of int
        Sizes of the hidden layers below it (``()`` for one hidden layer, as in Rifai et al. 2011).
    layer_model, layer_params, activation, pretrain_epochs, pretrain_learning_rate
        As for :class:`StackedAutoencoder`; default layers are ``denoising_ae`` (masking 25%).
    likelihood : str
        The reconstruction term kept in the model (not used by the fine-tuning).
    dropout : float in [0, 1)
        Dropout on the top hidden layer during fine-tuning.
    weight_decay : float ≥ 0
        λ of the fine-tuning's (λ/2)Σ‖W‖² over the MLP's weight matrices.

    Notes
    -----
    Training parameters are those of :class:`BaseAutoencoderEstimator` (they drive the
    fine-tuning). Fitted attributes add ``classes_``.
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseAutoencoderEstimator._parameter_constraints, **_STACK_CONSTRAINTS,
        "dropout": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(self, *, n_components: int = 1000, hidden: tuple = (), layer_model: str = "denoising_ae",
                 layer_params: dict | list | None = None, activation: str = "sigmoid",
                 likelihood: str = "bernoulli", dropout: float = 0.0, pretrain_epochs: int = 15,
                 pretrain_learning_rate: float | None = None, weight_decay: float = 0.0,
                 optimizer: str = "sgd",
                 learning_rate: float = 0.1, batch_size: int = 20, max_epochs: int = 50,
                 max_iter: int = 400, validation_fraction: float = 0.0,
                 n_iter_no_change: int | None = None, device: str = "auto",
                 random_state: int | None = None, verbose: bool = False) -> None:
        self.n_components = n_components
        self.hidden = hidden
        self.layer_model = layer_model
        self.layer_params = layer_params
        self.activation = activation
        self.likelihood = likelihood
        self.dropout = dropout
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_learning_rate = pretrain_learning_rate
        self.weight_decay = weight_decay
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
        return "mlp_classifier", {"n_classes": len(getattr(self, "classes_", ())) or 2,
                                  "hidden": [int(h) for h in self.hidden], "activation": self.activation,
                                  "likelihood": self.likelihood, "dropout": self.dropout,
                                  "weight_decay": self.weight_decay}

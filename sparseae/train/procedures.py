"""Training procedures, in one place: how each model family is trained, beyond one call of
:func:`~sparseae.train.train`. A model declares its procedure by name
(:attr:`~sparseae.models.Autoencoder.training_procedure`); the run layer
(:mod:`sparseae.runs.procedures`), the estimators and these Python entry points all run them.

* plain: :func:`~sparseae.train.train` itself; :func:`learn_dictionary` for ``sparse_coding``
* supervised: :func:`fit_supervised` (unsupervised pre-training, then training on the labels),
  :func:`fit_drsae` (the DrSAE paper's initialization and settings)
* pretrain_finetune: :func:`pretrain_layers`, :func:`pretrain_deep_model`, :func:`fit_stacked`
  (greedy layer-wise pre-training, then fine-tuning of the whole stack)
* layerwise: :func:`pretrain_conv_layers`, :func:`fit_conv_stack`, :func:`fit_conv_stack_layers`
  (a convolutional stack trained layer by layer, no fine-tuning)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError
from ..io import load_model, read_config, save_model
from ..models.base import Autoencoder, create_model, encode_dataset
from ..models.conv_stack import ConvFeatureExtractor, ConvStack, build_conv_stack, stage_of, transform_rows
from ..models.convolutional import ConvAutoencoder
from ..models.deep import build_layer, layer_specs, load_layer_weights
from ..models.drsae import DrSAE
from ..models.sparse_coding import SparseCoding
from ..models.supervised import SupervisedAutoencoder
from ..nn.contrast import local_contrast_normalize
from ..validation import as_float_array, check_choice
from .config import TrainConfig
from .trainer import train

__all__ = ["ConvStackResult", "StackedResult", "fit_conv_stack", "fit_conv_stack_layers", "fit_drsae", "fit_stacked",
           "fit_supervised", "learn_dictionary", "load_conv_stack", "pretrain_conv_layers", "pretrain_deep_model",
           "pretrain_layers"]


# ------------------------------------------------------------------- plain: sparse coding

def learn_dictionary(X: Any, n_components: int, lam: float, *, nonnegative: bool = False,
                     init: str = "data", max_epochs: int = 10, batch_size: int = 256,
                     optimizer: str = "adam", learning_rate: float = 1e-3, inference_max_iter: int = 100,
                     tol: float | None = None, reinit_unused_every: int = 100, random_state: int = 0,
                     device: str = "auto") -> SparseCoding:
    """Learn ``n_components`` unit-norm atoms for X (n_samples, n_features) with the ``sparse_coding``
    model and the ordinary trainer; returns the trained model (its ``dictionary`` is D (n_features,
    n_components); ``encode`` gives the codes).

    ``init``: ``"data"`` starts from random distinct samples (normalized), ``"random"`` from the model's
    random atoms. ``inference_max_iter``/``tol``: FISTA per minibatch (approximate inference is enough
    to learn).
    ``reinit_unused_every``: batches per usage window (0: never re-initialize). ``random_state`` seeds
    the start (``torch.manual_seed`` and the sample picks) and the trainer. The other arguments are
    :class:`~sparseae.train.TrainConfig`'s. For the training history, build the model with
    ``create_model("sparse_coding", ...)`` and call :func:`~sparseae.train.train` yourself.
    """
    X = as_float_array(X, "X")
    config = TrainConfig(optimizer=optimizer, learning_rate=learning_rate, batch_size=batch_size,
                         max_epochs=max_epochs, random_state=random_state, device=device).validate()
    if config.optimizer == "lbfgs":
        raise ConfigError("learn_dictionary needs a minibatch optimizer (adam or sgd): the atoms are "
                          "renormalized after every step, which L-BFGS's many inner iterations would skip")
    torch.manual_seed(random_state)
    model = create_model("sparse_coding", X.shape[1], n_components, sparsity_weight=lam,
                         nonnegative=nonnegative, inference_max_iter=inference_max_iter, tol=tol,
                         reinit_unused_every=reinit_unused_every, init=init)
    model.initialize_from_data(X, generator=torch.Generator().manual_seed(random_state))
    train(model, X, config)
    return model



# ------------------------------------------------------------------- supervised

def fit_supervised(model: SupervisedAutoencoder, X: Any, y: Any, *, train_config, pretrain_config=None,
                   X_val: Any = None, y_val: Any = None, run_dir: str | Path | None = None,
                   pretrain_dir: str | Path | None = None, resume: bool = False,
                   classification_weight: float = 1.0, callbacks=()) -> dict[str, Any]:
    """Unsupervised pre-training (w = 0, ``pretrain_config``; skipped when None), then training of
    every parameter with the classification term (w = ``classification_weight``, ``train_config``;
    early stopping on ``train_config.monitor``, e.g. ``"error"``, over ``X_val``/``y_val`` or the
    held-out ``validation_fraction``). Pre-training checkpoints go to ``pretrain_dir``, the rest to
    ``run_dir``; ``resume`` continues whichever phase was interrupted. The phases' progress bars
    (``progress`` of the configs) read ``pretrain`` and ``fine-tune`` (``train`` without pre-training).
    Returns ``{"pretrain": TrainResult | None, "train": TrainResult}``.
    """
    results: dict[str, Any] = {"pretrain": None}
    if pretrain_config is not None:
        model.set_classification_weight(0.0)
        results["pretrain"] = train(model, X, pretrain_config, run_dir=pretrain_dir, resume=resume,
                                    callbacks=callbacks, progress_label="pretrain")
    model.set_classification_weight(classification_weight)
    results["train"] = train(model, X, train_config, y=y, X_val=X_val, y_val=y_val, run_dir=run_dir,
                             resume=resume, callbacks=callbacks,
                             progress_label="train" if pretrain_config is None else "fine-tune")
    return results


def fit_drsae(model: DrSAE, X: Any, y: Any, *, initialize: bool = True, seed: int = 0,
              resume: bool = False, run_dir=None, pretrain_config=None, train_config=None,
              pretrain: bool = True, **kwargs: Any) -> dict[str, Any]:
    """The paper's procedure: the authors' initialization from ``X`` (:meth:`DrSAE.initialize_from_data`),
    then :func:`~sparseae.models.supervised.fit_supervised` (unsupervised pre-training, then
    discriminative training with early stopping on validation error). The default configs are the
    authors' (SGD, learning rate 5e-3, minibatches of 10, 100 + up to 100 epochs).
    ``run_dir`` gets ``pretrain/`` (phase 1) and ``train/`` (phase 2) run folders."""
    if initialize and not (resume and run_dir is not None and (Path(run_dir) / "pretrain").exists()):
        model.initialize_from_data(X, generator=torch.Generator().manual_seed(seed))
    authors = dict(optimizer="sgd", learning_rate=5e-3, batch_size=10, max_epochs=100, random_state=seed)
    validating = kwargs.get("X_val") is not None
    pretrain_config = pretrain_config or TrainConfig(**authors)
    train_config = train_config or TrainConfig(**authors, monitor="error",
                                               n_iter_no_change=10 if validating else None)
    dirs = {} if run_dir is None else {"pretrain_dir": Path(run_dir) / "pretrain",
                                       "run_dir": Path(run_dir) / "train"}
    return fit_supervised(model, X, y, pretrain_config=pretrain_config if pretrain else None,
                          train_config=train_config, resume=resume, **dirs, **kwargs)



# ------------------------------------------------------------ pretrain_finetune: deep stacks

def pretrain_layers(X: Any, layers: Sequence[dict[str, Any] | Autoencoder], config, *,
                    run_dir: str | Path | None = None, resume: bool = False,
                    callbacks: Sequence = (), layer_output: Callable | None = None
                    ) -> tuple[list[Autoencoder], list]:
    """Greedy layer-wise training: layer k on the codes of layers 1…k−1 of ``X`` (n_samples,
    n_features). ``config``: one :class:`~sparseae.train.TrainConfig` or one per layer; ``None``
    trains nothing (the layers keep their random initialization: the control without
    pre-training), and its results are ``None``.
    ``layer_output(layer, inputs)`` → the next layer's inputs (default: the codes,
    :func:`encode_dataset`); given one, the layers need not be MLP layers (e.g. convolutional
    layers handing on their pooled maps, :func:`~sparseae.models.conv_stack.fit_conv_stack`).
    Checkpoints go to ``run_dir/layer<k>``; ``resume`` skips finished layers. Each layer's
    progress bar (``config.progress``) reads ``pretrain layer k/n``.
    Returns the trained layers and their :class:`~sparseae.train.TrainResult`\\ s."""
    if not layers:
        raise ConfigError("a stack needs at least one layer")
    configs = list(config) if isinstance(config, (list, tuple)) else [config] * len(layers)
    if len(configs) != len(layers):
        raise ConfigError(f"{len(layers)} layers but {len(configs)} training configs")
    inputs = as_float_array(X, "X")
    trained, results = [], []
    for k, (spec, layer_config) in enumerate(zip(layers, configs, strict=True)):
        layer = build_layer(spec, inputs.shape[1], k, check=layer_output is None)
        layer_dir = Path(run_dir) / f"layer{k + 1}" if run_dir is not None else None
        results.append(None if layer_config is None else
                       train(layer, inputs, layer_config, run_dir=layer_dir, resume=resume, callbacks=callbacks,
                             progress_label=f"pretrain layer {k + 1}/{len(layers)}"))
        trained.append(layer)
        if k + 1 < len(layers):
            inputs = (layer_output or encode_dataset)(layer, inputs)
    return trained, results


def pretrain_deep_model(model: Autoencoder, X: Any, config, *, layer_model: str = "autoencoder",
                        layer_params: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
                        run_dir: str | Path | None = None, resume: bool = False,
                        callbacks: Sequence = ()) -> list:
    """Greedy layer-wise pre-training of ``model``'s layers (see :func:`layer_specs`), copied into
    it; ``layer_params`` is one dict for every layer or a list of dicts, one per layer.
    Checkpoints in ``run_dir/layer<k>``. Returns each layer's ``TrainResult``."""
    layers, results = pretrain_layers(X, layer_specs(model, layer_model, layer_params), config,
                                      run_dir=run_dir, resume=resume, callbacks=callbacks)
    load_layer_weights(model, layers)
    return results


@dataclass
class StackedResult:
    """What :func:`fit_stacked` did: the pre-trained ``layers`` and their ``pretrain`` results,
    the fine-tuned ``model`` and its ``finetune`` result."""

    model: Autoencoder
    layers: list[Autoencoder] = field(default_factory=list)
    pretrain: list = field(default_factory=list)
    finetune: Any = None


def fit_stacked(X: Any, layers: Sequence[dict[str, Any]], *, pretrain_config, finetune_config=None,
                y: Any = None, X_val: Any = None, y_val: Any = None, n_classes: int | None = None,
                finetune: str = "autoencoder", likelihood: str | None = None,
                model_params: dict[str, Any] | None = None, run_dir: str | Path | None = None,
                resume: bool = False, callbacks: Sequence = (), verbose: bool | None = None) -> StackedResult:
    """Greedy layer-wise pre-training, then fine-tuning of the whole stack, in one call.

    ``layers``: one dict per layer, ``{"name": preset (default "autoencoder"), "n_components":
    h, **preset params}``, e.g. ``[{"name": "denoising_ae", "n_components": 1000, "corruption":
    "masking:0.1"}, …]``. ``finetune``: ``"autoencoder"`` (a :func:`deep_autoencoder`, trained
    on the reconstruction; its likelihood is the first layer's unless ``likelihood`` says),
    ``"classifier"`` (an :func:`mlp_classifier` trained on ``y``; early stopping on the
    validation error when ``finetune_config.n_iter_no_change`` is set) or ``"none"``.
    ``pretrain_config=None`` skips pre-training: the same network fine-tuned from its random
    initialization (the control that measures what pre-training gives).
    ``model_params``: more parameters of that fine-tuned model, e.g. ``{"weight_decay": 1e-4}``.
    Checkpoints go to ``run_dir/pretrain/layer<k>`` and ``run_dir/finetune``.
    ``verbose``: True shows a progress bar per phase on stderr (``pretrain layer k/n``,
    ``fine-tune``), False none; None leaves it to each config's ``progress``.
    """
    check_choice(finetune, "finetune", ("autoencoder", "classifier", "none"))
    if finetune != "none" and finetune_config is None:
        raise ConfigError(f"finetune={finetune!r} needs a finetune_config")
    run_dir = Path(run_dir) if run_dir is not None else None
    if verbose is not None:
        pretrain_config = _with_progress(pretrain_config, bool(verbose))
        finetune_config = _with_progress(finetune_config, bool(verbose))
    trained, pretrain_results = pretrain_layers(
        X, layers, pretrain_config, run_dir=run_dir / "pretrain" if run_dir else None, resume=resume,
        callbacks=callbacks)
    first = trained[0]
    likelihood = likelihood or first.spec.get("params", {}).get("likelihood", "bernoulli")
    sizes = [first.n_features] + [layer.n_components for layer in trained]
    activations = [layer.encoder.activation for layer in trained]
    if len(set(activations[:-1])) > 1:
        raise ConfigError(f"the hidden layers of a stack must share one activation, got {activations}")
    common = dict(hidden=sizes[1:-1], activation=activations[0], likelihood=likelihood)
    fixed = sorted(common.keys() & (model_params or {}).keys())
    if fixed:
        raise ConfigError(f"model_params cannot set {fixed[0]!r}: the pre-trained layers fix it")
    common.update(model_params or {})
    if finetune == "classifier":
        if y is None:
            raise ConfigError("finetune='classifier' needs labels y")
        if activations[-1] != activations[0]:
            raise ConfigError(f"an MLP classifier needs one activation in every layer, got {activations}")
        n_classes = n_classes or int(np.max(np.asarray(y))) + 1
        model = create_model("mlp_classifier", sizes[0], sizes[-1], n_classes=n_classes, **common)
    else:
        model = create_model("deep_autoencoder", sizes[0], sizes[-1], code_activation=activations[-1],
                             **common)
    load_layer_weights(model, trained)
    result = StackedResult(model=model, layers=trained, pretrain=pretrain_results)
    if finetune != "none":
        result.finetune = train(model, X, finetune_config, y=y if finetune == "classifier" else None,
                                X_val=X_val, y_val=y_val if finetune == "classifier" else None,
                                run_dir=run_dir / "finetune" if run_dir else None, resume=resume,
                                callbacks=callbacks, progress_label="fine-tune")
    return result


def _with_progress(config, progress: bool):
    """``config`` (a TrainConfig, a list of them or None) with ``progress`` set."""
    if isinstance(config, (list, tuple)):
        return [_with_progress(each, progress) for each in config]
    return None if config is None else replace(config, progress=progress)



# ------------------------------------------------------ layerwise: convolutional stacks

@dataclass
class ConvStackResult:
    """What :func:`fit_conv_stack` did: the ``extractor``, the trained ``layers`` (models, decoders
    included) and their training ``results``."""

    extractor: ConvFeatureExtractor
    layers: list[ConvAutoencoder]
    results: list = field(default_factory=list)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Each layer to ``path/layer<k>`` (safetensors + JSON, its stage options in ``extra``)."""
        path = Path(path)
        for k, (layer, stage) in enumerate(zip(self.layers, self.extractor.stages, strict=True)):
            save_model(layer, path / f"layer{k + 1}", overwrite=overwrite, extra={"stage": stage.options})
        return path


def load_conv_stack(path: str | Path) -> ConvStackResult:
    """Rebuild a stack saved by :meth:`ConvStackResult.save` (on the CPU, in eval mode)."""
    path = Path(path)
    layers, stages = [], []
    while (path / f"layer{len(layers) + 1}").exists():
        folder = path / f"layer{len(layers) + 1}"
        options = (read_config(folder).get("extra") or {}).get("stage")
        if not isinstance(options, dict):
            raise CheckpointError(f"{folder} is not a layer of a convolutional stack (no stage options)")
        layer = load_model(folder).eval()
        layers.append(layer)
        stages.append(stage_of(layer, **options))
    if not layers:
        raise CheckpointError(f"no convolutional stack at {path}: {path / 'layer1'} does not exist")
    return ConvStackResult(ConvFeatureExtractor(stages).eval(), layers)


def pretrain_conv_layers(X: Any, layers: Sequence[ConvAutoencoder], extractor: ConvFeatureExtractor, config, *,
                         run_dir: str | Path | None = None, resume: bool = False, callbacks: Sequence = ()) -> list:
    """Greedy layer-wise training, in place, of ``layers`` (whose encoders and poolings ``extractor``'s
    stages share) on images ``X`` ``(n_samples, n_features)``: layer 1 on X, layer k on the stage
    outputs of layers 1…k−1. Each stage that feeds another gets the ``output_scale`` that gives its
    outputs on the training set unit RMS (so the next layer's λ does not depend on the scale of the
    one below). ``config``: one :class:`~sparseae.train.TrainConfig` or one per layer; checkpoints
    in ``run_dir/layer<k>``. Returns each layer's :class:`~sparseae.train.TrainResult`."""
    if len(layers) != len(extractor.stages):
        raise ConfigError(f"{len(layers)} layers but {len(extractor.stages)} stages in the extractor "
                          "(one stage per layer)")
    stage_by_layer = {id(model): stage for model, stage in zip(layers, extractor.stages, strict=True)}

    def layer_output(layer: Autoencoder, inputs: np.ndarray) -> np.ndarray:
        stage = stage_by_layer[id(layer)]
        stage.to(next(layer.parameters()).device)  # its own contrast window, if any, too
        stage.output_scale = 1.0
        outputs = transform_rows(stage, inputs)
        rms = float(np.sqrt(np.mean(np.square(outputs, dtype=np.float64))))
        if rms > 0:
            stage.output_scale = 1.0 / rms
            outputs *= np.float32(stage.output_scale)
        return outputs

    _, results = pretrain_layers(X, list(layers), config, run_dir=run_dir, resume=resume, callbacks=callbacks,
                                 layer_output=layer_output)
    return results


def fit_conv_stack(X: Any, layers: Sequence[dict[str, Any]], config, *, image_shape: Sequence[int] | None = None,
                   run_dir: str | Path | None = None, resume: bool = False,
                   callbacks: Sequence = ()) -> ConvStackResult:
    """Build (:func:`build_conv_stack`) and train (:func:`pretrain_conv_layers`) a convolutional stack
    on images ``X`` ``(n_samples, n_features)``. Returns the extractor and the trained layers."""
    X = as_float_array(X, "X")
    models, extractor = build_conv_stack(X.shape[1], layers, image_shape=image_shape)
    results = pretrain_conv_layers(X, models, extractor, config, run_dir=run_dir, resume=resume,
                                   callbacks=callbacks)
    return ConvStackResult(extractor.eval(), models, results)


def fit_conv_stack_layers(model: ConvStack, X: Any, config, *, run_dir: str | Path | None = None,
                          resume: bool = False, callbacks: Sequence = ()) -> list:
    """:func:`pretrain_conv_layers` of a ``conv_stack`` model's layers on images ``X`` ``(n_samples,
    n_features)``; the stages' output scales are written into ``spec`` (a saved model keeps them)."""
    model.refuse_penalties(model.PENALTY_REFUSAL)
    X = as_float_array(X, "X", n_features=model.n_features)
    if model.input_contrast is not None:
        X = local_contrast_normalize(X, model.layers[0].image_shape, sigma=model.input_contrast.sigma)
    results = pretrain_conv_layers(X, list(model.layers), model.encoder, config, run_dir=run_dir,
                                   resume=resume, callbacks=callbacks)
    params = model.spec.get("params", {})
    if isinstance(params.get("layers"), list):  # new dicts: the config's own stay as they were
        params["layers"] = [{**spec, "output_scale": stage.output_scale}
                            for spec, stage in zip(params["layers"], model.encoder.stages, strict=True)]
    return results

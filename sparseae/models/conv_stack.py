"""Stacked convolutional sparse autoencoders: a pre-trained convnet (Kavukcuoglu et al. 2010).

Each layer is a ``conv_sae`` trained on what the layer below hands on: its encoder → L2 pooling
over pools of maps → optional spatial max/average pooling (a :class:`FeatureStage`). After
greedy training (:func:`~sparseae.models.deep.pretrain_layers` with the stages as the layer
outputs) the stages, in order, are a :class:`ConvFeatureExtractor`: images ``(batch,
n_features)`` → invariant features ``(batch, G·H·W)``.

    result = fit_conv_stack(X, [{"n_components": 16, "kernel_size": 7, "pools": {...}},
                                {"n_components": 32, "kernel_size": 5, "padding": 2}],
                            TrainConfig(max_epochs=5), image_shape=(28, 28))
    features = result.extractor.transform(X)          # (n_samples, G2·H2·W2)
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..nn.contrast import LocalContrastNorm
from ..nn.convolutional import ConvEncoder
from ..nn.pooling import SPATIAL_POOLING, MapPooling, spatial_pool
from ..validation import as_float_array, check_choice, check_number
from .base import MODELS, Autoencoder, create_model
from .convolutional import ConvAutoencoder
from .deep import pretrain_layers

#: Keys of a layer dict that describe the stage's spatial pooling, not the layer model.
STAGE_KEYS = ("spatial_pool", "pool_size", "pool_stride", "contrast_sigma", "output_scale")


@torch.no_grad()
def transform_rows(module: nn.Module, X: Any, batch_size: int = 512) -> np.ndarray:
    """``module`` applied to the rows of ``X`` batch by batch, in eval mode, on the module's
    device: float32 array ``(n_samples, n_outputs)`` (outputs flattened)."""
    X = as_float_array(X, "X", n_features=module.n_features)
    parameter = next(module.parameters())
    was_training = module.training
    module.eval()
    try:
        parts = [module(torch.as_tensor(X[start:start + batch_size]).to(parameter)).flatten(1).float().cpu().numpy()
                 for start in range(0, X.shape[0], batch_size)]
    finally:
        module.train(was_training)
    return np.concatenate(parts, axis=0)


class FeatureStage(nn.Module):
    """One layer of the extractor: x ``(batch, C·H·W)`` → ``s · LCN(spatial_pool(L2pool(encoder.maps(x))))``
    ``(batch, G, H'', W'')``. ``spatial_pool``: none | max | avg over ``pool_size``² windows every
    ``pool_stride`` (default ``pool_size``) positions; ``contrast_sigma``: the width of a
    :class:`~sparseae.nn.contrast.LocalContrastNorm` of the pooled maps (None: none; Jarrett et al.
    2009); ``output_scale`` s: a fixed factor (:func:`fit_conv_stack` sets it so that the
    outputs have unit RMS on the training set)."""

    def __init__(self, encoder: ConvEncoder, pooling: MapPooling, spatial_pool: str = "none",
                 pool_size: int = 2, pool_stride: int | None = None, contrast_sigma: float | None = None,
                 output_scale: float = 1.0) -> None:
        super().__init__()
        check_choice(spatial_pool, "spatial_pool", SPATIAL_POOLING)
        check_number(pool_size, "pool_size", low=1, integer=True)
        if pool_stride is not None:
            check_number(pool_stride, "pool_stride", low=1, integer=True)
        check_number(output_scale, "output_scale", low=0.0, low_inclusive=False)
        self.encoder, self.pooling = encoder, pooling
        self.spatial_pool, self.pool_size, self.pool_stride = spatial_pool, int(pool_size), pool_stride
        self.contrast = LocalContrastNorm(contrast_sigma) if contrast_sigma is not None else None
        self.output_scale = float(output_scale)
        self.n_features = encoder.n_features
        with torch.no_grad():
            probe = torch.zeros(1, self.n_features, dtype=encoder.weight.dtype, device=encoder.weight.device)
            self.output_shape = tuple(self(probe).shape[1:])
        self.n_outputs = math.prod(self.output_shape)

    @property
    def options(self) -> dict[str, Any]:
        """The stage's keys of a layer dict (:data:`STAGE_KEYS`)."""
        return {"spatial_pool": self.spatial_pool, "pool_size": self.pool_size, "pool_stride": self.pool_stride,
                "contrast_sigma": None if self.contrast is None else self.contrast.sigma,
                "output_scale": self.output_scale}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = spatial_pool(self.pooling(self.encoder.maps(x)), self.spatial_pool, self.pool_size,
                              self.pool_stride)
        if self.contrast is not None:
            pooled = self.contrast(pooled)
        return pooled * self.output_scale if self.output_scale != 1.0 else pooled

    def extra_repr(self) -> str:
        return f"output {self.output_shape}, spatial_pool={self.spatial_pool}"


class ConvFeatureExtractor(nn.Module):
    """Stages applied in turn: x ``(batch, n_features)`` → the last stage's features, flattened
    ``(batch, G·H·W)`` (``flatten=False``: ``(batch, G, H, W)``)."""

    def __init__(self, stages: Sequence[FeatureStage]) -> None:
        super().__init__()
        if not stages:
            raise ConfigError("a feature extractor needs at least one stage")
        self.stages = nn.ModuleList(stages)
        for below, above in zip(self.stages[:-1], self.stages[1:]):
            if below.n_outputs != above.n_features:
                raise ConfigError(f"a stage giving {below.output_shape} cannot feed one taking "
                                  f"{above.n_features} inputs")
        self.n_features = self.stages[0].n_features
        self.output_shape = self.stages[-1].output_shape
        self.n_outputs = self.stages[-1].n_outputs

    def forward(self, x: torch.Tensor, flatten: bool = True) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x.flatten(1))
        return x.flatten(1) if flatten else x

    def transform(self, X: Any, batch_size: int = 512) -> np.ndarray:
        """Features of every row of ``X`` ``(n_samples, n_features)`` → float32 ``(n_samples, n_outputs)``."""
        return transform_rows(self, X, batch_size)


def stage_of(layer: ConvAutoencoder, spatial_pool: str = "none", pool_size: int = 2,
             pool_stride: int | None = None, contrast_sigma: float | None = None,
             output_scale: float = 1.0) -> FeatureStage:
    """The feature stage of a convolutional layer model (sharing its encoder and pooling)."""
    if not isinstance(layer, ConvAutoencoder):
        raise ConfigError(f"a convolutional stack is made of conv_sae layers, not "
                          f"{layer.spec.get('name', type(layer).__name__)!r}")
    return FeatureStage(layer.encoder, layer.pooling, spatial_pool, pool_size, pool_stride, contrast_sigma,
                        output_scale)


def build_conv_stack(n_features: int, layers: Sequence[dict[str, Any]], *,
               image_shape: Sequence[int] | None = None) -> tuple[list[ConvAutoencoder], ConvFeatureExtractor]:
    """Untrained layer models and the extractor over their encoders (a random-weights network of
    the stack's shape, until the layers are trained).

    ``layers``: one dict per layer, ``{"name": "conv_sae" (default), "n_components": maps,
    **conv_sae params, "spatial_pool": ..., "pool_size": ..., "pool_stride": ...,
    "contrast_sigma": ...}`` (the last four: the :class:`FeatureStage`'s options). The first
    layer reads images of ``image_shape``; layer k > 1 reads the (G, H, W) output of stage k − 1.
    """
    if isinstance(layers, dict) or not layers:
        raise ConfigError("a convolutional stack needs a non-empty list of layer dicts")
    models: list[ConvAutoencoder] = []
    stages: list[FeatureStage] = []
    n_inputs, shape = n_features, image_shape
    for k, spec in enumerate(layers):
        if not isinstance(spec, dict) or "n_components" not in spec:
            raise ConfigError(f"layer {k + 1} must be a dict with 'n_components' (the number of maps), got {spec!r}")
        params = dict(spec)
        name, n_components = params.pop("name", "conv_sae"), params.pop("n_components")
        options = {key: params.pop(key) for key in STAGE_KEYS if key in params}
        if k > 0 and params.get("image_shape") not in (None, list(shape)):
            raise ConfigError(f"layer {k + 1} reads the {list(shape)} output of layer {k}, not image_shape "
                              f"{params['image_shape']}")
        if "image_shape" not in inspect.signature(MODELS.get(name)).parameters:
            raise ConfigError(f"a convolutional stack is made of conv_sae layers, not {name!r}")
        params["image_shape"] = params.get("image_shape", shape if shape is None else list(shape))
        model = create_model(name, n_inputs, n_components, **params)
        stage = stage_of(model, **options)
        models.append(model)
        stages.append(stage)
        n_inputs, shape = stage.n_outputs, stage.output_shape
    return models, ConvFeatureExtractor(stages)


@dataclass
class ConvStackResult:
    """What :func:`fit_conv_stack` did: the ``extractor``, the trained ``layers`` (models, decoders
    included) and their training ``results``."""

    extractor: ConvFeatureExtractor
    layers: list[ConvAutoencoder]
    results: list = field(default_factory=list)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Each layer to ``path/layer<k>`` (safetensors + JSON, its stage options in ``extra``)."""
        from ..io import save_model

        path = Path(path)
        for k, (layer, stage) in enumerate(zip(self.layers, self.extractor.stages)):
            save_model(layer, path / f"layer{k + 1}", overwrite=overwrite, extra={"stage": stage.options})
        return path


def load_conv_stack(path: str | Path) -> ConvStackResult:
    """Rebuild a stack saved by :meth:`ConvStackResult.save` (on the CPU, in eval mode)."""
    from ..io import load_model, read_config

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


def fit_conv_stack(X: Any, layers: Sequence[dict[str, Any]], config, *, image_shape: Sequence[int] | None = None,
                   run_dir: str | Path | None = None, resume: bool = False,
                   callbacks: Sequence = ()) -> ConvStackResult:
    """Greedy layer-wise training of a convolutional stack on images ``X`` ``(n_samples, n_features)``:
    layer 1 on X, layer k on the stage outputs of layers 1…k−1 (see :func:`build_conv_stack` for
    ``layers``). Each stage that feeds another gets the ``output_scale`` that gives its outputs on the
    training set unit RMS (so the next layer's λ does not depend on the scale of the one below).
    ``config``: one :class:`~sparseae.train.TrainConfig` or one per layer; checkpoints in
    ``run_dir/layer<k>``. Returns the extractor and the trained layers."""
    X = as_float_array(X, "X")
    models, extractor = build_conv_stack(X.shape[1], layers, image_shape=image_shape)
    stage_by_layer = {id(model): stage for model, stage in zip(models, extractor.stages)}

    def layer_output(layer: Autoencoder, inputs: np.ndarray) -> np.ndarray:
        stage = stage_by_layer[id(layer)]
        stage.output_scale = 1.0
        outputs = transform_rows(stage, inputs)
        rms = float(np.sqrt(np.mean(np.square(outputs, dtype=np.float64))))
        if rms > 0:
            stage.output_scale = 1.0 / rms
            outputs *= np.float32(stage.output_scale)
        return outputs

    trained, results = pretrain_layers(X, models, config, run_dir=run_dir, resume=resume, callbacks=callbacks,
                                       layer_output=layer_output)
    return ConvStackResult(extractor.eval(), trained, results)

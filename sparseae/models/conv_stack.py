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
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..inference import map_rows
from ..nn.contrast import LocalContrastNorm
from ..nn.convolutional import ConvEncoder
from ..nn.pooling import SPATIAL_POOLING, MapPooling, spatial_pool
from ..validation import as_float_array, check_choice, check_number
from .base import MODELS, Autoencoder, Energy, create_model
from .convolutional import ConvAutoencoder

#: Keys of a layer dict that describe the stage's spatial pooling, not the layer model.
STAGE_KEYS = ("spatial_pool", "pool_size", "pool_stride", "contrast_sigma", "output_scale")


def transform_rows(module: nn.Module, X: Any, batch_size: int = 512) -> np.ndarray:
    """``module`` applied to the rows of ``X`` batch by batch, in eval mode, on the module's
    device: float32 array ``(n_samples, n_outputs)`` (outputs flattened)."""
    X = as_float_array(X, "X", n_features=module.n_features)
    return map_rows(module, X, lambda rows: module(rows).flatten(1), batch_size=batch_size)


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
        for below, above in zip(self.stages[:-1], self.stages[1:], strict=True):
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
        try:
            model = create_model(name, n_inputs, n_components, **params)
            stage = stage_of(model, **options)
        except ConfigError as exc:  # say which layer, and what it reads
            reads = f"images of {n_inputs} values" if k == 0 else f"the {list(shape)} output of layer {k}"
            raise ConfigError(f"layer {k + 1} of the stack (reading {reads}): {exc}") from None
        models.append(model)
        stages.append(stage)
        n_inputs, shape = stage.n_outputs, stage.output_shape
    return models, ConvFeatureExtractor(stages)


class ConvStack(Autoencoder):
    """A pre-trained convnet as one model (``conv_stack``), saved and loaded like any other.

    ``layers``: the ``conv_sae`` models; :attr:`encoder`: the :class:`ConvFeatureExtractor` over
    their encoders and poolings, x ``(batch, n_features)`` → features ``(batch, G·H·W)``
    (``encode``; ``n_components`` = G·H·W). :func:`~sparseae.train.procedures.fit_conv_stack_layers`
    trains the layers greedily; :meth:`loss` is the sum of the layers' own losses, each on the
    output of the stages below it. The features have no decoder (``can_decode`` is False:
    ``decode`` refuses); :attr:`decoder` is the first layer's (its filters are the ones drawn). The stack has no
    penalty of its own (a penalty added to its ``penalties`` is a ConfigError): each layer is
    trained with its own, set in its layer dict (``sparsity_weight``, ``weight_decay``)."""

    can_decode = False
    training_procedure: ClassVar[str] = "layerwise"
    #: Why a penalty on the stack itself is refused.
    PENALTY_REFUSAL = ("its layers are trained one by one, each with its own penalties: set them in the "
                       "layer dicts of model.layers (sparsity_weight, weight_decay)")

    def __init__(self, layers: Sequence[ConvAutoencoder], extractor: ConvFeatureExtractor,
                 contrast_sigma: float | None = None) -> None:
        nn.Module.__init__(self)  # not Autoencoder's: every part is a layer's
        self.layers = nn.ModuleList(layers)
        # The extractor shares the layers' encoders and poolings: kept out of the module tree so that
        # the state dict holds each tensor once; its own contrast windows are registered below.
        object.__setattr__(self, "_extractor", extractor)
        self.input_contrast = LocalContrastNorm(contrast_sigma) if contrast_sigma is not None else None
        self.stage_contrasts = nn.ModuleList(stage.contrast for stage in extractor.stages
                                             if stage.contrast is not None)
        self.penalties = nn.ModuleDict()
        self.constraints: list = []
        self.corruption = self.code_noise = None
        self.spec: dict[str, Any] = {}

    @property
    def encoder(self) -> ConvFeatureExtractor:
        return self._extractor

    @property
    def decoder(self) -> nn.Module:
        return self.layers[0].decoder

    @property
    def n_features(self) -> int:
        return self._extractor.n_features

    @property
    def n_components(self) -> int:
        return self._extractor.n_outputs

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The images as layer 1 reads them: x ``(batch, n_features)``, locally contrast-normalized
        when the model has ``contrast_sigma``."""
        if self.input_contrast is None:
            return x
        return self.input_contrast(x.reshape(-1, *self.layers[0].image_shape)).flatten(1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The top stage's features ``(batch, G·H·W)`` of images x ``(batch, n_features)``."""
        return self._extractor(self.normalize_input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise ConfigError("a conv_stack's pooled features cannot be decoded; each layer decodes its own "
                          "maps (model.layers[k])")

    def energy(self, x: torch.Tensor, x_input: torch.Tensor | None = None, *,
               reconstruction_weight: float = 1.0) -> Energy:
        """Σ_k of layer k's loss on the output of stages 1…k−1 of x ``(batch, n_features)``, the
        gradient flowing through them (an end-to-end objective; the greedy training is
        :func:`~sparseae.train.procedures.fit_conv_stack_layers`); ``terms`` add up the layers'
        terms of one name."""
        self.refuse_penalties(self.PENALTY_REFUSAL)
        inputs = self.normalize_input(x)
        total, terms = 0.0, {}
        for k, (layer, stage) in enumerate(zip(self.layers, self._extractor.stages, strict=True)):
            out = layer.loss(inputs, reconstruction_weight=reconstruction_weight)
            total = total + out.loss
            for name, value in out.terms.items():
                terms[name] = terms.get(name, 0.0) + value
            if k + 1 < len(self.layers):
                inputs = stage(inputs).flatten(1)
        return Energy(None, total, terms)

    def set_full_batch(self, full_batch: bool) -> None:
        for layer in self.layers:
            layer.set_full_batch(full_batch)

    @torch.no_grad()
    def project_gradients(self) -> None:
        for layer in self.layers:
            layer.project_gradients()

    @torch.no_grad()
    def apply_constraints(self) -> None:
        for layer in self.layers:
            layer.apply_constraints()



@MODELS.register("conv_stack")
def conv_stack(n_features: int, n_components: int, *, layers: Sequence[dict[str, Any]] | None = None,
               image_shape: Sequence[int] | None = None, contrast_sigma: float | None = None) -> ConvStack:
    """Stacked ``conv_sae`` layers: a convnet pre-trained layer by layer (Kavukcuoglu et al. 2010).

    ``layers``: one dict per layer as for :func:`build_conv_stack` (``conv_sae`` parameters and the
    stage's ``spatial_pool``, ``pool_size``, ``pool_stride``, ``contrast_sigma``); the top layer's
    maps are ``n_components`` (its dict may leave them out). ``image_shape``: (H, W) or (C, H, W)
    of an input row. ``contrast_sigma``: local contrast normalization of the input images (the
    width of its Gaussian window; Jarrett et al. 2009), None: none. ``encode`` gives the top
    stage's features, flattened."""
    if isinstance(layers, (str, bytes, dict)) or not isinstance(layers, Sequence) or not layers:
        raise ConfigError("conv_stack needs layers: a list of conv_sae layer dicts, e.g. "
                          "[{n_components: 16, kernel_size: 7, spatial_pool: max}, {kernel_size: 5}]")
    layers = [dict(spec) if isinstance(spec, dict) else spec for spec in layers]
    top = layers[-1]
    if isinstance(top, dict) and top.setdefault("n_components", n_components) != n_components:
        raise ConfigError(f"the top layer has {top['n_components']} maps but n_components is {n_components}: "
                          "they are one number (set model.n_components, leave it out of the top layer)")
    if contrast_sigma is not None:
        check_number(contrast_sigma, "contrast_sigma", low=0.0, low_inclusive=False)
    models, extractor = build_conv_stack(n_features, layers, image_shape=image_shape)
    return ConvStack(models, extractor, contrast_sigma)

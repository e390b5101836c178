"""Deep autoencoders and greedy layer-wise pre-training (Hinton & Salakhutdinov 2006; Bengio et
al. 2007; Vincent et al. 2010 — the stacked denoising autoencoder).

A stack of one-hidden-layer autoencoders (any preset whose encoder is ``s(Wx + b)`` and whose
decoder is linear: sparse, denoising, contractive…) is trained greedily: layer k learns to
reconstruct the codes of layers 1…k−1 (computed clean, in eval mode). The trained layers then
initialize either

* a deep autoencoder (:func:`deep_autoencoder`): encoder ``f = f_L ∘ … ∘ f_1``, decoder the
  mirror ``g = g_1 ∘ s ∘ g_2 ∘ … ∘ s ∘ g_L``, fine-tuned end to end on the reconstruction, or
* an MLP classifier (:func:`mlp_classifier`): the encoder plus a softmax layer, fine-tuned on the
  labels (cross-entropy; the decoder is kept but not run).

:func:`fit_stacked` runs the whole procedure in one call.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.activations import ACTIVATIONS, get_activation
from ..nn.corruption import make_corruption
from ..nn.decoders import LinearDecoder
from ..nn.encoders import LinearEncoder
from ..nn.heads import LinearClassifierHead
from ..nn.likelihoods import make_likelihood
from ..nn.penalties import Penalty, WeightDecay
from ..validation import check_choice, check_number
from .autoencoders import make_code_noise
from .base import MODELS, Autoencoder, create_model
from .supervised import SupervisedAutoencoder


class MLPEncoder(nn.Module):
    """``f(x) = s_L(W_L … s_1(W_1 x + b_1) … + b_L)``: a stack of :class:`LinearEncoder`\\ s.

    sizes: [n_features, h_1, …, n_components]; activations: one per layer.
    ``code_noise_std`` σ (a Python float: reading it costs no device sync): in training, N(0, σ²) noise is added to
    the code layer's input before its activation — with a sigmoid code layer this drives the
    codes to 0/1 (semantic hashing, Salakhutdinov & Hinton 2009); :class:`CodeNoiseSchedule`
    raises σ epoch by epoch.
    """

    def __init__(self, sizes: Sequence[int], activations: Sequence[str], code_noise_std: float = 0.0) -> None:
        super().__init__()
        if len(activations) != len(sizes) - 1:
            raise ConfigError(f"{len(sizes) - 1} layers need {len(sizes) - 1} activations, got {len(activations)}")
        self.layers = nn.ModuleList(LinearEncoder(a, b, act)
                                    for a, b, act in zip(sizes[:-1], sizes[1:], activations, strict=True))
        self.n_features, self.n_components = sizes[0], sizes[-1]
        check_number(code_noise_std, "code_noise_std", low=0.0)
        self.code_noise_std = float(code_noise_std)

    @property
    def activation(self) -> str:
        return self.layers[-1].activation

    @property
    def code_range(self) -> tuple[float, float] | None:
        return self.layers[-1].code_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *hidden, top = self.layers  # (slicing a ModuleList builds a new one each step)
        for layer in hidden:
            x = layer(x)
        if not self.training or self.code_noise_std == 0:
            return top(x)
        a = top.preactivation(x)
        return top._act(a + self.code_noise_std * torch.randn_like(a))

    def extra_repr(self) -> str:
        return " -> ".join(str(s) for s in [self.n_features] + [layer.n_components for layer in self.layers])


class MLPDecoder(nn.Module):
    """The mirror of an :class:`MLPEncoder`: ``η = V_1 s_1(V_2 s_2(… V_L z + c_L …) + c_2) + c_1``.

    ``layers[k]`` maps sizes[k+1] → sizes[k]; the output of layer k ≥ 1 goes through
    ``activations[k − 1]`` (the activation of the encoder layer that produced that size);
    the last output η goes to the likelihood.
    """

    def __init__(self, sizes: Sequence[int], activations: Sequence[str]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(LinearDecoder(b, a) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.activations = list(activations[:-1])
        for name in self.activations:
            get_activation(name)
        self.n_features, self.n_components = sizes[0], sizes[-1]

    @property
    def weight(self) -> torch.Tensor:
        """The first layer's weight (n_features, h_1): the "filters" seen in input space."""
        return self.layers[0].weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for k in range(len(self.layers) - 1, -1, -1):
            z = self.layers[k](z)
            if k > 0:
                z = ACTIVATIONS[self.activations[k - 1]](z)
        return z


class DeepAutoencoder(Autoencoder):
    """An :class:`Autoencoder` over an :class:`MLPEncoder` and its mirror :class:`MLPDecoder`:
    pre-trained greedily layer by layer, then fine-tuned whole."""

    training_procedure: ClassVar[str] = "pretrain_finetune"


class MLPClassifier(SupervisedAutoencoder):
    """A :class:`SupervisedAutoencoder` over an :class:`MLPEncoder` (``mlp_classifier``): pre-trained
    greedily as a deep autoencoder, then fine-tuned on the labels."""

    training_procedure: ClassVar[str] = "pretrain_finetune"


def _sizes(n_features: int, n_components: int, hidden: Sequence[int]) -> list[int]:
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise ConfigError(f"hidden must be a list of layer sizes, got {hidden!r}")
    hidden = list(hidden)
    for size in hidden:
        check_number(size, "hidden layer size", low=1, integer=True)
    return [n_features, *hidden, n_components]


def _activations(n_layers: int, activation: str, code_activation: str | None) -> list[str]:
    check_choice(activation, "activation", tuple(ACTIVATIONS))
    code_activation = activation if code_activation is None else code_activation
    check_choice(code_activation, "code_activation", tuple(ACTIVATIONS))
    return [activation] * (n_layers - 1) + [code_activation]


@MODELS.register("deep_autoencoder")
def deep_autoencoder(n_features: int, n_components: int, *, hidden: Sequence[int] = (1000, 500, 250),
                     activation: str = "sigmoid", code_activation: str | None = "identity",
                     likelihood: str = "bernoulli", corruption: str | None = None,
                     code_noise: float = 0.0, weight_decay: float = 0.0) -> Autoencoder:
    """Deep autoencoder n_features-hidden…-n_components and its mirror (defaults: Hinton &
    Salakhutdinov's 784-1000-500-250-30 with logistic units, a linear code layer and
    cross-entropy). ``code_activation`` None uses ``activation``; ``corruption``, ``code_noise``
    as for :func:`~sparseae.models.autoencoders.autoencoder`."""
    sizes = _sizes(n_features, n_components, hidden)
    activations = _activations(len(sizes) - 1, activation, code_activation)
    check_number(weight_decay, "weight_decay", low=0.0)
    penalties: dict[str, Penalty] = {"weight_decay": WeightDecay(weight_decay)} if weight_decay > 0 else {}
    return DeepAutoencoder(MLPEncoder(sizes, activations), MLPDecoder(sizes, activations),
                       make_likelihood(likelihood, n_features), penalties,
                       corruption=make_corruption(corruption), code_noise=make_code_noise(code_noise, 0.0))


@MODELS.register("semantic_hashing")
def semantic_hashing(n_features: int, n_components: int, *, hidden: Sequence[int] = (500, 500),
                     activation: str = "sigmoid", likelihood: str = "bernoulli",
                     code_noise_std: float = 4.0) -> Autoencoder:
    """Deep autoencoder whose sigmoid code layer is driven binary (Salakhutdinov & Hinton 2009):
    N(0, σ²) noise, σ = ``code_noise_std``, is added before the code sigmoid in training, so only
    saturated codes survive it; ``n_components`` is the number of bits. Threshold the codes at 0.5
    (:func:`sparseae.retrieval.binarize`) to hash. Pre-train layer by layer with a small σ or
    none and raise it during fine-tuning with :class:`CodeNoiseSchedule`."""
    sizes = _sizes(n_features, n_components, hidden)
    activations = _activations(len(sizes) - 1, activation, "sigmoid")
    return DeepAutoencoder(MLPEncoder(sizes, activations, code_noise_std=code_noise_std),
                           MLPDecoder(sizes, activations), make_likelihood(likelihood, n_features))


@MODELS.register("mlp_classifier")
def mlp_classifier(n_features: int, n_components: int, *, n_classes: int = 10,
                   hidden: Sequence[int] = (), activation: str = "sigmoid",
                   likelihood: str = "bernoulli", reconstruction_weight: float = 0.0,
                   classification_weight: float = 1.0, corruption: str | None = None,
                   dropout: float = 0.0, weight_decay: float = 0.0) -> SupervisedAutoencoder:
    """An MLP n_features-hidden…-n_components-n_classes (softmax output) with the mirror decoder
    kept, so that it can be pre-trained as a deep autoencoder and fine-tuned as a classifier
    (Rifai et al. 2011; the stacked DAE). With ``reconstruction_weight`` 0 (default) labelled
    training is the plain cross-entropy of the MLP; > 0 keeps the reconstruction as a regularizer.
    ``dropout`` applies to the top hidden layer before the softmax in training. ``weight_decay``
    λ adds (λ/2)Σ‖W‖² over the encoder's and the head's weight matrices (and the decoder's when
    ``reconstruction_weight`` > 0), the L2 term of the Theano tutorial's MLP."""
    check_number(n_classes, "n_classes", low=2, integer=True)
    check_number(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)
    check_number(weight_decay, "weight_decay", low=0.0)
    sizes = _sizes(n_features, n_components, hidden)
    activations = _activations(len(sizes) - 1, activation, None)
    head: nn.Module = LinearClassifierHead(n_components, n_classes, normalize_code=False)
    if dropout > 0:
        head = DropoutHead(head, dropout)
    encoder, decoder = MLPEncoder(sizes, activations), MLPDecoder(sizes, activations)
    penalties: dict[str, Penalty] = {}
    if weight_decay > 0:
        parts = {"encoder": encoder, "head": head}
        if reconstruction_weight > 0:
            parts["decoder"] = decoder
        penalties["weight_decay"] = WeightDecay(weight_decay, names=[
            f"{part}.{name}" for part, module in parts.items()
            for name, parameter in module.named_parameters() if parameter.ndim >= 2])
    return MLPClassifier(encoder, decoder, make_likelihood(likelihood, n_features), head,
                         penalties, classification_weight=classification_weight,
                         reconstruction_weight=reconstruction_weight, corruption=make_corruption(corruption))


class DropoutHead(nn.Module):
    """Dropout on the code, then a classifier head (training mode only)."""

    def __init__(self, head: LinearClassifierHead, p: float) -> None:
        super().__init__()
        self.dropout, self.head = nn.Dropout(p), head
        self.n_classes = head.n_classes

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(z))


# --------------------------------------------------------------------------- greedy pre-training

def check_stackable(layer: Autoencoder, index: int) -> None:
    """A layer can be stacked when its encoder is ``s(Wx + b)`` and its decoder linear."""
    if not isinstance(layer.encoder, LinearEncoder) or not isinstance(layer.decoder, LinearDecoder):
        raise ConfigError(f"layer {index + 1} ({layer.spec.get('name', type(layer).__name__)}) cannot be "
                          "stacked: a layer needs a linear encoder with an activation and a linear decoder")


def build_layer(spec: dict[str, Any] | Autoencoder, n_inputs: int, index: int, *,
                check: bool = True) -> Autoencoder:
    """A layer model from ``{"name": preset, "n_components": h, **params}`` or a model;
    ``check``: it must be stackable into an MLP (:func:`check_stackable`)."""
    if isinstance(spec, Autoencoder):
        layer = spec
    else:
        if not isinstance(spec, dict) or "n_components" not in spec:
            raise ConfigError(f"layer {index + 1} must be a dict with 'n_components' (and optionally "
                              f"'name' and the preset's parameters), got {spec!r}")
        params = dict(spec)
        name, n_components = params.pop("name", "autoencoder"), params.pop("n_components")
        layer = create_model(name, n_inputs, n_components, **params)
    if layer.n_features != n_inputs:
        raise ConfigError(f"layer {index + 1} takes {layer.n_features} inputs but the layer below "
                          f"gives {n_inputs}")
    if check:
        check_stackable(layer, index)
    return layer


@torch.no_grad()
def load_layer_weights(model: Autoencoder, layers: Sequence[Autoencoder]) -> Autoencoder:
    """Copy pre-trained layers into a deep model whose encoder is an :class:`MLPEncoder` of the
    same sizes (and its mirror decoder). Tied layer decoders are copied untied. Returns ``model``."""
    encoder, decoder = model.encoder, model.decoder
    if not isinstance(encoder, MLPEncoder) or len(encoder.layers) != len(layers):
        raise ConfigError(f"the deep model has {len(encoder.layers) if isinstance(encoder, MLPEncoder) else 0} layers, "
                          f"the stack {len(layers)}")
    for k, layer in enumerate(layers):
        target = encoder.layers[k]
        if target.weight.shape != layer.encoder.weight.shape or target.activation != layer.encoder.activation:
            raise ConfigError(f"layer {k + 1}: pre-trained {tuple(layer.encoder.weight.shape)} "
                              f"{layer.encoder.activation} does not match the deep model's "
                              f"{tuple(target.weight.shape)} {target.activation}")
        target.weight.copy_(layer.encoder.weight)
        target.bias.copy_(layer.encoder.bias)
        mirror = decoder.layers[k]
        mirror.weight_.copy_(layer.decoder.weight)
        if mirror.bias is not None and layer.decoder.bias is not None:
            mirror.bias.copy_(layer.decoder.bias)
    return model


def layer_specs(model: Autoencoder, layer_model: str = "autoencoder",
                layer_params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The layers a deep model (an :class:`MLPEncoder`) is pre-trained as: one
    ``{"name": layer_model, "n_components": size, "activation": its activation, **params}``
    per encoder layer. ``layer_params``: one mapping for every layer, or a list of mappings,
    one per layer (e.g. masking 0.1 / 0.2 / 0.3 for layers 1 / 2 / 3)."""
    if not isinstance(model.encoder, MLPEncoder):
        raise ConfigError(f"greedy layer-wise pre-training needs a deep model (deep_autoencoder, "
                          f"mlp_classifier), not {model.spec.get('name', type(model).__name__)!r}")
    per_layer = per_layer_params(layer_params, len(model.encoder.layers))
    return [{"name": layer_model, "n_components": layer.n_components, "activation": layer.activation, **params}
            for layer, params in zip(model.encoder.layers, per_layer, strict=True)]


def per_layer_params(layer_params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
                     n_layers: int, where: str = "layer_params") -> list[dict[str, Any]]:
    """``layer_params`` as ``n_layers`` dicts: a mapping (or None) is repeated for every layer, a
    list must hold one mapping per layer. :class:`ConfigError` for a wrong length, an entry that
    is not a mapping, or a key the deep model itself sets (``name``, ``n_components``, ``activation``)."""
    if layer_params is None or isinstance(layer_params, Mapping):
        entries = [dict(layer_params or {})] * n_layers
    elif isinstance(layer_params, (list, tuple)):
        if len(layer_params) != n_layers:
            raise ConfigError(f"{where} lists {len(layer_params)} layers' parameters but the deep model has "
                              f"{n_layers} layers: give one mapping per layer, or one mapping for all")
        bad = [k for k, entry in enumerate(layer_params) if not isinstance(entry, Mapping)]
        if bad:
            raise ConfigError(f"{where}[{bad[0]}] must be a mapping of the layer preset's parameters, "
                              f"got {layer_params[bad[0]]!r}")
        entries = [dict(entry) for entry in layer_params]
    else:
        raise ConfigError(f"{where} must be a mapping of the layer preset's parameters or a list of them "
                          f"(one per layer), got {layer_params!r}")
    for k, params in enumerate(entries):
        reserved = sorted({"n_components", "name", "activation"} & set(params))
        if reserved:
            at = where if isinstance(layer_params, Mapping) or layer_params is None else f"{where}[{k}]"
            raise ConfigError(f"{at} cannot set {', '.join(reserved)}: the deep model's sizes and "
                              "activations and the layer_model say them")
    return entries



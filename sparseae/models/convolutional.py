"""Convolutional sparse autoencoder with L2 pooling over groups of feature maps (``conv_sae``).

Kavukcuoglu, Ranzato, Fergus & LeCun 2009 ("Learning invariant features through topographic
filter maps") and Kavukcuoglu et al. 2010 ("Learning convolutional feature hierarchies"): the
encoder is convolution → ReLU → a positive gain per map, the decoder a transposed convolution
with unit-norm filters, and the sparsity penalty is the L2 norm of pools of maps at every
location ("complex cells"):

    E = ½‖x − Σ_m D_m ⊛ z_m − c‖² + λ Σ_{h,w} Σ_g √(Σ_{m∈g} w_gm z_m[h, w]² + ε)

After training the encoder with its L2 pooling is a feature extractor
(:meth:`ConvAutoencoder.pooled_features`); :mod:`.conv_stack` stacks such layers.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError
from ..groups import GroupStructure, make_groups
from ..nn.constraints import NormConstraint
from ..nn.convolutional import ConvEncoder, ConvTransposeDecoder, image_geometry
from ..nn.corruption import make_corruption
from ..nn.likelihoods import make_likelihood
from ..nn.penalties import Penalty, WeightDecay
from ..nn.pooling import MapGroupSparsityPenalty, MapPooling
from ..validation import check_number
from .base import MODELS, Autoencoder

#: Pools used when a convolutional model is given no ``pools``: disjoint pools of this many maps.
DEFAULT_POOL_SIZE = 4


def map_pools(spec: dict[str, Any] | None, n_maps: int) -> GroupStructure:
    """The pools of feature maps from a :func:`~sparseae.groups.make_groups` spec, checked to cover
    ``n_maps`` maps. A disjoint spec may leave out ``n_components`` (it is ``n_maps``); None gives
    disjoint pools of :data:`DEFAULT_POOL_SIZE` maps."""
    if spec is None:
        if n_maps % DEFAULT_POOL_SIZE:
            raise ConfigError(f"{n_maps} feature maps do not split into the default pools of {DEFAULT_POOL_SIZE}; "
                              "give pools, e.g. {'kind': 'grid', 'height': 1, 'width': "
                              f"{n_maps}, 'window': [1, 2]}} (1-D windows of 2 maps)")
        spec = {"kind": "disjoint", "group_size": DEFAULT_POOL_SIZE}
    if isinstance(spec, dict) and spec.get("kind") == "disjoint" and "n_components" not in spec:
        spec = {**spec, "n_components": n_maps}
    structure = make_groups(spec)
    if structure.n_components != n_maps:
        raise ConfigError(f"the {structure.kind} pools cover {structure.n_components} feature maps, but the "
                          f"model has {n_maps} (n_components)")
    return structure


class ConvAutoencoder(Autoencoder):
    """An :class:`Autoencoder` over images whose code is feature maps: ``encoder`` a
    :class:`~sparseae.nn.convolutional.ConvEncoder`, ``decoder`` a transposed convolution,
    ``pooling`` the L2 pooling over pools of maps. ``encode`` gives the flattened maps
    ``(batch, M·H'·W')``; :meth:`maps` and :meth:`pooled_features` keep their shape."""

    def __init__(self, encoder: ConvEncoder, decoder: ConvTransposeDecoder, likelihood,
                 pooling: MapPooling, penalties: dict[str, Penalty] | None = None,
                 constraints: Sequence = (), corruption: torch.nn.Module | None = None) -> None:
        super().__init__(encoder, decoder, likelihood, penalties, constraints, corruption=corruption)
        self.pooling = pooling

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of an input row."""
        return self.encoder.input_shape

    @property
    def code_shape(self) -> tuple[int, int, int]:
        """(M, H', W') of a code."""
        return self.encoder.code_shape

    @property
    def n_maps(self) -> int:
        return self.encoder.code_shape[0]

    @property
    def pooled_shape(self) -> tuple[int, int, int]:
        """(G, H', W') of :meth:`pooled_features`."""
        return (self.pooling.n_pools, *self.code_shape[1:])

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps ``(batch, M, H', W')`` of x ``(batch, n_features)``."""
        return self.encoder.maps(x)

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-pooled maps ("complex cells") ``(batch, G, H', W')`` of x ``(batch, n_features)``."""
        return self.pooling(self.encoder.maps(x))


@MODELS.register("conv_sae")
def conv_sae(n_features: int, n_components: int, *, image_shape: Sequence[int] | None = None,
             kernel_size: int = 5, stride: int = 1, padding: int = 0, pools: dict | None = None,
             sparsity_weight: float = 0.1, group_eps: float = 1e-8, likelihood: str = "gaussian",
             weight_decay: float = 0.0, corruption: str | None = None) -> ConvAutoencoder:
    """Convolutional sparse autoencoder with L2 pooling over pools of feature maps.

    ``n_components``: the number of feature maps M (filters); the code has M·H'·W' values,
    H' = ⌊(H + 2·padding − kernel_size)/stride⌋ + 1. ``image_shape``: (H, W) or (C, H, W) of an
    input row, flattened channel-first (None: a square single-channel image). ``pools``: the
    pools of maps, a :func:`~sparseae.groups.make_groups` group structure over the M maps (not
    over the M·H'·W' code units: every location is pooled the same way) — disjoint
    (``{"kind": "disjoint", "group_size": 4}``), 1-D windows (``{"kind": "grid", "height": 1,
    "width": M, "window": [1, 3]}``) or 2-D windows on an r×c grid of maps; None: disjoint pools of
    4. ``sparsity_weight`` λ; ``group_eps`` ε; ``likelihood`` gaussian (squared error) or
    bernoulli (data in [0, 1]); ``weight_decay`` on the filters; ``corruption``: encode x̃ ~ q(x̃|x)
    in training and reconstruct x (e.g. ``"masking:0.3"``, as ``denoising_ae``). Decoder filters
    have unit norm.
    """
    shape = image_geometry(image_shape, n_features)
    check_number(sparsity_weight, "sparsity_weight", low=0.0)
    check_number(weight_decay, "weight_decay", low=0.0)
    geometry = dict(kernel_size=kernel_size, stride=stride, padding=padding)
    encoder = ConvEncoder(shape, n_components, **geometry)
    decoder = ConvTransposeDecoder(shape, n_components, **geometry)
    structure = map_pools(pools, n_components)
    penalties: dict[str, Penalty] = {}
    if sparsity_weight > 0:
        penalties["group"] = MapGroupSparsityPenalty(sparsity_weight, MapPooling(structure, group_eps),
                                                     encoder.code_shape)
    if weight_decay > 0:
        penalties["weight_decay"] = WeightDecay(weight_decay)
    return ConvAutoencoder(encoder, decoder, make_likelihood(likelihood, n_features),
                           MapPooling(structure, group_eps), penalties,
                           [NormConstraint("decoder.filters", dim=1, value=1.0, mode="equal")],
                           corruption=make_corruption(corruption))

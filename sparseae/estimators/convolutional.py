"""Estimators over flattened images: :class:`ConvSparseAutoencoder` (``conv_sae``) and
:class:`LocalSparseAutoencoder` (``local_sae``).

Rows of ``X`` are images flattened channel-first, ``(n_samples, C·H·W)``; ``transform`` gives the
flattened code ``(n_samples, M·H'·W')`` and :meth:`transform_pooled` the L2-pooled features.
"""
from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from .._sklearn_compat import Interval, StrOptions
from .base import BaseAutoencoderEstimator

__all__ = ["ConvSparseAutoencoder", "LocalSparseAutoencoder"]

_IMAGE_CONSTRAINTS: dict[str, list[Any]] = {
    "image_shape": [tuple, list, None],
    "kernel_size": [Interval(Integral, 1, None, closed="left")],
    "stride": [Interval(Integral, 1, None, closed="left")],
    "padding": [Interval(Integral, 0, None, closed="left")],
    "sparsity_weight": [Interval(Real, 0, None, closed="left")],
    "likelihood": [StrOptions({"gaussian", "bernoulli"})],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
}


class _ImageEstimatorMixin:
    """What the two image estimators share: the pooled features, and filters as ``components_``."""

    def transform_pooled(self, X: Any) -> np.ndarray:
        """L2-pooled features of ``X`` ``(n_samples, n_features)``, flattened: float32
        ``(n_samples, n_pools·H'·W')`` for ``conv_sae``, ``(n_samples, n_groups)`` for ``local_sae``."""
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        with self._inference() as model:
            parts = [model.pooled_features(x).flatten(1).float().cpu() for x in self._batches(X, model)]
        return np.concatenate([part.numpy() for part in parts])

    def _image_params(self) -> dict[str, Any]:
        return {"image_shape": None if self.image_shape is None else list(self.image_shape),
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                "sparsity_weight": self.sparsity_weight,
                "likelihood": self.likelihood, "weight_decay": self.weight_decay}


class ConvSparseAutoencoder(_ImageEstimatorMixin, BaseAutoencoderEstimator):
    """Convolutional sparse autoencoder with L2 pooling over pools of feature maps (``conv_sae``).

    Parameters
    ----------
    n_components : int ≥ 1
        Number of feature maps (filters) M. ``transform`` gives M·H'·W' values per sample.
    image_shape : (H, W) or (C, H, W), or None
        How a row is an image (flattened channel-first); None: square, one channel. One entry
        may be -1, inferred from the number of features (``(1, -1)``: a row of any length).
    kernel_size, stride, padding : int
        Square filters, their step and the zero padding of the input.
    pools : dict or None
        Pools of maps, a :func:`sparseae.groups.make_groups` spec over the M maps (e.g.
        ``{"kind": "disjoint", "group_size": 4}``); None: disjoint pools of 4 maps.
    sparsity_weight : float ≥ 0
        λ of the pooled penalty λ Σ_{locations} Σ_pools √(Σ z² + ε).
    likelihood : {"gaussian", "bernoulli"}
        Squared error, or cross-entropy for data in [0, 1].
    weight_decay : float ≥ 0

    Notes
    -----
    The training parameters are those of :class:`BaseAutoencoderEstimator`; ``components_`` is
    the decoder's filters ``(n_components, C·k·k)`` (rows of unit norm).
    """

    _parameter_constraints: ClassVar[dict] = {**BaseAutoencoderEstimator._parameter_constraints,
                                              **_IMAGE_CONSTRAINTS, "pools": [dict, None]}

    def __init__(self, *, n_components: int = 16, image_shape: Any = None, kernel_size: int = 5,
                 stride: int = 1, padding: int = 0, pools: dict | None = None, sparsity_weight: float = 0.1,
                 likelihood: str = "gaussian", weight_decay: float = 0.0, optimizer: str = "adam",
                 learning_rate: float = 1e-2, batch_size: int = 64, max_epochs: int = 10, max_iter: int = 400,
                 validation_fraction: float = 0.0, n_iter_no_change: int | None = None, device: str = "auto",
                 random_state: int | None = None, verbose: bool = False) -> None:
        self.n_components = n_components
        self.image_shape = image_shape
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.pools = pools
        self.sparsity_weight = sparsity_weight
        self.likelihood = likelihood
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
        return "conv_sae", {**self._image_params(), "pools": self.pools}

    @staticmethod
    def _components(model) -> np.ndarray:
        return model.decoder.filters.detach().to("cpu").float().numpy().copy()


class LocalSparseAutoencoder(_ImageEstimatorMixin, BaseAutoencoderEstimator):
    """Locally connected sparse autoencoder with topographic group sparsity (``local_sae``).

    Parameters
    ----------
    n_components : int ≥ 1
        Units (filters) per location M, laid out ``unit_grid`` = (r, c) on the sheet of units.
    unit_grid : (rows, columns) or None
        r·c = M; None: the squarest layout.
    groups : dict or None
        A :func:`sparseae.groups.make_groups` spec over the (H'·r)×(W'·c) sheet; None: 3×3
        windows that do not wrap.
    image_shape, kernel_size, stride, padding, sparsity_weight, likelihood, weight_decay
        As for :class:`ConvSparseAutoencoder`.
    activation : str
        The units' non-linearity (``"relu"``; ``"identity"`` for a linear encoder).
    tied : bool
        Decoder filters = encoder filters.
    unit_norm_encoder : bool
        Unit-norm encoder filters (and no per-unit gain); with ``tied=True`` and
        ``activation="identity"`` the model is reconstruction ICA.

    Notes
    -----
    The training parameters are those of :class:`BaseAutoencoderEstimator`; ``components_`` is
    every unit's decoder atom in image coordinates ``(n_units, n_features)``, in sheet order.
    """

    _parameter_constraints: ClassVar[dict] = {**BaseAutoencoderEstimator._parameter_constraints,
                                              **_IMAGE_CONSTRAINTS, "unit_grid": [tuple, list, None],
                                              "groups": [dict, None], "activation": [str], "tied": ["boolean"],
                                              "unit_norm_encoder": ["boolean"]}

    def __init__(self, *, n_components: int = 4, image_shape: Any = None, kernel_size: int = 5,
                 stride: int = 1, padding: int = 0, unit_grid: Any = None, groups: dict | None = None,
                 sparsity_weight: float = 0.1, likelihood: str = "gaussian", weight_decay: float = 0.0,
                 activation: str = "relu", tied: bool = False, unit_norm_encoder: bool = False,
                 optimizer: str = "adam", learning_rate: float = 1e-2, batch_size: int = 64,
                 max_epochs: int = 10, max_iter: int = 400, validation_fraction: float = 0.0,
                 n_iter_no_change: int | None = None, device: str = "auto", random_state: int | None = None,
                 verbose: bool = False) -> None:
        self.n_components = n_components
        self.image_shape = image_shape
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.unit_grid = unit_grid
        self.groups = groups
        self.activation = activation
        self.tied = tied
        self.unit_norm_encoder = unit_norm_encoder
        self.sparsity_weight = sparsity_weight
        self.likelihood = likelihood
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
        unit_grid = None if self.unit_grid is None else list(self.unit_grid)
        return "local_sae", {**self._image_params(), "unit_grid": unit_grid, "groups": self.groups,
                             "activation": self.activation, "tied": self.tied,
                             "unit_norm_encoder": self.unit_norm_encoder}

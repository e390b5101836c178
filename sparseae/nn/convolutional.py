"""Convolutional encoder and transposed-convolution decoder over flattened images.

Inputs stay ``(batch, n_features)`` as everywhere in the library; ``image_shape`` says how a row
is an image: ``(height, width)`` or ``(channels, height, width)``, each row flattened
channel-first — torch's layout, and the layout of the pooled maps one layer hands to the next
(a NumPy batch ``(n, H, W, C)`` becomes ``X.transpose(0, 3, 1, 2).reshape(n, -1)``).
Codes are the feature maps ``(batch, n_maps, H', W')`` flattened to ``(batch, n_maps·H'·W')``.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..validation import check_number


def _is_minus_one(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) == -1


def image_geometry(image_shape: Sequence[int] | None, n_features: int) -> tuple[int, int, int]:
    """``(channels, height, width)`` of rows of ``n_features`` values. ``image_shape`` None means a
    square single-channel image (``n_features`` must then be a perfect square); one entry may be
    -1, inferred from ``n_features`` as in ``numpy.reshape`` (``(1, -1)``: a row of any length)."""
    if image_shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ConfigError(f"give image_shape: {n_features} features are not a square image")
        return 1, side, side
    if isinstance(image_shape, (str, bytes)) or not isinstance(image_shape, Sequence) \
            or len(image_shape) not in (2, 3):
        raise ConfigError(f"image_shape must be (height, width) or (channels, height, width), got {image_shape!r}")
    inferred = [i for i, value in enumerate(image_shape) if _is_minus_one(value)]
    if len(inferred) > 1:
        raise ConfigError(f"image_shape {list(image_shape)} has more than one -1 entry to infer")
    for i, value in enumerate(image_shape):
        if i not in inferred:
            check_number(value, "image_shape entries", low=1, integer=True)
    known = math.prod(int(v) for i, v in enumerate(image_shape) if i not in inferred)
    shape = tuple(n_features // known if i in inferred else int(v) for i, v in enumerate(image_shape))
    shape = (1, *shape) if len(shape) == 2 else shape
    if math.prod(shape) != n_features:
        raise ConfigError(f"image_shape {list(image_shape)} holds {math.prod(shape)} values, but the data "
                          f"have n_features = {n_features}")
    return shape  # type: ignore[return-value]


def conv_output_shape(image_shape: tuple[int, int, int], kernel_size: int, stride: int,
                      padding: int) -> tuple[int, int]:
    """``(H', W')`` of a valid convolution with square kernels: ⌊(size + 2p − k)/s⌋ + 1."""
    check_number(kernel_size, "kernel_size", low=1, integer=True)
    check_number(stride, "stride", low=1, integer=True)
    check_number(padding, "padding", low=0, integer=True)
    _, height, width = image_shape
    if kernel_size > min(height, width) + 2 * padding:
        raise ConfigError(f"a {kernel_size}×{kernel_size} kernel is larger than the {height}×{width} image"
                          + (f" padded by {padding}" if padding else ""))
    return tuple((size + 2 * padding - kernel_size) // stride + 1 for size in (height, width))  # type: ignore


def uniform_filters_(weight: torch.Tensor, fan_in: int) -> None:
    """U[−1/√fan_in, 1/√fan_in], fan_in = C·k·k (PyTorch's convolution default)."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)


class PositiveGain(nn.Module):
    """``g ⊙ z`` with ``g = exp(log_gain) > 0``, one gain per entry of ``shape`` (e.g. ``(n_maps, 1, 1)``:
    one per feature map; ``(n_maps, H', W')``: one per unit), broadcast over the batch.
    ``log_gain`` is stored flat, so weight decay (which takes parameters of ≥ 2 dims) leaves it alone."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.log_gain = nn.Parameter(torch.zeros(math.prod(self.shape)))

    @property
    def gain(self) -> torch.Tensor:
        """``g``: ``shape``."""
        return self.log_gain.exp().view(self.shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.gain

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class ConvEncoder(nn.Module):
    """``z = g ⊙ ReLU(W ∗ x + b)``: x ``(batch, C·H·W)`` → z ``(batch, M·H'·W')``.

    W ``(M, C, k, k)``, b ``(M,)``, g ``(M,)`` a positive gain per feature map (the "scaling
    layer" of Kavukcuoglu et al. 2010, which lets the code match unit-norm decoder filters).
    """

    #: Codes are non-negative but unbounded.
    code_range = None

    def __init__(self, image_shape: tuple[int, int, int], n_maps: int, kernel_size: int, *,
                 stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        check_number(n_maps, "number of feature maps (n_components)", low=1, integer=True)
        self.input_shape = tuple(image_shape)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.code_shape = (int(n_maps), *conv_output_shape(self.input_shape, kernel_size, stride, padding))
        self.n_features, self.n_components = math.prod(self.input_shape), math.prod(self.code_shape)
        channels = self.input_shape[0]
        self.weight = nn.Parameter(torch.empty(n_maps, channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(n_maps))
        self.gain = PositiveGain((n_maps, 1, 1))
        uniform_filters_(self.weight, channels * kernel_size ** 2)

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """The feature maps ``(batch, M, H', W')`` of flattened images ``(batch, C·H·W)``."""
        images = x.reshape(-1, *self.input_shape)
        drive = F.conv2d(images, self.weight, self.bias, stride=self.stride, padding=self.padding)
        return self.gain(torch.relu(drive))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maps(x).flatten(1)

    def extra_repr(self) -> str:
        return (f"{self.input_shape} -> {self.code_shape}, kernel={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")


class ConvTransposeDecoder(nn.Module):
    """``η = Σ_m D_m ⊛ z_m + c`` (transposed convolution): z ``(batch, M·H'·W')`` → η ``(batch, C·H·W)``.

    ``filters`` ``(M, C·k·k)``: row m is map m's filter, one dictionary atom slid over the image
    (kept at unit norm by the model's constraint, so the sparsity penalty cannot be cheated by
    scale); ``bias`` c ``(C,)``: one per channel. The decoder is the adjoint of a convolution with
    the same filters, stride and padding; :attr:`weight` is that linear map as a matrix.
    """

    def __init__(self, image_shape: tuple[int, int, int], n_maps: int, kernel_size: int, *,
                 stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        out = conv_output_shape(self.image_shape, kernel_size, stride, padding)
        self.code_shape = (int(n_maps), *out)
        # bottom/right rows and columns a strided convolution never reads: the output gets them back
        # (receiving no filter, only the bias), so that it is the input's size again
        self.output_padding = tuple((size + 2 * padding - kernel_size) % stride for size in self.image_shape[1:])
        self.n_features, self.n_components = math.prod(self.image_shape), math.prod(self.code_shape)
        channels = self.image_shape[0]
        self.filters = nn.Parameter(torch.empty(n_maps, channels * kernel_size ** 2))
        self.bias = nn.Parameter(torch.zeros(channels))
        uniform_filters_(self.filters, channels * kernel_size ** 2)

    def filter_bank(self) -> torch.Tensor:
        """The filters as ``(M, C, k, k)``."""
        return self.filters.view(self.code_shape[0], self.image_shape[0], self.kernel_size, self.kernel_size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        maps = z.reshape(-1, *self.code_shape)
        images = F.conv_transpose2d(maps, self.filter_bank(), stride=self.stride, padding=self.padding,
                                    output_padding=self.output_padding)
        return (images + self.bias.view(-1, 1, 1)).flatten(1)

    @property
    def weight(self) -> torch.Tensor:
        """The decoder as a matrix ``(n_features, n_components)`` (η = z Wᵀ + c): column (m, i, j) is
        filter m placed at output position (i, j). Built on demand (for plots and metrics), as the
        convolution of the identity's images: Wᵀ is the convolution the decoder is the adjoint of."""
        eye = torch.eye(self.n_features, dtype=self.filters.dtype, device=self.filters.device)
        columns = F.conv2d(eye.view(-1, *self.image_shape), self.filter_bank(), stride=self.stride,
                           padding=self.padding)
        return columns.flatten(1)

    def extra_repr(self) -> str:
        return (f"{self.code_shape} -> {self.image_shape}, kernel={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")


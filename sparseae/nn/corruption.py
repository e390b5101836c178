"""Corruption processes q(x̃ | x) for denoising autoencoders (Vincent et al. 2008, 2010).

Each process is a parameter-free module applied on the fly to every training batch: the model
encodes x̃ and its loss compares the reconstruction with the clean x. In eval mode a process is
the identity, so ``transform`` and ``score`` see clean data. Random draws use torch's global
generator, which the trainer seeds per epoch (runs are reproducible and exactly resumable).

Processes compose: ``"masking:0.1+gaussian:0.05"`` masks, then adds noise. A spec string is
``name:level``; the names are those of :data:`CORRUPTIONS`.
"""
from __future__ import annotations

import abc
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from ..validation import check_number


class Corruption(nn.Module, abc.ABC):
    """Base: ``forward(x) -> x̃`` of the same shape in training mode, ``x`` in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.corrupt(x) if self.training else x

    @abc.abstractmethod
    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """One draw of x̃ ~ q(x̃ | x): (batch, n_features)."""

    @property
    @abc.abstractmethod
    def spec(self) -> str:
        """The spec string that rebuilds this process (see :func:`make_corruption`)."""


class GaussianCorruption(Corruption):
    """Additive isotropic Gaussian noise: x̃ = x + ε, ε ~ N(0, σ² I) (DAE-g)."""

    def __init__(self, std: float) -> None:
        super().__init__()
        check_number(std, "gaussian corruption std", low=0.0, low_inclusive=False)
        self.std = float(std)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.std * torch.randn_like(x)

    @property
    def spec(self) -> str:
        return f"gaussian:{self.std:g}"


class MaskingCorruption(Corruption):
    """Masking noise: each input set to 0 with probability ν, independently (DAE-b, SdA)."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        check_number(fraction, "masking fraction", low=0.0, high=1.0, high_inclusive=False)
        self.fraction = float(fraction)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.rand_like(x) >= self.fraction
        return x * keep

    @property
    def spec(self) -> str:
        return f"masking:{self.fraction:g}"


class SaltAndPepperCorruption(Corruption):
    """Salt-and-pepper noise: each input, with probability ν, set to ``low`` or ``high``
    (each with probability ½); defaults fit data in [0, 1]."""

    def __init__(self, fraction: float, low: float = 0.0, high: float = 1.0) -> None:
        super().__init__()
        check_number(fraction, "salt_and_pepper fraction", low=0.0, high=1.0)
        if not low < high:
            raise ConfigError(f"salt_and_pepper needs low < high, got {low!r} and {high!r}")
        self.fraction, self.low, self.high = float(fraction), float(low), float(high)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        draw = torch.rand_like(x)
        hit = draw < self.fraction
        # Among the hit inputs, the draw is uniform on [0, ν): its lower half is pepper.
        value = torch.where(draw < 0.5 * self.fraction, self.low, self.high).to(x.dtype)
        return torch.where(hit, value, x)

    @property
    def spec(self) -> str:
        return f"salt_and_pepper:{self.fraction:g}"


class ComposedCorruption(Corruption):
    """Processes applied in order: x̃ = q_k(…q_1(x))."""

    def __init__(self, processes: Sequence[Corruption]) -> None:
        super().__init__()
        if not processes:
            raise ConfigError("a composed corruption needs at least one process")
        self.processes = nn.ModuleList(processes)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        for process in self.processes:
            x = process.corrupt(x)
        return x

    @property
    def spec(self) -> str:
        return "+".join(p.spec for p in self.processes)


CORRUPTIONS: Registry[Corruption] = Registry("corruption")
CORRUPTIONS.register("gaussian")(GaussianCorruption)
CORRUPTIONS.register("masking")(MaskingCorruption)
CORRUPTIONS.register("salt_and_pepper")(SaltAndPepperCorruption)


def make_corruption(spec: str | None) -> Corruption | None:
    """Parse ``"name:level[+name:level…]"`` (e.g. ``"masking:0.25"``, ``"gaussian:0.5"``,
    ``"salt_and_pepper:0.1"``); ``None``, ``""`` or ``"none"`` mean no corruption.
    Raises :class:`ConfigError` naming the part that does not parse."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none")):
        return None
    if not isinstance(spec, str):
        raise ConfigError(f"corruption must be a string like 'masking:0.25', got {spec!r}")
    processes = []
    for part in spec.split("+"):
        name, sep, level = part.strip().partition(":")
        if not sep:
            raise ConfigError(f"corruption {part.strip()!r} needs a level, e.g. "
                              f"'{name or 'masking'}:0.25'; known: {', '.join(CORRUPTIONS.names())}")
        try:
            value = float(level)
        except ValueError:
            raise ConfigError(f"corruption {part.strip()!r}: level {level!r} is not a number") from None
        processes.append(CORRUPTIONS.get(name.strip())(value))
    return processes[0] if len(processes) == 1 else ComposedCorruption(processes)

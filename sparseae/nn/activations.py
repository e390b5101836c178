"""Named elementwise non-linearities, so configs can name them and penalties know their range."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import ConfigError
from ..tensors import upcast_half  # noqa: F401  (re-exported: its users in nn and models import it here)


def identity(v: torch.Tensor) -> torch.Tensor:
    """f(v) = v (a named function rather than a lambda, so models pickle)."""
    return v


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": identity,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
}

#: The interval each activation's output lives in (None = unbounded); KL sparsity needs (0, 1).
ACTIVATION_RANGE: dict[str, tuple[float, float] | None] = {
    "identity": None,
    "sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "relu": None,
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function called ``name``; :class:`ConfigError` lists the known names otherwise."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None

"""Device names in configs, and whether this machine has a device (below io and train, which
both check them)."""
from __future__ import annotations

import re
from typing import Any

import torch

from .errors import ConfigError

#: The device names a config may hold (whether this machine has the device is checked apart).
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")


def check_device_name(device: Any, setting: str) -> str:
    """``device`` when it names a device (``auto``, ``cpu``, ``cuda[:N]``, ``mps``), else
    :class:`ConfigError` naming ``setting``; this machine need not have it."""
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise ConfigError(f"{setting} must be 'auto', 'cpu', 'cuda[:N]' or 'mps', got {device!r}")
    return device


def device_problem(device: torch.device) -> str | None:
    """Why this machine cannot run on ``device`` (one clause), or None when it can."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"this machine has {count} CUDA device{'s' if count != 1 else ''} (cuda:0..{count - 1})"
    elif device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available on this machine"
    return None

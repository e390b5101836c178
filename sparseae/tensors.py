"""Tensor helpers below every layer that computes (coding, nn, models)."""
from __future__ import annotations

import torch


def upcast_half(tensor: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 → float32 (losses are summed in full precision); float64 stays float64."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor

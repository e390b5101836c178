"""Batched evaluation-mode inference, written once.

:func:`evaluating` puts a module in eval mode (no corruption, no dropout, no running-stat updates)
without gradients and restores its training flag afterwards; :func:`row_batches` yields the rows of
an array, memory map or tensor as tensors on the module's device in its dtype; :func:`map_rows`
runs a function over all rows batch by batch and concatenates the results.

Gradients are switched off with ``torch.no_grad`` rather than ``torch.inference_mode``: results may
feed later training (e.g. the codes of one layer of a stack), which inference tensors would refuse.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from .validation import rows_as_tensor

__all__ = ["evaluating", "map_rows", "placement", "row_batches"]


def placement(module: nn.Module | None) -> tuple[torch.device, torch.dtype]:
    """(device, dtype) of ``module``'s first parameter; (cpu, float32) for a module without any."""
    parameter = next(module.parameters(), None) if module is not None else None
    if parameter is None:
        return torch.device("cpu"), torch.float32
    return parameter.device, parameter.dtype


@contextlib.contextmanager
def evaluating(module: nn.Module, *, no_grad: bool = True) -> Iterator[nn.Module]:
    """``module`` in eval mode (and under ``torch.no_grad`` when ``no_grad``); its training flag is
    restored on leaving, also after an exception."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            yield module
    finally:
        module.train(was_training)


def row_batches(X: Any, batch_size: int, *, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, rows)`` for consecutive blocks of at most ``batch_size`` rows of ``X`` (an array, a
    memory map, a ShardedArray or a tensor; (n, ...)), each rows a tensor ``(b, ...)`` on ``device``
    in ``dtype`` (None: as they are). An ``X`` of 0 rows gives one empty block."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n = len(X)
    for start in range(0, n, batch_size) if n else (0,):
        yield start, rows_as_tensor(X, start, start + batch_size, device=device, dtype=dtype)


def map_rows(module: nn.Module | None, X: Any, fn: Callable[[torch.Tensor], torch.Tensor] | None = None, *,
             batch_size: int = 1024, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
             out_dtype: torch.dtype | None = torch.float32, numpy: bool = True,
             progress: Callable[[int], Any] | None = None) -> np.ndarray | torch.Tensor:
    """``fn`` (default: ``module`` itself) over the rows of ``X`` (n, ...), ``batch_size`` rows at a
    time, with ``module`` in eval mode without gradients (its training flag restored): the outputs
    ``(n, ...)`` concatenated on the CPU, cast to ``out_dtype`` (None: kept), as a NumPy array
    (``numpy``) or a tensor. Inputs go to ``device``/``dtype``, by default ``module``'s
    (:func:`placement`). ``progress(b)`` is called after each batch with its number of rows."""
    default_device, default_dtype = placement(module)
    device = default_device if device is None else device
    dtype = default_dtype if dtype is None else dtype
    fn = module if fn is None else fn
    if fn is None:
        raise ValueError("map_rows needs a module or a function to run")
    parts = []
    with evaluating(module) if module is not None else torch.no_grad():
        for _, rows in row_batches(X, batch_size, device=device, dtype=dtype):
            out = fn(rows)
            parts.append((out if out_dtype is None else out.to(out_dtype)).cpu())
            if progress is not None:
                progress(rows.shape[0])
    result = torch.cat(parts) if len(parts) > 1 else parts[0]
    return result.numpy() if numpy else result

"""What each latent of a trained SAE responds to: its most activating samples, streamed.

:func:`top_activations` encodes a dataset batch by batch (an array or a
:class:`~sparseae.data.shards.ShardedArray` larger than memory) and keeps, for every latent, the
k rows that drive it hardest, with memory O(k · n_latents).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import DataError
from ..inference import evaluating, placement, row_batches
from ..validation import check_number


class TopActivations(NamedTuple):
    values: np.ndarray      # (k, n_latents), descending down each column
    rows: np.ndarray        # (k, n_latents) row index into the dataset; −1 where the latent did not fire
    frequency: np.ndarray   # (n_latents,) fraction of rows where the latent is > 0
    mean: np.ndarray        # (n_latents,) mean activation


def top_activations(model: Any, X: Any, *, k: int = 10, batch_size: int = 4096) -> TopActivations:
    """For every latent of ``model`` (``model.encode``: (b, n_features) → (b, n_latents)), the ``k``
    rows of ``X`` (n, n_features) with the largest activations, and each latent's firing frequency."""
    check_number(k, "k", low=1, integer=True)
    check_number(batch_size, "batch_size", low=1, integer=True)
    n = len(X)
    if n == 0:
        raise DataError("no rows to encode")
    device, dtype = placement(model)
    best_values = best_rows = fired = total = None
    with evaluating(model):
        for start, batch in row_batches(X, batch_size, device=device, dtype=dtype):
            codes = model.encode(batch).float()                            # (b, m)
            rows = torch.arange(start, start + len(batch), device=device).unsqueeze(1).expand_as(codes)
            if best_values is None:
                m = codes.shape[1]
                best_values = torch.full((0, m), -float("inf"), device=device)
                best_rows = torch.full((0, m), -1, dtype=torch.long, device=device)
                fired = torch.zeros(m, device=device, dtype=torch.float64)
                total = torch.zeros(m, device=device, dtype=torch.float64)
            fired += (codes > 0).sum(0)
            total += codes.sum(0, dtype=torch.float64)
            values = torch.cat([best_values, codes])
            candidates = torch.cat([best_rows, rows])
            best_values, order = values.topk(min(k, len(values)), dim=0)
            best_rows = candidates.gather(0, order)
    if len(best_values) < k:                                                # fewer rows than k
        pad = k - len(best_values)
        best_values = torch.cat([best_values, torch.full((pad, best_values.shape[1]), -float("inf"), device=device)])
        best_rows = torch.cat([best_rows, torch.full((pad, best_rows.shape[1]), -1, dtype=torch.long, device=device)])
    best_rows = torch.where(best_values > 0, best_rows, torch.full_like(best_rows, -1))
    return TopActivations(best_values.cpu().numpy(), best_rows.cpu().numpy(),
                          (fired / n).cpu().numpy(), (total / n).cpu().numpy())


__all__ = ["TopActivations", "top_activations"]

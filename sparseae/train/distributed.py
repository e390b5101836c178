"""The few facts about torch.distributed that the rest of the library needs.

Everything here is a no-op in a single process, so library code calls it unconditionally.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialized process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_primary() -> bool:
    """Only the primary rank logs, draws and writes checkpoints."""
    return rank() == 0


def mean_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all ranks, differentiable (each rank's share back-propagates).

    Used for statistics a penalty takes over the batch (KL's ρ̂), so that N processes with
    batch B each compute the same statistic as one process with batch N·B.
    """
    if not is_distributed():
        return value
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(value, op=dist.ReduceOp.SUM) / world_size()

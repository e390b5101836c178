"""The few facts about torch.distributed that the rest of the library needs.

Everything here is a no-op in a single process, so library code calls it unconditionally.
"""
from __future__ import annotations

import os
import sys
from typing import NoReturn

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


# (rows of this rank, rows of all ranks) in the step being taken; set by BatchSource.batches
# under torch.distributed, None between steps (then every rank counts equally).
_step_rows: tuple[int, int] | None = None


def set_step_rows(rows: tuple[int, int] | None) -> None:
    """Declare the step now taken: ``(rows of this rank, rows of all ranks)``, or None after it.
    A rank with no rows of the step says 0 (it runs a stand-in row that counts for nothing)."""
    global _step_rows
    _step_rows = rows


def rows_in_step(x: torch.Tensor) -> int:
    """The rows of batch ``x`` that count: ``x.shape[0]``, or 0 for a rank's stand-in row."""
    return x.shape[0] if _step_rows is None else _step_rows[0]


def _rank_share() -> tuple[float, bool]:
    """(this rank's fraction of the step's rows, whether every rank holds the same number)."""
    if _step_rows is None:
        return 1.0 / world_size(), True
    local, total = _step_rows
    return local / total, local * world_size() == total


def scale_gradient(loss: torch.Tensor) -> torch.Tensor:
    """``loss`` with the same value and its gradient scaled by N·n_r/n, so that DDP's mean over
    the N ranks is the gradient of the mean over the step's n rows when ranks hold unequal
    numbers n_r (a rank with none contributes nothing). Unchanged in an even step."""
    share, even = _rank_share()
    if not is_distributed() or even:
        return loss
    return loss + (share * world_size() - 1.0) * (loss - loss.detach())


def mean_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all ranks, differentiable (each rank's share back-propagates),
    each rank weighted by its rows in the step (equal weights when the step splits evenly).

    Used for statistics a penalty takes over the batch (KL's ρ̂), so that N processes with
    batch B each compute the same statistic as one process with batch N·B.
    """
    if not is_distributed():
        return value
    import warnings

    from torch.distributed.nn.functional import all_reduce

    share, even = _rank_share()
    with warnings.catch_warnings():  # the differentiable all_reduce is marked deprecated, not replaced
        warnings.simplefilter("ignore", FutureWarning)
        if even:
            return all_reduce(value, op=dist.ReduceOp.SUM) / world_size()
        return all_reduce(value * share, op=dist.ReduceOp.SUM)


def init_from_environment() -> bool:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1):
    NCCL when CUDA is available (each rank on GPU ``LOCAL_RANK``), else gloo. Returns True when
    running distributed; a no-op in a plain single process or when already initialized."""
    if dist.is_available() and dist.is_initialized():
        return is_distributed()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl")
    else:
        dist.init_process_group(backend="gloo")
    return True


def shutdown(wait: bool = True) -> None:
    """Leave the process group (after a barrier when ``wait``), so that no rank exits while the
    backend's threads still serve another: a rank torn down mid-exchange aborts ("terminate called
    without an active exception"). A no-op outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        if wait and is_distributed():
            dist.barrier()
        dist.destroy_process_group()


def exit_process(status: int = 0) -> NoReturn:
    """End this process with exit ``status``: the last line of a script run by ``torchrun``.

    In a ``torchrun`` worker (``WORLD_SIZE`` > 1) it leaves the process group (after a barrier)
    if still in it, flushes stdout and stderr, and ends with ``os._exit``, skipping interpreter
    finalization: gloo's worker threads may still be releasing the last collective's tensors
    then, and a thread that needs the Python lock of a finalizing interpreter aborts the whole
    process (SIGABRT, "terminate called without an active exception") after all the work is done
    and saved — 2 of 30 two-process runs on a loaded 2-core machine. ``destroy_process_group``
    does not stop those threads while DDP or ``torch.distributed.nn`` still hold the group.
    Elsewhere ``sys.exit(status)``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def local_device() -> torch.device:
    """This rank's GPU (``LOCAL_RANK``) when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0)
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_distributed():
        dist.barrier()


def sum_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """Elementwise sum over ranks of a (non-differentiable) statistic; ``value`` in one process."""
    if not is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value


def reduce_sums(sums: dict[str, torch.Tensor], count: int, device: torch.device
                ) -> tuple[dict[str, torch.Tensor], int]:
    """Per-term sums and the sample count added over ranks (unchanged in one process)."""
    if not is_distributed():
        return sums, count
    names = sorted(sums)
    packed = torch.stack([torch.as_tensor(sums[n], device=device).float() for n in names]
                         + [torch.tensor(float(count), device=device)])
    packed = sum_across_ranks(packed)
    return dict(zip(names, packed[:-1], strict=True)), int(packed[-1])


class _LossForward(torch.nn.Module):
    """A model's loss as ``forward``, so that DistributedDataParallel can wrap it (DDP hooks the
    gradient all-reduce onto the backward of what ``forward`` returns). ``loss_of(x, y)`` returns
    ``(loss, terms)``."""

    def __init__(self, model: torch.nn.Module, loss_of) -> None:
        super().__init__()
        self.model, self._loss_of = model, loss_of

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        loss, terms = self._loss_of(x, y)
        return scale_gradient(loss), terms


def data_parallel(model: torch.nn.Module, device: torch.device, loss_of):
    """Under torch.distributed, ``loss_of(x, y)`` of ``model`` wrapped in DistributedDataParallel
    (gradients averaged over ranks in the backward; parameters and buffers broadcast from rank 0),
    called as ``ddp(x, y) -> (loss, terms)``; None in one process."""
    if not is_distributed():
        return None
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # A model whose parameters sit out some phases (a classifier head during pre-training, a
    # decoder during MLP fine-tuning) says so: DDP must then not wait for their gradients.
    unused = bool(model.may_leave_parameters_unused)  # declared on sparseae.models.Autoencoder
    return DistributedDataParallel(_LossForward(model, loss_of), device_ids=ids, find_unused_parameters=unused)

"""Batches for the trainer from an in-memory array or a memory map larger than RAM."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .. import distributed
from ..data.shards import ShardedArray


def _is_identity(indices: np.ndarray, n: int) -> bool:
    """Whether ``indices`` is ``0, 1, …, n-1`` (then no gather copy is needed)."""
    return len(indices) == n and (n == 0 or (indices[0] == 0 and indices[-1] == n - 1
                                             and bool((np.diff(indices) == 1).all())))


class BatchSource:
    """Rows ``indices`` of ``X`` (n_samples, n_features), served as float tensors on ``device``,
    with the matching rows of ``targets`` when given: class labels (n_samples,) as int64, or
    values (n_samples, k) in ``dtype``.

    An ordinary array is copied to the device once and batches are gathered there (no host
    round-trip per step). A ``np.memmap`` or a sharded array stays on disk: each batch reads only
    its rows (sorted for sequential access), so memory stays bounded by the batch size; value
    targets on disk beside such an X (a paired harvest's) are read the same way.
    """

    def __init__(self, X: np.ndarray | torch.Tensor, device: torch.device,
                 indices: np.ndarray | None = None, dtype: torch.dtype = torch.float32,
                 targets: np.ndarray | torch.Tensor | None = None) -> None:
        self.device, self.dtype = device, dtype
        self.on_disk = isinstance(X, (np.memmap, ShardedArray))
        n = X.shape[0]
        self.indices = np.arange(n) if indices is None else np.asarray(indices)
        self.targets = None
        self.disk_targets = None  # value rows read batch by batch, beside an X on disk
        if targets is not None and self.on_disk and isinstance(targets, (np.memmap, ShardedArray)):
            self.disk_targets = targets
        elif targets is not None:
            values = torch.as_tensor(np.asarray(targets))
            values = values.to(dtype) if values.is_floating_point() else values.long()
            self.targets = values[torch.from_numpy(self.indices)].to(device)
        if self.on_disk:
            self.X = X
        else:
            data = X if isinstance(X, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(X))
            if indices is not None and not _is_identity(self.indices, n):
                data = data[torch.from_numpy(self.indices)]
            self.X = data.to(device=device, dtype=dtype)
            self.indices = np.arange(self.X.shape[0])

    def __len__(self) -> int:
        return len(self.indices)

    def _rows(self, positions: torch.Tensor) -> torch.Tensor:
        """Rows at ``positions`` (into ``self.indices``) as a (len, n_features) device tensor."""
        if not self.on_disk:  # index_select: on the CPU ~2x faster than X[positions] (bench_cpu_step_parts.py)
            return torch.index_select(self.X, 0, positions.to(self.device))
        rows = self.indices[positions.numpy()]
        batch = torch.from_numpy(np.asarray(self.X[rows])).to(self.dtype)
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return batch.to(self.device, non_blocking=True)

    def _batch(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(x, y) at ``positions``; on disk, rows are read in file order for sequential access."""
        if self.on_disk:
            positions = positions[torch.from_numpy(np.argsort(self.indices[positions.numpy()], kind="stable"))]
        y = None if self.targets is None else torch.index_select(self.targets, 0, positions.to(self.device))
        if self.disk_targets is not None:
            y = torch.from_numpy(np.asarray(self.disk_targets[self.indices[positions.numpy()]])).to(self.dtype)
            y = y.to(self.device)
        return self._rows(positions), y

    def batches(self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                global_batch: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """One epoch of ``(x, y)`` batches (``y`` None without targets).

        Under torch.distributed with N ranks, every step takes the next N·``batch_size`` rows of
        the epoch's order (``batch_size`` rows when ``global_batch``), fewer in the last step, and
        rank r takes rows r, r+N, r+2N, … of them: every rank takes the same number of steps. A
        rank left without rows (a last step of fewer than N rows) runs the step's first row as a
        stand-in that counts for nothing (:func:`distributed.rows_in_step` gives 0).
        """
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        if not self.on_disk:  # one copy of the order per epoch, not one of each batch's positions
            order = order.to(self.device)
        if not distributed.is_distributed():
            for start in range(0, len(order), batch_size):
                yield self._batch(order[start:start + batch_size])
            return
        yield from self._shared_batches(order, batch_size if global_batch else batch_size * distributed.world_size())

    def _shared_batches(self, order: torch.Tensor, step_size: int
                        ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """This rank's part of each step of ``step_size`` rows of ``order`` (see :meth:`batches`)."""
        rank, n_ranks = distributed.rank(), distributed.world_size()
        try:
            for start in range(0, len(order), step_size):
                step = order[start:start + step_size]
                positions = step[rank::n_ranks]
                distributed.set_step_rows((len(positions), len(step)))
                yield self._batch(positions if len(positions) else step[:1])
        finally:
            distributed.set_step_rows(None)

    def n_batches(self, batch_size: int) -> int:
        """Steps in an epoch of :meth:`batches` (the same on every rank)."""
        return -(-len(self) // (batch_size * distributed.world_size()))

    def full(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All rows (and targets) at once (full-batch L-BFGS)."""
        return self._batch(torch.arange(len(self)))

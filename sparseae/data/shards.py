"""Data larger than memory: sharded ``.npy`` files seen as one array, and an activation store
that writes a PyTorch model's layer activations to such shards.

:class:`ShardedArray` memory-maps every shard and serves rows by index, so the trainer streams
it in random order with memory bounded by the batch (the pages of the rows a batch reads).
"""
from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..files import atomic_file
from ..validation import DiskRows, check_number, numpy_file_error

SHARD_PATTERN = "shard-{:05d}.npy"


class ShardedArray(DiskRows):
    """Shards (n_i, n_features) stacked as one read-only (Σ n_i, n_features) array.

    ``paths``: ``.npy`` files, in order, or a folder (its ``*.npy`` files, sorted by name), or a
    glob pattern. Indexing with an integer array, a slice or an int returns a NumPy copy of those
    rows (float32 shards stay float32); rows are read shard by shard, in the given order.
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike]) -> None:
        files = _shard_files(paths)
        self.shards = []
        for file in files:
            try:
                shard = np.load(file, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise numpy_file_error(exc, f"{file} is not a readable .npy shard") from None
            if shard.ndim != 2:
                raise DataError(f"shard {file} has shape {shard.shape}; shards must be 2-D (rows, features)")
            self.shards.append(shard)
        widths = {s.shape[1] for s in self.shards}
        dtypes = {s.dtype for s in self.shards}
        if len(widths) > 1 or len(dtypes) > 1:
            raise DataError(f"shards differ in width or dtype: {sorted(widths)} features, {sorted(map(str, dtypes))}")
        self.files = files
        self.offsets = np.cumsum([0] + [s.shape[0] for s in self.shards])
        self.shape = (int(self.offsets[-1]), widths.pop())
        self.dtype = dtypes.pop()
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def __getitem__(self, rows: Any) -> np.ndarray:
        if isinstance(rows, tuple):
            row_part, column_part = rows
            return self[row_part][:, column_part]
        if isinstance(rows, (int, np.integer)):
            return self[np.array([rows])][0]
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(self.shape[0]))
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1:
            raise DataError("ShardedArray takes a 1-D array of row indices")
        if len(rows) and (rows.min() < -self.shape[0] or rows.max() >= self.shape[0]):
            raise IndexError(f"row index out of range for {self.shape[0]} rows")
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        shard_of = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        for shard in np.unique(shard_of):  # a loop over shards, not rows
            where = np.flatnonzero(shard_of == shard)
            out[where] = self.shards[shard][rows[where] - self.offsets[shard]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole array in memory (only for data that fit: the trainer never calls it)."""
        full = self[slice(None)]
        return full if dtype is None else full.astype(dtype)

    def __repr__(self) -> str:
        return f"ShardedArray({len(self.shards)} shards, shape={self.shape}, dtype={self.dtype})"


def _shard_files(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        path = Path(paths)
        if path.is_dir():
            files = sorted(path.glob("*.npy"))
        else:
            files = sorted(Path(p) for p in glob.glob(str(paths)))
            if not files and path.exists():
                files = [path]
    else:
        files = [Path(p) for p in paths]
    if not files:
        raise DataError(f"no .npy shards found at {paths}")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"shard {missing[0]} does not exist")
    return files


class ShardWriter:
    """Row batches (each (b, n_features)) appended into ``folder/shard-00000.npy``, … of at most
    ``rows_per_shard`` rows, holding at most one shard in memory; :meth:`close` writes the rest and
    returns the :class:`ShardedArray`. Two writers can fill two folders row for row (a harvest's
    inputs and targets)."""

    def __init__(self, folder: str | os.PathLike, *, rows_per_shard: int = 100_000, dtype: Any = np.float32) -> None:
        check_number(rows_per_shard, "rows_per_shard", low=1, integer=True)
        self.folder, self.rows_per_shard, self.dtype = Path(folder), int(rows_per_shard), dtype
        self.folder.mkdir(parents=True, exist_ok=True)
        if any(self.folder.glob("*.npy")):
            raise DataError(f"{self.folder} already holds .npy files; write shards into an empty folder")
        self.buffer: list[np.ndarray] = []
        self.buffered = self.written = 0

    def _flush(self, rows: int) -> None:
        block = np.concatenate(self.buffer, axis=0)
        chunk, rest = block[:rows], block[rows:]
        target = self.folder / SHARD_PATTERN.format(self.written)
        with atomic_file(target, "wb", wrap=False) as handle:
            np.save(handle, chunk.astype(self.dtype, copy=False))
        self.written += 1
        self.buffer, self.buffered = ([rest] if len(rest) else []), len(rest)

    def add(self, batch: np.ndarray | torch.Tensor) -> None:
        """Append the rows of ``batch`` (b, n_features)."""
        batch = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        if batch.ndim != 2:
            raise DataError(f"batches must be 2-D (rows, features), got shape {batch.shape}")
        self.buffer.append(batch)
        self.buffered += len(batch)
        while self.buffered >= self.rows_per_shard:
            self._flush(self.rows_per_shard)

    def close(self) -> ShardedArray:
        """Write the rows still buffered; the shards as one array (:class:`DataError` when none)."""
        if self.buffered:
            self._flush(self.buffered)
        if not self.written:
            raise DataError("no rows to write")
        return ShardedArray(self.folder)


def write_shards(batches: Iterable[np.ndarray | torch.Tensor], folder: str | os.PathLike, *,
                 rows_per_shard: int = 100_000, dtype: Any = np.float32) -> ShardedArray:
    """Write row batches (each (b, n_features)) into ``folder/shard-00000.npy``, … of at most
    ``rows_per_shard`` rows, holding at most one shard in memory; returns the :class:`ShardedArray`."""
    writer = ShardWriter(folder, rows_per_shard=rows_per_shard, dtype=dtype)
    for batch in batches:
        writer.add(batch)
    return writer.close()


@torch.no_grad()
def store_activations(model: torch.nn.Module, layer: torch.nn.Module, inputs: Iterable[Any], folder: str | os.PathLike,
                      *, rows_per_shard: int = 100_000, reduce: Callable[[Any], torch.Tensor] | None = None,
                      run: Callable[[torch.nn.Module, Any], Any] | None = None) -> ShardedArray:
    """Run ``model`` over ``inputs`` (an iterable of batches) and write the outputs of ``layer``
    (a submodule) to shards: an activation store for training SAEs on a network's activations.

    ``reduce`` maps the layer's output to rows (default: flatten all but the last dimension, e.g.
    (batch, tokens, d) → (batch·tokens, d)); ``run(model, batch)`` calls the model (default
    ``model(batch)``, or ``model(**batch)`` for a dict). Memory: one batch of activations plus one
    shard being assembled.
    """
    captured: list[torch.Tensor] = []

    def hook(module, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output)

    def rows() -> Iterable[torch.Tensor]:
        for batch in inputs:
            captured.clear()
            if run is not None:
                run(model, batch)
            elif isinstance(batch, dict):
                model(**batch)
            else:
                model(batch)
            if not captured:
                raise DataError("the layer produced no output: is it a submodule that the model calls?")
            out = captured[-1]
            yield (reduce(out) if reduce is not None else out.reshape(-1, out.shape[-1])).float()

    handle = layer.register_forward_hook(hook)
    try:
        return write_shards(rows(), folder, rows_per_shard=rows_per_shard)
    finally:
        handle.remove()

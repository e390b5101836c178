"""A hash index of binary codes: exact and Hamming-radius lookup, and exhaustive Hamming ranking.

The table is a sorted array of distinct code keys (uint64 for codes up to 64 bits, raw bytes
beyond) with the items of each bucket stored contiguously, sorted by id. A radius-``r`` lookup
XORs each query with every flip pattern of weight ≤ r and binary-searches the keys: no Python
work per item or per probe. Saved as a folder with ``index.safetensors`` and ``index.json``;
loading reads raw arrays and JSON only (never unpickles).
"""
from __future__ import annotations

import json
import os
from math import comb
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from .. import locking
from .._version import __version__
from ..errors import CheckpointError, ConfigError, DataError, OutputExistsError
from ..files import staged_folder, write_json_atomic, writing
from ..io import read_safetensors_header
from ..validation import check_number
from .codes import BLOCK_ELEMENTS, _as_bits, _as_packed, flip_masks, hamming_distances, n_bytes_for, pack_bits

__all__ = ["HammingIndex"]

FORMAT = "sparseae-hash-index"
FORMAT_VERSION = 1
ARRAYS_FILE = "index.safetensors"
META_FILE = "index.json"
MAX_PROBES = 1 << 24  # flip patterns per query beyond which lookup refuses (use rank instead)


def _keys(packed: np.ndarray) -> np.ndarray:
    """One sortable key per packed code ``(n, B)``: uint64 ``(n,)`` when B ≤ 8, else void bytes."""
    n, n_bytes = packed.shape
    if n_bytes <= 8:
        padded = np.zeros((n, 8), dtype=np.uint8)
        padded[:, :n_bytes] = packed
        return padded.view(">u8")[:, 0].astype(np.uint64)
    return np.ascontiguousarray(packed).view(np.dtype((np.void, n_bytes)))[:, 0]


def _clear_padding(packed: np.ndarray, n_bits: int) -> np.ndarray:
    """Zero the bits past ``n_bits`` in the last byte (copies only when some are set)."""
    spare = 8 * packed.shape[1] - n_bits
    if spare and (packed[:, -1] & ((1 << spare) - 1)).any():
        packed = packed.copy()
        packed[:, -1] &= np.uint8((0xFF << spare) & 0xFF)
    return packed


class HammingIndex:
    """Hash index of ``n`` binary codes of ``n_bits`` bits.

    ``codes``: packed uint8 ``(n, ceil(n_bits / 8))`` (see :func:`pack_bits`; padding bits are
    ignored) — use :meth:`from_bits` for bool bits. ``ids``: integer ``(n,)`` item ids (default
    ``0..n-1``; duplicates allowed). ``model``: a fingerprint of the model that made the codes,
    stored with the index and checked by :meth:`load`.
    """

    def __init__(self, codes: Any, ids: Any = None, *, n_bits: int | None = None, model: str = ""):
        packed = _as_packed(codes, "codes")
        if len(packed) == 0:
            raise DataError("codes is empty: an index needs at least one item")
        n_bits = 8 * packed.shape[1] if n_bits is None else n_bits
        check_number(n_bits, "n_bits", low=1, integer=True)
        if n_bytes_for(n_bits) != packed.shape[1]:
            raise DataError(f"codes have {packed.shape[1]} bytes per code; {n_bits} bits need "
                            f"{n_bytes_for(n_bits)}")
        if not isinstance(model, str):
            raise ConfigError(f"model must be a string fingerprint, got {type(model).__name__}")
        if ids is None:
            ids = np.arange(len(packed), dtype=np.int64)
        else:
            ids = np.asarray(ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else ids)
            if ids.shape != (len(packed),) or ids.dtype.kind not in "iu":
                raise DataError(f"ids must be integers of shape ({len(packed)},), got {ids.dtype} "
                                f"{ids.shape}")
            ids = ids.astype(np.int64)
        self.n_bits, self.model = int(n_bits), model
        packed = _clear_padding(packed, self.n_bits)
        keys = _keys(packed)
        by_id = np.argsort(ids, kind="stable")
        order = by_id[np.argsort(keys[by_id], kind="stable")]  # by key, then by id
        self._codes, self._ids, keys = packed[order], ids[order], keys[order]
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))  # bucket starts
        self._keys = keys[starts]
        self._bucket_starts = np.append(starts, len(keys))
        self._by_id: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_bits(cls, bits: Any, ids: Any = None, *, model: str = "") -> HammingIndex:
        """Index bool bits ``(n, n_bits)`` (e.g. from :func:`binarize`)."""
        bits = _as_bits(bits, "bits")
        return cls(pack_bits(bits), ids, n_bits=bits.shape[1], model=model)

    def __len__(self) -> int:
        return self.n_items

    @property
    def n_items(self) -> int:
        """Number of indexed items."""
        return len(self._ids)

    @property
    def n_buckets(self) -> int:
        """Number of distinct codes."""
        return len(self._keys)

    def __repr__(self) -> str:
        return (f"HammingIndex(n_items={self.n_items}, n_bits={self.n_bits}, "
                f"n_buckets={self.n_buckets}, model={self.model!r})")

    def _query(self, query: Any) -> np.ndarray:
        """Queries as packed uint8 ``(q, B)``: from bool bits ``(q, n_bits)`` or packed ``(q, B)``."""
        if isinstance(query, torch.Tensor):
            query = query.detach().cpu().numpy()
        array = np.asarray(query)
        n_bytes = n_bytes_for(self.n_bits)
        if array.ndim != 2:
            raise DataError(f"query must be 2-D (q, n_bits) bits or (q, {n_bytes}) packed codes, got "
                            f"shape {array.shape} (one query: query.reshape(1, -1))")
        if array.dtype == np.uint8 and array.shape[1] == n_bytes:
            return _clear_padding(np.ascontiguousarray(array), self.n_bits)
        if array.shape[1] != self.n_bits or array.dtype.kind not in "biu":
            raise DataError(f"query has {array.shape[1]} columns of {array.dtype}; this index holds "
                            f"{self.n_bits}-bit codes: pass bool bits (q, {self.n_bits}) or packed "
                            f"uint8 (q, {n_bytes})")
        return pack_bits(_as_bits(array, "query"))

    def lookup(self, query: Any, radius: int = 0, *, return_distances: bool = False
               ) -> list[np.ndarray] | tuple[list[np.ndarray], list[np.ndarray]]:
        """Ids of the items within Hamming distance ``radius`` of each query.

        ``query``: bool bits ``(q, n_bits)`` or packed uint8 ``(q, B)``. Returns a list of ``q``
        int64 arrays, each sorted by distance then id (plus, with ``return_distances``, a list of
        the matching distances). Probes ``Σ_{k≤r} C(n_bits, k)`` flipped codes per query.
        """
        packed = self._query(query)
        check_number(radius, "radius", low=0, integer=True)
        n_probes = sum(comb(self.n_bits, k) for k in range(min(int(radius), self.n_bits) + 1))
        if n_probes > MAX_PROBES:
            raise ConfigError(f"radius {radius} on {self.n_bits}-bit codes needs {n_probes:,} probes per "
                              f"query (limit {MAX_PROBES:,}); use rank() for exhaustive ranking")
        masks, weights = flip_masks(self.n_bits, int(radius))
        if len(packed) == 0:
            return ([], []) if return_distances else []
        integer_keys = self._keys.dtype == np.uint64
        mask_keys, query_keys = (_keys(masks), _keys(packed)) if integer_keys else (None, None)
        block = max(1, BLOCK_ELEMENTS // len(masks))
        found_query, found_item, found_dist = [], [], []
        for start in range(0, len(packed), block):
            if integer_keys:
                probes = (query_keys[start:start + block, None] ^ mask_keys[None, :]).ravel()
            else:
                flipped = packed[start:start + block, None, :] ^ masks[None, :, :]
                probes = _keys(flipped.reshape(-1, packed.shape[1]))
            pos = np.minimum(np.searchsorted(self._keys, probes), len(self._keys) - 1)
            hit = np.flatnonzero(self._keys[pos] == probes)
            bucket = pos[hit]
            first = self._bucket_starts[bucket]
            counts = self._bucket_starts[bucket + 1] - first
            owner = np.repeat(np.arange(len(hit)), counts)  # expand each bucket into its items
            offsets = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
            found_item.append(first[owner] + offsets)
            found_query.append(start + hit[owner] // len(masks))
            found_dist.append(weights[hit[owner] % len(masks)])
        query_of, item = np.concatenate(found_query), np.concatenate(found_item)
        dist, ids = np.concatenate(found_dist), self._ids[item]
        order = np.lexsort((ids, dist, query_of))
        splits = np.cumsum(np.bincount(query_of, minlength=len(packed)))[:-1]
        id_lists = np.split(ids[order], splits)
        if return_distances:
            return id_lists, np.split(dist[order], splits)
        return id_lists

    def rank(self, query: Any, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exhaustive Hamming ranking: ids int64 ``(q, k)`` and distances ``(q, k)``, nearest
        first, ties broken by id (all ``n`` items when ``k`` is None; a larger ``k`` is clipped)."""
        packed = self._query(query)
        n = self.n_items
        if k is not None:
            check_number(k, "k", low=1, integer=True)
        k = n if k is None else min(int(k), n)
        if self._by_id is None:
            perm = np.argsort(self._ids, kind="stable")
            self._by_id = (self._codes[perm], self._ids[perm])
        codes, ids = self._by_id
        out_ids = np.empty((len(packed), k), dtype=np.int64)
        out_dist = np.empty((len(packed), k), dtype=np.uint16 if self.n_bits < 1 << 16 else np.uint32)
        block = max(1, BLOCK_ELEMENTS // n)
        for start in range(0, len(packed), block):
            dist = hamming_distances(packed[start:start + block], codes)
            if k == n:
                order = np.argsort(dist, axis=1, kind="stable")
            else:  # candidates: items no farther than each row's k-th smallest distance
                kth = np.partition(dist, k - 1, axis=1)[:, k - 1]
                rows, cols = np.nonzero(dist <= kth[:, None])
                sort = np.lexsort((cols, dist[rows, cols], rows))
                rows, cols = rows[sort], cols[sort]
                counts = np.bincount(rows, minlength=len(dist))
                keep = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows] < k
                order = cols[keep].reshape(len(dist), k)
            out_ids[start:start + block] = ids[order]
            out_dist[start:start + block] = np.take_along_axis(dist, order, 1)
        return out_ids, out_dist

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the folder ``path`` (``index.safetensors`` + ``index.json``) atomically, holding its
        lock (:mod:`sparseae.locking`): a concurrent writer of ``path`` is refused."""
        path = Path(path)
        with locking.acquire(path, "HammingIndex.save") as lock:
            return self._save(path, lock, overwrite)

    def _save(self, path: Path, lock: locking.FolderLock, overwrite: bool) -> Path:
        if path not in lock.created:  # it was there before this save
            if not overwrite:
                raise OutputExistsError(f"{path} already exists; pass overwrite=True to replace it")
            if not (path / META_FILE).exists():
                raise OutputExistsError(f"{path} exists and is not a hash index; refusing to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        with staged_folder(path, wrap=False) as staging:
            with writing(path / ARRAYS_FILE):  # disk full: an OSError, not a SafetensorError
                save_file({"codes": self._codes, "ids": self._ids}, str(staging / ARRAYS_FILE),
                          metadata={"format": FORMAT})
            write_json_atomic(staging / META_FILE, {
                "format": FORMAT, "format_version": FORMAT_VERSION, "sparseae_version": __version__,
                "n_bits": self.n_bits, "n_items": self.n_items, "model": self.model})
            lock.copy_into(staging)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, model: str | None = None) -> HammingIndex:
        """Read an index saved by :meth:`save`; with ``model``, check it was made for that model.

        Raises :class:`CheckpointError` for a missing, corrupt or foreign folder.
        """
        folder = Path(path)
        old = folder.with_name(folder.name + ".old")  # an interrupted save may have left the old copy
        if not (folder / META_FILE).exists() and (old / META_FILE).exists():
            folder = old
        if not folder.is_dir():
            raise CheckpointError(f"no hash index at {folder}: expected a folder with {META_FILE} "
                                  f"and {ARRAYS_FILE}")
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{folder} is not a hash index: {META_FILE} is missing") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{folder / META_FILE} is corrupt: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{folder} is not a sparseae hash index (its {META_FILE} has no "
                                  f"'format': '{FORMAT}')")
        version = meta.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(f"{folder} has index format version {version!r}; this sparseae reads "
                                  f"up to {FORMAT_VERSION} (upgrade sparseae)")
        n_bits, n_items, saved_model = meta.get("n_bits"), meta.get("n_items"), meta.get("model")
        if not (isinstance(n_bits, int) and n_bits >= 1 and isinstance(n_items, int) and n_items >= 1
                and isinstance(saved_model, str)):
            raise CheckpointError(f"{folder / META_FILE} lacks valid 'n_bits', 'n_items' or 'model'")
        if model is not None and saved_model != model:
            raise CheckpointError(f"{folder} was built for model {saved_model!r}, not {model!r}")
        expected = {"codes": ("U8", (n_items, n_bytes_for(n_bits))), "ids": ("I64", (n_items,))}
        if read_safetensors_header(folder / ARRAYS_FILE) != expected:  # checked before loading
            raise CheckpointError(f"{folder / ARRAYS_FILE} does not match {META_FILE} (expected uint8 "
                                  f"codes ({n_items}, {n_bytes_for(n_bits)}) and int64 ids ({n_items},))")
        try:
            arrays = load_file(str(folder / ARRAYS_FILE))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{folder / ARRAYS_FILE} is missing or corrupt: {exc}") from None
        return cls(arrays["codes"], arrays["ids"], n_bits=n_bits, model=saved_model)

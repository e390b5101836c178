"""Binary codes: thresholding, bit packing and Hamming distances by popcount.

Bits are packed most-significant-bit first along each row (``np.packbits`` order): bit ``i`` of a
code is bit ``7 - i % 8`` of byte ``i // 8``, and the padding bits of the last byte are zero.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..validation import as_float_array, check_number

__all__ = ["binarize", "pack_bits", "unpack_bits", "hamming_distances", "n_bytes_for", "flip_masks"]

# popcount of every byte value, and of every 16-bit value (for uint64 words without np.bitwise_count)
_POPCOUNT8 = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)
_POPCOUNT16: np.ndarray | None = None

# (query rows × database rows) handled at once: bounds the temporary memory of a distance block
BLOCK_ELEMENTS = 1 << 22


def n_bytes_for(n_bits: int) -> int:
    """Bytes per packed code of ``n_bits`` bits: ``ceil(n_bits / 8)``."""
    return (int(n_bits) + 7) // 8


def binarize(codes: Any, threshold: float = 0.5) -> np.ndarray:
    """Bits ``codes > threshold`` as bool ``(n, n_bits)``; a bool array is returned as it is.

    ``codes`` ``(n, n_bits)`` (numpy or torch) are e.g. the near-binary code-layer activations of
    a semantic-hashing autoencoder (threshold 0.5) or signed projections (threshold 0).
    """
    if isinstance(codes, torch.Tensor):
        codes = codes.detach().cpu().numpy()
    if isinstance(codes, np.ndarray) and codes.dtype == np.bool_:
        if codes.ndim != 2 or 0 in codes.shape:
            raise DataError(f"codes must be a non-empty 2-D array (n, n_bits), got shape {codes.shape}")
        return codes
    check_number(threshold, "threshold")
    dtype = np.float64 if getattr(codes, "dtype", None) == np.float64 else np.float32
    return as_float_array(codes, "codes", dtype=dtype) > threshold


def _as_bits(bits: Any, name: str = "bits") -> np.ndarray:
    """``bits`` as bool ``(n, n_bits)``: bool, or integers that are all 0 or 1 (else DataError)."""
    if isinstance(bits, torch.Tensor):
        bits = bits.detach().cpu().numpy()
    array = np.asarray(bits)
    if array.ndim != 2 or 0 in array.shape:
        raise DataError(f"{name} must be a non-empty 2-D array (n, n_bits), got shape {array.shape}")
    if array.dtype == np.bool_:
        return array
    if array.dtype.kind not in "iu" or not ((array == 0) | (array == 1)).all():
        raise DataError(f"{name} must be bool or 0/1 integers (dtype {array.dtype}); threshold real-valued "
                        "codes with binarize() first")
    return array.astype(np.bool_)


def pack_bits(bits: Any) -> np.ndarray:
    """Pack bool bits ``(n, n_bits)`` into uint8 ``(n, ceil(n_bits / 8))``, MSB first."""
    return np.packbits(_as_bits(bits), axis=1)


def _as_packed(packed: Any, name: str, n_bytes: int | None = None) -> np.ndarray:
    """``packed`` as a C-contiguous uint8 ``(n, n_bytes)`` array, or raise :class:`DataError`."""
    if isinstance(packed, torch.Tensor):
        packed = packed.detach().cpu().numpy()
    array = np.asarray(packed)
    if array.dtype != np.uint8:
        raise DataError(f"{name} must be packed codes of dtype uint8 (from pack_bits), got {array.dtype}")
    if array.ndim != 2 or array.shape[1] == 0:
        raise DataError(f"{name} must be 2-D (n, n_bytes), got shape {array.shape}")
    if n_bytes is not None and array.shape[1] != n_bytes:
        raise DataError(f"{name} has {array.shape[1]} bytes per code, expected {n_bytes}")
    return np.ascontiguousarray(array)


def unpack_bits(packed: Any, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: uint8 ``(n, ceil(n_bits / 8))`` → bool ``(n, n_bits)``."""
    check_number(n_bits, "n_bits", low=1, integer=True)
    array = _as_packed(packed, "packed", n_bytes_for(n_bits))
    return np.unpackbits(array, axis=1, count=int(n_bits)).astype(np.bool_)


def _popcount_words(words: np.ndarray) -> np.ndarray:
    """Set bits of each uint32/uint64 word (same shape, uint8)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0: hardware popcount
        return np.bitwise_count(words)
    global _POPCOUNT16
    if _POPCOUNT16 is None:
        low = _POPCOUNT8[np.arange(1 << 16) & 0xFF]
        _POPCOUNT16 = (low + _POPCOUNT8[np.arange(1 << 16) >> 8]).astype(np.uint8)
    halves = _POPCOUNT16[words.view(np.uint16)]
    return halves.reshape(*words.shape, words.itemsize // 2).sum(axis=-1, dtype=np.uint8)


def _as_units(packed: np.ndarray) -> np.ndarray:
    """View packed codes as uint64 (or uint32) words when the width allows it, else keep bytes."""
    for dtype in (np.uint64, np.uint32):
        if packed.shape[1] % np.dtype(dtype).itemsize == 0:
            return packed.view(dtype)
    return packed


def hamming_distances(query_packed: Any, database_packed: Any, *,
                      block_elements: int = BLOCK_ELEMENTS) -> np.ndarray:
    """Hamming distances between packed codes: ``(q, B)`` and ``(n, B)`` uint8 → ``(q, n)``.

    The result is uint16 (uint32 for codes over 65,535 bits). Popcounts come from a byte lookup
    table, or from uint64 (uint32) words when ``B`` is a multiple of 8 (4). Work proceeds in blocks of about
    ``block_elements`` (query, item) pairs, so the temporary memory stays bounded beside the output.
    """
    query = _as_packed(query_packed, "query_packed")
    database = _as_packed(database_packed, "database_packed", query.shape[1])
    check_number(block_elements, "block_elements", low=1, integer=True)
    n_query, n_items = len(query), len(database)
    dtype = np.uint16 if query.shape[1] * 8 <= np.iinfo(np.uint16).max else np.uint32
    out = np.empty((n_query, n_items), dtype=dtype)
    if n_query == 0 or n_items == 0:
        return out
    query_units, database_units = _as_units(query), _as_units(database)
    words = query_units.dtype != np.uint8
    item_block = min(n_items, block_elements)
    query_block = max(1, block_elements // item_block)
    for i in range(0, n_items, item_block):
        items = database_units[i:i + item_block]
        for j in range(0, n_query, query_block):
            queries = query_units[j:j + query_block]
            target = out[j:j + query_block, i:i + item_block]
            target[...] = 0
            for unit in range(query_units.shape[1]):  # loop over 8-byte words (or bytes)
                xor = np.bitwise_xor(queries[:, unit, None], items[None, :, unit])
                target += _popcount_words(xor) if words else _POPCOUNT8[xor]
    return out


@lru_cache(maxsize=8)
def flip_masks(n_bits: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """All bit-flip patterns of weight 0..radius: packed uint8 ``(m, B)`` and weights ``(m,)``,
    ordered by weight, ``m = Σ_k C(n_bits, k)``. Cached, so both are read-only."""
    combos = [np.zeros((1, 0), dtype=np.int64)]
    for _ in range(min(radius, n_bits)):  # extend each combination by a larger bit index
        prev = combos[-1]
        last = prev[:, -1] if prev.shape[1] else np.full(len(prev), -1)
        counts = n_bits - 1 - last
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        new = np.repeat(last, counts) + 1 + np.arange(int(counts.sum())) - starts
        combos.append(np.column_stack([np.repeat(prev, counts, axis=0), new]))
    parts = []
    for weight, bits in enumerate(combos):
        masks = np.zeros((len(bits), n_bytes_for(n_bits)), dtype=np.uint8)
        rows = np.arange(len(bits))
        for column in range(weight):  # loop over the ≤ radius flipped bits of each pattern
            masks[rows, bits[:, column] // 8] |= (0x80 >> (bits[:, column] % 8)).astype(np.uint8)
        parts.append(masks)
    masks, weights = np.concatenate(parts), np.repeat(np.arange(len(combos)), [len(p) for p in parts])
    masks.flags.writeable = weights.flags.writeable = False
    return masks, weights

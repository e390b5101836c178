"""SHA-256 digests, written once: of tensors (names, dtypes, shapes and bytes) and of files (their bytes).

Used where a saved thing must prove it is the one expected: an exported SAE's weights
(:mod:`sparseae.io.saelens`), a LISTA depth chain's inputs (:mod:`sparseae.evaluate.lista`), a hashed
index's model (:mod:`sparseae.cli.hashing`), a harvest's encoder weights (:mod:`sparseae.data.harvest`).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch

__all__ = ["files_sha256", "tensors_sha256", "update_with_tensor"]

_BLOCK_BYTES = 1 << 22


def update_with_tensor(digest: Any, tensor: torch.Tensor, name: str = "") -> None:
    """Feed ``name|dtype|shape|`` and the tensor's bytes (any dtype, bfloat16 included) to ``digest``."""
    value = tensor.detach().to("cpu").contiguous()
    digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
    digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 of named tensors, in name order: equal names, dtypes, shapes and values, equal digest."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        update_with_tensor(digest, tensors[name], name)
    return digest.hexdigest()


def files_sha256(paths: Iterable[str | os.PathLike]) -> str:
    """Hex SHA-256 of the files' bytes, read in the order given, one after the other."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK_BYTES), b""):
                digest.update(block)
    return digest.hexdigest()

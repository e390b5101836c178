"""sparseae.digests: the one place tensors and files are hashed."""
from __future__ import annotations

import hashlib

import pytest
import torch

from sparseae.digests import files_sha256, tensors_sha256, update_with_tensor


def test_tensors_sha256_is_independent_of_insertion_order_and_memory_layout():
    a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    first = tensors_sha256({"a": a, "b": torch.ones(2)})
    assert first == tensors_sha256({"b": torch.ones(2), "a": a.t().contiguous().t()})
    assert len(first) == 64 and int(first, 16) >= 0


@pytest.mark.parametrize("change", ["value", "dtype", "shape", "name"])
def test_tensors_sha256_changes_with_each_part(change):
    base = {"w": torch.zeros(2, 3)}
    changed = {"value": {"w": torch.zeros(2, 3).index_fill_(1, torch.tensor([2]), 1e-7)},
               "dtype": {"w": torch.zeros(2, 3, dtype=torch.float64)},
               "shape": {"w": torch.zeros(3, 2)},
               "name": {"v": torch.zeros(2, 3)}}[change]
    assert tensors_sha256(base) != tensors_sha256(changed)


def test_update_with_tensor_hashes_bfloat16_and_the_documented_layout():
    t = torch.tensor([1.0, -2.0], dtype=torch.bfloat16)
    digest = hashlib.sha256()
    update_with_tensor(digest, t, "x")
    expected = hashlib.sha256(b"x|torch.bfloat16|(2,)|" + t.view(torch.uint8).numpy().tobytes())
    assert digest.hexdigest() == expected.hexdigest()


def test_files_sha256_is_the_sha256_of_the_concatenated_bytes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_bytes(b"abc" * 1000)
    two.write_bytes(bytes(range(256)) * 20000)  # more than one read block
    assert files_sha256([one, two]) == hashlib.sha256(one.read_bytes() + two.read_bytes()).hexdigest()
    assert files_sha256([two, one]) != files_sha256([one, two])
    assert files_sha256([]) == hashlib.sha256().hexdigest()

"""Shared mechanics written once: batched eval-mode inference (sparseae.inference), atomic writes
(sparseae.files), and no second copy of either in the package."""
from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sparseae
from sparseae.files import atomic_file, staged_folder, write_json_atomic, write_text_atomic
from sparseae.inference import evaluating, map_rows, placement, row_batches
from sparseae.models import create_model

PACKAGE = Path(sparseae.__file__).parent


class _Dropout(nn.Module):
    """y = dropout(W x): eval mode makes it deterministic."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 4).double()
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.linear(x))


def test_map_rows_eval_mode_restored_and_no_graph():
    module = _Dropout().train()
    X = np.random.default_rng(0).normal(size=(10, 6))
    out = map_rows(module, X, batch_size=3, numpy=False, out_dtype=None)
    assert module.training  # restored
    assert not out.requires_grad and out.grad_fn is None
    expected = module.linear(torch.from_numpy(X)).detach()  # dropout off in eval mode
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-15)
    module.eval()
    map_rows(module, X, batch_size=4)
    assert not module.training  # an eval module stays in eval mode


def test_map_rows_batch_size_does_not_change_float64_codes():
    torch.manual_seed(0)
    model = create_model("autoencoder", 12, 5, activation="sigmoid").double()
    X = np.random.default_rng(1).normal(size=(37, 12))
    results = [map_rows(model, X, model.encode, batch_size=b, out_dtype=None) for b in (1, 5, 37, 100)]
    assert results[0].shape == (37, 5) and results[0].dtype == np.float64
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=0, atol=1e-14)


def test_map_rows_dtype_device_and_empty_input():
    model = nn.Linear(3, 2).double()
    assert placement(model) == (torch.device("cpu"), torch.float64)
    assert placement(nn.ReLU()) == (torch.device("cpu"), torch.float32)
    seen = []
    X = np.ones((5, 3), dtype=np.float32)
    out = map_rows(model, X, lambda rows: seen.append(rows.dtype) or model(rows), batch_size=2)
    assert seen == [torch.float64] * 3 and out.dtype == np.float32 and out.shape == (5, 2)
    empty = map_rows(model, np.zeros((0, 3)), batch_size=4)
    assert empty.shape == (0, 2)
    assert [len(rows) for _, rows in row_batches(np.zeros((0, 3)), 4)] == [0]
    assert [start for start, _ in row_batches(np.zeros((7, 3)), 3)] == [0, 3, 6]
    counted = []
    map_rows(model, X, batch_size=2, progress=counted.append)
    assert counted == [2, 2, 1]


def test_evaluating_restores_the_flag_after_an_exception_and_can_keep_gradients():
    module = _Dropout().train()
    with pytest.raises(RuntimeError, match="boom"):
        with evaluating(module):
            assert not module.training and not torch.is_grad_enabled()
            raise RuntimeError("boom")
    assert module.training and torch.is_grad_enabled()
    with evaluating(module, no_grad=False):
        y = module(torch.ones(2, 6, dtype=torch.float64)).sum()
        assert y.requires_grad
    assert module.training


def test_atomic_file_replaces_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "old")
    assert target.read_text() == "old"
    with pytest.raises(ValueError, match="mid-write"):
        with atomic_file(target, "w") as handle:
            handle.write("partial")
            raise ValueError("mid-write")
    assert target.read_text() == "old"  # the old file is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]  # no temporary left
    with atomic_file(target, "wb") as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    write_json_atomic(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "a.json").read_text().startswith('{\n  "a": [')


def test_atomic_file_gets_the_umask_modes(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_text_atomic(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0o666 less the umask, not mkstemp's 0o600


def test_a_failed_write_is_one_oserror_naming_the_target(tmp_path):
    (tmp_path / "taken").mkdir()  # a folder where the file should go: the rename fails (as root too)
    with pytest.raises(OSError, match=r"cannot write .*taken: Is a directory$"):
        write_text_atomic(tmp_path / "taken", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # the temporary file was removed


def test_staged_folder_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with staged_folder(target) as staging:
        (staging / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(KeyError):
        with staged_folder(target) as staging:
            (staging / "b.txt").write_text("2")
            raise KeyError("stop")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left
    with staged_folder(target) as staging:
        (staging / "c.txt").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]


def _callers(owner: str, name: str) -> set[str]:
    """Package files (relative paths) that call ``owner.name(...)``."""
    found = set()
    for file in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == owner):
                found.add(str(file.relative_to(PACKAGE)))
    return found


@pytest.mark.parametrize("owner, name", [("os", "replace"), ("tempfile", "mkstemp"), ("tempfile", "mkdtemp"),
                                         ("tempfile", "NamedTemporaryFile")])
def test_atomic_renames_and_temporaries_live_only_in_files_py(owner, name):
    assert _callers(owner, name) <= {"files.py"}, f"{owner}.{name} outside sparseae/files.py"


def test_the_package_check_sees_a_call():
    assert _callers("os", "replace") == {"files.py"}  # the check can fail: it finds the one real caller


def test_train_eval_flag_is_restored_only_in_inference_py():
    """``was_training = ...; model.eval(); ...; model.train(was_training)`` is written once."""
    users = [str(f.relative_to(PACKAGE)) for f in PACKAGE.rglob("*.py") if "was_training" in f.read_text()]
    assert users == ["inference.py"]

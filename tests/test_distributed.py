"""Distributed data-parallel training through the CLI entry point: ``torchrun`` with 2 CPU
processes (gloo) gives the model of one process with the same global batch, and a run resumes
on a different number of processes. The 1-process runs train in this process on one thread (the
ranks' count), so only the torchrun launches start interpreters."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sparseae.cli import main
from sparseae.io import load_model

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="this torch build has no torch.distributed with gloo")


def _config(tmp_path: Path, model: dict) -> Path:
    X = np.random.default_rng(0).uniform(size=(512, 20)).astype(np.float32)  # 512 = 16 batches of 32
    np.save(tmp_path / "data.npy", X)
    config = {"model": model, "data": {"name": "array", "path": str(tmp_path / "data.npy")},
              "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 32, "max_epochs": 2,
                        "random_state": 0, "device": "cpu"},
              "output": {"plots": False}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(args: list, n_processes: int, cwd: Path) -> subprocess.CompletedProcess | None:
    """``sparseae ARGS`` in this process on one thread, or under ``torchrun`` with ``n_processes``
    gloo ranks of one thread each (the completed launcher is returned)."""
    if n_processes == 1:
        assert main([*map(str, args), "--threads", "1"]) == 0
        return None
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}  # this checkout
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={n_processes}", "-m", "sparseae", *map(str, args)]
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def _assert_same_weights(a: Path, b: Path, atol: float = 2e-6) -> None:
    first, second = load_model(a / "model"), load_model(b / "model")
    for (name, p), (_, q) in zip(first.named_parameters(), second.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=atol, msg=name)


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    # KL sparsity: its ρ̂ is a batch statistic, averaged across ranks
    config = _config(tmp_path, {"name": "sparse_ae_kl", "n_components": 12})
    _run(["train", config, "--out", tmp_path / "one", "--quiet"], 1, tmp_path)
    completed = _run(["train", config, "--out", tmp_path / "two", "--set", "train.batch_size=16", "--quiet"],
                     2, tmp_path)
    assert "Traceback" not in completed.stderr
    _assert_same_weights(tmp_path / "one", tmp_path / "two")
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-5)
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one writer: rank 0


def test_a_distributed_run_resumes_on_one_process(tmp_path):
    config = _config(tmp_path, {"name": "sparse_ae_kl", "n_components": 12})
    _run(["train", config, "--out", tmp_path / "full", "--quiet"], 1, tmp_path)
    _run(["train", config, "--out", tmp_path / "split", "--set", "train.batch_size=16",
          "--set", "train.max_epochs=1", "--quiet"], 2, tmp_path)
    _run(["train", config, "--out", tmp_path / "split", "--resume", "--quiet"], 1, tmp_path)
    _assert_same_weights(tmp_path / "full", tmp_path / "split")
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]

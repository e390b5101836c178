"""``torchrun`` on data that does not split evenly over the ranks: every rank takes the same
number of steps (no hang), and N ranks with batch B train and validate exactly as one process
with batch N·B, whatever the number of rows (docs/interfaces/distributed.md). The 1-process
references train in this process on one thread (the ranks' count): only torchrun starts interpreters."""
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


def _config(tmp_path: Path, n_rows: int, validation_fraction: float = 0.0) -> Path:
    """A KL sparse autoencoder (ρ̂ is a batch statistic reduced across ranks) on ``n_rows`` rows, by
    SGD (its step is linear in the gradient: a misweighted rank shows, where Adam normalizes it)."""
    X = np.random.default_rng(1).uniform(size=(n_rows, 20)).astype(np.float32)
    np.save(tmp_path / "data.npy", X)
    config = {"model": {"name": "sparse_ae_kl", "n_components": 12},
              "data": {"name": "array", "path": str(tmp_path / "data.npy")},
              "train": {"optimizer": "sgd", "learning_rate": 0.3, "momentum": 0.9, "max_epochs": 3, "random_state": 0,
                        "device": "cpu", "validation_fraction": validation_fraction},
              "output": {"plots": False}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _train(config: Path, out: Path, batch_size: int, n_processes: int) -> None:
    """``sparseae train`` in this process on one thread, or under torchrun with ``n_processes`` ranks
    of one thread each; a hang fails after 180 s (torchrun is sent SIGTERM, which ends its workers:
    each runs in a session of its own)."""
    args = ["train", str(config), "--out", str(out), "--set", f"train.batch_size={batch_size}", "--quiet"]
    if n_processes == 1:
        assert main([*args, "--threads", "1"]) == 0
        return
    args = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n_processes}", "-m", "sparseae", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}  # this checkout
    process = subprocess.Popen([sys.executable, *args], cwd=config.parent, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        pytest.fail(f"{n_processes} processes hung on {out.name}")
    assert process.returncode == 0, stderr[-6000:]
    assert "Traceback" not in stderr


def _assert_same_run(one: Path, many: Path) -> None:
    """Same weights (to 2e-6, as tests/test_distributed.py) and the same logged losses per epoch."""
    first, second = load_model(one / "model"), load_model(many / "model")
    for (name, p), (_, q) in zip(first.named_parameters(), second.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=2e-6, msg=name)
    records = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (one, many)]
    assert len(records[0]) == len(records[1]) == 3
    for a, b in zip(*records, strict=True):
        for key in a:
            if key.startswith(("train_", "val_")):
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key


def test_33_rows_batch_16_on_2_ranks_train_as_one_process_with_batch_32(tmp_path):
    # steps of 32 then 1 row: rank 1 has no row in the second step
    config = _config(tmp_path, 33)
    _train(config, tmp_path / "one", 32, 1)
    _train(config, tmp_path / "two", 16, 2)
    _assert_same_run(tmp_path / "one", tmp_path / "two")


def test_a_global_batch_larger_than_the_data_and_an_odd_validation_split(tmp_path):
    # 24 rows: 3 validate (2 + 1 over the ranks), 21 train in one step of 11 + 10 rows (a shard < batch 16)
    config = _config(tmp_path, 24, validation_fraction=0.125)
    _train(config, tmp_path / "one", 32, 1)
    _train(config, tmp_path / "two", 16, 2)
    _assert_same_run(tmp_path / "one", tmp_path / "two")
    assert "val_loss" in json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[0])


def test_3_ranks_with_fewer_steps_than_ranks_and_an_empty_validation_shard(tmp_path):
    # 7 rows: 2 validate (rank 2 holds none), 5 train in steps of 3 and 2 rows (rank 2 idle in the second)
    config = _config(tmp_path, 7, validation_fraction=0.28)
    _train(config, tmp_path / "one", 3, 1)
    _train(config, tmp_path / "three", 1, 3)
    _assert_same_run(tmp_path / "one", tmp_path / "three")

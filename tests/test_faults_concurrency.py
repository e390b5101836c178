"""One writer per folder (:mod:`sparseae.locking`): a second `train`, `index`, `plot` or `report`
on a folder another process writes is refused with exit 2 and changes nothing; stale locks are
taken over, foreign-host locks refused, and the lock never outlives its run."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sparseae import locking
from sparseae.cli import main
from sparseae.errors import DataError, OutputExistsError
from sparseae.runs import execute, folder

TINY = {"model": {"name": "sparse_ae_l1", "n_components": 6}, "data": {"name": "digits"},
        "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 512, "max_epochs": 1,
                  "random_state": 0, "device": "cpu"},
        "output": {"plots": False}}
# `python -m sparseae ARGV[3:]` (the same `sparseae.cli.run()`), started once the file ARGV[1] exists
# and paused before the run's metrics (its model saved, no summary yet) until the file ARGV[2]
# exists, having touched ARGV[2] + ".paused"; "-" for no wait. Both processes import at once.
GATED = """
import sys, time
from pathlib import Path
from sparseae.cli import run
from sparseae.runs import execute
def wait(path):
    while not Path(path).exists():
        time.sleep(0.05)
start, pause = sys.argv[1], sys.argv[2]
if pause != "-":
    original = execute.compute_metrics
    def paused(*args, **kwargs):
        Path(pause + ".paused").touch()
        wait(pause)
        return original(*args, **kwargs)
    execute.compute_metrics = paused
if start != "-":
    wait(start)
sys.argv = ["sparseae", *sys.argv[3:]]
run()
"""


def _config(tmp_path: Path, n_components: int = 6) -> Path:
    path = tmp_path / f"tiny{n_components}.yaml"
    config = {**TINY, "model": {**TINY["model"], "n_components": n_components}}
    path.write_text(yaml.safe_dump(config))
    return path


def _cli(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    return status, capsys.readouterr().err


def _one_line(err: str, *words: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparseae: error: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _write_lock(folder: Path, pid: int, host: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / locking.LOCK_NAME
    lock.write_text(json.dumps({"pid": pid, "host": host, "purpose": "sparseae training",
                                "started": "2020-01-01T00:00:00", "command": "sparseae train"}))
    return lock


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny run folder (copied by the tests that change it)."""
    folder = tmp_path_factory.mktemp("trained")
    assert main(["train", str(_config(folder)), "--out", str(folder / "run"), "--quiet"]) == 0
    return folder / "run"


# ----------------------------------------------------------------------------------- train

def test_a_second_train_on_a_live_run_is_refused_and_the_first_finishes_consistent(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out, resume_first, start_second = tmp_path / "run", tmp_path / "resume-first", tmp_path / "start-second"

    def sparseae(start: Path | str, pause: Path | str, n_components: int, *flags: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", GATED, str(start), str(pause), "train",
                                 str(_config(tmp_path, n_components)), "--out", str(out), "--quiet", *flags],
                                env=env, stderr=subprocess.PIPE, text=True)

    first = sparseae("-", resume_first, 6)
    second = sparseae(start_second, "-", 9, "--overwrite")
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{resume_first}.paused").exists():  # the first run's model is saved, no summary yet
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.05)
        before = _snapshot(out)
        start_second.touch()
        assert second.wait(timeout=120) == 2
        _one_line(second.stderr.read(), f"pid {first.pid}", f"host {socket.gethostname()}", "sparseae training")
        assert _snapshot(out) == before
    finally:
        resume_first.touch()
        start_second.touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()
        second.wait(timeout=120)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    model = json.loads((out / "model" / "config.json").read_text())
    assert saved["model"]["n_components"] == model["params"]["n_components"] == 6
    assert json.loads((out / "summary.json").read_text())["n_components"] == 6
    assert not (out / locking.LOCK_NAME).exists()


def test_overwrite_while_another_process_holds_the_lock_touches_nothing(trained, tmp_path, capsys):
    holder = locking.acquire(trained, "sparseae training")  # this test process plays the live writer
    try:
        before = _snapshot(trained)
        status, err = _cli(capsys, "train", _config(tmp_path, 9), "--out", trained, "--overwrite")
        assert status == 2
        _one_line(err, f"pid {os.getpid()}", f"host {socket.gethostname()}", "in use")
        status, err = _cli(capsys, "train", "--out", trained, "--resume", "--set", "train.max_epochs=2")
        assert status == 2 and f"pid {os.getpid()}" in _one_line(err)
        assert _snapshot(trained) == before
    finally:
        holder.release()
    assert not (trained / locking.LOCK_NAME).exists()


def test_the_lock_is_held_during_a_run_and_removed_after_success(tmp_path, capsys, monkeypatch):
    seen, original = [], execute.compute_metrics

    def spy(*args, **kwargs):
        seen.append(json.loads((tmp_path / "run" / locking.LOCK_NAME).read_text()))
        return original(*args, **kwargs)

    monkeypatch.setattr(execute, "compute_metrics", spy)
    status, err = _cli(capsys, "train", _config(tmp_path), "--out", tmp_path / "run")
    assert status == 0, err
    assert seen[0]["pid"] == os.getpid() and seen[0]["host"] == socket.gethostname()
    assert {"started", "command", "purpose"} <= set(seen[0])
    assert not (tmp_path / "run" / locking.LOCK_NAME).exists()
    assert folder.run_dir_state(tmp_path / "run") == "run"


@pytest.mark.parametrize("failure", [DataError("the data broke after the lock was taken"), KeyboardInterrupt()])
def test_the_lock_is_removed_after_a_failed_run(tmp_path, capsys, monkeypatch, failure):
    held = []

    def fail(config):
        held.append((config.output_dir / locking.LOCK_NAME).exists())
        raise failure

    monkeypatch.setattr(execute, "load_datasets", fail)
    status, err = _cli(capsys, "train", _config(tmp_path), "--out", tmp_path / "new" / "run")
    assert held == [True] and status == (2 if isinstance(failure, DataError) else 130), err
    assert not (tmp_path / "new").exists()  # nothing left: not the lock, nor the folders made for it


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys, caplog):
    run = tmp_path / "run"
    pid = _dead_pid()
    _write_lock(run, pid, socket.gethostname())
    assert folder.run_dir_state(run) == "empty"  # a stale lock is no content of the folder
    status, err = _cli(capsys, "train", _config(tmp_path), "--out", run)
    assert status == 0, err
    assert any("stale" in record.getMessage() and f"pid {pid}" in record.getMessage() for record in caplog.records)
    assert not (run / locking.LOCK_NAME).exists() and (run / "summary.json").exists()


def test_a_lock_from_another_host_is_refused_with_how_to_remove_it(trained, tmp_path, capsys):
    lock = _write_lock(trained, 4242, "elsewhere.example")
    try:
        before = _snapshot(trained)
        status, err = _cli(capsys, "train", _config(tmp_path, 9), "--out", trained, "--overwrite")
        assert status == 2
        _one_line(err, "pid 4242", "host elsewhere.example", f"rm {lock}")
        assert _snapshot(trained) == before
    finally:
        lock.unlink()


# --------------------------------------------------------------------------- plot / report

def test_plot_and_report_do_not_write_into_a_run_being_trained(trained, tmp_path, capsys):
    holder = locking.acquire(trained, "sparseae training")
    try:
        for argv in (("report", trained), ("plot", trained)):
            status, err = _cli(capsys, *argv)
            assert status == 2
            _one_line(err, f"pid {os.getpid()}")
        assert not (trained / "report.html").exists() and not (trained / "filters.png").exists()
        status, err = _cli(capsys, "report", trained, "--out", tmp_path / "elsewhere.html")  # not into the run
        assert status == 0, err
    finally:
        holder.release()
    assert not (trained / locking.LOCK_NAME).exists()


# ----------------------------------------------------------------------------------- index

def test_index_folders_have_one_writer(trained, tmp_path, capsys):
    folder = tmp_path / "index"
    status, err = _cli(capsys, "index", trained, "--out", folder)
    assert status == 0, err
    assert not (folder / locking.LOCK_NAME).exists()
    holder = locking.acquire(folder, "sparseae index")
    try:
        before = _snapshot(folder)
        status, err = _cli(capsys, "index", trained, "--out", folder, "--overwrite", "--threshold", "0.3")
        assert status == 2
        _one_line(err, f"pid {os.getpid()}", f"host {socket.gethostname()}")
        assert _snapshot(folder) == before
    finally:
        holder.release()
    _write_lock(folder, _dead_pid(), socket.gethostname())
    status, err = _cli(capsys, "index", trained, "--out", folder, "--overwrite", "--threshold", "0.3")
    assert status == 0, err
    assert json.loads((folder / "index.json").read_text())["threshold"] == 0.3
    assert not (folder / locking.LOCK_NAME).exists()
    assert _cli(capsys, "query", folder, "--data", "digits", "--rows", "0", "--k", "2")[0] == 0


def test_a_failed_index_build_leaves_no_lock(trained, tmp_path, capsys, monkeypatch):
    from sparseae.cli import hashing

    held = []

    def fail(args, path, *rest):
        held.append((tmp_path / "index" / locking.LOCK_NAME).exists())
        raise DataError("the model broke after the lock was taken")

    monkeypatch.setattr(hashing, "load_trained", fail)
    status, err = _cli(capsys, "index", trained, "--out", tmp_path / "index")
    assert held == [True] and status == 2, err
    assert not (tmp_path / "index").exists()


def test_hamming_index_save_refuses_a_concurrent_writer(tmp_path):
    from sparseae.retrieval import HammingIndex

    index = HammingIndex.from_bits(np.eye(8, dtype=bool))
    holder = locking.acquire(tmp_path / "hash", "another writer")
    try:
        with pytest.raises(OutputExistsError, match=f"pid {os.getpid()}"):
            index.save(tmp_path / "hash")
        assert os.listdir(tmp_path / "hash") == [locking.LOCK_NAME]
    finally:
        holder.release()
    assert not (tmp_path / "hash").exists()
    index.save(tmp_path / "hash")
    assert sorted(os.listdir(tmp_path / "hash")) == ["index.json", "index.safetensors"]


# ------------------------------------------------------------------------------ the lock

def test_a_leftover_lock_with_this_process_pid_is_stale_but_a_held_one_is_not(tmp_path):
    _write_lock(tmp_path / "run", os.getpid(), socket.gethostname())  # an earlier process had our pid
    with locking.acquire(tmp_path / "run", "first") as lock:
        assert json.loads(lock.path.read_text())["purpose"] == "first"
        with pytest.raises(OutputExistsError, match="in use"):
            locking.acquire(tmp_path / "run", "second")
    assert os.listdir(tmp_path / "run") == []  # the folder was there before: it stays


def test_a_half_written_lock_is_refused_while_fresh(tmp_path):
    (tmp_path / locking.LOCK_NAME).write_text("")
    with pytest.raises(OutputExistsError, match="being locked"):
        locking.acquire(tmp_path, "second")
    old = time.time() - 60
    os.utime(tmp_path / locking.LOCK_NAME, (old, old))
    locking.acquire(tmp_path, "second").release()
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this torch build has no torch.distributed with gloo")
def test_under_torchrun_every_rank_stops_when_rank_0_cannot_lock(trained, tmp_path):
    holder = locking.acquire(trained, "sparseae training")
    try:
        before = _snapshot(trained)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   "-m", "sparseae", "train", str(_config(tmp_path, 9)), "--out", str(trained), "--overwrite"]
        completed = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                                   text=True, timeout=180)
        assert completed.returncode != 0
        errors = [line for line in completed.stderr.splitlines() if line.startswith("sparseae: error: ")]
        assert len(errors) == 2 and f"pid {os.getpid()}" in errors[0] + errors[1], completed.stderr
        assert completed.stderr.count("exitcode  : 2") == 2  # both ranks ended with the user error
        assert "sparseae/" not in completed.stderr  # no traceback through sparseae (torchrun prints its own)
        assert _snapshot(trained) == before
    finally:
        holder.release()


def test_sigterm_during_training_stops_like_ctrl_c_and_the_run_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    config = {**TINY, "train": {**TINY["train"], "max_epochs": 1_000_000}}
    (tmp_path / "long.yaml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen([sys.executable, "-m", "sparseae", "train", str(tmp_path / "long.yaml"), "--out",
                                str(out), "--quiet"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.05)
        process.terminate()
        assert process.wait(timeout=60) == 143
    finally:
        process.kill()
    _one_line(process.stderr.read(), "SIGTERM", "--resume")
    assert not (out / locking.LOCK_NAME).exists()
    status, err = _cli(capsys, "train", "--out", out, "--resume", "--set", "train.max_epochs=1")
    assert status == 0, err
    assert (out / "model").is_dir() and (out / "summary.json").exists()

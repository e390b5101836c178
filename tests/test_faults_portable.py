"""Run configs travel: a run trained on a GPU reads (evaluate, plot, probe, index, report) on a
machine without it, and the machine is checked only when training starts."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sparseae.cli import main
from sparseae.config import load_config, read_config_file
from sparseae.errors import ConfigError
from sparseae.estimators import SparseAutoencoder
from sparseae.models import create_model
from sparseae.train import TrainConfig, train
from sparseae.train.config import device_problem

#: Devices a GPU machine may have written into config.yaml; the CLI tests use those this one lacks.
ELSEWHERE = [pytest.param(name, marks=pytest.mark.skipif(
    device_problem(torch.device(name)) is None, reason=f"this machine has {name}"))
    for name in ("cuda", "cuda:3", "mps")]
#: A device no machine this suite runs on has (the library tests hold on a GPU machine too).
MISSING = "cuda:99"
PLOTS = ("filters.png", "curves.png", "reconstructions.png", "activity.png")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line_error(status: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("sparseae: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory) -> Path:
    """A finished one-epoch run on digits, trained on the CPU, with its pictures."""
    run = tmp_path_factory.mktemp("portable") / "run"
    sets = ["model.n_components=8", "train.max_epochs=1", "train.device=cpu"]
    assert main(["train", "--model", "sparse_ae_kl", "--data", "digits", *sum((["--set", s] for s in sets), []),
                 "--out", str(run), "--quiet"]) == 0
    return run


def moved(run: Path, target: Path, device: str) -> Path:
    """A copy of ``run`` whose config.yaml says ``train.device: device``, as a GPU machine writes it."""
    shutil.copytree(run, target)
    config = yaml.safe_load((target / "config.yaml").read_text())
    config["train"]["device"] = device
    (target / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def embedded(page: str, stem: str) -> bytes:
    """The PNG bytes the report page embeds for picture ``stem``."""
    found = re.search(rf'<figure class="fig-{stem}"><img src="data:image/png;base64,([^"]+)"', page)
    assert found, stem
    return base64.b64decode(found.group(1))


# ------------------------------------------------------------------------------ reading commands

@pytest.mark.parametrize("device", ELSEWHERE)
def test_evaluate_and_probe_a_gpu_run_on_this_machine(cpu_run, tmp_path, capsys, device):
    run = moved(cpu_run, tmp_path / "run", device)
    summary = json.loads((run / "summary.json").read_text())
    status, out, err = run_cli(capsys, "evaluate", run)
    assert status == 0, err
    assert f"train.device {device!r}" in out and "using the CPU" in out
    for flags in ([], ["--device", "cpu"]):
        status, out, err = run_cli(capsys, "evaluate", run, *flags, "--json")
        assert status == 0, err
        metrics = json.loads(out)["metrics"]
        assert metrics["reconstruction_error"] == pytest.approx(summary["metrics"]["reconstruction_error"], rel=1e-5)
    status, out, err = run_cli(capsys, "probe", run, "--device", "cpu", "--json")
    assert status == 0, err
    assert json.loads(out)["accuracy"] > 0.5


@pytest.mark.parametrize("device", ELSEWHERE[:1])
def test_plot_a_gpu_run_redraws_its_pictures(cpu_run, tmp_path, capsys, device):
    run = moved(cpu_run, tmp_path / "run", device)
    old = (run / "curves.png").read_bytes()
    for name in PLOTS:  # old pictures, dated a day back: plot must replace every one
        (run / name).write_bytes(old)
        os.utime(run / name, ns=(0, (run / name).stat().st_mtime_ns - 86_400 * 10**9))
    before = {name: (run / name).stat().st_mtime_ns for name in PLOTS}
    for flags in ([], ["--device", "cpu"]):
        status, out, err = run_cli(capsys, "plot", run, *flags)
        assert status == 0, err
        assert all((run / name).stat().st_mtime_ns > before[name] for name in PLOTS)
    assert (run / "filters.png").read_bytes() != old


@pytest.mark.parametrize("device", ELSEWHERE[:1])
def test_report_of_a_gpu_run_draws_fresh_pictures(cpu_run, tmp_path, capsys, device):
    run = moved(cpu_run, tmp_path / "run", device)
    stale = (run / "curves.png").read_bytes()
    (run / "filters.png").write_bytes(stale)  # what the page must not show as the filters
    for flags in ([], ["--device", "cpu"]):
        status, out, err = run_cli(capsys, "report", run, *flags)
        assert status == 0, err
        assert "Warning" not in out
        page = (run / "report.html").read_text(encoding="utf-8")
        assert 'class="stale"' not in page and "are skipped" not in page
        assert embedded(page, "filters") != stale


def test_evaluate_with_a_device_this_machine_lacks_is_one_line(cpu_run, capsys):
    for command in ("evaluate", "plot", "probe", "report"):
        status, _, err = run_cli(capsys, command, cpu_run, "--device", MISSING)
        line = one_line_error(status, err)
        assert MISSING in line and "CUDA" in line
    status, _, err = run_cli(capsys, "evaluate", cpu_run, "--device", "tpu")
    assert "--device must be" in one_line_error(status, err)


def test_report_says_when_it_shows_old_pictures(cpu_run, tmp_path, capsys):
    run = shutil.copytree(cpu_run, tmp_path / "run")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"] = {"name": "array", "path": str(tmp_path / "gone.npy")}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    status, out, err = run_cli(capsys, "report", run)
    assert status == 0, err
    warning = [line for line in out.splitlines() if line.startswith("Warning")]
    assert len(warning) == 1 and "filters.png" in warning[0] and "gone.npy" in warning[0]
    status, out, err = run_cli(capsys, "report", run, "--json")
    assert status == 0, err
    (line,) = json.loads(out)["stale_pictures"]
    assert str(run) in line and "activity.png" in line


# -------------------------------------------------------------------------------------- resume

@pytest.mark.parametrize("device", ELSEWHERE)
def test_resume_of_a_gpu_run_fails_at_training_start(cpu_run, tmp_path, capsys, device):
    run = moved(cpu_run, tmp_path / "run", device)
    files = {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()}
    status, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--set", "train.max_epochs=2")
    line = one_line_error(status, err)
    assert f"train.device is {device!r}" in line and "--device cpu" in line
    assert {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()} == files


@pytest.mark.parametrize("how", [["--device", "cpu"], ["--set", "train.device=cpu"]])
def test_resume_of_a_gpu_run_on_the_cpu(cpu_run, tmp_path, capsys, how):
    run = moved(cpu_run, tmp_path / "run", MISSING)
    status, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--set", "train.max_epochs=2", *how,
                             "--quiet")
    assert status == 0, err
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    assert read_config_file(run / "config.yaml")["train"]["device"] == "cpu"


# ------------------------------------------------------------------------------------- library

def test_reading_a_config_checks_no_fact_of_the_machine(cpu_run, tmp_path):
    raw = read_config_file(moved(cpu_run, tmp_path / "run", MISSING) / "config.yaml")
    assert load_config(base=raw).train_config().device == MISSING
    assert TrainConfig(device="mps", cuda_graph=True, amp=True).validate().device == "mps"
    for bad in ("tpu", "cuda:x", "cudafoo", 0):
        with pytest.raises(ConfigError, match="device must be"):
            TrainConfig(device=bad).validate()


def test_training_checks_the_machine_when_it_starts():
    X = np.random.default_rng(0).uniform(size=(64, 16)).astype(np.float32)
    with pytest.raises(ConfigError, match=re.escape(f"train.device is {MISSING!r}")):
        train(create_model("sparse_ae_l1", 16, 4), X, TrainConfig(device=MISSING, max_epochs=1))
    with pytest.raises(ConfigError, match=re.escape(f"train.device is {MISSING!r}")):
        SparseAutoencoder(n_components=4, max_epochs=1, device=MISSING).fit(X)
    with pytest.raises(ConfigError, match="cuda_graph needs a CUDA device"):
        TrainConfig(device="cpu", cuda_graph=True).training_device()
    assert TrainConfig(device="cpu").training_device() == torch.device("cpu")

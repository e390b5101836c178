"""Divergence never reaches a checkpoint: the state after an epoch is checked (weights, buffers and
the loss at that state) before anything is written, and a resumed run that diverges leaves the
run folder as it was."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from sparseae.cli import main
from sparseae.errors import DivergenceError
from sparseae.io import load_model
from sparseae.models import create_model
from sparseae.runs import procedures
from sparseae.train import Callback, TrainConfig, train
from sparseae.train.checkpoint import checkpoint_path


def sgd(**changes) -> TrainConfig:
    """SGD with one batch per epoch (300 rows): every update is the last of its epoch."""
    return TrainConfig(**{"optimizer": "sgd", "learning_rate": 0.01, "batch_size": 512, "max_epochs": 2,
                          "progress": False, **changes})


def lbfgs(**changes) -> TrainConfig:
    return TrainConfig(**{"optimizer": "lbfgs", "learning_rate": 1.0, "lbfgs_max_iter": 10,
                          "lbfgs_iter_per_epoch": 5, "progress": False, **changes})


def checkpoint_epoch(run_dir: Path) -> int:
    return json.loads((checkpoint_path(run_dir) / "config.json").read_text())["extra"]["epoch"]


def files_of(folder: Path, names=("checkpoint", "model", "summary.json", "config.yaml", "metrics.jsonl")
             ) -> dict[str, bytes]:
    """Every file under ``names`` in ``folder`` with its bytes."""
    found = {}
    for name in names:
        entry = folder / name
        paths = [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
        found.update({str(p.relative_to(folder)): p.read_bytes() for p in paths})
    return found


def assert_finite_loss(model, X) -> None:
    assert all(torch.isfinite(t).all() for t in model.state_dict().values())
    with torch.no_grad():
        assert torch.isfinite(model.loss(torch.as_tensor(X)).loss)


@pytest.mark.parametrize("learning_rate, what", [
    (1e30, "the loss after the epoch's last update"),  # weights ~1e30: finite, their loss is not
    (3e38, r"the weights \(encoder.bias\)"),             # a weight overflows to inf
    (1e40, "an update overflowed"),                      # the step itself is past float32's range
])
def test_last_update_of_an_epoch_is_checked_before_the_checkpoint(digits, tmp_path, learning_rate, what):
    X = digits[0][:300]
    model = create_model("linear_ae", 64, 8)
    train(model, X, sgd(), run_dir=tmp_path)
    before = files_of(tmp_path)
    with pytest.raises(DivergenceError, match=f"{what}.* in epoch 3; .*after epoch 2, which .*checkpoint holds"):
        train(model, X, sgd(learning_rate=learning_rate, max_epochs=4), run_dir=tmp_path, resume=True)
    assert files_of(tmp_path) == before  # checkpoint and metrics of epoch 2, untouched
    saved = load_model(checkpoint_path(tmp_path))
    assert_finite_loss(saved, X)
    for key, value in saved.state_dict().items():  # the model in memory is back to that state
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


def test_divergence_that_builds_up_keeps_the_last_finite_epoch(digits, tmp_path):
    """Growing weights (one SGD step per epoch, too large a rate): the checkpoint is the last
    epoch whose state has a finite loss, and the message names it."""
    X = digits[0][:300]
    with pytest.raises(DivergenceError) as caught:
        train(create_model("linear_ae", 64, 8), X, sgd(learning_rate=0.5, max_epochs=50), run_dir=tmp_path)
    diverged, kept = map(int, re.search(r"in epoch (\d+);.*after epoch (\d+)", str(caught.value)).groups())
    assert kept == diverged - 1 >= 1
    assert checkpoint_epoch(tmp_path) == kept
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == kept
    assert_finite_loss(load_model(checkpoint_path(tmp_path)), X)


def test_lbfgs_resumed_with_a_diverging_learning_rate(digits, tmp_path):
    """Full-batch L-BFGS: the learning rate of a resume applies, and its divergence writes nothing."""
    X = digits[0][:300]
    model = create_model("sparse_ae_l1", 64, 8)
    train(model, X, lbfgs(), run_dir=tmp_path)
    before = files_of(tmp_path)
    with pytest.raises(DivergenceError, match="in epoch 3; .*after epoch 2, which .*checkpoint holds"):
        train(model, X, lbfgs(learning_rate=1e10, lbfgs_max_iter=20), run_dir=tmp_path, resume=True)
    assert files_of(tmp_path) == before
    assert_finite_loss(load_model(checkpoint_path(tmp_path)), X)


class Explode(Callback):
    """An update that leaves a non-finite weight after the epoch's last step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step, model):
        if step == self.step:
            with torch.no_grad():
                model.encoder.weight[0, 0] = float("inf")


@pytest.mark.parametrize("config", [sgd(max_epochs=3), lbfgs(lbfgs_max_iter=15)], ids=["sgd", "lbfgs"])
def test_weights_are_checked_not_only_the_loss(digits, tmp_path, config):
    X = digits[0][:300]
    model = create_model("sparse_ae_l1", 64, 8)
    with pytest.raises(DivergenceError, match=r"weights \(encoder.weight\).* in epoch 2; .*after epoch 1"):
        train(model, X, config, run_dir=tmp_path, callbacks=[Explode(step=2)])
    assert checkpoint_epoch(tmp_path) == 1
    assert_finite_loss(load_model(checkpoint_path(tmp_path)), X)
    assert torch.isfinite(model.encoder.weight).all()


def test_a_pretraining_phase_has_the_same_guarantee(digits, tmp_path):
    """Greedy layer-wise pre-training: layer 2 diverging keeps its own last good checkpoint."""
    from sparseae.train.procedures import pretrain_layers

    X = digits[0][:300]
    expected = r"weights .* in epoch 2; .*after epoch 1, which .*layer2.checkpoint holds"
    with pytest.raises(DivergenceError, match=expected):
        pretrain_layers(X, [{"n_components": 16}, {"n_components": 8}], [sgd(max_epochs=1), sgd(max_epochs=3)],
                        run_dir=tmp_path, callbacks=[Explode(step=2)])
    assert checkpoint_epoch(tmp_path / "layer1") == 1 and checkpoint_epoch(tmp_path / "layer2") == 1
    assert all(torch.isfinite(t).all() for t in load_model(checkpoint_path(tmp_path / "layer2")).state_dict().values())


# ------------------------------------------------------------------------------------ CLI

RUN = {
    "model": {"name": "linear_ae", "n_components": 8},
    "data": {"name": "digits"},
    "train": {"optimizer": "sgd", "learning_rate": 0.01, "batch_size": 2048, "max_epochs": 2,
              "random_state": 0, "device": "cpu"},
    "output": {"plots": False},
}


def cli(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    return status, capsys.readouterr().err


def assert_diverged(status: int, err: str, epoch: int, kept: int, run: Path) -> None:
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("sparseae: error: ") and f"in epoch {epoch};" in err and f"after epoch {kept}" in err, err
    assert str(run / "checkpoint") in err, err


def test_cli_resume_of_a_finished_run_that_diverges_changes_nothing(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(RUN))
    run = tmp_path / "run"
    assert cli(capsys, "train", config, "--out", run, "--quiet")[0] == 0
    before = files_of(run)
    assert {"summary.json", "config.yaml", "model/model.safetensors"} <= set(before)
    status, err = cli(capsys, "train", "--out", run, "--resume", "--set", "train.max_epochs=4",
                      "--set", "train.learning_rate=1e30", "--quiet")
    assert_diverged(status, err, 3, 2, run)
    assert files_of(run) == before  # checkpoint, model/, summary.json, config.yaml, metrics.jsonl


def test_cli_resume_of_an_interrupted_run_that_diverges_changes_nothing(tmp_path, capsys, monkeypatch):
    class Interrupt(Callback):
        def on_epoch_end(self, epoch, record, model):
            if epoch == 2:
                raise KeyboardInterrupt

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**RUN, "train": {**RUN["train"], "max_epochs": 6}}))
    run = tmp_path / "run"
    monkeypatch.setattr(procedures, "train", lambda *args, **kwargs: train(*args, callbacks=[Interrupt()], **kwargs))
    assert cli(capsys, "train", config, "--out", run, "--quiet")[0] == 130
    monkeypatch.undo()
    before = files_of(run)
    assert checkpoint_epoch(run) == 2 and not (run / "summary.json").exists()
    status, err = cli(capsys, "train", "--out", run, "--resume", "--set", "train.learning_rate=1e30", "--quiet")
    assert_diverged(status, err, 3, 2, run)
    assert files_of(run) == before
    assert not (run / "model").exists() and not (run / "summary.json").exists()
    # a resume that works writes its settings
    assert cli(capsys, "train", "--out", run, "--resume", "--set", "train.max_epochs=3", "--quiet")[0] == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["max_epochs"] == 3
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3

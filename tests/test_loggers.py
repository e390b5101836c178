"""Experiment-tracking loggers (train.loggers / --log-to): what each wrote, read back offline, equals
the run's metrics.jsonl, config and summary."""
from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from sparseae.config import load_config
from sparseae.errors import ConfigError
from sparseae.runs import execute_run
from sparseae.train import TrainConfig, train
from sparseae.train.loggers import LOGGER_PACKAGES, check_logger_installed, check_logger_names, numbers

INSTALLED = [name for name, (module, _) in LOGGER_PACKAGES.items() if importlib.util.find_spec(module)]


def needs(name: str) -> None:
    if name not in INSTALLED:
        pytest.skip(f"{name} is not installed (pip install \"sparseae[{name}]\")")


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """One 3-epoch TopK run on digits with every installed logger: (run folder, metrics.jsonl
    records, summary)."""
    if not INSTALLED:
        pytest.skip("none of tensorboard, mlflow, wandb is installed")
    run_dir = tmp_path_factory.mktemp("logged") / "run"
    config = load_config(base={"model": {"name": "topk_sae", "n_components": 12, "k": 3},
                               "data": {"name": "digits"},
                               "train": {"max_epochs": 3, "batch_size": 512, "loggers": INSTALLED,
                                         "validation_fraction": 0.2},
                               "output": {"dir": str(run_dir), "plots": False}})
    summary = execute_run(config)
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return run_dir, history, summary


def test_logger_names_are_strict():
    assert check_logger_names("tensorboard, wandb") == ["tensorboard", "wandb"]
    with pytest.raises(ConfigError, match="unknown logger 'tensorbord'.*known: tensorboard, mlflow, wandb"):
        TrainConfig(loggers=["tensorbord"]).validate()
    with pytest.raises(ConfigError, match="mlflow more than once"):
        TrainConfig(loggers=["mlflow", "mlflow"]).validate()
    with pytest.raises(ConfigError, match="must be a list of logger names"):
        TrainConfig(loggers=[3]).validate()


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(LOGGER_PACKAGES, "mlflow", ("sparseae_no_such_module", "mlflow"))
    with pytest.raises(ConfigError, match=r'logger \'mlflow\' needs .*pip install "sparseae\[mlflow\]"'):
        check_logger_installed("mlflow")


def test_cli_missing_package_is_one_line(tmp_path, monkeypatch, capsys):
    from sparseae.cli import main

    monkeypatch.setitem(LOGGER_PACKAGES, "wandb", ("sparseae_no_such_module", "wandb"))
    status = main(["train", "--model", "topk_sae", "--data", "digits", "--set", "model.n_components=8",
                   "--set", "model.k=2", "--out", str(tmp_path / "run"), "--log-to", "wandb"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and 'sparseae[wandb]' in err[0]
    assert not (tmp_path / "run").exists()  # refused before any work
    assert main(["train", "--model", "topk_sae", "--data", "digits", "--out", str(tmp_path / "r2"),
                 "--log-to", "tensorboard,neptune"]) == 2
    assert "unknown logger 'neptune' in --log-to" in capsys.readouterr().err


def test_train_on_its_own_opens_its_config_loggers(digits, tmp_path):
    from sparseae.models import create_model

    model = create_model("topk_sae", 64, 8, k=2)
    with pytest.raises(ConfigError, match="train.loggers write into the run folder"):
        train(model, digits[0][:64], TrainConfig(max_epochs=1, loggers=["tensorboard"]))
    needs("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator

    result = train(model, digits[0][:64], TrainConfig(max_epochs=2, batch_size=32, loggers=["tensorboard"]),
                   run_dir=tmp_path)
    events = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train_loss")]
    assert logged == [(r["epoch"], pytest.approx(r["train_loss"], rel=1e-6)) for r in result.history]
    assert json.loads(events.Tensors("config/text_summary")[0].tensor_proto.string_val[0])["batch_size"] == 32


def _epoch_numbers(history):
    return [{k: v for k, v in numbers(record).items() if k != "epoch"} for record in history]


def test_tensorboard_logged_the_run(logged_run):
    needs("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator

    run_dir, history, summary = logged_run
    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"),
                                                size_guidance={event_accumulator.SCALARS: 0,
                                                               event_accumulator.TENSORS: 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for epoch, record in enumerate(_epoch_numbers(history), start=1):
        assert set(record) <= tags and "val_loss" in record and "train_loss" in record
        for key, value in record.items():
            [event] = [e for e in events.Scalars(key) if e.step == epoch]
            assert event.value == pytest.approx(value, rel=1e-6, abs=1e-30)  # stored as float32
    final = [e for e in events.Scalars("summary/metrics.mean_l0")]
    assert len(final) == 1 and final[0].step == 3
    assert final[0].value == pytest.approx(summary["metrics"]["mean_l0"], rel=1e-6)
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    params = json.loads(config_text)
    assert params["model.k"] == 3 and params["train.max_epochs"] == 3 and params["data.name"] == "digits"


def test_mlflow_logged_the_run(logged_run):
    needs("mlflow")
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    run_dir, history, summary = logged_run
    client = MlflowClient(tracking_uri=f"file:{(run_dir / 'mlruns').resolve()}")
    [run] = client.search_runs([client.get_experiment_by_name("sparseae").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.k"] == "3" and run.data.params["train.loggers"] == json.dumps(INSTALLED)
    for key in _epoch_numbers(history)[0]:
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert logged == [(epoch, record[key]) for epoch, record in enumerate(history, start=1)]
    assert run.data.metrics["summary/final_loss"] == summary["final_loss"] == history[-1]["train_loss"]
    assert run.data.metrics["summary/metrics.explained_variance"] == summary["metrics"]["explained_variance"]


def _wandb_records(path: Path):
    """The protobuf records of a W&B offline run file (``run-*.wandb``): a 7-byte header, then
    LevelDB-log framing in 32 KiB blocks (checksum 4, length 2, type 1: full/first/middle/last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    offset, pending, block = 7, b"", 32768
    while offset + 7 <= len(data):
        room = block - offset % block
        if room < 7:  # the block's tail is padding
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset:offset + 7])
        if length == 0 and kind == 0:
            offset += room
            continue
        pending += data[offset + 7:offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # full, last
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_logged_the_run_offline(logged_run):
    needs("wandb")
    run_dir, history, summary = logged_run
    [run_file] = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    steps: dict[int, dict[str, float]] = {}
    config: dict[str, object] = {}
    for record in _wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in record.history.item}
            steps.setdefault(int(row["_step"]), {}).update(row)
        elif kind == "config":
            config.update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                           for item in record.config.update})
    for epoch, record in enumerate(_epoch_numbers(history), start=1):
        assert {k: steps[epoch][k] for k in record} == record  # JSON: exact
    assert steps[3]["summary/metrics.mean_l0"] == summary["metrics"]["mean_l0"]
    assert config["model"]["k"] == 3 and config["train"]["loggers"] == INSTALLED


def test_unprefixed_keys_are_the_main_phase():
    from sparseae.train.loggers import Logger

    class Memory(Logger):
        def __init__(self):
            self.logged = []

        def log_params(self, params):
            self.logged.append(("params", dict(params)))

        def log_metrics(self, metrics, step):
            self.logged.append((step, dict(metrics)))

    memory = Memory()
    assert memory.for_phase("fine-tune") is memory
    memory.for_phase("pretrain layer 1/2").on_epoch_end(4, {"epoch": 4, "train_loss": 0.5}, None)
    memory.on_epoch_end(2, {"epoch": 2, "train_loss": np.float64(0.25), "note": "x"}, None)
    assert memory.logged == [(4, {"pretrain_layer_1_2/train_loss": 0.5}), (2, {"train_loss": 0.25})]

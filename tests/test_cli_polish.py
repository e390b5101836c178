"""The first hour with the `sparseae` command: a demo that runs twice, a plain model listing,
gradcheck lines that agree with the verdict, run headers and labelled progress bars, the progress
setting recorded as it ran, and estimators' ``verbose``."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from sparseae.cli import main
from sparseae.cli.output import describe_phases, plain_text, plural
from sparseae.config import read_config_file, written_by
from sparseae.estimators import StackedAutoencoder
from sparseae.models import MODELS
from sparseae.train import TrainConfig
from sparseae.train.procedures import fit_stacked

#: A small, fast demo: the quick setting on fewer patches.
SMALL_DEMO = ("demo", "--quick", "--set", "data.n_patches=500")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``main(argv)``."""
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def tiny_config(tmp_path, **train) -> str:
    config = {"model": {"name": "sparse_ae_l1", "n_components": 8}, "data": {"name": "digits"},
              "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 256, "max_epochs": 1,
                        "device": "cpu", **train},
              "output": {"dir": str(tmp_path / "run"), "plots": False}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def deep_config(tmp_path) -> str:
    config = {"model": {"name": "deep_autoencoder", "n_components": 4, "hidden": [16]},
              "data": {"name": "digits", "normalize": "none"},
              "pretrain": {"max_epochs": 1},
              "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 256, "max_epochs": 2,
                        "device": "cpu"},
              "output": {"dir": str(tmp_path / "deep"), "plots": False}}
    path = tmp_path / "deep.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


# ------------------------------------------------------------------------------------- demo

def test_demo_runs_twice_replacing_its_own_earlier_run(tmp_path, capsys, monkeypatch):
    """The README's first command, twice in the same folder: both exit 0, the second says it
    replaces the first demo run in runs/demo."""
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(capsys, *SMALL_DEMO)
    assert status == 0, err
    assert "Replacing" not in out
    assert written_by(tmp_path / "runs" / "demo" / "config.yaml") == "sparseae demo"
    first = json.loads((tmp_path / "runs" / "demo" / "summary.json").read_text())
    status, out, err = run_cli(capsys, *SMALL_DEMO)
    assert status == 0, err
    assert out.splitlines()[0] == ("Replacing the earlier demo run (finished) in runs/demo: "
                                   "a demo replaces only its own runs")
    second = json.loads((tmp_path / "runs" / "demo" / "summary.json").read_text())
    assert second["final_loss"] == pytest.approx(first["final_loss"])
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["demo"]


def test_demo_never_replaces_a_run_it_did_not_write(tmp_path, capsys):
    status, _, err = run_cli(capsys, "train", tiny_config(tmp_path), "--quiet")
    assert status == 0, err
    assert written_by(tmp_path / "run" / "config.yaml") == "sparseae train"
    before = (tmp_path / "run" / "summary.json").read_bytes()
    status, out, err = run_cli(capsys, *SMALL_DEMO, "--out", tmp_path / "run")
    assert status == 2 and "already holds a finished sparseae run" in err and "Replacing" not in out
    assert (tmp_path / "run" / "summary.json").read_bytes() == before


# ----------------------------------------------------------------------------------- models

def test_models_lists_one_plain_line_per_model(capsys):
    status, out, err = run_cli(capsys, "models")
    assert status == 0, err
    assert "`" not in out and not re.search(r":(func|class|meth|mod|attr):", out)
    lines = out.splitlines()
    assert len(lines) == 1 + len(MODELS.names())
    assert "n_features and n_components" in lines[0]
    for name, line in zip(MODELS.names(), lines[1:], strict=True):
        assert line.split()[0] == name and len(line) <= 100


def test_models_name_lists_its_required_arguments_and_parameters(capsys):
    status, out, err = run_cli(capsys, "models", "sparse_ae_kl")
    assert status == 0, err
    assert "`" not in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "(required)" in rows["n_features"] and "(required)" in rows["n_components"]
    assert rows["sparsity_target"].split()[1:] == ["=", "0.01"]
    status, out, _ = run_cli(capsys, "models", "sparse_ae_kl", "--json")
    entry = json.loads(out)["models"]["sparse_ae_kl"]
    assert entry["required"] == ["n_features", "n_components"] and entry["parameters"]["weight_decay"] == 1e-4
    status, _, err = run_cli(capsys, "models", "nope")
    assert status == 2 and err.startswith("sparseae: error: unknown model 'nope'")


def test_plain_text_drops_sphinx_markup():
    assert plain_text("as :func:`~sparseae.models.autoencoders.autoencoder`, see\n:class:`LISTA` and "
                      "``tol``") == "as autoencoder, see LISTA and tol"


# -------------------------------------------------------------------------------- gradcheck

def test_gradcheck_lines_agree_with_the_verdict(capsys):
    """sparse_ae_kl 32 → 10: the decoder weights' own ratio is above 1e-9 while the check over all
    coordinates passes; the lines printed are each parameter's part of the deciding ratio."""
    args = ("gradcheck", "--model", "sparse_ae_kl", "--n-features", "32", "--n-components", "10",
            "--max-checks", "10")
    status, out, _ = run_cli(capsys, *args, "--json")
    check = json.loads(out)
    assert status == 0 and check["passed"] and check["relative_error"] < 1e-9
    assert check["per_parameter"]["decoder.weight_"] > 1e-9  # the case of the issue
    assert sum(share ** 2 for share in check["per_parameter_share"].values()) == \
        pytest.approx(check["relative_error"] ** 2, rel=1e-9)
    status, out, _ = run_cli(capsys, *args)
    assert status == 0
    headline = out.splitlines()[0]
    assert "PASS" in headline and f"= {check['relative_error']:.3e} < 1e-09" in headline
    values = [float(line.split()[1]) for line in out.splitlines()[2:]]
    assert len(values) == 4 and max(values) <= float(f"{check['relative_error']:.3e}") < 1e-9
    status, out, _ = run_cli(capsys, "gradcheck", "--tolerance", "1e-30")
    assert status == 1 and "FAIL" in out and "≥ 1e-30" in out and "PASS" not in out


# ------------------------------------------------------------------------ headers and bars

def test_plural_and_phases():
    assert plural(1, "epoch") == "1 epoch" and plural(2, "epoch") == "2 epochs"
    assert describe_phases([{"name": "train", "layers": None, "optimizer": "lbfgs", "epochs": 1,
                             "lbfgs_max_iter": 40}]) == "train (40 L-BFGS iterations in 1 epoch)"


def test_run_header_names_the_phase_and_says_one_epoch(tmp_path, capsys):
    status, out, err = run_cli(capsys, "train", tiny_config(tmp_path))
    assert status == 0, err
    header = next(line for line in out.splitlines() if line.startswith("Training"))
    assert "on cpu: train (adam, 1 epoch); run folder" in header and "epochs" not in header


def test_deep_run_labels_every_phase_and_records_progress(tmp_path, capsys):
    """A deep model: the header names pre-training and fine-tuning; each phase's bar on stderr has
    its label; config.yaml records the progress bar that was shown (and none with --quiet)."""
    status, out, err = run_cli(capsys, "train", deep_config(tmp_path))
    assert status == 0, err
    assert "pretrain 2 layers (adam, 1 epoch each), then fine-tune (adam, 2 epochs)" in out
    for label in ("pretrain layer 1/2:", "pretrain layer 2/2:", "fine-tune:", "encode:"):
        assert label in err, label
    assert read_config_file(tmp_path / "deep" / "config.yaml")["train"]["progress"] is True
    status, out, err = run_cli(capsys, "train", deep_config(tmp_path), "--overwrite", "--quiet")
    assert status == 0 and out == "" and err == ""
    assert read_config_file(tmp_path / "deep" / "config.yaml")["train"]["progress"] is False


def test_estimator_verbose_shows_each_phase(capsys):
    X = np.random.default_rng(0).uniform(size=(64, 12)).astype(np.float32)
    options = dict(n_components=3, hidden=(6,), pretrain_epochs=1, max_epochs=1, batch_size=32,
                   device="cpu", random_state=0)
    capsys.readouterr()
    StackedAutoencoder(**options).fit(X)
    assert capsys.readouterr().err == ""
    StackedAutoencoder(**options, verbose=True).fit(X)
    err = capsys.readouterr().err
    for label in ("pretrain layer 1/2:", "pretrain layer 2/2:", "fine-tune:"):
        assert label in err, label


def test_fit_stacked_verbose_overrides_the_configs(capsys):
    X = np.random.default_rng(0).uniform(size=(64, 12)).astype(np.float32)
    config = TrainConfig(max_epochs=1, batch_size=32, device="cpu")
    layers = [{"n_components": 6, "likelihood": "bernoulli"}, {"n_components": 3}]
    capsys.readouterr()
    fit_stacked(X, layers, pretrain_config=config, finetune_config=config, verbose=True)
    err = capsys.readouterr().err
    assert "pretrain layer 1/2:" in err and "pretrain layer 2/2:" in err and "fine-tune:" in err
    fit_stacked(X, layers, pretrain_config=config, finetune_config=config)
    assert capsys.readouterr().err == ""

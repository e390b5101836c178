"""Nothing is silently ignored: penalties given to psd, lista, lateral_inhibition and conv_stack are
applied or refused; a convolutional model's n_components is one number in `train` and `evaluate`;
the inference and L-BFGS iteration limits have names that say which is which (old names refused in
configs, migrated in saved models and run folders)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from sparseae.cli import main
from sparseae.errors import ConfigError
from sparseae.io import load_model, save_model
from sparseae.models import create_model
from sparseae.nn.penalties import L1Penalty
from sparseae.report.page import _facts
from sparseae.report.run import collect_run
from sparseae.train import TrainConfig, train
from sparseae.train.procedures import fit_conv_stack_layers

#: The encoder's weight matrices, which ``weight_decay`` covers, per model.
ENCODER_MATRICES = {"psd": ("encoder.linear.weight",), "lista": ("encoder.weight", "encoder.S")}
STACK_LAYERS = [{"n_components": 4, "kernel_size": 3, "weight_decay": 0.05}]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_refused(status: int, err: str, *words: str) -> None:
    """Exit status 2 and one error line naming every word."""
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def tiny_config(run: Path, model: dict, **train: object) -> dict:
    return {"model": model, "data": {"name": "digits"},
            "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 512, "max_epochs": 1,
                      "random_state": 0, "device": "cpu", **train},
            "output": {"dir": str(run), "plots": False}}


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def loss_and_gradients(name: str, X: torch.Tensor, **params) -> tuple:
    torch.manual_seed(3)
    model = create_model(name, 16, 8, **params).double()
    out = model.loss(X)
    out.loss.backward()
    return model, out, {k: p.grad.clone() for k, p in model.named_parameters()}


# ------------------------------------------------------------------------ penalties: applied
@pytest.mark.parametrize("name", ["psd", "lista"])
def test_weight_decay_is_a_logged_term_with_its_gradient(name):
    X = torch.randn(40, 16, dtype=torch.float64)
    _, plain, grads = loss_and_gradients(name, X, inference_max_iter=300)
    model, decayed, decayed_grads = loss_and_gradients(name, X, inference_max_iter=300, weight_decay=0.5)
    matrices = [model.get_parameter(key).detach() for key in ENCODER_MATRICES[name]]
    expected = 0.25 * sum(float(W.square().sum()) for W in matrices)
    assert float(decayed.terms["weight_decay"]) == pytest.approx(expected, rel=1e-12)
    assert float((decayed.loss - plain.loss).detach()) == pytest.approx(expected, rel=1e-9)
    for key, grad in decayed_grads.items():
        added = 0.5 * model.get_parameter(key).detach() if key in ENCODER_MATRICES[name] else 0.0
        torch.testing.assert_close(grad, grads[key] + added)
    assert any(not torch.equal(decayed_grads[key], grads[key]) for key in ENCODER_MATRICES[name])


@pytest.mark.parametrize("name", ["psd", "lista"])
def test_a_code_penalty_added_by_hand_acts_on_the_models_code(name):
    X = torch.randn(40, 16, dtype=torch.float64)
    _, plain, grads = loss_and_gradients(name, X)
    torch.manual_seed(3)
    model = create_model(name, 16, 8).double()
    model.penalties["code_l1"] = L1Penalty(0.3)
    out = model.loss(X)
    out.loss.backward()
    code = model.encode(X).detach()  # F(x) for PSD, z^T for LISTA
    expected = 0.3 * float(code.abs().sum(dim=1).mean())
    assert float(out.terms["code_l1"]) == pytest.approx(expected, rel=1e-12)
    assert float((out.loss - plain.loss).detach()) == pytest.approx(expected, rel=1e-9)
    encoder_grad = dict(model.named_parameters())[ENCODER_MATRICES[name][0]].grad
    assert not torch.allclose(encoder_grad, grads[ENCODER_MATRICES[name][0]])
    history = train(model.float(), X.float().numpy(), TrainConfig(max_epochs=1, batch_size=20, device="cpu")).history
    assert history[0]["train_code_l1"] > 0


# ------------------------------------------------------------------------ penalties: refused
def test_lateral_inhibition_applies_the_penalties_it_is_given(digits):
    # issue 23: every model's loss is its energy terms plus its penalties (at z*, logged by name)
    with pytest.raises(ConfigError, match="'lateral_inhibition' has no parameter 'weight_decay'"):
        create_model("lateral_inhibition", 64, 8, weight_decay=0.1)
    model = create_model("lateral_inhibition", 64, 8, inference_max_iter=20)
    model.penalties["code_l1"] = L1Penalty(0.1)
    X = torch.from_numpy(digits[0][:100])
    out = model.loss(X)
    assert float(out.terms["code_l1"]) == pytest.approx(0.1 * float(out.code.abs().sum(dim=1).mean()), rel=1e-5)
    history = train(model, digits[0][:100], TrainConfig(max_epochs=1, device="cpu")).history
    assert history[0]["train_code_l1"] > 0


def test_conv_stack_applies_its_layers_penalties_and_refuses_its_own(digits):
    with pytest.raises(ConfigError, match="'conv_stack' has no parameter 'weight_decay'"):
        create_model("conv_stack", 64, 4, image_shape=[8, 8], layers=STACK_LAYERS, weight_decay=0.1)
    model = create_model("conv_stack", 64, 4, image_shape=[8, 8], layers=STACK_LAYERS)
    X = torch.from_numpy(digits[0][:50])
    expected = 0.025 * sum(float(W.detach().square().sum()) for W in model.layers[0].weight_matrices())
    assert float(model.loss(X).terms["weight_decay"]) == pytest.approx(expected, rel=1e-5)
    model.penalties["code_l1"] = L1Penalty(0.1)
    with pytest.raises(ConfigError, match="model 'conv_stack' cannot apply penalty 'code_l1'.*layer dict"):
        model.loss(X)
    with pytest.raises(ConfigError, match="model 'conv_stack' cannot apply penalty 'code_l1'"):
        fit_conv_stack_layers(model, digits[0][:50], TrainConfig(max_epochs=1, device="cpu"))


# ------------------------------------------------------------------------ penalties: via the CLI
@pytest.mark.parametrize("model, metrics", [
    ({"name": "psd", "n_components": 16, "weight_decay": 0.01, "inference_max_iter": 20}, "metrics.jsonl"),
    ({"name": "lista", "n_components": 16, "weight_decay": 0.01, "inference_max_iter": 50}, "metrics.jsonl"),
    ({"name": "conv_stack", "n_components": 4, "image_shape": [8, 8], "layers": STACK_LAYERS},
     "pretrain/layer1/metrics.jsonl"),
])
def test_cli_logs_the_weight_decay_it_is_given(tmp_path, capsys, model, metrics):
    run = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", write_yaml(tmp_path / "c.yaml", tiny_config(run, model)), "--quiet")
    assert status == 0, err
    record = json.loads((run / metrics).read_text().splitlines()[0])
    assert record["train_weight_decay"] > 0


@pytest.mark.parametrize("model", [
    {"name": "lateral_inhibition", "n_components": 8, "weight_decay": 0.01},
    {"name": "conv_stack", "n_components": 4, "image_shape": [8, 8], "layers": STACK_LAYERS, "weight_decay": 0.01},
])
def test_cli_refuses_a_penalty_the_model_cannot_apply(tmp_path, capsys, model):
    config = write_yaml(tmp_path / "c.yaml", tiny_config(tmp_path / "run", model))
    assert_refused(*run_cli(capsys, "train", config, "--quiet")[::2], model["name"], "weight_decay")


@pytest.mark.parametrize("model, pretrain, words", [
    ({"name": "sparse_ae_kl", "n_components": 8}, {"max_epochs": 3}, ["sparse_ae_kl", "no pre-training"]),
    ({"name": "psd", "n_components": 8}, {"layer_params": {"weight_decay": 0.1}}, ["psd", "no pre-training"]),
    ({"name": "drsae", "n_components": 8, "n_classes": 10}, {"max_epochs": 1, "layer_model": "autoencoder"},
     ["drsae", "pretrain.layer_model"]),
    ({"name": "conv_stack", "n_components": 4, "image_shape": [8, 8], "layers": STACK_LAYERS},
     {"layer_params": {"weight_decay": 0.1}}, ["conv_stack", "pretrain.layer_params"]),
], ids=["plain", "psd", "head-layers", "conv_stack-layers"])
def test_a_pretrain_section_the_model_would_not_use_is_refused(tmp_path, capsys, model, pretrain, words):
    config = tiny_config(tmp_path / "run", model)
    config["pretrain"] = pretrain
    assert_refused(*run_cli(capsys, "train", write_yaml(tmp_path / "c.yaml", config), "--quiet")[::2], *words)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- n_components
def test_conv_model_n_components_is_one_number_in_train_and_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    model = {"name": "conv_sae", "n_components": 4, "kernel_size": 3, "image_shape": [8, 8]}
    status, out, err = run_cli(capsys, "train", write_yaml(tmp_path / "c.yaml", tiny_config(run, model)))
    assert status == 0, err
    width = 4 * 6 * 6  # what encode gives: 4 maps of 6×6
    assert f"→ {width} units" in out
    assert json.loads((run / "summary.json").read_text())["n_components"] == width
    status, out, err = run_cli(capsys, "evaluate", run, "--json")
    assert status == 0, err
    assert json.loads(out)["n_components"] == width


def test_the_report_of_an_unfinished_conv_run_shows_the_code_width(tmp_path, capsys):
    run = tmp_path / "run"
    model = {"name": "conv_sae", "n_components": 4, "kernel_size": 3, "image_shape": [8, 8]}
    status, _, err = run_cli(capsys, "train", write_yaml(tmp_path / "c.yaml", tiny_config(run, model)), "--quiet")
    assert status == 0, err
    (run / "summary.json").unlink()  # as while it trains: only the checkpoint
    shutil.rmtree(run / "model")
    assert _facts(collect_run(run))["code units"] == 4 * 6 * 6


# -------------------------------------------------------------------------------- renamed keys
@pytest.mark.parametrize("section, key, new", [
    ("train", "max_iter", "train.lbfgs_max_iter"),
    ("pretrain", "max_iter", "pretrain.lbfgs_max_iter"),
    ("model", "max_iter", "inference_max_iter"),
])
def test_old_key_names_are_refused_with_the_new_name(tmp_path, capsys, section, key, new):
    config = tiny_config(tmp_path / "run", {"name": "sparse_coding", "n_components": 8})
    config.setdefault(section, {})[key] = 5
    assert_refused(*run_cli(capsys, "train", write_yaml(tmp_path / "c.yaml", config))[::2], key, new)
    if section == "train":
        base = write_yaml(tmp_path / "base.yaml", tiny_config(tmp_path / "run", {"name": "sparse_coding"}))
        assert_refused(*run_cli(capsys, "train", base, "--set", "train.max_iter=5")[::2], new)


def test_old_names_are_refused_by_the_library():
    with pytest.raises(ConfigError, match="max_iter is now lbfgs_max_iter"):
        TrainConfig.from_dict({"optimizer": "lbfgs", "max_iter": 5})
    for name in ("psd", "lista", "lateral_inhibition", "sparse_coding"):
        with pytest.raises(ConfigError, match=f"model '{name}': parameter 'max_iter' is now 'inference_max_iter'"):
            create_model(name, 16, 8, max_iter=5)


def _rename_in_saved_params(folder: Path) -> int:
    """Write every config.json under ``folder`` as an older sparseae did (``max_iter``)."""
    count = 0
    for path in folder.rglob("config.json"):
        saved = json.loads(path.read_text())
        saved["params"]["max_iter"] = saved["params"].pop("inference_max_iter")
        path.write_text(json.dumps(saved))
        count += 1
    return count


def test_a_model_saved_with_max_iter_still_loads(tmp_path):
    model = create_model("psd", 16, 8, inference_max_iter=37)
    save_model(model, tmp_path / "old")
    assert _rename_in_saved_params(tmp_path / "old") == 1
    loaded = load_model(tmp_path / "old")
    assert loaded.spec["params"]["inference_max_iter"] == 37 and loaded.inference.max_iter == 37
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_an_old_run_folder_evaluates_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    config = tiny_config(run, {"name": "sparse_coding", "n_components": 8, "inference_max_iter": 20})
    status, _, err = run_cli(capsys, "train", write_yaml(tmp_path / "c.yaml", config), "--quiet")
    assert status == 0, err
    resolved = yaml.safe_load((run / "config.yaml").read_text())  # as an older sparseae wrote it
    resolved["train"]["max_iter"] = resolved["train"].pop("lbfgs_max_iter")
    resolved["model"]["max_iter"] = resolved["model"].pop("inference_max_iter")
    write_yaml(run / "config.yaml", resolved)
    assert _rename_in_saved_params(run) >= 2  # model/ and checkpoint/
    status, out, err = run_cli(capsys, "evaluate", run, "--json")
    assert status == 0, err
    assert json.loads(out)["n_components"] == 8
    status, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--set", "train.max_epochs=2", "--quiet")
    assert status == 0, err
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2

"""Stacked convolutional pre-training: fit_conv_stack, the conv_stack model and its CLI path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sparseae.cli import main
from sparseae.config import load_config
from sparseae.errors import CheckpointError, ConfigError
from sparseae.io import load_model
from sparseae.models import ConvFeatureExtractor, build_conv_stack, create_model
from sparseae.train import TrainConfig
from sparseae.train.procedures import fit_conv_stack, load_conv_stack

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# -------------------------------------------------------------------------------- stacking
def test_fit_conv_stack_trains_two_layers_and_extracts_features(digits, tmp_path):
    X = digits[0][:300]
    layers = [{"n_components": 8, "kernel_size": 3, "pools": {"kind": "disjoint", "group_size": 2},
               "sparsity_weight": 0.2, "spatial_pool": "max", "pool_size": 2},
              {"n_components": 6, "kernel_size": 3, "padding": 1, "pools": {"kind": "disjoint", "group_size": 3},
               "spatial_pool": "avg", "pool_size": 3, "contrast_sigma": 1.0}]
    torch.manual_seed(0)
    result = fit_conv_stack(X, layers, TrainConfig(learning_rate=1e-2, batch_size=64, max_epochs=2, random_state=0),
                            image_shape=(8, 8), run_dir=tmp_path / "run")
    first, second = result.extractor.stages
    assert first.output_shape == (4, 3, 3) and second.output_shape == (2, 1, 1)
    assert result.layers[1].image_shape == (4, 3, 3)  # layer 2 reads layer 1's pooled maps
    assert len(result.results) == 2 and (tmp_path / "run" / "layer2" / "metrics.jsonl").exists()
    hidden = ConvFeatureExtractor([first]).transform(X)
    assert np.sqrt(np.mean(hidden.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)  # unit RMS
    features = result.extractor.transform(X)
    assert features.shape == (300, 2) and features.dtype == np.float32 and np.isfinite(features).all()
    with torch.no_grad():  # the extractor is the trained encoders, not copies
        direct = second(first(torch.from_numpy(X)).flatten(1)).flatten(1).numpy()
    np.testing.assert_allclose(features, direct, rtol=1e-5, atol=1e-6)
    result.save(tmp_path / "stack")
    loaded = load_conv_stack(tmp_path / "stack")
    np.testing.assert_array_equal(loaded.extractor.transform(X), features)
    assert loaded.layers[1].spec == result.layers[1].spec
    # a random-weights network of the same shape
    _, untrained = build_conv_stack(64, layers, image_shape=(8, 8))
    assert untrained.output_shape == result.extractor.output_shape


def test_stack_errors():
    with pytest.raises(ConfigError, match="n_components"):
        build_conv_stack(64, [{"kernel_size": 3}])
    with pytest.raises(ConfigError, match="conv_sae layers"):
        build_conv_stack(64, [{"name": "sparse_ae_l1", "n_components": 8}])
    with pytest.raises(ConfigError, match="reads the"):
        build_conv_stack(64, [{"n_components": 4, "kernel_size": 3},
                              {"n_components": 4, "kernel_size": 3, "image_shape": [8, 8]}])
    with pytest.raises(ConfigError, match="spatial_pool"):
        build_conv_stack(64, [{"n_components": 4, "kernel_size": 3, "spatial_pool": "median"}])
    with pytest.raises(CheckpointError, match="no convolutional stack"):
        load_conv_stack(Path("/nonexistent/stack"))


# ---------------------------------------------------------------------- conv_stack via the CLI
def conv_stack_config(run_dir: Path) -> dict:
    """digits (8×8): 8 maps 3×3 → pools of 2 → 2×2 max pool (4, 3, 3); 6 maps 3×3 → pools of 3 (2, 3, 3)."""
    return {"model": {"name": "conv_stack", "n_components": 6, "image_shape": [8, 8], "contrast_sigma": 1.5,
                      "layers": [{"n_components": 8, "kernel_size": 3, "pools": {"kind": "disjoint", "group_size": 2},
                                  "sparsity_weight": 0.2, "spatial_pool": "max", "pool_size": 2},
                                 {"kernel_size": 3, "padding": 1, "pools": {"kind": "disjoint", "group_size": 3}}]},
            "data": {"name": "digits"},
            "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 256, "max_epochs": 2,
                      "random_state": 0, "device": "cpu"},
            "output": {"dir": str(run_dir), "plots": True}}


def test_cli_trains_reloads_probes_and_resumes_a_conv_stack(tmp_path, capsys, digits):
    from sparseae.models import ConvStack, encode_dataset

    run = tmp_path / "run"
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(conv_stack_config(run)))
    capsys.readouterr()
    assert main(["train", str(path), "--json"]) == 0, capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "conv_stack" and summary["epochs"] == 4
    assert summary["n_components"] == 2 * 3 * 3  # the features encode gives, as evaluate says
    assert 0.5 < summary["metrics"]["probe_accuracy"] <= 1
    assert "reconstruction_error" not in summary["metrics"]  # pooled features have no decoder
    for layer in ("layer1", "layer2"):
        assert len((run / "pretrain" / layer / "metrics.jsonl").read_text().splitlines()) == 2
    assert (run / "filters.png").exists() and not (run / "reconstructions.png").exists()
    # the whole convnet in one folder: JSON + safetensors, rebuilt without unpickling
    assert sorted(p.name for p in (run / "model").iterdir()) == ["config.json", "model.safetensors"]
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["model"] == "conv_stack" and "output_scale" in saved["params"]["layers"][0]
    loaded = load_model(run / "model")
    assert isinstance(loaded, ConvStack) and loaded.n_components == 2 * 3 * 3
    X = digits[0]
    features = encode_dataset(loaded, X)
    assert features.shape == (len(X), 18) and np.isfinite(features).all()
    with torch.no_grad():  # the saved output scale: layer 1's outputs have unit RMS on the training set
        hidden = loaded.encoder.stages[0](loaded.normalize_input(torch.from_numpy(X))).double()
    assert float(hidden.pow(2).mean().sqrt()) == pytest.approx(1.0, rel=1e-3)
    capsys.readouterr()
    assert main(["probe", str(run), "--json", "--compare-raw"]) == 0
    probe = json.loads(capsys.readouterr().out)
    assert probe["model"] == "conv_stack" and probe["n_components"] == 18 and 0.5 < probe["accuracy"] <= 1
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["probe_accuracy"] == summary["metrics"]["probe_accuracy"]
    assert main(["train", "--out", str(run), "--resume", "--set", "train.max_epochs=3", "--json"]) == 0
    assert json.loads((run / "summary.json").read_text())["epochs"] == 6  # each layer continued 2 → 3


@pytest.mark.parametrize("change, message", [
    ("model.layers=[{n_components: 8, kernel_size: 3, spatial_pool: max, pool_size: 2}, {kernel_size: 5}]",
     "layer 2 of the stack (reading the [2, 3, 3] output of layer 1): a 5×5 kernel is larger"),
    ("model.layers=[{kernel_size: 3}, {n_components: 8, kernel_size: 1}]", "the top layer has 8 maps but "
                                                                            "n_components is 4"),
    ("model.layers=null", "conv_stack needs layers"),
    ("pretrain.layer_model=conv_sae", "pretrain.layer_model and pretrain.layer_params belong to"),
])
def test_cli_conv_stack_bad_input_is_one_line_and_status_2(change, message, tmp_path, capsys):
    capsys.readouterr()
    status = main(["train", "--model", "conv_stack", "--data", "digits", "--set", "model.n_components=4",
                   "--set", "model.layers=[{n_components: 4, kernel_size: 3}]", "--set", change,
                   "--set", "train.max_epochs=1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("sparseae: error: ") and message in err, err


def test_conv_stack_example_config_is_valid():
    config = load_config(EXAMPLES / "conv_stack_mnist.yaml")
    model = create_model(config.model_name, 784, config.n_components, **config.model_params)
    assert [stage.output_shape for stage in model.encoder.stages] == [(8, 11, 11), (64, 6, 6)]
    assert model.n_components == 2304 and model.input_contrast is not None

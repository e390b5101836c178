"""Per-layer pre-training parameters: ``pretrain.layer_params`` as one mapping for every layer (as
before) or a list of mappings, one per layer (the SdA's masking 0.1 / 0.2 / 0.3)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from sparseae.cli import main
from sparseae.config import RunConfig
from sparseae.errors import ConfigError
from sparseae.estimators import StackedClassifier
from sparseae.io import load_model
from sparseae.models import create_model
from sparseae.models.deep import layer_specs
from sparseae.train import procedures

NOISE = [{"corruption": "masking:0.1"}, {"corruption": "masking:0.2"}, {"corruption": "masking:0.3"}]


def _config(layer_params, hidden=(16, 14)) -> dict:
    return {"model": {"name": "mlp_classifier", "n_components": 12, "hidden": list(hidden)},
            "data": {"name": "digits"},
            "pretrain": {"layer_model": "denoising_ae", "layer_params": layer_params, "max_epochs": 1,
                         "batch_size": 64},
            "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 64, "max_epochs": 1,
                      "random_state": 0, "device": "cpu"},
            "output": {"plots": False}}


def test_config_takes_a_list_with_one_mapping_per_layer_and_keeps_single_mappings():
    listed = RunConfig.from_dict(_config(NOISE))
    assert listed.layer_spec == ("denoising_ae", NOISE)
    single = RunConfig.from_dict(_config({"corruption": "masking:0.25"}))
    assert single.layer_spec == ("denoising_ae", {"corruption": "masking:0.25"})   # unchanged: a dict
    assert RunConfig.from_dict(_config({})).layer_spec == ("denoising_ae", {})
    # the length is that of hidden plus the code layer, defaults included (deep_autoencoder: 3 + 1)
    deep = _config([{}] * 4)
    deep["model"] = {"name": "deep_autoencoder", "n_components": 2}
    assert len(RunConfig.from_dict(deep).layer_spec[1]) == 4


@pytest.mark.parametrize(("layer_params", "hidden", "words"), [
    (NOISE[:2], (16, 14), "lists 2 layers' parameters but mlp_classifier has 3 layers"),
    (NOISE, (16,), "lists 3 layers' parameters but mlp_classifier has 2 layers"),
    ([{"corruption": "masking:0.1"}, "masking:0.2", {}], (16, 14), "pretrain.layer_params[1] must be a mapping"),
    ([{}, {1: 0.5}, {}], (16, 14), "pretrain.layer_params[1] has the key 1, which is not a name"),
    ("masking:0.2", (16, 14), "must be a mapping of the layer preset's parameters, or a list of them"),
])
def test_config_refuses_bad_per_layer_params(layer_params, hidden, words):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(_config(layer_params, hidden))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_layer_specs_give_each_layer_its_own_parameters():
    model = create_model("mlp_classifier", 64, 12, hidden=[16, 14])
    specs = layer_specs(model, "denoising_ae", NOISE)
    assert [(s["n_components"], s["corruption"]) for s in specs] == [(16, "masking:0.1"), (14, "masking:0.2"),
                                                                     (12, "masking:0.3")]
    assert [s["corruption"] for s in layer_specs(model, "denoising_ae", {"corruption": "masking:0.4"})] == \
        ["masking:0.4"] * 3
    with pytest.raises(ConfigError, match=r"layer_params\[2\] cannot set activation"):
        layer_specs(model, "denoising_ae", [{}, {}, {"activation": "tanh"}])
    with pytest.raises(ConfigError, match="lists 4 layers' parameters but the deep model has 3"):
        layer_specs(model, "denoising_ae", NOISE + [{}])
    with pytest.raises(ConfigError, match=r"layer_params\[0\] must be a mapping"):
        layer_specs(model, "denoising_ae", [None, {}, {}])


def test_a_run_pretrains_each_layer_with_its_own_corruption(tmp_path, capsys):
    path = tmp_path / "sda.yaml"
    path.write_text(yaml.safe_dump(_config(NOISE)))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0, capsys.readouterr().err
    run = tmp_path / "run"
    layers = [load_model(run / "pretrain" / f"layer{k}" / "checkpoint") for k in (1, 2, 3)]
    assert [layer.corruption.fraction for layer in layers] == [0.1, 0.2, 0.3]
    assert [layer.n_components for layer in layers] == [16, 14, 12]
    assert [layer.n_features for layer in layers] == [64, 16, 14]
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["pretrain"]["layer_params"] == NOISE
    assert 0.0 <= json.loads((run / "summary.json").read_text())["metrics"]["classifier_error"] <= 1.0
    # a wrong length from the command line is one line, before any training
    capsys.readouterr()
    status = main(["train", str(path), "--out", str(tmp_path / "run2"), "--quiet",
                   "--set", "pretrain.layer_params=[{corruption: masking:0.1}]"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "lists 1 layers' parameters" in err, err
    assert not (tmp_path / "run2" / "pretrain").exists()


def test_stacked_classifier_takes_one_mapping_per_layer(digits, monkeypatch):
    X, y = digits
    built = []
    real = procedures.pretrain_layers

    def recording(*args, **kwargs):
        layers, results = real(*args, **kwargs)
        built.append(layers)
        return layers, results

    monkeypatch.setattr(procedures, "pretrain_layers", recording)
    clf = StackedClassifier(n_components=12, hidden=(16,), layer_params=[{"corruption": "masking:0.1"},
                                                                        {"corruption": "gaussian:0.3"}],
                            pretrain_epochs=1, max_epochs=1, batch_size=64, random_state=0, device="cpu")
    clf.fit(X[:300], y[:300])
    assert [layer.corruption.spec for layer in built[0]] == ["masking:0.1", "gaussian:0.3"]
    assert clf.get_params()["layer_params"][1] == {"corruption": "gaussian:0.3"}
    assert np.isin(clf.predict(X[:20]), clf.classes_).all()
    with pytest.raises(ConfigError, match="lists 1 layers' parameters but the deep model has 2"):
        StackedClassifier(n_components=12, hidden=(16,), layer_params=[{}], pretrain_epochs=1,
                          max_epochs=1).fit(X[:100], y[:100])

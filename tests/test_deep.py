"""Deep autoencoders, greedy layer-wise pre-training and fine-tuning (as an autoencoder or an MLP)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from sparseae.errors import ConfigError
from sparseae.io import load_model, save_model
from sparseae.models import create_model, encode_dataset, error_rate, load_layer_weights
from sparseae.train import TrainConfig
from sparseae.train.procedures import fit_stacked, pretrain_layers

PRETRAIN = TrainConfig(max_epochs=15, batch_size=32, learning_rate=5e-3, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def test_mirror_decoder_shapes_and_activations():
    model = create_model("deep_autoencoder", 20, 3, hidden=[12, 6])
    x = torch.rand(4, 20)
    z = model.encode(x)
    assert z.shape == (4, 3)
    assert [tuple(layer.weight.shape) for layer in model.decoder.layers] == [(20, 12), (12, 6), (6, 3)]
    # the mirror applies the encoder's activations in reverse between its layers
    d = model.decoder
    expected = d.layers[0](torch.sigmoid(d.layers[1](torch.sigmoid(d.layers[2](z)))))
    torch.testing.assert_close(d(z), expected)
    assert model.spec["params"]["hidden"] == [12, 6]


def test_layers_are_trained_greedily_on_the_codes_below(digits):
    X, _ = digits
    torch.manual_seed(0)
    layers, results = pretrain_layers(X[:600], [{"name": "denoising_ae", "n_components": 32},
                                                {"name": "autoencoder", "n_components": 10, "likelihood": "bernoulli"}],
                                      PRETRAIN)
    assert [layer.n_features for layer in layers] == [64, 32]
    for result in results:
        assert result.history[-1]["train_loss"] < 0.8 * result.history[0]["train_loss"]
    # layer 2's final loss is its loss on layer 1's (clean) codes of the same data
    codes = torch.from_numpy(encode_dataset(layers[0], X[:600]))
    layers[1].eval()
    with torch.no_grad():
        loss = float(layers[1].loss(codes).loss)
    assert loss == pytest.approx(results[1].history[-1]["train_loss"], rel=0.1)


def test_stacked_weights_reproduce_the_composed_layers(digits):
    X, _ = digits
    torch.manual_seed(0)
    layers, _ = pretrain_layers(X[:300], [{"n_components": 20}, {"n_components": 5}],
                                TrainConfig(max_epochs=2, batch_size=50))
    deep = load_layer_weights(create_model("deep_autoencoder", 64, 5, hidden=[20], code_activation="sigmoid",
                                           likelihood="gaussian"), layers)
    x = torch.from_numpy(X[300:310])
    with torch.no_grad():
        torch.testing.assert_close(deep.encode(x), layers[1].encode(layers[0].encode(x)))
        inner = torch.sigmoid(layers[1].decoder(deep.encode(x)))
        torch.testing.assert_close(deep.decoder(deep.encode(x)), layers[0].decoder(inner))
    with pytest.raises(ConfigError, match="does not match"):
        load_layer_weights(create_model("deep_autoencoder", 64, 5, hidden=[21]), layers)


def test_one_call_pretrain_then_finetune_classifier(digits, tmp_path):
    X, y = digits
    torch.manual_seed(0)
    result = fit_stacked(X[:1200], [{"name": "denoising_ae", "n_components": 100, "corruption": "masking:0.2"},
                                    {"name": "denoising_ae", "n_components": 60, "corruption": "masking:0.2"}],
                         pretrain_config=PRETRAIN, y=y[:1200], finetune="classifier",
                         finetune_config=TrainConfig(max_epochs=30, batch_size=32, learning_rate=3e-3),
                         run_dir=tmp_path / "run")
    history = result.finetune.history
    assert history[-1]["train_classification"] < 0.2 * history[0]["train_classification"]
    assert error_rate(result.model, X[1200:], y[1200:]) < 0.08
    assert (tmp_path / "run" / "pretrain" / "layer2" / "metrics.jsonl").exists()
    # resuming a finished run retrains nothing and gives the same model
    torch.manual_seed(1)
    again = fit_stacked(X[:1200], [{"name": "denoising_ae", "n_components": 100, "corruption": "masking:0.2"},
                                   {"name": "denoising_ae", "n_components": 60, "corruption": "masking:0.2"}],
                        pretrain_config=PRETRAIN, y=y[:1200], finetune="classifier",
                        finetune_config=TrainConfig(max_epochs=30, batch_size=32, learning_rate=3e-3),
                        run_dir=tmp_path / "run", resume=True)
    for a, b in zip(result.model.parameters(), again.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    save_model(result.model, tmp_path / "mlp")
    loaded = load_model(tmp_path / "mlp")
    assert error_rate(loaded, X[1200:], y[1200:]) == error_rate(result.model, X[1200:], y[1200:])


def test_no_pretraining_is_the_same_network_from_its_initialization(digits, tmp_path):
    """``pretrain_config=None``: the layers keep their random initialization (the control)."""
    X, y = digits
    spec = [{"name": "contractive_ae", "n_components": 40, "contraction_weight": 0.1}]
    torch.manual_seed(3)
    fresh = pretrain_layers(X[:300], spec, None, run_dir=tmp_path / "none")[0][0]
    torch.manual_seed(3)
    initial = create_model("contractive_ae", 64, 40, contraction_weight=0.1)
    torch.testing.assert_close(fresh.encoder.weight, initial.encoder.weight)
    assert not (tmp_path / "none").exists()  # nothing trained, nothing written
    errors = {}
    for name, config in (("scratch", None), ("pretrained", PRETRAIN)):
        torch.manual_seed(3)
        result = fit_stacked(X[:1200], spec, pretrain_config=config, y=y[:1200], finetune="classifier",
                             finetune_config=TrainConfig(max_epochs=10, batch_size=32, learning_rate=3e-3))
        errors[name] = error_rate(result.model, X[1200:], y[1200:])
        if config is None:
            assert result.pretrain == [None]
            torch.testing.assert_close(result.layers[0].encoder.weight, initial.encoder.weight)
    assert errors["scratch"] < 0.15 and errors["pretrained"] < 0.15  # 11.7% and 10.2% of 597 digits


def test_deep_autoencoder_finetuning_beats_pca_at_the_same_code_size(digits):
    X, _ = digits
    torch.manual_seed(0)
    result = fit_stacked(X[:1400], [{"n_components": 100, "likelihood": "gaussian"},
                                    {"n_components": 6, "activation": "identity", "likelihood": "bernoulli"}],
                         pretrain_config=TrainConfig(max_epochs=30, batch_size=32, learning_rate=5e-3),
                         finetune_config=TrainConfig(max_epochs=120, batch_size=32, learning_rate=3e-3))
    history = result.finetune.history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    model = result.model.eval()
    with torch.no_grad():
        deep_error = float(((model(torch.from_numpy(X[1400:])).numpy() - X[1400:]) ** 2).sum(1).mean())
    pca = PCA(6).fit(X[:1400])
    pca_error = float(((pca.inverse_transform(pca.transform(X[1400:])) - X[1400:]) ** 2).sum(1).mean())
    assert deep_error < pca_error


def test_stack_errors_name_the_problem(digits):
    X, y = digits
    with pytest.raises(ConfigError, match="cannot be stacked"):
        pretrain_layers(X[:50], [{"name": "drsae", "n_components": 10}], PRETRAIN)
    with pytest.raises(ConfigError, match="n_components"):
        pretrain_layers(X[:50], [{"name": "autoencoder"}], PRETRAIN)
    with pytest.raises(ConfigError, match="2 layers but 1"):
        pretrain_layers(X[:50], [{"n_components": 5}, {"n_components": 3}], [PRETRAIN])
    with pytest.raises(ConfigError, match="needs labels"):
        fit_stacked(X[:50], [{"n_components": 5}], pretrain_config=TrainConfig(max_epochs=1),
                    finetune_config=TrainConfig(max_epochs=1), finetune="classifier")
    with pytest.raises(ConfigError, match="hidden"):
        create_model("deep_autoencoder", 10, 2, hidden="100")


def test_mlp_weight_decay_is_the_l2_term_of_the_used_matrices_and_passes_a_gradient_check():
    """(λ/2)(‖W_enc‖² + ‖W_head‖²) beside the cross-entropy; the idle decoder is not decayed."""
    from sparseae.gradcheck import check_gradients

    torch.manual_seed(0)
    lam = 0.03
    model = create_model("mlp_classifier", 12, 7, hidden=[9], n_classes=4, weight_decay=lam).double()
    with torch.no_grad():  # the head starts at 0 (no gradient reaches the encoder there): move it off
        model.head.weight.normal_(0.0, 0.5)
    x, y = torch.rand(16, 12, dtype=torch.float64), torch.randint(0, 4, (16,))
    out = model.loss(x, targets=y)
    logits = model.head(model.encode(x))
    expected_decay = 0.5 * lam * sum(model.get_parameter(name).pow(2).sum() for name in
                                     ("encoder.layers.0.weight", "encoder.layers.1.weight", "head.weight"))
    torch.testing.assert_close(out.terms["weight_decay"], expected_decay)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(logits, y) + expected_decay)
    result = check_gradients(model, x, loss_fn=lambda m, batch: m.loss(batch, targets=y).loss)
    assert result.passed and result.relative_error < 1e-9
    assert sorted(result.unused) == sorted(n for n, _ in model.named_parameters() if n.startswith("decoder"))
    # with the reconstruction kept, the decoder's matrices are decayed too
    both = create_model("mlp_classifier", 12, 7, hidden=[9], n_classes=4, weight_decay=lam,
                        reconstruction_weight=1.0).double()
    assert len(both.penalties["weight_decay"].names) == 5
    with pytest.raises(ConfigError, match="weight_decay"):
        create_model("mlp_classifier", 12, 7, weight_decay=-1.0)


def test_a_penalty_on_the_reconstruction_needs_a_reconstruction_weight():
    from sparseae.models import SupervisedAutoencoder
    from sparseae.nn.penalties import AuxKPenalty

    parts = create_model("mlp_classifier", 12, 7)
    with pytest.raises(ConfigError, match="'auxk' needs the reconstruction"):
        SupervisedAutoencoder(parts.encoder, parts.decoder, parts.likelihood, parts.head,
                              {"auxk": AuxKPenalty(1.0, 7)}, reconstruction_weight=0.0)


def test_fine_tuning_weight_decay_shrinks_the_weights_it_fine_tunes(digits, tmp_path):
    X, y = digits
    norms, errors = {}, {}
    for lam in (0.0, 1e-3):
        torch.manual_seed(0)
        result = fit_stacked(X[:1200], [{"name": "contractive_ae", "n_components": 80, "contraction_weight": 0.1}],
                             pretrain_config=PRETRAIN, y=y[:1200], finetune="classifier",
                             finetune_config=TrainConfig(max_epochs=20, batch_size=32, learning_rate=3e-3),
                             model_params={"weight_decay": lam} if lam else None,
                             run_dir=tmp_path / str(lam))
        norms[lam] = float(result.model.encoder.layers[0].weight.detach().norm())
        errors[lam] = error_rate(result.model, X[1200:], y[1200:])
        if lam:
            history = result.finetune.history
            assert history[-1]["train_weight_decay"] < history[0]["train_weight_decay"]
    assert norms[1e-3] < 0.6 * norms[0.0]  # 17.3 against 40.5
    assert errors[0.0] < 0.1 and errors[1e-3] < 0.1  # 7.4% and 8.7% of 597 held-out digits
    with pytest.raises(ConfigError, match="model_params cannot set 'hidden'"):
        fit_stacked(X[:50], [{"n_components": 5}], pretrain_config=TrainConfig(max_epochs=1), y=y[:50],
                    finetune_config=TrainConfig(max_epochs=1), finetune="classifier",
                    model_params={"hidden": [3]})


# ---------------------------------------------------------------------------- estimators

def test_stacked_classifier_estimator_learns_digits_and_round_trips(digits, tmp_path):
    from sparseae.estimators import BaseAutoencoderEstimator, StackedClassifier

    X, y = digits
    clf = StackedClassifier(n_components=60, hidden=(100,), layer_params={"corruption": "masking:0.2"},
                            pretrain_epochs=10, optimizer="adam", learning_rate=3e-3, batch_size=32,
                            max_epochs=25, random_state=0)
    clf.fit(X[:1200], y[:1200])
    phases = [record["phase"] for record in clf.history_]
    assert phases.count("pretrain_layer1") == 10 and phases.count("pretrain_layer2") == 10
    assert phases.count("finetune") == 25
    accuracy = clf.score(X[1200:], y[1200:])
    assert accuracy > 0.88
    assert clf.transform(X[:5]).shape == (5, 60)
    clf.save(tmp_path / "clf")
    loaded = BaseAutoencoderEstimator.load(tmp_path / "clf")
    assert isinstance(loaded, StackedClassifier)
    np.testing.assert_array_equal(loaded.predict(X[1200:]), clf.predict(X[1200:]))
    with pytest.raises(ConfigError, match="layer_params cannot set"):
        StackedClassifier(layer_params={"activation": "tanh"}, pretrain_epochs=1, max_epochs=1).fit(X[:50], y[:50])


def test_stacked_estimators_take_a_fine_tuning_weight_decay(digits):
    from sparseae.estimators import StackedAutoencoder, StackedClassifier

    X, y = digits
    clf = StackedClassifier(n_components=32, weight_decay=1e-3, pretrain_epochs=2, optimizer="adam",
                            learning_rate=3e-3, batch_size=64, max_epochs=3, random_state=0).fit(X[:600], y[:600])
    assert clf.model_.penalties["weight_decay"].weight == 1e-3
    finetune = [record for record in clf.history_ if record["phase"] == "finetune"]
    assert all(record["train_weight_decay"] > 0 for record in finetune)
    sae = StackedAutoencoder(n_components=4, hidden=(16,), weight_decay=1e-3, pretrain_epochs=1, max_epochs=1,
                             random_state=0).fit(X[:200])
    assert sae.model_.penalties["weight_decay"].weight == 1e-3
    with pytest.raises(ConfigError, match="weight_decay"):
        StackedClassifier(weight_decay=-1.0, pretrain_epochs=1, max_epochs=1).fit(X[:50], y[:50])


def test_stacked_autoencoder_estimator_codes_and_reconstructs(digits):
    from sparseae.estimators import StackedAutoencoder

    X, _ = digits
    sae = StackedAutoencoder(n_components=8, hidden=(64,), pretrain_epochs=10, max_epochs=40,
                             batch_size=32, learning_rate=3e-3, random_state=0).fit(X[:1400])
    codes = sae.transform(X[1400:])
    assert codes.shape == (397, 8)
    reconstruction = sae.inverse_transform(codes)
    pca = PCA(8).fit(X[:1400])
    pca_error = float(((pca.inverse_transform(pca.transform(X[1400:])) - X[1400:]) ** 2).sum(1).mean())
    assert float(((reconstruction - X[1400:]) ** 2).sum(1).mean()) < pca_error * 1.1


# ---------------------------------------------------------------------------- semantic hashing

def test_code_noise_drives_the_sigmoid_codes_binary(digits):
    from sparseae.train.callbacks import CodeNoiseSchedule

    X, _ = digits
    near_binary = {}
    for noise in (0.0, 4.0):
        torch.manual_seed(0)
        model = create_model("semantic_hashing", 64, 16, hidden=[100], code_noise_std=0.0)
        callbacks = [CodeNoiseSchedule(0.0, noise, ramp_epochs=20)] if noise else []
        history = train_model(model, X[:1400], callbacks)
        assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
        codes = encode_dataset(model, X[1400:])
        near_binary[noise] = float(((codes < 0.1) | (codes > 0.9)).mean())
        assert float(model.encoder.code_noise_std) == noise
    # measured: 0.18 without noise, 0.92 with σ raised to 4 (Salakhutdinov & Hinton's mechanism)
    assert near_binary[0.0] < 0.4 and near_binary[4.0] > 0.8


def train_model(model, X, callbacks):
    from sparseae.train import train

    return train(model, X, TrainConfig(max_epochs=60, batch_size=32, learning_rate=3e-3), callbacks=callbacks).history


def test_noise_schedule_is_a_function_of_the_epoch_and_noise_only_in_training():
    from sparseae.train.callbacks import CodeNoiseSchedule

    schedule = CodeNoiseSchedule(1.0, 5.0, ramp_epochs=4)
    assert [schedule.std(e) for e in (1, 2, 3, 5, 9)] == [1.0, 2.0, 3.0, 5.0, 5.0]
    model = create_model("semantic_hashing", 10, 4, hidden=[6], code_noise_std=3.0)
    x = torch.rand(8, 10)
    model.eval()
    torch.testing.assert_close(model.encode(x), model.encode(x))
    model.train()
    assert not torch.allclose(model.encode(x), model.encode(x))
    with pytest.raises(ConfigError, match="deep model"):
        schedule.on_epoch_start(1, create_model("autoencoder", 4, 2))

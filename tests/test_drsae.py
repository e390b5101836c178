"""DrSAE (Rolfe & LeCun 2013): the recurrence, its ISTA limit, the loss and its gradient, the
constraints and learning-rate scales, two-phase training, and the unit-angle analysis."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparseae.coding import ista, lipschitz_constant
from sparseae.data import load_digits_data, unit_norm_rows
from sparseae.errors import ConfigError, DataError
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.io import load_model, save_model
from sparseae.models import create_model
from sparseae.models.drsae import encoder_decoder_angles, error_rate
from sparseae.train import TrainConfig, train
from sparseae.train.optim import parameter_groups
from sparseae.train.procedures import fit_drsae


def small_drsae(**params):
    return create_model("drsae", 12, 9, **{"n_classes": 3, **params})


def test_recurrence_is_nonnegative_ista_when_initialized_from_a_dictionary():
    torch.manual_seed(0)
    D = torch.randn(20, 30, dtype=torch.float64)
    D /= D.norm(dim=0, keepdim=True)
    X = torch.randn(8, 20, dtype=torch.float64)
    lam, T = 0.1, 7
    L = float(lipschitz_constant(D))
    model = create_model("drsae", 20, 30, n_steps=T, encoder_max_norm=10.0).double()
    model.encoder.init_from_dictionary(D, step=1.0 / L, threshold=lam / L)
    expected = ista(X, D, lam, L=L, max_iter=T, nonnegative=True, stop="none").codes
    torch.testing.assert_close(model.encode(X), expected, rtol=1e-12, atol=1e-12)


def test_loss_is_the_authors_energy():
    torch.manual_seed(0)
    model = small_drsae(classification_weight=1.0)
    x = torch.rand(5, 12)
    y = torch.tensor([0, 1, 2, 0, 1])
    out = model.loss(x, targets=y)
    z = model.encode(x)
    logits = model.head.weight @ (z / z.norm(dim=1, keepdim=True).clamp_min(1e-8)).t()
    expected = (5 * 0.5 * (x - z @ model.decoder.weight.t()).pow(2).sum(1).mean()
                + 0.09 * z.abs().sum(1).mean()
                + torch.nn.functional.cross_entropy(logits.t() + model.head.bias, y))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(out.terms) == {"reconstruction", "l1", "classification", "error"}


def test_supervised_loss_gradient_check_float64():
    torch.manual_seed(1)
    model = small_drsae(classification_weight=1.0, n_steps=3)
    with torch.no_grad():
        model.encoder.b.fill_(-0.05)  # keep units active so the check is not all kinks
        model.head.weight.normal_()
    X = np.random.default_rng(0).uniform(0.1, 0.9, size=(6, 12))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    result = check_gradients(model, X, loss_fn=lambda m, x: m.loss(x, targets=y).loss)
    assert result.relative_error < UFLDL_TOLERANCE, result.per_parameter
    assert result.n_checked > 0.5 * sum(p.numel() for p in model.parameters())


def test_learning_rate_scales_and_constraints():
    model = create_model("drsae", 12, 9, n_classes=3, n_steps=11)
    groups = {round(g["lr"], 12): sum(p.numel() for p in g["params"]) for g in parameter_groups(model, 1.0)}
    assert groups == {round(1 / 11, 12): 9 * 12 + 9, round(1 / 10, 12): 81, 1.0: 12 * 9,
                      0.2: 3 * 9 + 3}
    with torch.no_grad():
        model.decoder.weight_.mul_(10)
        model.encoder.E.mul_(10)
        model.head.weight.fill_(10)
    model.apply_constraints()
    assert model.decoder.weight.norm(dim=0).max().item() == pytest.approx(1.0, rel=1e-5)
    assert model.encoder.E.norm(dim=1).max().item() == pytest.approx(1.25 / 10, rel=1e-5)
    assert model.head.weight.norm(dim=1).max().item() == pytest.approx(5.0, rel=1e-5)


def test_initialization_from_data():
    X = unit_norm_rows(np.random.default_rng(0).uniform(size=(50, 12)))
    model = small_drsae(n_steps=5)
    model.initialize_from_data(X, generator=torch.Generator().manual_seed(0))
    D = model.decoder.weight
    torch.testing.assert_close(D.norm(dim=0), torch.ones(9))
    torch.testing.assert_close(model.encoder.E, 0.25 * D.t())   # α = 1.25/T
    torch.testing.assert_close(model.encoder.S, -0.25 * D.t() @ D)
    assert torch.all(model.encoder.b == 1e-5)
    angles = encoder_decoder_angles(model)
    np.testing.assert_allclose(angles.angles, 0.0, atol=1e-3)  # E_i ∥ D_i at the start
    assert angles.summary()["n_part_units"] == 9


def test_two_phase_training_learns_to_classify_digits(tmp_path):
    X, y = load_digits_data()
    X = unit_norm_rows(X)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    train_idx, test_idx = order[:1400], order[1400:]
    torch.manual_seed(0)
    model = create_model("drsae", 64, 64, n_steps=5)
    config = TrainConfig(optimizer="sgd", learning_rate=0.1, batch_size=10, max_epochs=4, device="cpu")
    results = fit_drsae(model, X[train_idx], y[train_idx], pretrain_config=config,
                        train_config=TrainConfig(**{**config.__dict__, "max_epochs": 12}),
                        run_dir=tmp_path / "run")
    pre = results["pretrain"].history
    assert pre[-1]["train_loss"] < 0.8 * pre[0]["train_loss"]
    history = results["train"].history
    assert history[-1]["train_classification"] < 0.6 * history[0]["train_classification"]  # 2.27 → 1.23
    error = error_rate(model, X[test_idx], y[test_idx])
    assert error < 0.08, error  # measured 0.055 (chance 0.9)
    codes = model.encode(torch.from_numpy(X[test_idx]))
    assert (codes > 0).float().mean().item() < 0.4  # sparse, non-negative codes (measured 0.27)
    assert (tmp_path / "run" / "pretrain" / "metrics.jsonl").exists()
    assert (tmp_path / "run" / "train" / "metrics.jsonl").exists()
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert float(loaded.classification_weight) == 1.0
    assert error_rate(loaded, X[test_idx], y[test_idx]) == error


def test_early_stopping_on_validation_error():
    X, y = load_digits_data()
    X = unit_norm_rows(X)[:600]
    y = y[:600]
    model = create_model("drsae", 64, 32, n_steps=3, classification_weight=1.0)
    result = train(model, X[:400], TrainConfig(optimizer="sgd", learning_rate=0.05, batch_size=20,
                                                max_epochs=30, monitor="error", n_iter_no_change=2,
                                                device="cpu"),
                   y=y[:400], X_val=X[400:], y_val=y[400:])
    assert "val_error" in result.history[-1]
    best = min(r["val_error"] for r in result.history)
    assert result.history[result.best_epoch - 1]["val_error"] == best


@pytest.mark.parametrize("params, message", [
    ({"n_steps": 0}, "n_steps"),
    ({"sparsity_weight": 0.0}, "sparsity_weight"),
    ({"sparsity_weight": -1.0}, "sparsity_weight"),
    ({"n_classes": 1}, "n_classes"),
    ({"classifier_max_norm": 0}, "classifier_max_norm"),
])
def test_bad_hyperparameters(params, message):
    with pytest.raises(ConfigError, match=message):
        small_drsae(**params)


def test_bad_labels():
    model = small_drsae(classification_weight=1.0)
    X = np.random.default_rng(0).uniform(size=(20, 12))
    config = TrainConfig(max_epochs=1, device="cpu")
    with pytest.raises(DataError, match="required"):
        train(model, X, config)
    with pytest.raises(DataError, match="20 samples"):
        train(model, X, config, y=np.zeros(19, dtype=int))
    with pytest.raises(DataError, match="class index 3"):
        train(model, X, config, y=np.full(20, 3))
    with pytest.raises(DataError, match="integer"):
        train(model, X, config, y=np.full(20, 0.5))
    with pytest.raises(ConfigError, match="monitor 'error'"):
        train(create_model("sparse_ae_l1", 12, 5), X, TrainConfig(max_epochs=1, device="cpu", monitor="error"))


def test_weight_decay_on_E_S_and_C_only():
    """``weight_decay`` adds (λ/2)(‖E‖² + ‖S‖² + ‖C‖²) — not D, which its norm bound holds — and
    passes the float64 gradient check."""
    torch.manual_seed(0)
    plain = small_drsae(classification_weight=1.0)
    decayed = small_drsae(classification_weight=1.0, weight_decay=0.1)
    decayed.load_state_dict(plain.state_dict())
    x, y = torch.rand(5, 12), torch.tensor([0, 1, 2, 0, 1])
    out = decayed.loss(x, targets=y)
    expected = 0.05 * sum(w.pow(2).sum() for w in (plain.encoder.E, plain.encoder.S, plain.head.weight))
    assert out.terms["weight_decay"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.loss.item() == pytest.approx(plain.loss(x, targets=y).loss.item() + expected.item(), rel=1e-6)
    with torch.no_grad():
        decayed.encoder.b.fill_(-0.05)
        decayed.head.weight.normal_()
    X = np.random.default_rng(0).uniform(0.1, 0.9, size=(6, 12))
    yy = torch.tensor([0, 1, 2, 0, 1, 2])
    result = check_gradients(decayed, X, loss_fn=lambda m, xx: m.loss(xx, targets=yy).loss)
    assert result.relative_error < UFLDL_TOLERANCE, result.per_parameter
    with pytest.raises(ConfigError, match="weight_decay"):
        small_drsae(weight_decay=-1.0)


def test_checkpoint_from_before_a_new_parameter_resumes(tmp_path):
    """A run saved before ``weight_decay`` existed (its spec lacks the key) resumes: the missing
    parameter takes its default."""
    import json

    X, y = load_digits_data()
    X = unit_norm_rows(X[:200])
    config = TrainConfig(optimizer="sgd", learning_rate=5e-3, batch_size=10, max_epochs=1, device="cpu")
    torch.manual_seed(0)
    train(create_model("drsae", 64, 16, n_steps=2), X, config, run_dir=tmp_path)
    saved = tmp_path / "checkpoint" / "config.json"
    spec = json.loads(saved.read_text())
    del spec["params"]["weight_decay"]
    saved.write_text(json.dumps(spec))
    result = train(create_model("drsae", 64, 16, n_steps=2), X, TrainConfig(**{**config.__dict__, "max_epochs": 2}),
                   run_dir=tmp_path, resume=True)
    assert len(result.history) == 2

"""Denoising (corruption processes), contractive (Jacobian penalty), stochastic decoders and code
noise: values by hand, float64 gradient checks, and that each model learns its property."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sparseae.errors import ConfigError
from sparseae.evaluate import contraction_stats
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.io import load_model, save_model
from sparseae.models import create_model, encode_dataset
from sparseae.nn.corruption import (
    ComposedCorruption,
    GaussianCorruption,
    MaskingCorruption,
    SaltAndPepperCorruption,
    make_corruption,
)
from sparseae.nn.encoders import RecurrentReLUEncoder
from sparseae.nn.jacobian import encoder_jacobian, jacobian_frobenius_sq, tangent_directions
from sparseae.nn.likelihoods import LearnedVarianceGaussian
from sparseae.train import TrainConfig, train


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    X = load_digits().data.astype(np.float32) / 16.0
    return X


# ---------------------------------------------------------------------------- corruption

def test_masking_zeroes_the_asked_fraction_and_only_in_training():
    torch.manual_seed(0)
    x = torch.rand(400, 250) + 0.5  # no zeros in the clean data
    process = MaskingCorruption(0.3).train()
    x_tilde = process(x)
    assert float((x_tilde == 0).float().mean()) == pytest.approx(0.3, abs=0.005)
    kept = x_tilde != 0
    torch.testing.assert_close(x_tilde[kept], x[kept])
    assert process.eval()(x) is x


def test_gaussian_corruption_adds_noise_of_the_asked_std():
    torch.manual_seed(0)
    x = torch.rand(500, 200)
    noise = GaussianCorruption(0.25).train()(x) - x
    assert float(noise.mean()) == pytest.approx(0.0, abs=0.003)
    assert float(noise.std()) == pytest.approx(0.25, rel=0.01)


def test_salt_and_pepper_sets_half_low_half_high():
    torch.manual_seed(0)
    x = torch.full((500, 200), 0.5)
    x_tilde = SaltAndPepperCorruption(0.2).train()(x)
    assert float((x_tilde == 0).float().mean()) == pytest.approx(0.1, abs=0.004)
    assert float((x_tilde == 1).float().mean()) == pytest.approx(0.1, abs=0.004)
    assert float((x_tilde == 0.5).float().mean()) == pytest.approx(0.8, abs=0.004)


def test_corruption_specs_parse_compose_and_round_trip():
    composed = make_corruption("masking:0.1 + gaussian:0.05")
    assert isinstance(composed, ComposedCorruption) and composed.spec == "masking:0.1+gaussian:0.05"
    assert make_corruption(composed.spec).spec == composed.spec
    assert make_corruption(None) is None and make_corruption("none") is None
    torch.manual_seed(0)
    x = torch.ones(200, 100)
    out = composed.train()(x)
    # masked entries are then shifted by noise: about 10% of entries sit near 0
    assert float((out.abs() < 0.25).float().mean()) == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("spec, message", [
    ("masking", "needs a level"), ("masking:abc", "not a number"), ("blur:0.1", "unknown corruption"),
    ("masking:1.5", "masking fraction"), ("gaussian:0", "std"), (3, "string"),
])
def test_bad_corruption_specs_are_named(spec, message):
    with pytest.raises(ConfigError, match=message):
        make_corruption(spec)


def test_denoising_model_encodes_corrupted_input_and_compares_with_clean():
    model = create_model("denoising_ae", 10, 4, corruption="masking:0.5")
    x = torch.rand(64, 10) + 0.1
    torch.manual_seed(1)
    step = model.train().forward_pass(x)
    assert float((step.x_input == 0).float().mean()) == pytest.approx(0.5, abs=0.1)
    assert step.x is x
    step = model.eval().forward_pass(x)
    assert step.x_input is x


# ---------------------------------------------------------------------------- Jacobian

@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_closed_form_exact_and_stochastic_jacobian_norms_agree(activation):
    torch.manual_seed(0)
    model = create_model("autoencoder", 9, 6, activation=activation).double()
    x = torch.rand(5, 9, dtype=torch.float64)
    closed = jacobian_frobenius_sq(model.encoder, x, "closed_form")
    exact = jacobian_frobenius_sq(model.encoder, x, "exact")
    reference = torch.stack([torch.autograd.functional.jacobian(model.encoder, row).pow(2).sum() for row in x])
    torch.testing.assert_close(closed, reference)
    torch.testing.assert_close(exact, reference)
    torch.manual_seed(1)
    stochastic = jacobian_frobenius_sq(model.encoder, x, "stochastic", n_projections=4000, create_graph=False)
    torch.testing.assert_close(stochastic, reference, rtol=0.08, atol=1e-8)


def test_contraction_stats_match_autograd_jacobians_and_codes_by_hand():
    """Rifai et al.'s two figures: mean ‖J_f(x)‖_F (and the mean squared entry of J), and the
    fraction of saturated sigmoid units; across batch boundaries."""
    torch.manual_seed(0)
    model = create_model("contractive_ae", 9, 6)
    with torch.no_grad():
        model.encoder.weight.mul_(6.0)  # some units saturate
    X = torch.rand(7, 9)
    stats = contraction_stats(model, X.numpy(), batch_size=3)
    encoder = model.encoder.double()  # the reference in float64, one Jacobian per row
    squares = torch.stack([torch.autograd.functional.jacobian(encoder, row).pow(2).sum() for row in X.double()])
    assert stats["jacobian_norm"] == pytest.approx(float(squares.sqrt().mean()), rel=1e-5)
    assert stats["jacobian_sq_per_entry"] == pytest.approx(float(squares.mean()) / 54, rel=1e-5)
    with torch.no_grad():
        codes = encoder(X.double())
    saturated = float(((codes < 0.05) | (codes > 0.95)).double().mean())
    assert 0.1 < saturated < 0.9 and stats["saturated"] == pytest.approx(saturated)


def test_contraction_stats_bound_the_exact_jacobians_batch(monkeypatch):
    """Without a closed form (a two-layer encoder), the rows per batch shrink so that one batch's
    exact Jacobian stays within JACOBIAN_BATCH_NUMBERS; the figures do not depend on it."""
    import sparseae.evaluate.manifold as manifold
    import sparseae.nn.jacobian as jacobian

    torch.manual_seed(0)
    model = create_model("deep_autoencoder", 9, 4, hidden=[6])
    X = torch.rand(7, 9).numpy()
    whole = contraction_stats(model, X, batch_size=7)
    rows, exact = [], jacobian.jacobian_frobenius_sq

    def counted(encoder, x, **options):
        rows.append(x.shape[0])
        return exact(encoder, x, **options)

    monkeypatch.setattr(jacobian, "jacobian_frobenius_sq", counted)
    monkeypatch.setattr(manifold, "JACOBIAN_BATCH_NUMBERS", 4 * 9 * 2)        # two rows per batch
    batched = contraction_stats(model, X)
    assert rows == [2, 2, 2, 1]
    for key in whole:
        assert batched[key] == pytest.approx(whole[key], rel=1e-5)


def test_exact_jacobian_of_a_recurrent_encoder_matches_autograd():
    torch.manual_seed(0)
    encoder = RecurrentReLUEncoder(7, 5, n_steps=3).double()
    with torch.no_grad():
        encoder.S.normal_(0, 0.2)
        encoder.b.fill_(-0.1)
    x = torch.rand(4, 7, dtype=torch.float64)
    jacobian = encoder_jacobian(encoder, x)
    assert jacobian.shape == (4, 5, 7)
    for i in range(4):
        torch.testing.assert_close(jacobian[i], torch.autograd.functional.jacobian(encoder, x[i]))
    with pytest.raises(ConfigError, match="closed-form"):
        jacobian_frobenius_sq(encoder, x, "closed_form")


@pytest.mark.parametrize("method", ["closed_form", "exact"])
def test_contractive_penalty_gradient_check_float64(method):
    torch.manual_seed(0)
    model = create_model("contractive_ae", 8, 5, contraction_weight=0.5, contraction_method=method)
    batch = np.random.default_rng(0).uniform(0.1, 0.9, size=(6, 8))
    result = check_gradients(model, batch)
    assert result.relative_error < UFLDL_TOLERANCE, result.per_parameter
    terms = model.loss(torch.from_numpy(batch).float()).terms
    assert terms["contraction"] > 0


def test_contractive_penalty_value_matches_the_formula():
    torch.manual_seed(0)
    model = create_model("contractive_ae", 8, 5, contraction_weight=0.3)
    x = torch.rand(6, 8)
    h = model.encode(x)
    expected = 0.3 * ((h * (1 - h)).pow(2) @ model.encoder.weight.pow(2).sum(1)).mean()
    torch.testing.assert_close(model.loss(x).terms["contraction"], expected)


def test_tangent_directions_of_a_linear_encoder_are_its_right_singular_vectors():
    torch.manual_seed(0)
    model = create_model("autoencoder", 10, 4, activation="identity").double()
    x = torch.rand(3, 10, dtype=torch.float64)
    directions, values = tangent_directions(model.encoder, x, k=2)
    _, s, vh = torch.linalg.svd(model.encoder.weight.detach())
    assert directions.shape == (3, 2, 10)
    for i in range(3):
        torch.testing.assert_close(values[i], s[:2])
        overlap = (directions[i] @ vh[:2].t()).abs()
        torch.testing.assert_close(overlap, torch.eye(2, dtype=torch.float64), atol=1e-8, rtol=0)


# ---------------------------------------------------------------------------- stochastic decoders

def test_learned_variance_gaussian_value_and_fit():
    likelihood = LearnedVarianceGaussian(3)
    with torch.no_grad():
        likelihood.log_variance.copy_(torch.log(torch.tensor([1.0, 4.0, 0.25])))
    eta, x = torch.zeros(1, 3), torch.tensor([[1.0, 2.0, 0.5]])
    expected = 0.5 * (1 / 1 + 4 / 4 + 0.25 / 0.25 + np.log(1.0) + np.log(4.0) + np.log(0.25))
    assert float(likelihood.nll(eta, x).detach()) == pytest.approx(expected, rel=1e-6)
    # trained on data = low-rank signal + noise of std 0.3, the learned variance finds 0.09
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(3000, 2)) @ rng.normal(size=(2, 8)) + 0.3 * rng.normal(size=(3000, 8))).astype(np.float32)
    model = create_model("autoencoder", 8, 2, activation="identity", likelihood="gaussian_learned_variance")
    train(model, X, TrainConfig(max_epochs=60, batch_size=100, learning_rate=1e-2))
    variance = model.likelihood.variance.detach().numpy()
    assert np.median(variance) == pytest.approx(0.09, rel=0.25)


def test_code_noise_and_dropout_act_in_training_only():
    model = create_model("autoencoder", 6, 50, code_noise=0.5, dropout=0.5)
    x = torch.rand(20, 6)
    model.eval()
    torch.testing.assert_close(model.forward_pass(x).eta, model.decoder(model.encode(x)))
    model.train()
    torch.manual_seed(0)
    assert not torch.allclose(model.forward_pass(x).eta, model.decoder(model.encode(x)))
    with pytest.raises(ConfigError, match="dropout"):
        create_model("autoencoder", 6, 5, dropout=1.0)


def test_new_options_survive_save_and_load(tmp_path):
    model = create_model("autoencoder", 6, 4, corruption="salt_and_pepper:0.1",
                         likelihood="gaussian_learned_variance", code_noise=0.1, contraction_weight=0.2,
                         contraction_method="stochastic")
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.corruption.spec == "salt_and_pepper:0.1"
    assert loaded.penalties["contraction"].method == "stochastic"
    torch.testing.assert_close(loaded.likelihood.log_variance, model.likelihood.log_variance)


# ---------------------------------------------------------------------------- they learn

def _noisy(X: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (X * (rng.random(X.shape) >= fraction)).astype(np.float32)


def test_denoising_autoencoder_learns_to_remove_masking_noise(digits):
    X_train, X_test = digits[:1400], digits[1400:]
    config = TrainConfig(max_epochs=40, batch_size=32, learning_rate=5e-3, random_state=0)
    errors = {}
    for name, params in (("denoising_ae", dict(corruption="masking:0.3")),
                         ("autoencoder", dict(tied=True, likelihood="bernoulli"))):
        torch.manual_seed(0)
        model = create_model(name, 64, 100, **params)
        history = train(model, X_train, config).history
        assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
        X_noisy = torch.from_numpy(_noisy(X_test, 0.3, seed=1))
        with torch.no_grad():
            model.eval()
            restored = model(X_noisy).numpy()
        errors[name] = float(((restored - X_test) ** 2).sum(1).mean())
    corrupted = float(((_noisy(X_test, 0.3, seed=1) - X_test) ** 2).sum(1).mean())
    # the DAE restores masked digits: far closer to the clean digits than the corrupted input is,
    # and closer than an ordinary (overcomplete) autoencoder trained on clean data
    assert errors["denoising_ae"] < 0.5 * corrupted
    assert errors["denoising_ae"] < 0.8 * errors["autoencoder"]


def test_contractive_autoencoder_contracts(digits):
    X = digits[:1200]
    config = TrainConfig(max_epochs=30, batch_size=32, learning_rate=5e-3, random_state=0)
    norms, saturation = {}, {}
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        model = create_model("contractive_ae", 64, 100, contraction_weight=weight) if weight else \
            create_model("autoencoder", 64, 100, tied=True, likelihood="bernoulli")
        train(model, X, config)
        x = torch.from_numpy(digits[1200:1500])
        with torch.no_grad():
            norms[weight] = float(jacobian_frobenius_sq(model.encoder, x, "closed_form").sqrt().mean())
        codes = encode_dataset(model, digits[1200:1500])
        saturation[weight] = float(((codes < 0.05) | (codes > 0.95)).mean())
    # the penalty shrinks the Jacobian several-fold and drives units into saturation (Rifai et al.)
    assert norms[0.5] < 0.5 * norms[0.0]
    assert saturation[0.5] > saturation[0.0] + 0.2

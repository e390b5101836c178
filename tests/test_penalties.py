"""Penalties: values by hand, float64 gradient checks, and the KL running estimate."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sparseae.errors import ConfigError
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.models import create_model
from sparseae.nn.likelihoods import BernoulliLikelihood, CategoricalLikelihood, GaussianLikelihood
from sparseae.nn.penalties import ForwardPass, KLSparsity, L1Penalty, WeightDecay, kl_bernoulli


def step_for(model, x):
    return model.forward_pass(x)


def test_kl_value_by_hand():
    rho, rho_hat = 0.05, torch.tensor([0.05, 0.2, 0.5])
    expected = [0.0,
                0.05 * math.log(0.05 / 0.2) + 0.95 * math.log(0.95 / 0.8),
                0.05 * math.log(0.1) + 0.95 * math.log(1.9)]
    torch.testing.assert_close(kl_bernoulli(rho, rho_hat), torch.tensor(expected), rtol=1e-6, atol=1e-7)


def test_kl_penalty_uses_mean_activation_and_tanh_range():
    model = create_model("sparse_ae_kl", 3, 2, sparsity_weight=2.0, sparsity_target=0.1)
    code = torch.tensor([[0.2, 0.0], [0.4, 1.0]])  # ρ̂ = (0.3, 0.5)
    step = ForwardPass(x=None, x_input=None, code=code, eta=None, model=model)
    value = model.penalties["kl"](step)
    expected = 2.0 * kl_bernoulli(0.1, torch.tensor([0.3, 0.5])).sum()
    torch.testing.assert_close(value, expected)
    tanh_kl = KLSparsity(1.0, 0.1, 2, code_range=(-1.0, 1.0))
    tanh_code = 2 * code - 1  # the same activity, in tanh's range
    torch.testing.assert_close(tanh_kl(ForwardPass(None, None, tanh_code, None, model)),
                               expected / 2.0)


def test_kl_running_estimate_blends_batches():
    kl = KLSparsity(1.0, 0.1, 2, momentum=0.5).train()
    model = create_model("sparse_ae_kl", 3, 2)
    for value in (0.3, 0.5):
        kl(ForwardPass(None, None, torch.full((4, 2), value), None, model))
    # running = 0.5·(0.5·0.1 + 0.5·0.3) + 0.5·0.5 = 0.35
    torch.testing.assert_close(kl.running_rho_hat, torch.full((2,), 0.35))
    kl.eval()  # eval mode: the batch alone, no update
    kl(ForwardPass(None, None, torch.full((4, 2), 0.9), None, model))
    torch.testing.assert_close(kl.running_rho_hat, torch.full((2,), 0.35))


def test_kl_refuses_unbounded_codes():
    with pytest.raises(ConfigError, match="bounded"):
        KLSparsity(1.0, 0.1, 3, code_range=None)
    with pytest.raises(ConfigError, match="sparsity"):
        create_model("autoencoder", 4, 3, activation="relu", sparsity="kl", sparsity_weight=1.0)


def test_l1_and_weight_decay_values():
    model = create_model("autoencoder", 3, 2, activation="relu", sparsity="l1", sparsity_weight=0.5,
                         weight_decay=0.2)
    code = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    step = ForwardPass(None, None, code, None, model)
    torch.testing.assert_close(model.penalties["l1"](step), torch.tensor(0.5 * (3.0 + 3.0) / 2))
    squares = model.encoder.weight.pow(2).sum() + model.decoder.weight.pow(2).sum()
    torch.testing.assert_close(model.penalties["weight_decay"](step), 0.1 * squares)
    weighted = L1Penalty(1.0, decoder_norm_weighted=True)
    with torch.no_grad():
        model.decoder.weight_.mul_(2.0)
    norms = model.decoder.weight.norm(dim=0)
    torch.testing.assert_close(weighted(step), (code.abs() * norms).sum(1).mean())


def test_penalty_weights_validated():
    for cls in (L1Penalty, WeightDecay):
        with pytest.raises(ConfigError, match="weight"):
            cls(-0.1)


def test_weight_decay_on_named_parameters():
    torch.manual_seed(0)
    model = create_model("autoencoder", 6, 4, tied=False)
    step = ForwardPass(torch.zeros(1, 6), torch.zeros(1, 6), torch.zeros(1, 4), torch.zeros(1, 6), model)
    only_encoder = WeightDecay(0.2, names=["encoder.weight"])
    torch.testing.assert_close(only_encoder(step), 0.1 * model.encoder.weight.pow(2).sum())
    assert WeightDecay(0.2)(step) > only_encoder(step)
    with pytest.raises(ConfigError, match="unknown parameters: nope"):
        WeightDecay(0.2, names=["nope"])(step)


def test_likelihood_values():
    eta = torch.tensor([[0.0, 2.0]])
    x = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(GaussianLikelihood().nll(eta, x), torch.tensor([0.5 * (1 + 4)]))
    sig = torch.sigmoid(eta)
    torch.testing.assert_close(GaussianLikelihood("sigmoid").nll(eta, x), 0.5 * ((sig - x) ** 2).sum(1))
    expected = -(x * torch.log(sig) + (1 - x) * torch.log(1 - sig)).sum(1)
    torch.testing.assert_close(BernoulliLikelihood().nll(eta, x), expected)
    torch.testing.assert_close(CategoricalLikelihood().nll(eta, x), -torch.log_softmax(eta, 1)[:, :1].sum(1))


@pytest.mark.parametrize("params", [
    dict(activation="sigmoid", sparsity="kl", sparsity_weight=3.0, sparsity_target=0.05),
    dict(activation="tanh", sparsity="kl", sparsity_weight=1.0, sparsity_target=0.2),
    dict(activation="relu", sparsity="l1", sparsity_weight=0.3),
    dict(activation="sigmoid", weight_decay=0.3),
    dict(activation="sigmoid", likelihood="bernoulli", sparsity="kl", sparsity_weight=1.0),
    dict(activation="tanh", likelihood="categorical"),
    dict(activation="sigmoid", likelihood="gaussian_sigmoid", tied=True, weight_decay=0.1),
])
def test_each_penalty_and_likelihood_passes_ufldl_gradient_check(params):
    model = create_model("autoencoder", 9, 5, **params)
    X = np.random.default_rng(1).uniform(0.1, 0.9, size=(7, 9))
    if params.get("likelihood") == "categorical":
        X = X / X.sum(1, keepdims=True)
    result = check_gradients(model, X)
    assert result.relative_error < UFLDL_TOLERANCE


def test_gradient_check_detects_a_wrong_gradient():
    """A penalty whose backward is wrong must fail the check (the check can fail)."""

    class WrongGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return z.pow(2).sum()

        @staticmethod
        def backward(ctx, grad):
            (z,) = ctx.saved_tensors
            return grad * 2.2 * z  # the true derivative is 2z

    model = create_model("autoencoder", 6, 4)
    X = np.random.default_rng(2).uniform(0.1, 0.9, size=(5, 6))
    result = check_gradients(model, X, loss_fn=lambda m, x: m.loss(x).loss + WrongGradient.apply(m.encode(x)))
    assert result.relative_error > 1e-3 and not result.passed

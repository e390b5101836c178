"""TopK, BatchTopK (with AuxK) and JumpReLU sparse autoencoders: their sparsity rules, the
straight-through gradient, dead-latent revival, and that they learn a sparse dictionary."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparseae.errors import ConfigError
from sparseae.evaluate import fraction_of_variance_unexplained
from sparseae.gradcheck import check_gradients
from sparseae.models import create_model
from sparseae.nn.sparse_encoders import _JumpReLU, _Step
from sparseae.train import TrainConfig, train


def sparse_data(n: int = 4000, d: int = 32, m: int = 48, active: int = 3, seed: int = 0) -> np.ndarray:
    """x = D s with unit-norm atoms D (d, m) and ``active`` non-negative non-zeros per s."""
    rng = np.random.default_rng(seed)
    D = rng.normal(size=(d, m))
    D /= np.linalg.norm(D, axis=0)
    S = np.zeros((n, m))
    for row in range(n):
        S[row, rng.choice(m, active, replace=False)] = rng.uniform(0.5, 1.5, active)
    return (S @ D.T).astype(np.float32)


def fvu(model, X) -> float:
    model.to("cpu").eval()  # training may have moved it to a GPU
    with torch.no_grad():
        return fraction_of_variance_unexplained(X, model(torch.from_numpy(X)).numpy())


def test_topk_keeps_exactly_k_and_learns_a_sparse_dictionary():
    X = sparse_data()
    torch.manual_seed(0)
    model = create_model("topk_sae", 32, 96, k=4, aux_weight=0.0)
    z = model.encode(torch.from_numpy(X[:50]))
    assert ((z > 0).sum(dim=1) <= 4).all() and ((z != 0).sum(dim=1) == (z > 0).sum(dim=1)).all()
    before = fvu(model, X)
    train(model, X, TrainConfig(max_epochs=30, batch_size=64, learning_rate=3e-3))
    after = fvu(model, X)
    # measured: 0.62 at initialization, 0.04 after training, with at most 4 active latents
    assert after < 0.1 < 0.5 < before
    torch.testing.assert_close(model.decoder.weight.norm(dim=0), torch.ones(96), atol=1e-5, rtol=0)


def test_decoder_gradient_is_made_tangent_to_the_unit_sphere():
    model = create_model("topk_sae", 10, 12, k=3)
    model.loss(torch.randn(16, 10)).loss.backward()
    W, G = model.decoder.weight_, model.decoder.weight_.grad
    assert (G * W).sum(dim=0).abs().max() > 1e-4
    model.project_gradients()
    assert (W.grad * W).sum(dim=0).abs().max() < 1e-6


def test_batch_topk_keeps_k_per_sample_on_average_and_learns_a_threshold():
    X = sparse_data()
    torch.manual_seed(0)
    model = create_model("topk_sae", 32, 96, k=4, batch_topk=True, aux_weight=0.0)
    batch = torch.from_numpy(X[:64])
    model.train()
    with torch.no_grad():
        z = model.encode(batch)
    assert int((z > 0).sum()) <= 4 * 64 and (z > 0).sum(dim=1).max() > (z > 0).sum(dim=1).min()
    train(model, X, TrainConfig(max_epochs=30, batch_size=64, learning_rate=3e-3))
    assert float(model.encoder.threshold) > 0
    model.eval()
    with torch.no_grad():
        l0 = float((model.encode(torch.from_numpy(X)) > 0).sum(dim=1).float().mean())
    # at inference the threshold keeps about k latents per sample (measured 4.0)
    assert 2.5 < l0 < 6.0 and fvu(model, X) < 0.1


def test_aux_k_trains_and_revives_dead_latents():
    X = sparse_data(active=2)
    dead_counts, moved = {}, {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = create_model("topk_sae", 32, 96, k=2, aux_weight=max(weight, 1e-9), dead_after=500)
        model.penalties["aux_k"].weight = weight
        with torch.no_grad():  # handicap half the latents: they rarely win the top-k
            model.encoder.bias[:48] = -1.0
        start = model.encoder.weight[:48].detach().clone()
        train(model, X, TrainConfig(max_epochs=15, batch_size=64, learning_rate=3e-3))
        with torch.no_grad():
            fired = (model.encode(torch.from_numpy(X)) > 0).any(dim=0)
        dead_counts[weight] = int((~fired[:48]).sum())
        moved[weight] = float((model.encoder.weight[:48].detach() - start).norm())
    # measured: without AuxK the 48 never fire and their weights never move (no gradient);
    # AuxK gives them a gradient of their own (they move by 3.8) and revives 8 of them
    assert dead_counts[0.0] == 48 and moved[0.0] == 0.0
    assert dead_counts[1.0] <= 44 and moved[1.0] > 1.0


def test_aux_k_value_by_hand():
    torch.manual_seed(0)
    fresh = create_model("topk_sae", 6, 8, k=2, k_aux=2, dead_after=1000).eval()
    assert float(fresh.loss(torch.randn(3, 6)).terms["aux_k"]) == 0.0  # no latent dead yet
    model = create_model("topk_sae", 6, 8, k=2, k_aux=2, dead_after=1)
    penalty = model.penalties["aux_k"]
    penalty.samples_since_fired.fill_(5)
    penalty.samples_since_fired[:4] = 0  # latents 4..7 are dead
    x = torch.randn(3, 6)
    model.eval()  # no count update
    out = model.loss(x)
    a = model.encoder.preactivation(x)
    dead = torch.relu(a[:, 4:])
    top = dead.topk(2, dim=1)
    z_aux = torch.zeros_like(a)
    z_aux[:, 4:] = torch.zeros_like(dead).scatter(1, top.indices, top.values)
    residual = x - model(x)
    estimate = z_aux @ model.decoder.weight.t()
    expected = (1 / 32) * (residual - estimate).pow(2).sum() / (residual - residual.mean(0)).pow(2).sum()
    torch.testing.assert_close(out.terms["aux_k"], expected.detach())


def test_jumprelu_pseudo_derivatives_follow_the_paper():
    a = torch.tensor([[0.1, 0.5, 0.52, 0.9]], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64, requires_grad=True)
    eps = 0.1
    z = _JumpReLU.apply(a, theta, eps)
    torch.testing.assert_close(z.detach(), torch.tensor([[0.0, 0.0, 0.52, 0.9]], dtype=torch.float64))
    z.sum().backward()
    torch.testing.assert_close(a.grad, torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64))
    # ∂z/∂θ = −(θ/ε)·1[|a − θ| < ε/2]: the units with a within 0.05 of θ
    torch.testing.assert_close(theta.grad, torch.tensor([0.0, -5.0, -5.0, 0.0], dtype=torch.float64))
    theta.grad = None
    _Step.apply(a.detach(), theta, eps).sum().backward()
    torch.testing.assert_close(theta.grad, torch.tensor([0.0, -10.0, -10.0, 0.0], dtype=torch.float64))


def test_jumprelu_l0_penalty_buys_sparsity_and_gradcheck_skips_the_threshold():
    X = sparse_data()
    l0 = {}
    for weight in (0.0, 0.05):
        torch.manual_seed(0)
        model = create_model("jumprelu_sae", 32, 96, l0_weight=weight, initial_threshold=0.1, bandwidth=0.05)
        train(model, X, TrainConfig(max_epochs=20, batch_size=64, learning_rate=3e-3))
        model.eval()
        with torch.no_grad():
            l0[weight] = float((model.encode(torch.from_numpy(X)) != 0).sum(dim=1).float().mean())
        assert fvu(model, X) < 0.2
    # measured: 32.9 active latents without the penalty, 2.8 with it (the data have 3 per sample)
    assert l0[0.05] < 5 < 20 < l0[0.0]
    result = check_gradients(create_model("jumprelu_sae", 8, 6), np.random.default_rng(0).normal(size=(5, 8)))
    assert result.pseudo_gradient == ["encoder.log_threshold"] and result.passed


@pytest.mark.parametrize("params, message", [
    (dict(k=0), "k must be"), (dict(k=20), "k must be <= 16"), (dict(aux_weight=-1.0), "aux_weight"),
])
def test_bad_sae_hyperparameters(params, message):
    with pytest.raises(ConfigError, match=message):
        create_model("topk_sae", 8, 16, **params)
    with pytest.raises(ConfigError, match="bandwidth"):
        create_model("jumprelu_sae", 8, 16, bandwidth=0.0)


def test_structured_sparsity_applies_to_sae_latents():
    """Group sparsity over a grid of TopK latents: the penalty pulls co-active latents together."""
    X = sparse_data()
    groups = {"kind": "grid", "height": 8, "width": 12, "window": 3}
    model = create_model("topk_sae", 32, 96, k=4, groups=groups, group_weight=0.05, aux_weight=0.0)
    assert set(model.loss(torch.from_numpy(X[:8])).terms) == {"reconstruction", "group"}
    jump = create_model("jumprelu_sae", 8, 12, groups={"kind": "disjoint", "n_components": 12, "group_size": 3},
                        group_weight=0.1)
    assert "group" in jump.penalties
    assert check_gradients(jump, np.random.default_rng(0).normal(size=(5, 8))).passed
    with pytest.raises(ConfigError, match="group_weight"):
        create_model("topk_sae", 32, 96, k=4, groups=groups)
    with pytest.raises(ConfigError, match="covers 96 code units, but the code has 95"):
        create_model("topk_sae", 32, 95, k=4, groups=groups, group_weight=0.1)


def test_sparse_decoder_equals_the_dense_one_in_value_and_gradient(tmp_path):
    """``sparse_decode`` decodes from the k active latents (embedding_bag): same loss, same
    gradients of every parameter, same training, and it saves and loads."""
    from sparseae.io import load_model, save_model

    X = torch.randn(64, 20, dtype=torch.float64)
    models = []
    for sparse in (False, True):
        torch.manual_seed(3)
        model = create_model("topk_sae", 20, 48, k=5, sparse_decode=sparse).double()
        model.loss(X).loss.backward()
        models.append(model)
    dense, sparse = models
    assert type(sparse.decoder).__name__ == "SparseLinearDecoder"
    torch.testing.assert_close(sparse.loss(X).loss, dense.loss(X).loss)
    for (name, p), (_, q) in zip(dense.named_parameters(), sparse.named_parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=name)
    z = sparse.encode(X)
    torch.testing.assert_close(sparse.decode(z), dense.decode(dense.encode(X)))
    torch.testing.assert_close(sparse.decode(z.clone()), sparse.decode(z))     # dense fallback agrees
    # the gradients equal the dense decoder's everywhere (above); central differences on a sample
    # of each parameter's coordinates check the sparse path itself (all ~2,000 took most of the time)
    assert check_gradients(sparse, X[:8], max_checks_per_parameter=64).passed
    result = train(sparse.float(), X.float().numpy(), TrainConfig(max_epochs=4, batch_size=16, learning_rate=1e-2))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    save_model(sparse, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    torch.testing.assert_close(loaded.decode(loaded.encode(X.float())), sparse.decode(sparse.encode(X.float())))
    with pytest.raises(ConfigError, match="per-sample TopK"):
        create_model("topk_sae", 20, 48, k=5, batch_topk=True, sparse_decode=True)


def test_lateral_inhibition_applies_to_sae_latents(tmp_path):
    """μ·½|z|ᵀS|z| on TopK/JumpReLU latents: exact value, float64 gradients, the learned S rises
    between co-active latents within its bound and keeps the tree zeros, and it is saved."""
    from sparseae.coding.inhibition_matrix import tree_relatives
    from sparseae.io import load_model, save_model

    tree = {"depth": 2, "branching": 3}                                  # 13 latents
    torch.manual_seed(0)
    fixed = create_model("jumprelu_sae", 10, 13, inhibition={"tree": tree, "value": 0.4},
                         inhibition_weight=0.5).double()
    X = torch.randn(16, 10, dtype=torch.float64)
    z = fixed.encode(X).abs()
    S = fixed.penalties["inhibition"].inhibition
    expected = 0.5 * 0.5 * torch.einsum("bi,ij,bj->b", z, S, z).mean()
    torch.testing.assert_close(fixed.loss(X).terms["inhibition"], expected)
    relatives = tree_relatives([-1, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    assert (S[relatives] == 0).all() and torch.allclose(S[~relatives], torch.full_like(S[~relatives], 0.4))
    assert check_gradients(fixed, X[:6]).passed

    torch.manual_seed(0)
    learned = create_model("topk_sae", 10, 13, k=3, inhibition={"tree": tree, "learned": True, "value": 0.0,
                                                                 "rate": 5.0, "bound": 0.5}, inhibition_weight=0.1)
    data = torch.randn(512, 10).numpy()
    train(learned, data, TrainConfig(max_epochs=3, batch_size=64, learning_rate=1e-2))
    S = learned.penalties["inhibition"].inhibition
    assert float(S.max()) > 0.05                                          # it learned some inhibition
    assert (S[relatives] == 0).all() and (S >= 0).all() and torch.equal(S, S.T)
    assert float(S.sum(dim=1).max()) <= 0.5 + 1e-5                        # row sums within the bound
    save_model(learned, tmp_path / "m")
    torch.testing.assert_close(load_model(tmp_path / "m").penalties["inhibition"].inhibition, S)

    with pytest.raises(ConfigError, match="inhibition_weight"):
        create_model("topk_sae", 10, 13, k=3, inhibition={"value": 0.1})
    with pytest.raises(ConfigError, match="≥ 0"):
        create_model("topk_sae", 4, 4, k=2, inhibition={"S": -np.ones((4, 4)) + np.eye(4)}, inhibition_weight=1.0)
    with pytest.raises(ConfigError, match="relatives"):
        create_model("topk_sae", 10, 13, k=3, inhibition={"tree": tree, "S": np.ones((13, 13)) - np.eye(13)},
                     inhibition_weight=1.0)
    with pytest.raises(ConfigError, match="inhibition"):
        create_model("topk_sae", 10, 13, k=3, inhibition={"colour": 1}, inhibition_weight=1.0)


@pytest.mark.parametrize("x_needs_grad", [False, True])
def test_pre_bias_gradient_skips_the_input_product_but_not_its_value(x_needs_grad):
    """W(x − b_pre) + b: the encoder's shortcut for b_pre's gradient gives the values and the
    gradients (W, b, b_pre, and x when it needs one) of differentiating through x − b_pre, in float64."""
    torch.manual_seed(0)
    model = create_model("topk_sae", 7, 12, k=3).double()
    with torch.no_grad():
        model.decoder.bias.normal_()
    encoder = model.encoder
    x = torch.randn(5, 7, dtype=torch.float64, requires_grad=x_needs_grad)
    weights = torch.randn(5, 12, dtype=torch.float64)
    params = [encoder.weight, encoder.bias, model.decoder.bias] + ([x] if x_needs_grad else [])
    ours = encoder.preactivation(x)
    grads = torch.autograd.grad((ours * weights).sum(), params)
    naive = torch.nn.functional.linear(x - model.decoder.bias, encoder.weight, encoder.bias)
    expected = torch.autograd.grad((naive * weights).sum(), params)
    torch.testing.assert_close(ours, naive, rtol=0, atol=0)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)

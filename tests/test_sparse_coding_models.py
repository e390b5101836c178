"""Tests of the models with iterative inference: sparse coding (dictionary learning), PSD and LISTA."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparseae.coding import (
    AtomUsage,
    atom_recovery,
    dictionary_from_samples,
    duality_gap,
    fista,
    ista,
)
from sparseae.errors import ConfigError, DataError
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.io import load_model, save_model
from sparseae.models import create_model, lista_from_dictionary, psd_code_quality
from sparseae.train import TrainConfig, train
from sparseae.train.procedures import learn_dictionary

LAM = 0.1


def synthetic(n_samples: int, n_features: int = 16, n_atoms: int = 24, n_active: int = 3,
              noise: float = 0.01, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """X (n_samples, n_features) float32 = Z Dᵀ + noise with D (n_features, n_atoms) random unit-norm
    atoms (float64) and ``n_active`` atoms per sample with magnitudes in ±[0.5, 1.5]."""
    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(n_features, n_atoms, generator=gen, dtype=torch.float64)
    D /= D.norm(dim=0)
    active = torch.argsort(torch.rand(n_samples, n_atoms, generator=gen), dim=1)[:, :n_active]
    signs = torch.where(torch.rand(n_samples, n_active, generator=gen) < 0.5, -1.0, 1.0).double()
    values = (torch.rand(n_samples, n_active, generator=gen, dtype=torch.float64) + 0.5) * signs
    Z = torch.zeros(n_samples, n_atoms, dtype=torch.float64).scatter_(1, active, values)
    X = Z @ D.T + noise * torch.randn(n_samples, n_features, generator=gen, dtype=torch.float64)
    return X.float().numpy(), D


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, torch.Tensor]:
    return synthetic(600)


def relative_code_error(Z: torch.Tensor, Z_star: torch.Tensor) -> float:
    """mean ‖z − z*‖² / mean ‖z*‖²."""
    return float((Z - Z_star).square().sum() / Z_star.square().sum())


# --------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name, params", [
    ("lista", {"n_steps": 3}),
    ("lista", {"n_steps": 2, "nonnegative": True, "reconstruction_weight": 0.5}),
    ("psd", {"encoder": "tanh"}),
    ("psd", {"encoder": "shrink", "nonnegative": True, "prediction_weight": 0.5}),
])
def test_losses_pass_the_float64_gradient_check(name, params, data):
    """PSD: autograd at the fixed z* equals the derivative of E(x, z*(θ)) (envelope theorem), so z* is
    solved to float64 precision; LISTA: exact through the unrolled network."""
    X, _ = data
    x = X[:5, :8].astype(np.float64) + 0.1
    model = create_model(name, 8, 6, **params)
    if name == "lista":  # a non-trivial recurrence: ISTA on a data dictionary, then perturbed
        model.init_from_dictionary(dictionary_from_samples(X[:, :8], 6))
        with torch.no_grad():
            for p in model.encoder.parameters():
                p.mul_(1 + 0.1 * torch.rand_like(p))
    result = check_gradients(model, x, max_checks_per_parameter=None if name == "lista" else 12)
    assert result.relative_error < UFLDL_TOLERANCE, result.per_parameter
    assert result.passed
    assert result.n_checked >= 30


def test_sparse_coding_gradient_is_the_reconstruction_gradient_at_z_star(data):
    X, _ = data
    x = torch.from_numpy(X[:32]).double()
    model = create_model("sparse_coding", 16, 24, sparsity_weight=LAM).double()
    out = model.loss(x)
    out.loss.backward()
    z = out.code
    D = model.dictionary.detach()
    expected = -(x - z @ D.T).T @ z / x.shape[0]  # ∂/∂D of mean ½‖x − Dz‖² at fixed z
    torch.testing.assert_close(model.decoder.weight_.grad, expected, rtol=1e-12, atol=1e-14)
    assert out.loss.item() == pytest.approx(
        float((0.5 * (x - z @ D.T).square().sum(1) + LAM * z.abs().sum(1)).mean()), rel=1e-12)


# --------------------------------------------------------------------- sparse coding


def test_encode_solves_the_lasso_with_warm_start_and_nonnegativity(data):
    X, _ = data
    x = torch.from_numpy(X[:50]).double()
    for nonnegative in (False, True):
        model = create_model("sparse_coding", 16, 24, sparsity_weight=LAM, nonnegative=nonnegative,
                             inference_max_iter=5000).double()
        z = model.encode(x)
        gap = duality_gap(x, model.dictionary.detach(), z, LAM, nonnegative=nonnegative)
        assert float(gap.max()) < 1e-10
        if nonnegative:
            assert float(z.min()) == 0.0
        warm = model.encode(x, z0=z)
        torch.testing.assert_close(warm, z, rtol=0, atol=1e-12)


def test_dictionary_learning_recovers_the_atoms(data):
    X, D_true = data
    model = learn_dictionary(X, 24, LAM, max_epochs=15, batch_size=30, learning_rate=2e-2, inference_max_iter=50)
    recovery = atom_recovery(D_true, model.dictionary)
    # measured: mean 0.981, 22 of 24 atoms above 0.95 (the worst learned atom sits between two true ones)
    assert float(recovery.mean()) > 0.95
    assert int((recovery > 0.95).sum()) >= 21
    norms = model.dictionary.norm(dim=0)
    torch.testing.assert_close(norms, torch.ones(24), rtol=0, atol=1e-5)
    # the random start is far from the truth
    start = dictionary_from_samples(X, 24, generator=torch.Generator().manual_seed(0))
    assert float(atom_recovery(D_true, start).mean()) < 0.8


def test_atom_usage_replaces_only_unused_atoms_at_the_end_of_a_window():
    usage = AtomUsage(4, window=2)
    D = torch.eye(5, 4)
    x = torch.tensor([[0.0, 0, 0, 0, 3.0], [0, 0, 0, 4.0, 0], [0, 0, 0, 0, 0]])
    codes = torch.tensor([[1.0, 0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 0]])
    usage.update(x, codes)
    assert usage.reinitialize(D) == 0 and torch.equal(D, torch.eye(5, 4))  # window not over yet
    usage.update(x, codes)
    assert usage.counts.tolist() == [2, 0, 2, 0]
    torch.manual_seed(0)
    assert usage.reinitialize(D) == 2
    torch.testing.assert_close(D[:, [0, 2]], torch.eye(5, 4)[:, [0, 2]])
    new = D[:, [1, 3]]
    torch.testing.assert_close(new.norm(dim=0), torch.ones(2))
    unit_inputs = {(0.0, 0, 0, 0, 1.0), (0.0, 0, 0, 1.0, 0)}
    # two of the three inputs; the zero input became a random unit direction
    assert sum(tuple(col.tolist()) in unit_inputs for col in new.T) >= 1
    assert usage.counts.tolist() == [0, 0, 0, 0] and int(usage.n_batches) == 0


def test_training_reinitializes_dead_atoms_deterministically():
    """Data in the first 8 coordinates; 6 atoms start in the other 8, where no code uses them."""
    X, _ = synthetic(300, n_features=8, n_atoms=12, seed=3)
    X = np.concatenate([X, np.zeros_like(X)], axis=1)

    def run() -> torch.Tensor:
        torch.manual_seed(0)
        model = create_model("sparse_coding", 16, 12, sparsity_weight=LAM, inference_max_iter=50,
                             reinit_unused_every=5)
        D = torch.zeros(16, 12)
        D[:8, :6] = torch.from_numpy(dictionary_from_samples(X[:, :8], 6).numpy())
        D[8:, 6:] = torch.eye(8)[:, :6]
        model.set_dictionary(D)
        assert float(model.dictionary.detach()[:8, 6:].abs().max()) == 0.0
        train(model, X, TrainConfig(learning_rate=1e-2, max_epochs=1, batch_size=30))
        return model.dictionary.detach().clone()

    D = run()
    assert float(D[8:].abs().max()) < 1e-6  # every atom moved into the data's subspace
    torch.testing.assert_close(D.norm(dim=0), torch.ones(12), rtol=0, atol=1e-5)
    torch.testing.assert_close(run(), D, rtol=0, atol=0)  # same seed, same dictionary


# ----------------------------------------------------------------------------------- PSD


@pytest.mark.parametrize("encoder, measured", [("tanh", 0.106), ("shrink", 0.063)])
def test_psd_learns_a_fast_code_close_to_the_inferred_one(encoder, measured, data):
    X, _ = data
    torch.manual_seed(0)
    model = create_model("psd", 16, 24, sparsity_weight=LAM, encoder=encoder, inference_max_iter=50)
    model.set_dictionary(dictionary_from_samples(X, 24, generator=torch.Generator().manual_seed(0)))
    before = psd_code_quality(model, X)
    result = train(model, X, TrainConfig(learning_rate=2e-2, max_epochs=15, batch_size=30))
    after = psd_code_quality(model, X)
    losses = [record["train_loss"] for record in result.history]
    assert losses[-1] < 0.5 * losses[0]  # measured 0.96 → 0.45 (tanh), 0.90 → 0.38 (shrink)
    assert before.relative_code_error > 0.6  # measured 0.65, 0.64
    assert after.relative_code_error < 1.5 * measured
    for quality in (before, after):
        assert quality.energy_lasso <= quality.energy_optimal * (1 + 1e-5)
        assert quality.energy_optimal <= quality.energy_predicted * (1 + 1e-5)
    assert after.energy_ratio < 1.35  # measured 1.24 (tanh), 1.11 (shrink)
    with torch.no_grad():  # encode is F(x), the fast code
        x = torch.from_numpy(X[:4])
        torch.testing.assert_close(model.encode(x), model.encoder(x))


# ---------------------------------------------------------------------------------- LISTA


@pytest.mark.parametrize("nonnegative", [False, True])
@pytest.mark.parametrize("n_steps", [1, 3, 6])
def test_lista_from_a_dictionary_is_ista_from_zero(n_steps, nonnegative, data):
    X, D = data
    x = torch.from_numpy(X[:40]).double()
    model = lista_from_dictionary(D, LAM, n_steps, nonnegative=nonnegative)
    assert model.dictionary.dtype == torch.float64
    reference = ista(x, D, LAM, L=model.lipschitz, max_iter=n_steps + 1, stop="none",
                     nonnegative=nonnegative).codes
    z = model.encode(x).detach()
    assert float(z.abs().sum()) > 0
    torch.testing.assert_close(z, reference, rtol=1e-12, atol=1e-13)


def test_trained_lista_beats_ista_and_fista_with_as_many_iterations():
    X, D = synthetic(1000)
    x_test = torch.from_numpy(synthetic(500, seed=1)[0])
    torch.manual_seed(0)
    model = lista_from_dictionary(D.float(), LAM, 3)
    z_star = model.optimal_code(x_test)
    start = relative_code_error(model.encode(x_test).detach(), z_star)
    train(model, X, TrainConfig(learning_rate=3e-3, max_epochs=20, batch_size=50))
    trained = relative_code_error(model.encode(x_test).detach(), z_star)
    baselines = {name: relative_code_error(solver(x_test, D.float(), LAM, L=model.lipschitz,
                                                  max_iter=4, stop="none").codes, z_star)
                 for name, solver in (("ista", ista), ("fista", fista))}
    # measured: 0.365 (= ISTA, 4 iterations) → 0.213; FISTA with 4 iterations: 0.321
    assert start == pytest.approx(baselines["ista"], rel=1e-4)
    assert trained < 0.26
    assert trained < 0.8 * min(baselines.values())


def test_lista_targets_can_be_given_and_are_reused_for_the_same_batch(data):
    X, D = data
    model = lista_from_dictionary(D.float(), LAM, 2)
    x = torch.from_numpy(X[:20].copy())
    z_star = model.optimal_code(x)
    assert model.optimal_code(x) is z_star  # same batch, same dictionary: cached
    given = model.loss(x, targets=z_star)
    assert given.loss.item() == pytest.approx(model.loss(x).loss.item(), rel=1e-6)
    assert given.terms["reconstruction"].item() == 0.0  # reconstruction_weight is 0 by default
    x.mul_(2.0)  # an in-place change invalidates the cache
    torch.testing.assert_close(model.optimal_code(x), fista(x, D.float(), LAM, max_iter=1000,
                                                             tol=1.2e-5).codes, rtol=1e-3, atol=1e-3)
    with pytest.raises(DataError, match="targets must be"):
        model.loss(x, targets=z_star[:, :3])


# ------------------------------------------------------------------------- bad input, I/O


@pytest.mark.parametrize("name, params, message", [
    ("sparse_coding", {"sparsity_weight": 0.0}, "sparsity_weight"),
    ("psd", {"sparsity_weight": -1.0}, "sparsity_weight"),
    ("lista", {"sparsity_weight": 0}, "sparsity_weight"),
    ("lista", {"n_steps": 0}, "n_steps"),
    ("lista", {"n_steps": 1.5}, "n_steps"),
    ("psd", {"prediction_weight": 0.0}, "prediction_weight"),
    ("psd", {"encoder": "relu"}, "encoder"),
    ("sparse_coding", {"inference_max_iter": 0}, "inference_max_iter"),
    ("sparse_coding", {"reinit_unused_every": -1}, "reinit_unused_every"),
])
def test_bad_hyperparameters_raise_config_error(name, params, message):
    with pytest.raises(ConfigError, match=message):
        create_model(name, 16, 24, **params)


def test_bad_dictionaries_and_data_raise_data_error(data):
    X, D = data
    with pytest.raises(ConfigError, match="lam|sparsity_weight"):
        lista_from_dictionary(D, 0.0, 3)
    with pytest.raises(ConfigError, match="n_steps"):
        lista_from_dictionary(D, LAM, 0)
    with pytest.raises(DataError, match="2-D"):
        lista_from_dictionary(D[:, 0], LAM, 3)
    model = create_model("lista", 16, 24)
    with pytest.raises(DataError, match=r"shape \(n_features, n_components\) = \(16, 24\)"):
        model.init_from_dictionary(D.T)
    coder = create_model("sparse_coding", 16, 24)
    with pytest.raises(DataError, match=r"\(16, 24\)"):
        coder.set_dictionary(D[:, :20])
    with pytest.raises(DataError, match="NaN"):
        coder.set_dictionary(torch.full((16, 24), float("nan")))
    with pytest.raises(DataError, match="features"):
        coder.encode(torch.ones(3, 15))
    with pytest.raises(DataError, match="NaN"):
        learn_dictionary(np.full((10, 16), np.nan), 4, LAM)
    with pytest.raises(DataError, match="at least as many samples"):
        learn_dictionary(X[:10], 24, LAM)
    with pytest.raises(ConfigError, match="minibatch optimizer"):
        learn_dictionary(X, 24, LAM, optimizer="lbfgs")
    with pytest.raises(TypeError, match="PSD model"):
        psd_code_quality(coder, X)


@pytest.mark.parametrize("name, params", [
    ("sparse_coding", {"nonnegative": True, "reinit_unused_every": 3}),
    ("psd", {"encoder": "shrink"}),
    ("lista", {"n_steps": 4}),
])
def test_save_load_round_trip_keeps_dictionary_and_state(name, params, data, tmp_path):
    X, D = data
    x = torch.from_numpy(X[:30])
    model = create_model(name, 16, 24, **params)
    if name == "lista":
        model.init_from_dictionary(D)
    else:
        model.set_dictionary(dictionary_from_samples(X, 24))
        model.train()
        model.loss(x)  # counts atom usage
    save_model(model, tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert loaded.spec == model.spec
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    if name != "lista":
        assert int(loaded.atom_usage.n_batches) == 1
    torch.testing.assert_close(loaded.encode(x), model.encode(x), rtol=0, atol=0)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_lista_trains_on_precomputed_codes_through_the_trainer():
    """``train(model, X, y=Z_star)``: the trainer hands LISTA its cached targets batch by batch,
    and the result equals training that recomputes z* for every batch."""
    import numpy as np
    import torch

    from sparseae.coding import fista
    from sparseae.models import lista_from_dictionary
    from sparseae.train import TrainConfig, train

    torch.manual_seed(0)
    D = torch.randn(16, 24)
    D /= D.norm(dim=0, keepdim=True)
    X = (torch.randn(200, 24).clamp_min(0) * (torch.rand(200, 24) < 0.15)) @ D.t()
    Z_star = fista(X, D, 0.05, max_iter=2000, tol=1e-7).codes
    config = TrainConfig(max_epochs=3, batch_size=20, learning_rate=1e-3, device="cpu")
    a = lista_from_dictionary(D, 0.05, n_steps=2)
    b = lista_from_dictionary(D, 0.05, n_steps=2)
    before = train(a, X.numpy(), TrainConfig(max_epochs=1, batch_size=200, learning_rate=1e-9, device="cpu"),
                   y=Z_star.numpy()).history[0]["train_code_prediction"]
    a.load_state_dict(b.state_dict())
    history = train(a, X.numpy(), config, y=Z_star.numpy()).history
    train(b, X.numpy(), config)
    assert history[-1]["train_code_prediction"] < 0.9 * before
    for key, value in b.state_dict().items():
        torch.testing.assert_close(a.state_dict()[key], value, rtol=1e-3, atol=1e-4)
    with pytest.raises(DataError, match="rows for 200 samples"):
        train(a, X.numpy(), config, y=np.zeros((10, 16)))


@pytest.mark.parametrize("name", ["sparse_coding", "psd"])
def test_init_data_starts_the_atoms_at_distinct_normalized_samples(name, data):
    X, _ = data
    model = create_model(name, X.shape[1], 24, init="data")
    before = model.dictionary.detach().clone()
    model.initialize_from_data(X, generator=torch.Generator().manual_seed(3))
    D = model.dictionary.detach().numpy()
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    matches = np.abs(Xn @ D).argmax(axis=0)
    assert np.allclose(np.abs(Xn @ D).max(axis=0), 1.0, atol=1e-5)
    assert len(set(matches.tolist())) == 24
    again = create_model(name, X.shape[1], 24, init="data")
    again.initialize_from_data(X, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again.dictionary, model.dictionary)
    plain = create_model(name, X.shape[1], 24)  # init="random": the hook leaves the atoms alone
    start = plain.dictionary.detach().clone()
    plain.initialize_from_data(X, generator=torch.Generator().manual_seed(3))
    assert torch.equal(plain.dictionary, start) and not torch.equal(before, model.dictionary)
    with pytest.raises(ConfigError, match="init"):
        create_model(name, X.shape[1], 24, init="samples")


def test_a_run_starts_init_data_atoms_from_its_training_samples(tmp_path, capsys):
    """The run layer's ``plain`` procedure calls the hook before training (and not on resume): with a
    learning rate of ~0 the saved atoms are still training digits."""
    from sklearn.datasets import load_digits

    from sparseae.cli import main

    status = main(["train", "--quiet", "--model", "sparse_coding", "--data", "digits", "--out", str(tmp_path / "run"),
                   "--set", "model.n_components=20", "--set", "model.init=data",
                   "--set", "model.reinit_unused_every=0",
                   "--set", "train.learning_rate=1e-12", "--set", "train.max_epochs=1",
                   "--set", "output.plots=false"])
    assert status == 0, capsys.readouterr().err
    D = load_model(tmp_path / "run" / "model").dictionary.detach().double().numpy()
    X = load_digits().data.astype(np.float64)
    X = X[np.linalg.norm(X, axis=1) > 0]
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert np.abs(Xn @ D).max(axis=0).min() > 0.999

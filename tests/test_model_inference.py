"""Models that infer Lasso codes use sparse_encode (issue 26): the ``inference`` option of
sparse_coding, PSD and LISTA, its equivalence with FISTA, the path each model takes, and saved
models without the option."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sparseae.coding.dictionary as dictionary_module
from sparseae.coding import dictionary_from_samples, duality_gap, fista
from sparseae.coding.dictionary import INFERENCE_SOLVERS, SparseInference
from sparseae.errors import ConfigError, DataError
from sparseae.io import load_model, save_model
from sparseae.models import create_model, lista_from_dictionary
from sparseae.train import TrainConfig, train

LAM = 0.1
N_FEATURES, N_ATOMS = 16, 24


def synthetic(n_samples: int, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """X (n_samples, 16) float64 = 3-sparse codes over 24 random unit atoms + noise 0.01; D (16, 24)."""
    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(N_FEATURES, N_ATOMS, generator=gen, dtype=torch.float64)
    D /= D.norm(dim=0)
    active = torch.argsort(torch.rand(n_samples, N_ATOMS, generator=gen), dim=1)[:, :3]
    values = (torch.rand(n_samples, 3, generator=gen, dtype=torch.float64) + 0.5) \
        * torch.where(torch.rand(n_samples, 3, generator=gen) < 0.5, -1.0, 1.0).double()
    Z = torch.zeros(n_samples, N_ATOMS, dtype=torch.float64).scatter_(1, active, values)
    X = Z @ D.T + 0.01 * torch.randn(n_samples, N_FEATURES, generator=gen, dtype=torch.float64)
    return X.numpy(), D


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, torch.Tensor]:
    return synthetic(300)


@pytest.fixture
def encode_calls(monkeypatch) -> list[str]:
    """The algorithm of every sparse_encode call SparseInference makes during the test."""
    calls: list[str] = []
    real = dictionary_module.sparse_encode

    def counting(*args, **kwargs):
        calls.append(kwargs["algorithm"])
        return real(*args, **kwargs)

    monkeypatch.setattr(dictionary_module, "sparse_encode", counting)
    return calls


def build(name: str, params: dict, inference: str, X: np.ndarray, D: torch.Tensor):
    """A float64 model ``name`` with ``params`` on a data dictionary (LISTA: on D)."""
    if name == "lista":
        return lista_from_dictionary(D, LAM, 3, inference=inference, inference_max_iter=100_000, **params)
    torch.manual_seed(0)
    model = create_model(name, N_FEATURES, N_ATOMS, sparsity_weight=LAM, inference=inference,
                         inference_max_iter=100_000, **params).double()
    model.set_dictionary(dictionary_from_samples(X, N_ATOMS, generator=torch.Generator().manual_seed(1)))
    return model


def codes_and_energy(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's inferred codes (batch, k) and the energy they minimize, per row (batch,)."""
    with torch.no_grad():
        if model.spec["name"] == "lista":
            z = model.optimal_code(x)
        else:
            z = model.sparse_code(x)
        D = model.dictionary.detach()
        energy = 0.5 * (x - z @ D.T).square().sum(1) + LAM * z.abs().sum(1)
        if model.spec["name"] == "psd":
            energy = sum(model.energy_terms(x, z, model.encode(x)).values())
    return z, energy


LASSO_MODELS = [
    ("sparse_coding", {}),
    ("sparse_coding", {"nonnegative": True}),
    ("psd", {"encoder": "tanh", "prediction_weight": 0.5}),
    ("psd", {"encoder": "shrink", "nonnegative": True}),
    ("lista", {}),
    ("lista", {"nonnegative": True}),
]


@pytest.mark.parametrize("name, params", LASSO_MODELS)
def test_lasso_models_use_sparse_encode_and_match_fista(name, params, data, encode_calls):
    X, D = data
    x = torch.from_numpy(X[:80])
    exact = build(name, params, "auto", X, D)
    reference = build(name, params, "fista", X, D)
    reference.load_state_dict(exact.state_dict())
    assert exact.inference.solver_for("cpu") == "lasso_lars"
    assert reference.inference.solver_for("cpu") == "fista"
    z, energy = codes_and_energy(exact, x)
    assert encode_calls == ["lasso_lars"]
    z_fista, energy_fista = codes_and_energy(reference, x)
    assert encode_calls == ["lasso_lars"]  # the fista model did not call it
    assert z.dtype == torch.float64 and float(z.abs().sum()) > 0
    # the same minimizer: objective gap ≤ 1e-9 relative (the exact codes are never worse)
    total, total_fista = float(energy.sum()), float(energy_fista.sum())
    assert abs(total - total_fista) <= 1e-9 * total_fista
    assert total <= total_fista * (1 + 1e-12)
    torch.testing.assert_close(z, z_fista, rtol=0, atol=1e-6)
    if params.get("nonnegative"):
        assert float(z.min()) == 0.0
    if name != "psd":  # the certificate with the model's own λ: α = λ is the same problem
        gap = duality_gap(x, exact.dictionary.detach(), z, LAM, nonnegative=bool(params.get("nonnegative")))
        assert float(gap.sum()) <= 1e-12 * total


def test_psd_lasso_cd_uses_the_prediction_as_warm_start(data, encode_calls):
    X, D = data
    x = torch.from_numpy(X[:60])
    cd = build("psd", {"prediction_weight": 0.5}, "lasso_cd", X, D)
    lars = build("psd", {"prediction_weight": 0.5}, "lasso_lars", X, D)
    lars.load_state_dict(cd.state_dict())
    z_cd, energy_cd = codes_and_energy(cd, x)
    z_lars, energy_lars = codes_and_energy(lars, x)
    assert encode_calls == ["lasso_cd", "lasso_lars"]
    assert float(energy_cd.sum()) == pytest.approx(float(energy_lars.sum()), rel=1e-10)
    torch.testing.assert_close(z_cd, z_lars, rtol=0, atol=1e-7)


def test_float32_model_gets_float32_codes_at_least_as_good_as_fista(data):
    X, _ = data
    x = torch.from_numpy(X[:100]).float()
    torch.manual_seed(0)
    model = create_model("sparse_coding", N_FEATURES, N_ATOMS, sparsity_weight=LAM)
    model.set_dictionary(dictionary_from_samples(X, N_ATOMS))
    z = model.encode(x)
    assert z.dtype == torch.float32 and not z.requires_grad
    D = model.dictionary.detach().double()
    z_fista = fista(x.double(), D, LAM, max_iter=20_000, tol=1e-15).codes

    def objective(c: torch.Tensor) -> float:
        return float((0.5 * (x.double() - c @ D.T).square().sum(1) + LAM * c.abs().sum(1)).sum())

    assert objective(z.double()) <= objective(z_fista) * (1 + 1e-6)


@pytest.mark.parametrize("name, params", [
    ("sparse_coding", {"reinit_unused_every": 5}),
    ("psd", {"encoder": "shrink"}),
])
def test_training_curves_are_the_same_with_either_solver(name, params, data):
    """Dictionary learning at z* (sparse coding) and PSD's targets: the losses of a fixed-seed float64
    run with sparse_encode equal FISTA's."""
    X, _ = data
    config = TrainConfig(learning_rate=1e-2, max_epochs=3, batch_size=30, dtype="float64", random_state=0, device="cpu")
    histories, dictionaries = {}, {}
    for inference in ("auto", "fista"):
        torch.manual_seed(0)
        model = create_model(name, N_FEATURES, N_ATOMS, sparsity_weight=LAM, inference=inference,
                             inference_max_iter=5000, **params).double()
        model.set_dictionary(dictionary_from_samples(X, N_ATOMS, generator=torch.Generator().manual_seed(1)))
        result = train(model, X, config)
        histories[inference] = [record["train_loss"] for record in result.history]
        dictionaries[inference] = model.dictionary.detach()
    assert len(histories["auto"]) == 3
    assert histories["auto"][-1] < histories["auto"][0]  # it learns
    np.testing.assert_allclose(histories["auto"], histories["fista"], rtol=1e-8)
    torch.testing.assert_close(dictionaries["auto"], dictionaries["fista"], rtol=0, atol=1e-6)


def test_lista_targets_from_sparse_encode_train_like_fista_targets(data):
    X, D = data
    config = TrainConfig(learning_rate=1e-3, max_epochs=2, batch_size=50, dtype="float64", random_state=0, device="cpu")
    histories = {}
    for inference in ("auto", "fista"):
        model = lista_from_dictionary(D, LAM, 2, inference=inference, inference_max_iter=5000)
        histories[inference] = [r["train_code_prediction"] for r in train(model, X, config).history]
    np.testing.assert_allclose(histories["auto"], histories["fista"], rtol=1e-7)


@pytest.mark.parametrize("name, params, solver", [
    ("sparse_coding", {"groups": {"kind": "disjoint", "n_components": 24, "group_size": 4}}, "fista"),
    ("sparse_coding", {"groups": {"kind": "grid", "height": 4, "width": 6, "window": 2},
                       "group_eps": 1e-3}, "smooth"),
    ("psd", {"groups": {"kind": "disjoint", "n_components": 24, "group_size": 4}}, "fista"),
    ("sparse_coding", {"inference": "fista"}, "fista"),
])
def test_group_sparse_and_forced_fista_models_keep_fista(name, params, solver, data, encode_calls):
    X, _ = data
    model = create_model(name, N_FEATURES, N_ATOMS, sparsity_weight=LAM, inference_max_iter=20, **params)
    assert model.inference.solver_for("cpu") == solver
    model.sparse_code(torch.from_numpy(X[:20]).float())
    model.train()
    model.loss(torch.from_numpy(X[:20]).float())
    assert encode_calls == []


def test_inhibition_models_and_gpu_tensors_keep_fista(data, encode_calls):
    X, _ = data
    model = create_model("lateral_inhibition", N_FEATURES, N_ATOMS, inhibition_value=0.05, inference_max_iter=50)
    model.sparse_code(torch.from_numpy(X[:20]).float())
    assert encode_calls == []
    auto = SparseInference(LAM)
    assert auto.solver_for("cpu") == "lasso_lars"
    assert auto.solver_for("cuda") == "fista" and auto.solver_for(torch.device("cuda", 0)) == "fista"
    assert SparseInference(LAM, solver="lasso_cd").solver_for("cuda") == "lasso_cd"  # asked for by name


@pytest.mark.parametrize("inference", ["auto", "fista"])
def test_nonfinite_inputs_are_the_same_data_error_on_both_paths(inference, data):
    model = create_model("sparse_coding", N_FEATURES, N_ATOMS, sparsity_weight=LAM, inference=inference)
    x = torch.from_numpy(data[0][:5]).float()
    x[2, 3] = float("nan")
    with pytest.raises(DataError, match=r"X contains NaN or inf \(first at row 2\)"):
        model.encode(x)
    with pytest.raises(DataError, match=r"X is empty \(shape \(0, 16\)\)"):
        model.encode(x[:0])


@pytest.mark.parametrize("name, params, message", [
    ("sparse_coding", {"inference": "bogus"}, "inference must be one of 'auto', 'fista', 'lasso_lars', 'lasso_cd'"),
    ("sparse_coding", {"inference": "omp"}, "inference must be one of"),
    ("psd", {"inference": None}, "inference must be one of"),
    ("lista", {"inference": "threshold"}, "inference must be one of"),
    ("sparse_coding", {"inference": "lasso_lars", "groups": {"kind": "disjoint", "n_components": 24, "group_size": 4}},
     "solves the Lasso"),
    ("psd", {"inference": "lasso_cd", "groups": {"kind": "grid", "height": 4, "width": 6, "window": 2}},
     "group penalty"),
])
def test_bad_inference_names_raise_config_error(name, params, message):
    with pytest.raises(ConfigError, match=message):
        create_model(name, N_FEATURES, N_ATOMS, **params)


def test_inference_solvers_constant():
    assert INFERENCE_SOLVERS == ("auto", "fista", "lasso_lars", "lasso_cd")


@pytest.mark.parametrize("name", ["sparse_coding", "psd", "lista"])
def test_models_saved_without_the_option_load_with_auto(name, data, tmp_path, encode_calls):
    X, D = data
    x = torch.from_numpy(X[:30]).float()
    model = create_model(name, N_FEATURES, N_ATOMS, inference="fista")
    if name == "lista":
        model.init_from_dictionary(D)
    else:
        model.set_dictionary(dictionary_from_samples(X, N_ATOMS))
    save_model(model, tmp_path / "m")
    assert load_model(tmp_path / "m").spec["params"]["inference"] == "fista"
    config_file = next(p for p in (tmp_path / "m").iterdir() if p.suffix == ".json")
    config = json.loads(config_file.read_text())
    assert config["params"].pop("inference") == "fista"  # as an older sparseae wrote it
    config_file.write_text(json.dumps(config))
    loaded = load_model(tmp_path / "m")
    assert loaded.spec["params"]["inference"] == "auto"
    assert loaded.inference.solver_for("cpu") == "lasso_lars"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    encode_calls.clear()
    codes, energy = codes_and_energy(loaded, x)
    assert encode_calls == ["lasso_lars"] and codes.dtype == torch.float32
    reference, energy_fista = codes_and_energy(model, x)  # float32 FISTA to its default tolerance
    assert float(energy.sum()) <= float(energy_fista.sum()) * (1 + 1e-6)
    assert float(energy.sum()) >= float(energy_fista.sum()) * (1 - 1e-4)
    torch.testing.assert_close(codes, reference, rtol=0, atol=5e-3)

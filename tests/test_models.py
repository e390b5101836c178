"""Contract tests generated from the model registry: every registered model, the moment it is
registered, is checked for shapes, a float64 gradient check, save/load and finite outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparseae.errors import CheckpointError, ConfigError, OutputExistsError
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.io import load_model, save_model
from sparseae.models import MODELS, create_model

N_FEATURES, N_COMPONENTS = 12, 7
#: Smaller instances of presets whose defaults are paper-sized (the contract does not depend on size).
SMALL = {"deep_autoencoder": {"hidden": [10, 8]}, "semantic_hashing": {"hidden": [10, 8]}, "topk_sae": {"k": 3},
         # image models on 3×4 images: pools over the 7 maps (3×3 kernels: a 2×2 kernel puts one ReLU
         # within 2e-4 of its kink here, which the stencil crosses), windows over the 2×21 sheet
         "conv_sae": {"image_shape": [3, 4], "kernel_size": 3,
                      "pools": {"kind": "grid", "height": 1, "width": 7, "window": [1, 2]}},
         "local_sae": {"image_shape": [3, 4], "kernel_size": 2,
                       "groups": {"kind": "grid", "height": 2, "width": 21, "window": 2}},
         # two conv_sae layers: 4 maps 2×2 → pools of 2 → (2, 2, 3); 7 maps 1×1 → 6 windows of 2 maps
         "conv_stack": {"image_shape": [3, 4], "layers": [
             {"n_components": 4, "kernel_size": 2, "pools": {"kind": "disjoint", "group_size": 2}},
             {"kernel_size": 1, "pools": {"kind": "grid", "height": 1, "width": 7, "window": [1, 2]}}]}}
#: Image models: n_components is the number of maps, the code is maps × positions.
IMAGE_MODELS = ("conv_sae", "local_sae", "conv_stack")
#: Models whose loss solves a sparse-coding problem (FISTA) at every evaluation: their gradient check
#: samples 16 coordinates per parameter (lateral_inhibition: 200 solver iterations × 8 stencil
#: evaluations per coordinate made it the suite's slowest test).
ITERATIVE_INFERENCE = {"sparse_coding", "psd", "lateral_inhibition"}


@pytest.fixture
def batch() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.1, 0.9, size=(6, N_FEATURES))


@pytest.mark.parametrize("name", MODELS.names())
def test_shapes_and_finite(name, batch):
    model = create_model(name, N_FEATURES, N_COMPONENTS, **SMALL.get(name, {}))
    x = torch.from_numpy(batch).float()
    z = model.encode(x)
    # the code width; for image models (n_components feature maps) it is maps × positions
    assert z.shape == (6, model.n_components)
    assert model.n_components == N_COMPONENTS or name in IMAGE_MODELS
    if getattr(model, "can_decode", True):  # a conv_stack's pooled features have no decoder
        assert model.decode(z).shape == (6, N_FEATURES)
    out = model.loss(x)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert "reconstruction" in out.terms
    assert out.loss.item() == pytest.approx(sum(v.item() for v in out.terms.values()), rel=1e-5)


@pytest.mark.parametrize("name", MODELS.names())
def test_gradient_check_float64(name, batch):
    model = create_model(name, N_FEATURES, N_COMPONENTS, **SMALL.get(name, {}))
    # Losses that run an iterative solver per evaluation are checked on a sample of coordinates
    # here (their own test files check them fully).
    n_parameters = sum(p.numel() for p in model.parameters())
    subset = 16 if name in ITERATIVE_INFERENCE or n_parameters > 20000 else None
    result = check_gradients(model, batch, max_checks_per_parameter=subset)
    expected = sum(p.numel() if subset is None else min(p.numel(), subset)
                   for name, p in model.named_parameters()
                   if name not in result.unused and name not in result.pseudo_gradient)
    assert result.n_checked + result.n_kinks == expected
    assert result.relative_error < UFLDL_TOLERANCE, result.per_parameter
    # the user's model is untouched: still float32 and on its device
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("name", MODELS.names())
def test_save_load_round_trip(name, batch, tmp_path):
    model = create_model(name, N_FEATURES, N_COMPONENTS, **SMALL.get(name, {}))
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    x = torch.from_numpy(batch).float()
    assert loaded.spec == model.spec
    model.eval(), loaded.eval()  # training-time noise (e.g. semantic hashing's) is off
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    with pytest.raises(OutputExistsError):
        save_model(model, tmp_path / "m")


def test_registry_rejects_unknown_names_and_params():
    with pytest.raises(ConfigError, match="unknown model 'nope'.*sparse_ae_kl"):
        create_model("nope", 4, 2)
    with pytest.raises(ConfigError, match="no parameter 'beta'"):
        create_model("sparse_ae_kl", 4, 2, beta=3)
    with pytest.raises(ValueError, match="registered twice"):
        MODELS.register("linear_ae")(lambda **kw: None)


@pytest.mark.parametrize("params, message", [
    (dict(sparsity_target=0.0), "rho"), (dict(sparsity_target=1.5), "rho"),
    (dict(sparsity_weight=-1.0), "sparsity_weight"), (dict(weight_decay=-1e-4), "weight_decay"),
    (dict(activation="relu"), "activation"), (dict(decoder="softplus"), "decoder"),
])
def test_invalid_hyperparameters(params, message):
    with pytest.raises(ConfigError, match=message):
        create_model("sparse_ae_kl", 4, 2, **params)


def test_invalid_sizes():
    with pytest.raises(ConfigError, match="n_components"):
        create_model("linear_ae", 4, 0)
    with pytest.raises(ConfigError, match="n_features"):
        create_model("linear_ae", 2.5, 2)


def test_tied_weights_share_one_matrix():
    model = create_model("linear_ae", 5, 3, tied=True)
    assert set(model.state_dict()) == {"encoder.weight", "encoder.bias", "decoder.bias"}
    assert model.decoder.weight.data_ptr() == model.encoder.weight.data_ptr()
    assert len(list(model.weight_matrices())) == 1


def test_l1_model_keeps_unit_norm_atoms():
    model = create_model("sparse_ae_l1", 10, 20)
    torch.testing.assert_close(model.decoder.weight.norm(dim=0), torch.ones(20))


def test_load_errors(tmp_path, batch):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"name": "something else"}')
    with pytest.raises(CheckpointError, match="not a sparseae model"):
        load_model(tmp_path / "other")
    model = create_model("sparse_ae_kl", N_FEATURES, N_COMPONENTS)
    save_model(model, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tmp_path / "m")
    # weights of another model under this model's config
    save_model(create_model("sparse_ae_kl", N_FEATURES, N_COMPONENTS + 1), tmp_path / "bigger")
    (tmp_path / "m" / "model.safetensors").write_bytes((tmp_path / "bigger" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="shape"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tmp_path / "m")


def test_overwrite_refuses_foreign_folder(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not a sparseae model"):
        save_model(create_model("linear_ae", 4, 2), tmp_path / "precious", overwrite=True)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_gradient_check_skips_parameters_the_loss_does_not_use(batch):
    """A classifier head is not in the unsupervised loss: it is reported unused, not failed."""
    model = create_model("mlp_classifier", N_FEATURES, N_COMPONENTS)
    result = check_gradients(model, batch)
    assert result.unused == ["head.weight", "head.bias"] and result.passed
    assert result.n_checked == sum(p.numel() for name, p in model.named_parameters() if not name.startswith("head"))

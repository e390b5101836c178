"""Convolutional and locally connected sparse autoencoders, L2 pooling over pools of maps, local
contrast normalization: gradients, equivalences with direct
computations, learning on tiny data, save/load, the estimators, the CLI and the errors."""
from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.nn import functional as F

from sparseae.cli import main
from sparseae.config import load_config
from sparseae.errors import ConfigError, DataError
from sparseae.estimators import BaseAutoencoderEstimator, ConvSparseAutoencoder, LocalSparseAutoencoder
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.groups import grid_groups, make_groups
from sparseae.io import load_model, save_model
from sparseae.models import ConvAutoencoder, LocalAutoencoder, create_model
from sparseae.nn.contrast import LocalContrastNorm, local_contrast_normalize
from sparseae.nn.local import local_linear, local_linear_transpose
from sparseae.nn.pooling import MapGroupSparsityPenalty, MapPooling, spatial_pool
from sparseae.train import TrainConfig, train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WINDOWS_OF_2 = {"kind": "grid", "height": 1, "width": 4, "window": [1, 2]}
RICA = dict(activation="identity", tied=True, unit_norm_encoder=True)  # local_sae as reconstruction ICA


def small_conv(**params):
    """conv_sae on 6×7 two-channel images: 4 maps, 3×3 kernels, stride 2, padding 1 → (4, 3, 4)."""
    defaults = dict(image_shape=[2, 6, 7], kernel_size=3, stride=2, padding=1, pools=WINDOWS_OF_2,
                    sparsity_weight=0.3)
    return create_model("conv_sae", 84, 4, **{**defaults, **params})


def small_local(**params):
    """local_sae on 6×6 images: 4 units per location (2×2), 3×3 kernels → a 8×8 sheet."""
    defaults = dict(image_shape=[6, 6], kernel_size=3, groups={"kind": "grid", "height": 8, "width": 8, "window": 3},
                    sparsity_weight=0.3)
    return create_model("local_sae", 36, 4, **{**defaults, **params})


@pytest.fixture
def batch64() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.0, 1.0, size=(5, 64))


# ----------------------------------------------------------------------------------- shapes
def test_conv_shapes_and_the_decoder_as_a_matrix():
    model = small_conv()
    assert isinstance(model, ConvAutoencoder)
    assert model.image_shape == (2, 6, 7) and model.code_shape == (4, 3, 4)
    assert model.n_components == 48 and model.n_features == 84 and model.pooled_shape == (4, 3, 4)
    x = torch.randn(5, 84)
    z = model.encode(x)
    assert z.shape == (5, 48) and model.maps(x).shape == (5, 4, 3, 4) and bool((z >= 0).all())
    assert model.decode(z).shape == (5, 84) and model.pooled_features(x).shape == (5, 4, 3, 4)
    # the strided transposed convolution is exactly the linear map decoder.weight (+ one bias per channel)
    bias = model.decoder.bias.repeat_interleave(42)
    torch.testing.assert_close(model.decoder(z), z @ model.decoder.weight.T + bias)
    torch.testing.assert_close(model.decoder.filters.norm(dim=1), torch.ones(4))
    # a square one-channel image is the default layout
    assert create_model("conv_sae", 64, 4, kernel_size=3).code_shape == (4, 6, 6)


def test_local_shapes_sheet_layout_and_the_decoder_as_a_matrix():
    model = small_local()
    assert isinstance(model, LocalAutoencoder)
    assert model.encoder.locations == (4, 4) and model.encoder.grid == (2, 2) and model.sheet_shape == (8, 8)
    x = torch.randn(3, 36)
    z = model.encode(x)
    maps = model.encoder.maps(x)
    assert z.shape == (3, 64) and maps.shape == (3, 4, 4, 4)
    sheet = model.sheet(x)
    # map a·c + b of location (h, w) sits at sheet row h·r + a, column w·c + b
    torch.testing.assert_close(sheet[:, 2 * 1 + 1, 2 * 3 + 0], maps[:, 1 * 2 + 0, 1, 3])
    torch.testing.assert_close(model.encoder.from_sheet(z), maps)
    torch.testing.assert_close(model.decoder(z), z @ model.decoder.weight.T + model.decoder.bias)
    assert model.pooled_features(x).shape == (3, 64)  # one toroidal 3×3 window per sheet position
    assert create_model("local_sae", 36, 6, kernel_size=3, groups=None).encoder.grid == (2, 3)


# ------------------------------------------------------------------------- equivalences
def test_locally_connected_with_tied_filters_is_a_convolution():
    torch.manual_seed(1)
    images = torch.randn(3, 2, 7, 8, dtype=torch.float64)
    filters = torch.randn(5, 2, 3, 3, dtype=torch.float64)
    out = F.conv2d(images, filters, stride=2, padding=1)
    n_locations = out.shape[2] * out.shape[3]
    tied = filters.flatten(1).expand(n_locations, -1, -1)
    local = local_linear(images, tied, 3, stride=2, padding=1)
    torch.testing.assert_close(local.view_as(out), out)
    code = torch.randn_like(out)
    transposed = F.conv_transpose2d(code, filters, stride=2, padding=1, output_padding=(0, 1))
    torch.testing.assert_close(local_linear_transpose(code.flatten(2), tied, (7, 8), 3, stride=2, padding=1),
                               transposed)


def test_l2_pooling_equals_a_naive_loop_and_the_flat_group_norms():
    structure = grid_groups(2, 3, window=2, toroidal=True, gaussian_sigma=0.7)  # 6 maps, weighted windows
    maps = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    pooled = MapPooling(structure, eps=1e-3)(maps)
    expected = torch.empty(2, structure.n_groups, 3, 4, dtype=torch.float64)
    for n in range(2):
        for g in range(structure.n_groups):
            members = structure.group_index == g
            w, units = structure.weights[members], structure.unit_index[members]
            for h in range(3):
                for col in range(4):
                    expected[n, g, h, col] = torch.sqrt((w * maps[n, units, h, col] ** 2).sum() + 1e-3)
    torch.testing.assert_close(pooled, expected)
    flat = structure.group_norms(maps.permute(0, 2, 3, 1).reshape(-1, 6), 1e-3)
    torch.testing.assert_close(pooled.permute(0, 2, 3, 1).reshape(-1, structure.n_groups), flat)


def test_rectangular_windows_give_1d_pools_over_the_maps():
    windows = make_groups({"kind": "grid", "height": 1, "width": 5, "window": [1, 3]})
    assert windows.n_groups == 5 and windows.members(0) == [0, 1, 2] and windows.members(4) == [0, 1, 4]
    assert make_groups({**windows.spec, "toroidal": False}).n_groups == 3
    assert grid_groups(4, 6, window=(2, 3)).members(0) == [0, 1, 2, 6, 7, 8]
    with pytest.raises(ConfigError, match="a 1×6 window does not fit a 1×5 grid"):
        make_groups({"kind": "grid", "height": 1, "width": 5, "window": [1, 6]})


def test_spatial_pooling_and_local_contrast_normalization():
    features = torch.arange(2 * 5 * 5, dtype=torch.float64).view(1, 2, 5, 5)
    assert spatial_pool(features, "max", 2).shape == (1, 2, 3, 3)  # windows overhanging the border count
    assert float(spatial_pool(features, "max", 2)[0, 0, 2, 2]) == 24.0
    assert float(spatial_pool(features, "avg", 2)[0, 0, 0, 0]) == pytest.approx((0 + 1 + 5 + 6) / 4)
    assert spatial_pool(features, "none") is features
    norm = LocalContrastNorm(sigma=1.5)
    flat = torch.full((2, 1, 9, 9), 3.0, dtype=torch.float64)
    torch.testing.assert_close(norm(flat), torch.zeros_like(flat))  # no contrast
    images = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    out = norm(images)
    np.testing.assert_allclose(norm(5 * images + 2), out, atol=1e-10)  # invariant to gain and offset
    offsets = torch.arange(-3, 4, dtype=torch.float64)  # radius ⌈2σ⌉ = 3 around an interior pixel
    window = torch.outer(torch.exp(-offsets ** 2 / 4.5), torch.exp(-offsets ** 2 / 4.5))
    direct = (window * images[0, 0, 3:10, 2:9]).sum() / window.sum()
    torch.testing.assert_close(norm._local_mean(images)[0, 0, 6, 5], direct)
    flat = local_contrast_normalize(images.view(4, -1).float().numpy(), (12, 12), sigma=1.5)
    assert flat.dtype == np.float32 and np.allclose(flat, out.view(4, -1).numpy(), atol=1e-5)


# ------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("build", [
    lambda: small_conv(weight_decay=0.01),
    lambda: small_conv(pools={"kind": "grid", "height": 2, "width": 2, "window": 2, "gaussian_sigma": 1.0},
                       likelihood="bernoulli", stride=1, padding=0),
    lambda: small_local(weight_decay=0.01),
    lambda: small_local(**RICA, group_eps=1e-2),
], ids=["conv-1d-windows", "conv-2d-windows-bernoulli", "local", "local-rica"])
def test_gradient_check_float64(build):
    model = build()
    X = np.random.default_rng(0).uniform(0.05, 0.95, size=(3, model.n_features))
    subset = 120  # coordinates per parameter (the local model has ~1,200)
    result = check_gradients(model, X, max_checks_per_parameter=subset)
    assert result.passed and result.relative_error < UFLDL_TOLERANCE, result.per_parameter
    assert result.n_checked >= 0.95 * sum(min(p.numel(), subset) for p in model.parameters())


def test_gradient_check_of_the_pooled_penalty_alone():
    # ε large enough that √(z² + ε) is smooth at the scale of the finite differences' step
    model = small_conv(group_eps=1e-2)
    penalty = model.penalties["group"]
    assert isinstance(penalty, MapGroupSparsityPenalty)
    X = np.random.default_rng(1).uniform(0.05, 0.95, size=(3, 84))

    def penalty_only(m, x):
        return m.penalties["group"](m.forward_pass(x))

    # a smaller step than the default 1e-4: at 1e-4 one coordinate's stencil straddles a ReLU kink
    # that the ε/4 estimate does not cross (measured: 1.6e-7 there, 1.2e-11 here, no kink)
    result = check_gradients(model, X, loss_fn=penalty_only, epsilon=1e-5)
    assert result.relative_error < UFLDL_TOLERANCE and "decoder.filters" in result.unused


# ------------------------------------------------------------------------------- learning
def test_learning_on_digits_lowers_the_loss_and_sparsifies_the_pooled_features(digits):
    X = digits[0][:600]
    torch.manual_seed(0)
    model = create_model("conv_sae", 64, 8, kernel_size=3, pools={"kind": "disjoint", "group_size": 2},
                         sparsity_weight=0.1)
    x = torch.from_numpy(X)

    def active_pools() -> float:
        with torch.no_grad():
            return float((model.pooled_features(x) > 1e-3).float().mean())

    with torch.no_grad():
        before, loss_before = active_pools(), float(model.loss(x).loss)
    history = train(model, X, TrainConfig(learning_rate=1e-2, batch_size=32, max_epochs=6, random_state=0)).history
    with torch.no_grad():
        after, out = active_pools(), model.eval().loss(x)
    # measured: loss 13.5 → 1.8, pools active 0.72 → 0.37, 55% of the variance explained
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"] and float(out.loss) < 0.2 * loss_before
    assert before > 0.7 and after < 0.6 * before, (before, after)
    variance = float(0.5 * (x - x.mean(0)).pow(2).sum(1).mean())
    assert float(out.terms["reconstruction"]) < 0.5 * variance


def test_local_model_learns_on_digits(digits):
    X = digits[0][:400]
    torch.manual_seed(0)
    model = create_model("local_sae", 64, 4, kernel_size=4, stride=2, sparsity_weight=0.1,
                         groups={"kind": "grid", "height": 6, "width": 6, "window": 2})
    history = train(model, X, TrainConfig(learning_rate=1e-2, batch_size=32, max_epochs=5, random_state=0)).history
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    torch.testing.assert_close(model.decoder.weight_.norm(dim=2), torch.ones(9, 4))


def load_benchmark(name: str):
    """A script of benchmarks/ as a module (its pieces are tested here, not its full run)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_local_rica_is_tied_linear_with_unit_norm_filters():
    """tied + identity + unit_norm_encoder: z = Wx + b with ‖W_u‖ = 1, x̂ = Wᵀz + c (the decoder has no
    weight of its own, no gain, no projection), loss ½‖x̂ − x‖² + λ Σ_j √(‖z‖²_{P_j} + ε)."""
    model = small_local(**RICA, group_eps=1e-2)
    names = {name for name, _ in model.named_parameters()}
    assert names == {"encoder.parametrizations.weight.original", "encoder.bias", "decoder.bias"}
    assert model.constraints == [] and model.decoder.tied
    with torch.no_grad():
        model.encoder.parametrizations.weight.original.mul_(3.0)
        model.encoder.bias.normal_()
    filters = model.encoder.weight
    torch.testing.assert_close(filters.norm(dim=-1), torch.ones(16, 4))
    x = torch.randn(5, 36)
    dense = model.decoder.weight  # (36, 64): each unit's filter at its location, in sheet order
    z = model.encode(x)
    torch.testing.assert_close(z, x @ dense + model.encoder.bias.view(4, 16).t().reshape(4, 4, 2, 2)
                               .permute(0, 2, 1, 3).reshape(1, 64))
    torch.testing.assert_close(model.decoder(z), z @ dense.t() + model.decoder.bias)
    torch.testing.assert_close(model.sheet_atoms(), model.decoder.filters.detach().reshape(4, 4, 2, 2, 9)
                               .permute(0, 2, 1, 3, 4).reshape(64, 9))
    out = model.loss(x)
    groups = model.groups.group_norms(z, 1e-2).sum(1).mean()
    expected = 0.5 * (model.decoder(z) - x).pow(2).sum(1).mean() + 0.3 * groups
    torch.testing.assert_close(out.loss, expected)
    with pytest.raises(ConfigError, match="activation"):
        small_local(activation="softplus")


def test_sheet_atoms_are_the_decoder_columns_in_sheet_order():
    model = small_local(unit_grid=[1, 4], groups={"kind": "grid", "height": 4, "width": 16, "window": 3})
    with torch.no_grad():
        model.decoder.weight_.normal_()
    atoms = model.sheet_atoms()  # (64, 9): 4×4 locations × 1×4 units per location
    assert atoms.shape == (64, 9)
    placed = model.decoder.weight.t()  # (64, 36): each unit's atom at its location, sheet order
    torch.testing.assert_close(placed.sum(1), atoms.sum(1))
    torch.testing.assert_close(placed.norm(dim=1), atoms.norm(dim=1))


def test_local_sae_on_whitened_images_grows_an_orientation_map():
    """bench_local_topographic.py in small: 16×16 whitened crops, 6×6 filters every 2 pixels, 4 units per
    location on a 12×12 sheet with 3×3 windows; neighbouring units' orientations differ less than the
    same filters permuted (measured: ratio 0.77 after 15 epochs, 0.80 with seed 1; 1.02 untrained)."""
    bench = load_benchmark("bench_local_topographic")
    X = bench.whitened_crops(3000, 16, keep=0.15, epsilon=0.1, seed=0)
    assert X.shape == (3000, 256) and abs(float(X.std()) - 1) < 1e-4
    torch.manual_seed(0)
    model = create_model("local_sae", 256, 4, image_shape=[16, 16], kernel_size=6, stride=2, sparsity_weight=1.0,
                         group_eps=1e-2, groups={"kind": "grid", "height": 12, "width": 12, "window": 3})
    untrained = bench.map_measures(bench.sheet_filters(model), 6, (12, 12), selective=0.3, n_permutations=20)
    train(model, X, TrainConfig(learning_rate=1e-2, batch_size=32, max_epochs=15, random_state=0))
    trained = bench.map_measures(bench.sheet_filters(model), 6, (12, 12), selective=0.3, n_permutations=20)
    assert untrained["all"]["ratio"] > 0.9
    assert trained["all"]["ratio"] < 0.9, trained["all"]
    assert trained["pinwheels"] < trained["pinwheels_permuted"]
    inner, shape = bench.interior(np.arange(288.0).reshape(144, 2), (12, 12), margin=2)  # the measured interior
    assert shape == (8, 8) and inner.shape == (64, 2) and inner[0, 0] == 2 * (2 * 12 + 2)


def test_local_benchmark_in_per_field_pca_coordinates():
    """bench_local_topographic.py --space pca: each 8×8 field of a crop in its whitened PCA coordinates,
    as a channel image with one pixel per field; a 1×1-kernel local_sae there has the fields' filters
    as its atoms, mapped back to pixels by the whitening's inverse."""
    import argparse

    bench = load_benchmark("bench_local_topographic")
    X, zca = bench.patch_coordinates(200, 16, kernel=8, stride=4, keep=12, epsilon=0.1, seed=0)
    assert X.shape == (200, 12 * 3 * 3) and X.dtype == np.float32
    coords = X.reshape(200, 12, 9).transpose(0, 2, 1).reshape(-1, 12).astype(np.float64)
    variance = coords.var(axis=0)
    assert np.all(variance < 1) and np.all(variance > 0.5)  # whitened (ε = 0.1 shrinks the weakest)
    raw = bench.natural_image_patches(200, 16, whitening="none", ufldl_normalize=False, random_state=0)
    raw = raw - raw.mean(axis=1, keepdims=True)
    field = (raw / raw.std()).reshape(200, 16, 16)[:, 4:12, 8:16].reshape(200, 64)  # location (1, 2)
    field = field - field.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(X.reshape(200, 12, 3, 3)[:, :, 1, 2], zca.transform(field), rtol=1e-4, atol=1e-4)
    args = argparse.Namespace(space="pca", size=16, kernel=8, stride=4, directions=12, maps=4, window=3,
                              model="rica", weight=0.5, group_eps=1e-2)
    model = bench.build(args)
    assert model.sheet_shape == (6, 6) and model.encoder.kernel_size == 1
    filters = bench.sheet_filters(model, zca.inverse_components_)
    assert filters.shape == (36, 64)
    np.testing.assert_allclose(filters[0], model.sheet_atoms()[0].double().numpy() @ zca.inverse_components_)


# ----------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("build", [small_conv, small_local, lambda: small_local(**RICA)],
                         ids=["conv", "local", "local-rica"])
def test_save_load_round_trip(build, tmp_path):
    model = build()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.spec == model.spec and type(loaded) is type(model)
    x = torch.randn(4, model.n_features)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    torch.testing.assert_close(loaded.pooled_features(x), model.pooled_features(x), rtol=0, atol=0)
    key = "pools" if isinstance(model, ConvAutoencoder) else "groups"  # over the maps, or the sheet's units
    assert json.loads((tmp_path / "m" / "config.json").read_text())["params"][key] == model.spec["params"][key]


# ------------------------------------------------------------------------------ estimators
def test_conv_estimator_fit_transform_save_load(digits, tmp_path):
    X = digits[0][:300]
    estimator = ConvSparseAutoencoder(n_components=8, kernel_size=3, pools={"kind": "disjoint", "group_size": 2},
                                      max_epochs=2, random_state=0)
    Z = estimator.fit(X).transform(X)
    assert Z.shape == (300, 8 * 6 * 6) and Z.dtype == np.float32 and (Z >= 0).all()
    assert estimator.inverse_transform(Z).shape == X.shape
    assert estimator.components_.shape == (8, 9)
    np.testing.assert_allclose(np.linalg.norm(estimator.components_, axis=1), 1.0, rtol=1e-5)
    pooled = estimator.transform_pooled(X)
    assert pooled.shape == (300, 4 * 6 * 6)
    assert len(estimator.get_feature_names_out()) == Z.shape[1]
    assert np.isfinite(estimator.score(X))
    np.testing.assert_array_equal(estimator.fit_transform(X), Z)  # seeded refit
    estimator.save(tmp_path / "est")
    loaded = BaseAutoencoderEstimator.load(tmp_path / "est")
    assert isinstance(loaded, ConvSparseAutoencoder)
    np.testing.assert_array_equal(loaded.transform(X), Z)
    np.testing.assert_array_equal(loaded.components_, estimator.components_)


def test_local_estimator(digits):
    X = digits[0][:200]
    estimator = LocalSparseAutoencoder(n_components=4, kernel_size=4, stride=2, max_epochs=2, random_state=0,
                                       groups={"kind": "grid", "height": 6, "width": 6, "window": 2})
    Z = estimator.fit(X).transform(X)
    assert Z.shape == (200, 36) and estimator.components_.shape == (36, 64)
    assert estimator.transform_pooled(X).shape == (200, 36)
    rica = LocalSparseAutoencoder(n_components=4, kernel_size=4, stride=2, max_epochs=1, random_state=0,
                                  groups={"kind": "grid", "height": 6, "width": 6, "window": 2}, **RICA).fit(X)
    np.testing.assert_allclose(np.linalg.norm(rica.components_.reshape(36, -1), axis=1), 1.0, rtol=1e-4)
    assert rica.model_.n_components == 36 and rica.get_params()["tied"] is True
    with pytest.raises(ConfigError, match="activation"):
        LocalSparseAutoencoder(kernel_size=4, activation="bogus").fit(X)


# -------------------------------------------------------------------------------------- CLI
def test_cli_trains_a_tiny_conv_config(tmp_path, capsys):
    config = {"model": {"name": "conv_sae", "n_components": 4, "image_shape": [8, 8], "kernel_size": 3,
                        "pools": {"kind": "grid", "height": 1, "width": 4, "window": [1, 2]},
                        "sparsity_weight": 0.1},
              "data": {"name": "digits"},
              "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 256, "max_epochs": 2,
                        "random_state": 0, "device": "cpu"},
              "output": {"dir": str(tmp_path / "run"), "plots": True}}
    path = tmp_path / "conv.yaml"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    status = main(["train", str(path), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["model"] == "conv_sae" and summary["epochs"] == 2
    assert 0 < summary["metrics"]["probe_accuracy"] <= 1
    loaded = load_model(tmp_path / "run" / "model")
    assert isinstance(loaded, ConvAutoencoder) and loaded.pooling.groups.n_groups == 4
    assert (tmp_path / "run" / "filters.png").exists()


def test_example_config_is_valid():
    config = load_config(EXAMPLES / "conv_sae_mnist.yaml")
    assert config.model_name == "conv_sae" and config.model_params["pools"]["window"] == [1, 3]
    model = create_model(config.model_name, 784, config.n_components, **config.model_params)
    assert model.code_shape == (16, 11, 11) and model.pooling.n_pools == 16


# ----------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name, params, message", [
    ("conv_sae", dict(image_shape=[7, 9]), "holds 63 values, but the data have n_features = 64"),
    ("conv_sae", dict(image_shape=None, kernel_size=3), None),  # 64 is square: fine
    ("conv_sae", dict(image_shape=[2, 2, 2, 8]), "image_shape must be"),
    ("conv_sae", dict(kernel_size=9), "9×9 kernel is larger than the 8×8 image"),
    ("conv_sae", dict(kernel_size=3, stride=0), "stride"),
    ("conv_sae", dict(kernel_size=3, pools={"kind": "disjoint", "group_size": 3}), "do not split"),
    ("conv_sae", dict(kernel_size=3, pools={"kind": "grid", "height": 2, "width": 2, "window": 2}),
     "cover 4 feature maps, but the model has 8"),
    ("conv_sae", dict(kernel_size=3, pools={"kind": "grid", "height": 1, "width": 8, "window": 3}), "does not fit"),
    ("local_sae", dict(kernel_size=3, unit_grid=[3, 3]), "holds 9 maps per location"),
    ("local_sae", dict(kernel_size=3, groups={"kind": "grid", "height": 4, "width": 4}), "the sheet has 12×24"),
    ("local_sae", dict(kernel_size=8), "default 3×3 windows do not fit"),
])
def test_bad_input_is_a_clear_config_error(name, params, message):
    if message is None:
        create_model(name, 64, 8, **params)
        return
    with pytest.raises(ConfigError, match=message):
        create_model(name, 64, 8, **params)


def test_default_pools_and_input_errors():
    with pytest.raises(ConfigError, match="do not split into the default pools of 4"):
        create_model("conv_sae", 64, 6, kernel_size=3)
    assert create_model("conv_sae", 64, 8, kernel_size=3).pooling.n_pools == 2
    with pytest.raises(ConfigError, match="give image_shape"):
        create_model("conv_sae", 60, 8, kernel_size=3)
    model = create_model("conv_sae", 64, 8, kernel_size=3)
    with pytest.raises(DataError, match="L2 pooling over 8 maps"):
        model.pooling(torch.zeros(2, 7, 3, 3))
    with pytest.raises(DataError):
        train(model, np.zeros((10, 63), dtype=np.float32), TrainConfig(max_epochs=1))
    with pytest.raises(ConfigError, match="sparsity_weight"):
        ConvSparseAutoencoder(n_components=8, kernel_size=3, sparsity_weight=-1.0).fit(np.zeros((4, 64)))


def test_module_names_resolve():
    """``sparseae.models.conv_stack`` is the module, not a function shadowing it."""
    module = importlib.import_module("sparseae.models.conv_stack")
    assert hasattr(module, "ConvStack") and hasattr(module, "FeatureStage")
    procedures = importlib.import_module("sparseae.train.procedures")
    assert callable(procedures.fit_conv_stack)

"""Numbers and pictures that do not mislead (issue 22): dead units judged per activation, metrics
shown only where they mean something and with a human label, convolutional filters drawn as one
kernel per map, one-epoch curves as a labelled point on an integer tick."""
from __future__ import annotations

import math

import matplotlib.image
import numpy as np
import pytest
import torch

from sparseae.cli.output import METRIC_LABELS, Output
from sparseae.data import Dataset, load_dataset
from sparseae.evaluate import metrics as metrics_module
from sparseae.evaluate.metrics import sparsity_stats
from sparseae.models import create_model
from sparseae.runs import metrics as evaluation
from sparseae.runs.metrics import compute_metrics
from sparseae.runs.plots import write_plots
from sparseae.viz import grid, plots

RESTING_LOGIT = math.log(0.01 / 0.99)  # σ(b) = 0.01, the demo's ρ


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the viz functions save, by file name."""
    seen = {}
    original = plots._save_figure

    def keep(figure, path):
        seen[str(path).rsplit("/", 1)[-1]] = figure
        return original(figure, path)

    monkeypatch.setattr(plots, "_save_figure", keep)
    return seen


def digits(n: int = 300) -> Dataset:
    data = load_dataset("digits")
    return Dataset(X=data.X[:n], y=data.y[:n], image_shape=data.image_shape, name="digits")


def kl_model_at_rest(n_constant: int) -> torch.nn.Module:
    """The demo's 64-25 sigmoid KL model with every unit resting near ρ = 0.01 (far below 0.5) and
    rising a little on some patches; the first ``n_constant`` units have no weights: constant σ(b)."""
    torch.manual_seed(0)
    model = create_model("sparse_ae_kl", n_features=64, n_components=25, sparsity_target=0.01,
                         sparsity_weight=3.0, weight_decay=1e-4)
    with torch.no_grad():
        model.encoder.weight.normal_(0.0, 0.4)
        model.encoder.weight[:n_constant] = 0.0
        # σ(b) = ρ at the mean patch (0.5 everywhere)
        model.encoder.bias.copy_(RESTING_LOGIT - 0.5 * model.encoder.weight.sum(dim=1))
    return model


def patches(n: int = 400) -> Dataset:
    X = np.random.default_rng(0).uniform(0.1, 0.9, size=(n, 64)).astype(np.float32)
    return Dataset(X=X, y=None, image_shape=(8, 8), name="patches")


def test_kl_units_resting_near_rho_are_alive_when_they_vary_and_dead_when_constant():
    data = patches()
    for n_constant in (0, 5):
        model = kl_model_at_rest(n_constant)
        with torch.no_grad():
            Z = model.encode(torch.as_tensor(data.X)).numpy()
        assert Z.max() < 0.5 and abs(Z.mean() - 0.01) < 0.01  # the demo's quick run: all far below 0.5
        metrics = compute_metrics(model, data, data)
        assert metrics["dead_units"] == n_constant
        assert metrics["dead_rule"].startswith("max − min over inputs ≤ 0.01")
        assert metrics["mean_l0"] == 0.0  # nothing above one half: "active" and "alive" differ
        span = Z.max(axis=0) - Z.min(axis=0)
        assert (span[n_constant:] > 0.01).all() and (span[:n_constant] < 1e-12).all()


def test_dead_rule_per_activation():
    # ReLU-like codes rest at 0: dead only when never nonzero, however weakly a unit fires
    Z = np.zeros((50, 3))
    Z[7, 1] = 1e-6
    Z[:, 2] = np.linspace(0, 5, 50)
    stats = sparsity_stats(Z)
    assert stats["dead_units"] == 1
    # linear codes: dead when the variance is ~0 next to the other units'
    Z = np.random.default_rng(0).normal(size=(200, 4)) * np.array([1.0, 0.5, 1e-5, 0.0]) + 3.0
    stats = sparsity_stats(Z, dead_rule="span")
    assert stats["dead_units"] == 2 and stats["dead_limit"] == pytest.approx(0.01 * np.ptp(Z[:, 0]))
    # tanh codes: 1% of the range (−1, 1)
    mask, limit = metrics_module.dead_unit_mask(np.ones(2), np.array([0.015, 0.03]), rule="span",
                                                activation_range=(-1.0, 1.0))
    assert limit == pytest.approx(0.02) and mask.tolist() == [True, False]


def test_activity_picture_states_the_rule_and_marks_the_constant_units(tmp_path, figures):
    data = patches()
    write_plots(kl_model_at_rest(5), [], data, tmp_path)
    axes = figures["activity.png"].axes[0]
    assert axes.get_title().startswith("5 dead of 25 units")
    assert "dead = max − min over inputs ≤ 0.01" in axes.get_title()
    assert "span" in axes.get_xlabel()
    relu = create_model("sparse_ae_l1", n_features=64, n_components=8)
    write_plots(relu, [], data, tmp_path)
    assert figures["activity.png"].axes[0].get_title().endswith("dead = never nonzero")


def test_metrics_shown_per_model_family(tmp_path, capsys):
    data = digits()
    # a classifier fine-tuned without its decoder (the CAE and stacked-DAE recipes)
    classifier = create_model("mlp_classifier", n_features=64, n_components=32, hidden=[], n_classes=10)
    assert classifier.reconstruction_weight == 0 and classifier.needs_targets
    metrics = compute_metrics(classifier, data, data)
    assert "classifier_error" in metrics and "dead_units" in metrics
    assert not {"reconstruction_error", "mean_squared_error", "explained_variance"} & set(metrics)
    paths = write_plots(classifier, [], data, tmp_path / "mlp")
    assert not (tmp_path / "mlp" / "reconstructions.png").exists() and paths
    # a linear code (the deep autoencoder's) has no ρ̂ and no "active units"
    deep = create_model("deep_autoencoder", n_features=64, n_components=2, hidden=[16])
    metrics = compute_metrics(deep, data, data)
    assert "reconstruction_error" in metrics and "dead_units" in metrics
    assert not [key for key in metrics if key.startswith("rho_hat") or key in ("mean_l0", "active_fraction")]
    assert "widest unit" in metrics["dead_rule"]
    # a sigmoid KL model keeps them
    kl = create_model("sparse_ae_kl", n_features=64, n_components=8)
    assert {"rho_hat_mean", "mean_l0", "sparsity_target", "explained_variance"} <= set(compute_metrics(kl, data, data))
    # DrSAE: every metric has a human label, none printed as its key
    drsae = create_model("drsae", n_features=64, n_components=16, n_steps=2)
    metrics = compute_metrics(drsae, data, data)
    assert {"units_n_part_units", "units_n_categorical_units", "units_median_angle"} <= set(metrics)
    assert set(metrics) <= set(METRIC_LABELS)
    capsys.readouterr()
    Output("human").metrics_table(metrics)
    printed = capsys.readouterr().out
    assert "units_" not in printed and "part-units (encoder–decoder angle < 0.5 rad)" in printed


def test_conv_filters_are_one_kernel_per_map(tmp_path, figures):
    data = digits(200)
    conv = create_model("conv_sae", n_features=64, n_components=8, image_shape=(8, 8), kernel_size=3)
    assert conv.n_components == 8 * 6 * 6  # 288 map-locations: the tiles drawn before
    (title, kernels), = evaluation.kernel_layers(conv)
    assert kernels.shape == (8, 1, 3, 3) and title == "8 maps, 3×3 kernels"
    assert grid.kernel_grid(kernels).shape == (3 * 4 + 1, 3 * 4 + 1)  # 3 rows × 3 columns of 3×3 tiles
    write_plots(conv, [], data, tmp_path / "conv")
    figure = figures["filters.png"]
    assert len(figure.axes) == 1
    drawn = figure.axes[0].images[0].get_array()
    np.testing.assert_array_equal(drawn, grid.kernel_grid(kernels))

    stack = create_model("conv_stack", n_features=64, n_components=8, image_shape=(8, 8), layers=[
        {"n_components": 4, "kernel_size": 3, "pools": {"kind": "disjoint", "group_size": 2},
         "spatial_pool": "max", "pool_size": 2},
        {"n_components": 8, "kernel_size": 2}])
    layers = evaluation.kernel_layers(stack)
    assert [k.shape for _, k in layers] == [(4, 1, 3, 3), (8, 2, 2, 2)]  # layer 2 reads 2 pooled maps
    assert layers[1][0] == "layer 2: 8 maps, 2×2 kernels over layer 1's 2 pooled maps (a row per map)"
    write_plots(stack, [], data, tmp_path / "stack")
    figure = figures["filters.png"]
    assert len(figure.axes) == 2  # one panel per layer
    second = figure.axes[1].images[0].get_array()
    # 8 strips of 2 kernels in a 4 × 2 grid: rows of (2 + 1 + 1) + 2 pixels
    assert second.shape == grid.kernel_grid(layers[1][1]).shape == (4 * (2 + 2 + 2) + 2, 2 * (2 * 3 + 1 + 2) + 2)


def test_local_sae_filters_are_each_units_kernel_on_its_sheet(tmp_path, figures):
    data = digits(100)
    model = create_model("local_sae", n_features=64, n_components=4, image_shape=(8, 8), kernel_size=3,
                         stride=2, groups={"kind": "grid", "height": 6, "width": 6, "window": 2})
    assert model.sheet_shape == (6, 6)
    write_plots(model, [], data, tmp_path)
    drawn = figures["filters.png"].axes[0].images[0].get_array()
    assert drawn.shape == (6 * 4 + 1, 6 * 4 + 1)  # 36 tiles of 3×3 on the 6×6 sheet, not 36 of 8×8


def test_one_epoch_curves_are_a_labelled_point_on_an_integer_tick(tmp_path, figures):
    plots.save_curves([{"epoch": 1, "train_loss": 0.4705, "train_kl": 0.0123}], tmp_path / "one.png")
    figure = figures["one.png"]
    for axes in figure.axes:
        (line,) = axes.get_lines()
        assert line.get_marker() == "o" and len(line.get_xdata()) == 1
        assert [text.get_text() for text in axes.texts] == [f"{line.get_ydata()[0]:.4g}"]
    assert list(figure.axes[-1].get_xticks()) == [1.0]
    plots.save_curves([{"epoch": k, "train_loss": 1.0 / k} for k in (1, 2, 3)], tmp_path / "three.png")
    ticks = figures["three.png"].axes[-1].get_xticks()
    assert all(float(t).is_integer() for t in ticks) and not figures["three.png"].axes[0].texts
    assert matplotlib.image.imread(tmp_path / "one.png").ndim == 3

"""Recipes with an evaluation after training (issue 23): ``evaluate: {name, <params>}`` names a function
registered in :mod:`sparseae.runs.evaluations`; its metrics join summary.json. The schema is strict, the
shipped evaluations compute what the benchmark scripts printed, and the self-taught recipe's probe is
the one ``sparseae probe --compare-raw`` runs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sparseae.cli import main
from sparseae.errors import ConfigError
from sparseae.evaluate.manifold import code_statistics, contraction_stats, tangents_by_class
from sparseae.evaluate.probe import linear_probe, split_probe
from sparseae.evaluate.tree import branch_similarity, tree_filter_ratios
from sparseae.models import create_model
from sparseae.recipes import get_recipe, load_recipe, recipe_files
from sparseae.runs import evaluations
from sparseae.runs.evaluations import EVALUATIONS, check_evaluation, register_evaluation, run_evaluation


def _write(tmp_path: Path, name: str, change: dict) -> Path:
    raw = yaml.safe_load(Path(recipe_files()[name]).read_text(encoding="utf-8"))
    raw.update(change)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("name, change, words", [
    ("selftaught_mnist", {"evaluate": {"name": "nope"}}, ["evaluate", "unknown evaluation", "nope", "probe"]),
    ("selftaught_mnist", {"evaluate": {"name": "probe", "data": {"classes": [0, 1]}, "folds": 3}},
     ["evaluate", "probe", "folds", "test_fraction"]),
    ("selftaught_mnist", {"evaluate": {"name": "probe"}}, ["evaluate", "probe", "needs", "data"]),
    ("selftaught_mnist", {"evaluate": "probe"}, ["evaluate", "mapping"]),
    ("selftaught_mnist", {"metric": {"name": "probe_accuracy", "label": "x"}},
     ["metric.name", "probe_accuracy", "transfer_accuracy"]),
    ("lateral_inhibition_tree", {"quick": {"train.max_epochs": 1, "evaluate.draws": 5}},
     ["quick variant", "draws", "n_permutations"]),
    ("cae_mnist", {"quick": {"train.max_epochs": 1, "evaluate.n_eval": 5}}, ["evaluate.n_eval", "no evaluate"]),
])
def test_a_bad_evaluate_entry_is_a_config_error_naming_the_problem(tmp_path, name, change, words):
    with pytest.raises(ConfigError) as caught:
        load_recipe(_write(tmp_path, name, change))
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_evaluation_assignments_change_params_read_as_yaml():
    recipe = get_recipe("lista_depth_mnist")
    changed = recipe.evaluation(quick=True, assignments=["depths=[1, 3]", "lr = 0.5", "untied=false"])
    assert changed["depths"] == [1, 3] and changed["lr"] == 0.5 and changed["untied"] is False
    assert changed["n_train"] == recipe.evaluation(quick=True)["n_train"] != recipe.evaluation()["n_train"]
    assert recipe.evaluation()["depths"] == [1, 2, 3, 5, 7, 10]  # the recipe itself is unchanged
    for bad in ("depths", "=3", "name=probe"):
        with pytest.raises(ConfigError, match="param=value"):
            recipe.evaluation(assignments=[bad])


def test_quick_evaluate_keys_change_the_evaluation_not_the_run_config():
    recipe = get_recipe("lateral_inhibition_tree")
    assert recipe.evaluation() == {"name": "tree_branches", "n_permutations": 1000}
    assert recipe.evaluation(quick=True) == {"name": "tree_branches", "n_permutations": 50}
    assert "evaluate" not in recipe.run_config(quick=True).to_dict()
    assert get_recipe("cae_mnist").evaluation(quick=True) is None
    for name in ("selftaught_mnist", "lateral_inhibition_tree", "cae_tangents_mnist"):
        recipe = get_recipe(name)
        evaluation, _ = check_evaluation(recipe.evaluation(), name)
        assert recipe.metric["name"] in evaluation.metrics


def test_a_registered_evaluation_runs_on_a_finished_run_and_joins_summary_json(tmp_path):
    @register_evaluation("_test_norm", metrics=("weight_norm", "scaled"))
    def _norm(run, *, scale: float = 1.0):
        weight = run.model.encoder.weight.detach().double()
        return {"weight_norm": float(weight.norm()), "scaled": scale * float(weight.norm())}

    try:
        run_dir = tmp_path / "run"
        assert main(["train", "--model", "autoencoder", "--data", "digits", "--set", "model.n_components=8",
                     "--set", "train.max_epochs=1", "--set", "output.plots=false", "--out", str(run_dir)]) == 0
        metrics = run_evaluation({"name": "_test_norm", "scale": 2.0}, run_dir)
        from sparseae.io import load_model

        expected = float(load_model(run_dir / "model").encoder.weight.detach().double().norm())
        assert metrics == {"weight_norm": pytest.approx(expected), "scaled": pytest.approx(2 * expected)}
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        assert summary["metrics"]["scaled"] == pytest.approx(2 * expected)
        assert "explained_variance" in summary["metrics"]  # merged, not replaced
        with pytest.raises(ValueError, match="twice"):
            register_evaluation("_test_norm", metrics=())(_norm)
        EVALUATIONS["_test_norm"] = evaluations.Evaluation("_test_norm", lambda run: {"weight_norm": 1.0},
                                                           ("weight_norm", "scaled"))
        with pytest.raises(RuntimeError, match="scaled"):  # a declared metric is never silently absent
            run_evaluation({"name": "_test_norm"}, run_dir)
    finally:
        EVALUATIONS.pop("_test_norm", None)


def test_split_probe_is_the_linear_probe_on_a_seeded_half_split():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    X = rng.normal(size=(120, 5)) + y[:, None]
    Z = X[:, :2] * 3.0
    result = split_probe(Z, y, X_raw=X, test_fraction=0.25, C=0.5, random_state=4)
    test = np.sort(np.random.default_rng(4).permutation(120)[:30])
    train = np.setdiff1d(np.arange(120), test)
    assert (result["n_train"], result["n_test"]) == (90, 30)
    assert result["accuracy"] == linear_probe(Z[train], y[train], Z[test], y[test], C=0.5, random_state=4)["accuracy"]
    assert result["raw_accuracy"] == linear_probe(X[train], y[train], X[test], y[test], C=0.5,
                                                  random_state=4)["accuracy"]
    assert result["raw_accuracy"] > 0.8  # the classes are separable: the probe learned something
    assert split_probe(Z, y)["raw_accuracy"] is None
    with pytest.raises(ConfigError, match="test_fraction"):
        split_probe(Z, y, test_fraction=1.0)


def test_tree_filter_ratios_find_branches_of_alike_filters():
    parent = [-1, 0, 0, 1, 1, 2, 2]  # depth 2, branching 2: branches {1, 3, 4} and {2, 5, 6}
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)
    b -= a * (a @ b) / (a @ a)  # the two branches' filters are orthogonal
    filters = np.stack([rng.normal(size=16), a, b, a, a, b, b]) + 0.01 * rng.normal(size=(7, 16))
    ratios = tree_filter_ratios(filters, parent, levels=(1,), n_permutations=200)
    assert set(ratios) == {"level1", "relatives"}
    assert ratios["level1"] == branch_similarity(filters, parent, level=1, n_permutations=200)
    assert ratios["level1"]["within"] > 0.99 and ratios["level1"]["across"] < 0.05
    assert ratios["level1"]["ratio"] > 20
    assert ratios["level1"]["p_value"] < 0.2  # 2 of the 20 splits of 6 units into two branches match


def test_code_statistics_and_tangents_match_direct_computations():
    torch.manual_seed(0)
    model = create_model("contractive_ae", 12, 5, contraction_weight=1.0).double().eval()
    X = np.random.default_rng(1).random((30, 12)).astype(np.float32).astype(np.float64)  # as read: float32
    y = np.arange(30) % 3
    stats = code_statistics(model, X)
    x = torch.from_numpy(X)
    with torch.no_grad():
        expected_mse = float((model(x) - x).pow(2).mean())
    assert stats["mse"] == pytest.approx(expected_mse, rel=1e-10)
    assert stats["jacobian_norm"] == pytest.approx(contraction_stats(model, X)["jacobian_norm"], rel=1e-10)
    inputs, directions, singular_values = tangents_by_class(model, X, y, k=3)
    np.testing.assert_array_equal(inputs, X[:3])  # the first input of each class
    assert directions.shape == (3, 3, 12) and singular_values.shape == (3, 3)
    for i in range(3):
        jacobian = torch.autograd.functional.jacobian(model.encode, x[i:i + 1])[0, :, 0, :]  # (5, 12)
        expected = torch.linalg.svdvals(jacobian)[:3]
        torch.testing.assert_close(singular_values[i], expected, rtol=1e-8, atol=1e-10)
        assert abs(float(directions[i, 0] @ torch.linalg.svd(jacobian).Vh[0])) == pytest.approx(1.0, abs=1e-8)


def test_the_self_taught_recipe_probes_digits_0_to_4_as_sparseae_probe_does(synthetic_mnist, capsys):
    assert main(["train", "--recipe", "selftaught_mnist", "--quick", "--out", "run", "--set", "train.threads=1"]) == 0
    summary = json.loads((synthetic_mnist / "run" / "summary.json").read_text(encoding="utf-8"))
    metrics = summary["metrics"]
    assert summary["n_train"] == 150  # digits 5-9 of the 300 synthetic images (30 each)
    assert (metrics["transfer_n_train"], metrics["transfer_n_test"]) == (75, 75)  # digits 0-4, halved
    assert summary["recipe"]["ours"] == metrics["transfer_accuracy"]
    capsys.readouterr()
    assert main(["probe", "run", "--set", "data.classes=[0,1,2,3,4]", "--compare-raw", "--json"]) == 0
    probe = json.loads(capsys.readouterr().out)
    assert probe["accuracy"] == metrics["transfer_accuracy"]
    assert probe["raw_accuracy"] == metrics["transfer_raw_accuracy"]
    assert probe["n_test"] == 75
    assert main(["report", "run"]) == 0  # the evaluation's metrics are the run's: the report shows them
    page = (synthetic_mnist / "run" / "report.html").read_text(encoding="utf-8")
    assert "transfer_raw_accuracy" in page and "recipe_published" in page


def test_the_cae_tangents_recipe_draws_the_tangents(synthetic_mnist):
    assert main(["train", "--recipe", "cae_tangents_mnist", "--quick", "--out", "run", "--set", "train.threads=1"]) == 0
    metrics = json.loads((synthetic_mnist / "run" / "summary.json").read_text(encoding="utf-8"))["metrics"]
    assert (synthetic_mnist / "run" / "cae_tangents.png").stat().st_size > 1000
    assert metrics["tangent_jacobian_norm"] > 0 and 0 <= metrics["tangent_saturated"] <= 1
    assert metrics["tangent_test_mse"] > 0 and metrics["tangent_top_singular_value"] > 0


def test_topographic_map_tells_a_smooth_map_from_a_shuffled_one():
    from sparseae.evaluate.filters import (
        orientation_singularities,
        preferred_orientation,
        topographic_map,
        topographic_smoothness,
    )

    side, size = 8, 8
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    angles = np.pi * (np.arange(side * side) % side) / side  # orientation turns once around the torus' columns
    W = np.stack([np.cos(1.5 * (np.cos(a) * xx + np.sin(a) * yy)).ravel() for a in angles])
    smooth = topographic_map(W, (size, size), side, side, n_permutations=50)
    theta = preferred_orientation(W, (size, size))
    assert smooth["ratio"] == topographic_smoothness(theta, side, side, n_permutations=50)["ratio"]
    assert smooth["ratio"] < 0.5 and smooth["selective_units"] == side * side
    assert smooth["pinwheels"] == np.count_nonzero(orientation_singularities(theta, side, side))
    shuffled = topographic_map(W[np.random.default_rng(0).permutation(side * side)], (size, size), side, side,
                               n_permutations=50)
    assert shuffled["ratio"] > 0.8 and shuffled["pinwheels"] > smooth["pinwheels"]


def test_whitened_patches_are_white_in_their_kept_directions():
    from sparseae.data.datasets import load_dataset, pca_whitened_patches

    data = load_dataset("whitened_patches", n_patches=2000, n_directions=10, epsilon=0.0)
    assert data.X.shape == (2000, 10) and data.image_shape is None
    np.testing.assert_allclose(np.cov(data.X, rowvar=False, bias=True), np.eye(10), atol=1e-6)
    X, whitening = pca_whitened_patches(2000, n_directions=10, epsilon=0.0)
    np.testing.assert_array_equal(X, data.X)
    assert whitening.inverse_components_.shape == (10, 64)
    with pytest.raises(ConfigError, match="n_directions"):
        pca_whitened_patches(10, 4, n_directions=17)


def test_the_tree_pruning_recipe_prunes_and_saves_the_smaller_model(synthetic_mnist):
    from sparseae.data.datasets import load_dataset
    from sparseae.io import load_model

    assert main(["train", "--recipe", "tree_pruning_patches", "--quick", "--out", "run", "--set",
                 "train.threads=1"]) == 0
    metrics = json.loads((synthetic_mnist / "run" / "summary.json").read_text(encoding="utf-8"))["metrics"]
    assert metrics["pruning_units_before"] == 85 and 1 <= metrics["pruning_units_after"] <= 85
    pruned = load_model(synthetic_mnist / "run" / "pruned_model")
    assert pruned.n_components == metrics["pruning_units_after"]
    model = load_model(synthetic_mnist / "run" / "model").eval()
    x = torch.as_tensor(load_dataset("whitened_patches", n_patches=400, n_directions=16).X, dtype=torch.float32)
    with torch.no_grad():
        error = float((model.decode(model.sparse_code(x)) - x).pow(2).sum(dim=1).mean())
    assert metrics["pruning_error_before"] == pytest.approx(error, rel=1e-3)


def test_set_evaluate_changes_the_recipe_evaluation_and_is_checked_before_training(synthetic_mnist, capsys):
    """``sparseae train --recipe NAME --set evaluate.PARAM=VALUE``: a rerun with a seed of one's own."""
    assert main(["train", "--recipe", "lista_depth_mnist", "--quick", "--out", "run", "--set", "train.threads=1",
                 "--set", "evaluate.seed=3", "--set", "evaluate.depths=[1]"]) == 0
    summary = json.loads((synthetic_mnist / "run" / "summary.json").read_text(encoding="utf-8"))
    assert summary["recipe"]["evaluate"]["seed"] == 3 and summary["recipe"]["evaluate"]["depths"] == [1]
    assert summary["recipe"]["evaluate"]["n_train"] == 100  # the quick variant's, kept
    assert "lista_error_T1" in summary["metrics"] and "lista_error_T2" not in summary["metrics"]
    assert "evaluate" not in yaml.safe_load((synthetic_mnist / "run" / "config.yaml").read_text(encoding="utf-8"))
    capsys.readouterr()
    for recipe, change, words in (("lista_depth_mnist", "evaluate.bogus=1", ("bogus", "lista_depth")),
                                  ("cae_mnist", "evaluate.seed=1", ("cae_mnist", "no evaluation"))):
        assert main(["train", "--recipe", recipe, "--quick", "--out", "bad", "--set", change]) == 2
        message = capsys.readouterr().err.strip()
        assert "\n" not in message and all(word in message for word in words), message
        assert not (synthetic_mnist / "bad").exists()  # refused before any training

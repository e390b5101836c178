"""Paper recipes as data (issue 23): every shipped recipe loads and validates, ``sparseae recipes``
lists them all, and every quick variant runs through ``sparseae train --recipe NAME --quick`` (on the
small synthetic MNIST of ``test_docs.py`` where the recipe reads MNIST), with ours printed beside the
published figure and recorded in summary.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sklearn.linear_model  # noqa: F401  one-time imports (the probes; L-BFGS's torch._dynamo), ~5 s each on
import torch._dynamo  # noqa: F401  busy cores: paid here, not timed as whichever quick variant runs first

from sparseae.cli import main
from sparseae.errors import ConfigError
from sparseae.recipes import get_recipe, load_recipe, recipe_files

from cli_checks import assert_one_line_error, run_cli

NAMES = list(recipe_files())
#: The quick variants' ceiling on 2 busy cores (shared with other test runs): each, and all together.


def test_there_is_a_recipe_per_reproduction_family():
    expected = {"ufldl_sparse_ae", "ufldl_stacked_mnist", "cae_mnist", "dae_g_mnist", "dae_b_mnist", "ae_mnist",
                "ae_wd_mnist", "sda_mnist", "drsae_200_2", "drsae_200_11", "drsae_400_11", "deep_autoencoder_mnist",
                "conv_stack_mnist", "lateral_inhibition_tree", "selftaught_mnist", "cae_tangents_mnist",
                "dae_score_field_spiral", "topographic_rica", "tree_pruning_patches",
                "local_topographic_crops"}
    expected |= {"lista_depth_mnist", "hashing_ba_16_mnist", "hashing_ba_32_mnist", "hashing_ba_64_mnist",
                 "topographic_sparse_coding", "topographic_psd"}
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_recipe_loads_and_both_variants_validate(name):
    recipe = get_recipe(name)
    assert recipe.name == name and recipe.seconds_2_cores > recipe.quick_seconds_2_cores > 0
    full, quick = recipe.run_config(), recipe.run_config(quick=True)
    assert full.output_dir == Path("runs/recipes") / name and quick.output_dir == Path("runs/recipes") / f"{name}_quick"
    for key, value in recipe.quick.items():  # the quick changes are in the quick config, not in the full one
        section, *path = key.split(".")
        if section == "evaluate":  # a change of the recipe's evaluation, not of its run config
            assert recipe.evaluation(quick=True)[path[0]] == value != recipe.evaluation().get(path[0]), (name, key)
            continue
        found = quick.to_dict()[section]
        for part in path:
            found = found[part]
        assert found == value, (name, key)
    assert full.to_dict() != quick.to_dict()
    if recipe.published is not None and recipe.metric.get("percent"):
        assert 0 < recipe.published < 1, "percent metrics are stored as fractions"


def test_a_recipe_reuses_its_example_and_replaces_only_the_keys_it_names():
    cae, dae = get_recipe("cae_mnist").run_config(), get_recipe("dae_g_mnist").run_config()
    assert cae.pretrain["layer_params"] == {"contraction_weight": 0.5}
    assert dae.pretrain["layer_model"] == "denoising_ae"
    assert dae.pretrain["layer_params"] == {"corruption": "gaussian:0.5"}  # not merged with the CAE's λ
    assert dae.train == cae.train and dae.model == cae.model
    drsae = get_recipe("drsae_200_2").run_config()
    assert (drsae.n_components, drsae.model["n_steps"], drsae.train["learning_rate"]) == (200, 2, 5e-2)
    # the three-seed settings of session 17: 200 pre-training epochs, the paper's loss without weight decay
    assert (drsae.pretrain["max_epochs"], drsae.model["weight_decay"]) == (200, 0.0)
    assert drsae.data["normalize"] == "l2"  # from examples/drsae_mnist.yaml


@pytest.mark.parametrize("change, words", [
    ({"colour": "red"}, ["unknown key", "colour"]),
    ({"metric": {"name": "classifier_error", "label": "x", "scale": 2}}, ["metric", "unknown key", "scale"]),
    ({"paper": {"authors": "A", "year": "2011", "title": "T"}}, ["paper.year"]),
    ({"published": "1.14%"}, ["published", "number"]),
    ({"quick": {}}, ["quick"]),
    ({"quick": {"max_epochs": 1}}, ["quick", "max_epochs"]),
    ({"config": {"train": {"epochs": 3}}}, ["train.epochs"]),
    ({"example": "nope.yaml"}, ["example", "nope.yaml"]),
    ({"name": "other"}, ["name", "other"]),
])
def test_a_bad_recipe_file_is_a_config_error_naming_the_problem(tmp_path, change, words):
    import yaml

    raw = yaml.safe_load((Path(recipe_files()["cae_mnist"])).read_text(encoding="utf-8"))
    raw.update(change)
    path = tmp_path / "cae_mnist.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_recipe(path)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)
    raw = yaml.safe_load((Path(recipe_files()["cae_mnist"])).read_text(encoding="utf-8"))
    del raw["reference"]
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match="missing key"):
        load_recipe(path)


def test_sparseae_recipes_lists_every_recipe(capsys):
    capsys.readouterr()
    status = main(["recipes"])
    listing = capsys.readouterr().out
    assert status == 0
    rows = {line.split()[0]: line for line in listing.splitlines()[2:]}
    assert sorted(rows) == sorted(NAMES)
    assert "Rifai et al. 2011" in rows["cae_mnist"] and "1.14%" in rows["cae_mnist"]
    assert "Rolfe & LeCun 2013" in rows["drsae_400_11"] and "1.08%" in rows["drsae_400_11"]
    assert main(["recipes", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [entry["name"] for entry in payload["recipes"]] == NAMES
    assert main(["recipes", "cae_mnist"]) == 0
    shown = capsys.readouterr().out
    assert "Contractive auto-encoders" in shown and "1.14%" in shown and "pretrain.max_epochs=1" in shown


def test_an_unknown_recipe_is_one_line_and_exit_2(capsys, tmp_path):
    assert_one_line_error(*run_cli(capsys, "recipes", "no_such_recipe"), "unknown recipe", "no_such_recipe")
    assert_one_line_error(*run_cli(capsys, "train", "--recipe", "no_such_recipe", "--out", tmp_path / "r"),
                          "unknown recipe", "cae_mnist")
    assert_one_line_error(*run_cli(capsys, "train", "--quick", "--out", tmp_path / "r"), "--quick", "--recipe")
    assert_one_line_error(*run_cli(capsys, "train", "--recipe", "cae_mnist", "--model", "autoencoder"),
                          "--recipe", "--model")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", NAMES)
def test_the_quick_variant_runs_and_reports_ours_beside_the_published_figure(name, synthetic_mnist, capsys):
    recipe = get_recipe(name)
    status = main(["train", "--recipe", name, "--quick", "--out", "run", "--set", "train.threads=1"])
    captured = capsys.readouterr()
    assert status == 0, captured.err[-2000:]
    summary = json.loads((synthetic_mnist / "run" / "summary.json").read_text(encoding="utf-8"))
    ours = summary["metrics"][recipe.metric["name"]]
    assert isinstance(ours, float)
    assert summary["recipe"] == {**summary["recipe"], "name": name, "quick": True, "ours": ours,
                                 "published": recipe.published, "metric": recipe.metric["name"]}
    assert summary["metrics"].get("recipe_published") == recipe.published
    if recipe.evaluate is not None:  # every metric of the recipe's evaluation joined summary.json
        from sparseae.runs.evaluations import EVALUATIONS

        assert set(EVALUATIONS[recipe.evaluate["name"]].metrics) <= set(summary["metrics"])
    line = next(line for line in captured.out.splitlines() if line.startswith(f"Recipe {name}"))
    assert recipe.format_value(ours) in line and f"published {recipe.format_value(recipe.published)}" in line


def test_the_html_report_shows_the_published_figure(synthetic_mnist, capsys):
    assert main(["train", "--recipe", "ufldl_stacked_mnist", "--quick", "--out", "run"]) == 0
    assert main(["report", "run"]) == 0
    page = (synthetic_mnist / "run" / "report.html").read_text(encoding="utf-8")
    assert "recipe_published" in page and "UFLDL exercise: 97.6%" in page

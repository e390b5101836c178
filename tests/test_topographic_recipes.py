"""The topographic recipes of group-sparse coding and PSD (issue 23): their ``topographic_map``
evaluation measures the decoder's atoms, as ``benchmarks/bench_topographic.py`` does."""
from __future__ import annotations

import pytest
import torch

from sparseae.config import RunConfig
from sparseae.data.datasets import pca_whitened_patches
from sparseae.evaluate.filters import topographic_map
from sparseae.models import create_model
from sparseae.recipes import get_recipe
from sparseae.runs.evaluations import EVALUATIONS, FinishedRun

GRID = {"kind": "grid", "height": 4, "width": 4, "window": 3}
DATA = {"name": "whitened_patches", "n_patches": 300, "patch_size": 8, "n_directions": 16, "epsilon": 0.1,
        "random_state": 0}


def _run(tmp_path, model):
    params = {"sparsity_weight": 1.0, "groups": GRID, "group_eps": 0.01, "inference_max_iter": 5}
    config = RunConfig.from_dict({"model": {"name": model, "n_components": 16, **params}, "data": DATA}).validate()
    torch.manual_seed(0)
    return FinishedRun(tmp_path, create_model(model, 16, 16, **params).eval(), config)


@pytest.mark.parametrize("model", ["psd", "sparse_coding"])
def test_the_evaluation_measures_the_decoders_atoms_as_the_script(tmp_path, model):
    run = _run(tmp_path, model)
    _, whitening = pca_whitened_patches(300, 8, n_directions=16, epsilon=0.1, random_state=0)
    W = run.model.decoder.weight.t().detach().double().numpy() @ whitening.inverse_components_
    expected = topographic_map(W, (8, 8), 4, 4, n_permutations=20)
    got = EVALUATIONS["topographic_map"].function(run, n_permutations=20)
    for key in ("ratio", "ratio_selective", "selective_units", "mean_selectivity", "pinwheels"):
        assert got[f"topographic_{key}"] == pytest.approx(expected[key], nan_ok=True), key
    # a PSD's encoder is not the measured map: its tanh predictor's rows differ from the atoms
    if model == "psd":
        assert not torch.allclose(run.model.encoder.linear.weight, run.model.decoder.weight.t())


@pytest.mark.parametrize("name, model", [("topographic_sparse_coding", "sparse_coding"), ("topographic_psd", "psd")])
def test_the_recipes_train_the_bench_settings(name, model):
    recipe = get_recipe(name)
    config = recipe.run_config()
    assert config.model_name == model and config.n_components == 121
    assert config.model["groups"] == {"kind": "grid", "height": 11, "width": 11, "window": 3}
    assert (config.model["sparsity_weight"], config.model["group_eps"],
            config.model["inference_max_iter"]) == (1.0, 0.01, 50)
    assert (config.train["optimizer"], config.train["learning_rate"], config.train["batch_size"],
            config.train["max_epochs"]) == ("sgd", 3.0, 500, 30)
    assert config.data == get_recipe("topographic_rica").run_config().data
    assert recipe.evaluation() == {"name": "topographic_map", "selective": 0.3, "n_permutations": 100}

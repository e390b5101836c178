"""The ``hashing_vs_itq`` recipe evaluation (issue 23): a run's bits against ITQ on the semantic-hashing
protocol (queries per class against the rest, labels only to score), scored by sparseae.retrieval."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from sparseae.config import RunConfig
from sparseae.errors import DataError
from sparseae.models import create_model
from sparseae.recipes import get_recipe
from sparseae.retrieval import ITQ, hamming_distances, mean_average_precision, mnist_retrieval_split, pack_bits
from sparseae.retrieval.binary_autoencoder import fit_model
from sparseae.runs.evaluations import EVALUATIONS, FinishedRun


def _run(tmp_path, *, data="digits", fitted=True):
    config = RunConfig.from_dict({"model": {"name": "binary_autoencoder", "n_components": 16, "n_anchors": 60,
                                            "input_weight": 0.0, "n_iter": 1, "max_samples": 600},
                                  "data": {"name": data}}).validate()
    model = create_model("binary_autoencoder", 64, 16, n_anchors=60, input_weight=0.0, n_iter=1, max_samples=600)
    if fitted:
        from sparseae.data import load_digits_data

        with threadpool_limits(limits=1):
            fit_model(model, load_digits_data()[0], random_state=0)
    return FinishedRun(tmp_path, model.eval(), config)


def test_the_runs_bits_and_itq_are_scored_on_the_same_split(tmp_path):
    from sparseae.data import load_digits_data

    evaluation = EVALUATIONS["hashing_vs_itq"]
    run = _run(tmp_path)
    with threadpool_limits(limits=1):
        metrics = evaluation.function(run, n_per_class=20, seed=3, itq_iter=10)
    assert set(metrics) == set(evaluation.metrics)
    assert metrics["hashing_queries"] == 200.0
    assert metrics["hashing_map_gain"] == pytest.approx(metrics["hashing_map"] - metrics["itq_map"])
    # ITQ's figure is the benchmark's: fitted on the database of the same split, exhaustive ranking
    X, y = load_digits_data()
    queries, database = mnist_retrieval_split(y, n_per_class=20, random_state=3)
    itq = ITQ(16, n_iter=10, random_state=3).fit(X[database])
    distances = hamming_distances(pack_bits(itq.encode(X[queries])), pack_bits(itq.encode(X[database])))
    assert metrics["itq_map"] == pytest.approx(mean_average_precision(y[queries], y[database], distances))
    # both hashers retrieve far above chance (≈ 0.1 on 10 balanced classes)
    assert metrics["hashing_map"] > 0.4 and metrics["itq_map"] > 0.4
    for name in ("hashing", "itq"):
        assert 0.0 <= metrics[f"{name}_precision_r2"] <= 1.0 and 0.0 < metrics[f"{name}_hit_r2"] <= 1.0


def test_identical_bits_for_every_image_score_chance(tmp_path):
    run = _run(tmp_path, fitted=False)  # all-zero hash functions: every image gets the same bits
    with torch.no_grad():
        assert float(run.model.encode(torch.rand(5, 64)).sum()) == 0.0
    with threadpool_limits(limits=1):
        metrics = EVALUATIONS["hashing_vs_itq"].function(run, n_per_class=20, itq_iter=5)
    assert metrics["hashing_map"] == pytest.approx(0.1, abs=0.01)  # every database item ties: mAP = class share
    assert metrics["hashing_hit_r2"] == 1.0 and metrics["hashing_precision_r2"] == pytest.approx(0.1, abs=0.01)


def test_unlabelled_data_is_a_data_error(tmp_path):
    run = _run(tmp_path, data="patches", fitted=False)
    with pytest.raises(DataError, match="no labels"):
        EVALUATIONS["hashing_vs_itq"].function(run)


@pytest.mark.parametrize("bits", [16, 32, 64])
def test_one_recipe_per_width_with_the_bench_settings(bits):
    recipe = get_recipe(f"hashing_ba_{bits}_mnist")
    config = recipe.run_config()
    assert config.n_components == bits and config.data == {"name": "mnist", "split": "all"}
    assert {key: config.model[key] for key in ("n_anchors", "n_nearest", "input_weight", "n_iter", "max_samples")} \
        == {"n_anchors": 300, "n_nearest": 3, "input_weight": 0.5, "n_iter": 5, "max_samples": 10000}
    assert recipe.evaluation() == {"name": "hashing_vs_itq", "n_per_class": 100, "seed": 0, "itq_iter": 50}
    assert recipe.metric["name"] == "hashing_map" and recipe.published is None
    assert np.isclose(recipe.measured["value"], {16: 0.462, 32: 0.501, 64: 0.496}[bits])

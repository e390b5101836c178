"""The synthetic ground-truth benchmark (issue 24): the generator of features in superposition, the
recovery scores against the truth, and ``sparseae bench synthetic --quick`` through the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sparseae.cli import main
from sparseae.data import load_dataset
from sparseae.data.synthetic import make_superposition, zipf_firing_probabilities
from sparseae.errors import ConfigError, DataError
from sparseae.evaluate.recovery import (
    code_correlations,
    firing_f1,
    match_latents,
    max_cosine_similarity,
    recovery_scores,
)
from sparseae.runs.synthetic_bench import FAMILIES, tune_alpha

# ----------------------------------------------------------------------------------------- generator


def test_shapes_unit_dictionary_and_exact_sum():
    data = make_superposition(300, 12, 40, mean_active=4.0, random_state=3)
    assert data.X.shape == (300, 12) and data.X.dtype == np.float32
    assert data.dictionary.shape == (40, 12) and data.codes.shape == (300, 40)
    np.testing.assert_allclose(np.linalg.norm(data.dictionary, axis=1), 1.0, atol=1e-6)
    assert (data.codes >= 0).all() and data.parents.shape == (40,)
    np.testing.assert_allclose(data.X, data.codes @ data.dictionary, atol=1e-5)  # no noise
    assert data.expected_l0 == pytest.approx(4.0)
    noisy = make_superposition(300, 12, 40, mean_active=4.0, noise_std=0.1, random_state=3)
    residual = noisy.X - noisy.codes @ noisy.dictionary
    assert 0.08 < residual.std() < 0.12


def test_zipf_probabilities():
    p = zipf_firing_probabilities(100, 5.0, 1.0)
    assert p.sum() == pytest.approx(5.0) and (np.diff(p) <= 0).all()
    assert p[0] / p[9] == pytest.approx(10.0)  # ∝ 1/(i + 1)
    np.testing.assert_allclose(zipf_firing_probabilities(10, 2.0, 0.0), 0.2)
    capped = zipf_firing_probabilities(10, 9.0, 2.0)  # the frequent ones saturate at 1
    assert capped.max() == 1.0 and capped.sum() == pytest.approx(9.0)


def test_firing_frequencies_follow_the_zipf_marginals_and_the_hierarchy():
    data = make_superposition(20000, 16, 60, mean_active=5.0, zipf_exponent=1.0, correlation=0.0,
                              hierarchy_fraction=0.3, random_state=0)
    fires = data.codes > 0
    frequencies = fires.mean(axis=0)
    # independent firing: every marginal is p_i, children included (q_child = p_child / p_parent)
    np.testing.assert_allclose(frequencies, data.firing_probabilities, atol=0.015)
    assert frequencies[0] > frequencies[4] > frequencies[30]
    children = np.nonzero(data.parents >= 0)[0]
    assert len(children) == 18 and (data.parents[children] < children).all()
    assert not (fires[:, children] & ~fires[:, data.parents[children]]).any()  # child ⇒ parent
    assert data.mean_l0 == pytest.approx(5.0, abs=0.1)


def test_correlated_firing():
    def mean_abs_correlation(correlation):
        data = make_superposition(8000, 8, 20, mean_active=6.0, zipf_exponent=0.0, correlation=correlation,
                                  correlation_rank=2, hierarchy_fraction=0.0, random_state=1)
        c = np.corrcoef((data.codes > 0).T)
        return np.abs(c[~np.eye(20, dtype=bool)]).mean(), (data.codes > 0).mean(axis=0)

    independent, _ = mean_abs_correlation(0.0)
    correlated, frequencies = mean_abs_correlation(0.8)
    assert independent < 0.03 and correlated > 0.15
    np.testing.assert_allclose(frequencies, 0.3, atol=0.03)  # the copula keeps the marginals


def test_seeds_and_registry():
    a, b = make_superposition(50, 8, 16, mean_active=2.0), make_superposition(50, 8, 16, mean_active=2.0)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.codes, b.codes)
    c = make_superposition(50, 8, 16, mean_active=2.0, random_state=1)
    assert not np.array_equal(a.X, c.X)
    held_out = make_superposition(50, 8, 16, mean_active=2.0, sample_seed=7)  # same features, new samples
    np.testing.assert_array_equal(held_out.dictionary, a.dictionary)
    np.testing.assert_array_equal(held_out.parents, a.parents)
    assert not np.array_equal(held_out.codes, a.codes)
    dataset = load_dataset("synthetic", n_samples=50, n_features=8, n_latents=16, mean_active=2.0)
    np.testing.assert_array_equal(dataset.X, a.X)
    assert dataset.y is None and dataset.name == "synthetic"


@pytest.mark.parametrize("options, message", [
    ({"n_latents": 0}, "n_latents must be >= 1"),
    ({"mean_active": 50.0}, "mean_active must be <= 40"),
    ({"correlation": 1.0}, "correlation must be < 1"),
    ({"hierarchy_fraction": 1.0}, "hierarchy_fraction must be < 1"),
    ({"noise_std": -0.1}, "noise_std must be >= 0"),
    ({"magnitude_mean": 0.0}, "magnitude_mean must be > 0"),
    ({"random_state": "x"}, "random_state must be an integer"),
])
def test_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        make_superposition(**{"n_samples": 10, "n_features": 4, "n_latents": 40, **options})


# -------------------------------------------------------------------------------------------- scores


def test_perfect_recovery_of_a_permuted_scaled_copy():
    data = make_superposition(3000, 16, 48, mean_active=3.0, random_state=2)
    rng = np.random.default_rng(0)
    order, scale = rng.permutation(48), rng.uniform(0.5, 2.0, 48)
    scores = recovery_scores(data.X, data.X, data.codes[:, order] * scale, data.dictionary[order] * scale[:, None],
                             data.dictionary, data.codes)
    for key in ("mmcs", "mmcs_learned", "mcc", "f1"):
        assert scores[key] == pytest.approx(1.0, abs=1e-9), key
    assert scores["fvu"] == 0.0 and scores["dead"] == 0.0
    assert scores["l0"] == pytest.approx(data.mean_l0)


def test_random_model_scores_low():
    data = make_superposition(3000, 32, 64, mean_active=3.0, random_state=2)
    rng = np.random.default_rng(1)
    D = rng.standard_normal((64, 32))
    Z = np.maximum(rng.standard_normal((3000, 64)), 0.0)
    scores = recovery_scores(data.X, Z @ D, Z, D, data.dictionary, data.codes)
    assert scores["mmcs"] < 0.55 and scores["mcc"] < 0.1 and scores["f1"] < 0.2 and scores["fvu"] > 1.0


def test_code_correlations_are_pearson_in_float64():
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((500, 5)).astype(np.float32), rng.standard_normal((500, 3))
    A[:, 4] = 2.0  # constant: correlation 0
    expected = np.corrcoef(A[:, :4].astype(np.float64).T, B.T)[:4, 4:]
    C = code_correlations(A, B)
    np.testing.assert_allclose(C[:4], expected, atol=1e-12)
    assert (C[4] == 0).all() and C.dtype == np.float64


def test_matching_and_f1_by_hand():
    rows, cols = match_latents(np.array([[0.1, 0.9], [0.8, 0.7], [0.0, 0.0]]))
    assert dict(zip(cols.tolist(), rows.tolist(), strict=True)) == {0: 1, 1: 0}  # 0.8 + 0.9 beats 0.7 + 0.1
    truth = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)
    learned = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], dtype=float)
    # feature 0 ↔ latent 0: hits 1, predicted 2, actual 2 → F1 0.5; feature 1 ↔ latent 1: F1 1
    assert firing_f1(learned, truth, np.array([0, 1]), np.array([0, 1])) == pytest.approx(0.75)
    assert firing_f1(learned, truth, np.array([0]), np.array([0])) == pytest.approx(0.25)  # unmatched: 0
    mean_true, mean_learned = max_cosine_similarity(np.array([[1.0, 0.0], [0.0, 0.0]]),
                                                    np.array([[2.0, 0.0], [1.0, 1.0]]))
    assert mean_true == pytest.approx((1 + 2 ** -0.5) / 2) and mean_learned == pytest.approx(0.5)
    with pytest.raises(DataError, match="2 samples, true codes 4"):
        code_correlations(learned[:2], truth)
    with pytest.raises(DataError, match="decoder has 3 rows but the codes have 2 latents"):
        recovery_scores(truth, truth, learned, np.ones((3, 2)), np.eye(2), truth)


def test_l0_controller_moves_the_weight_towards_the_target():
    import torch

    from sparseae.models import create_model
    from sparseae.runs.synthetic_bench import L0Controller
    from sparseae.train import TrainConfig, train

    data = make_superposition(512, 8, 16, mean_active=2.0, random_state=0)
    weights = {}
    for target in (0.5, 15.0):
        torch.manual_seed(0)
        model = create_model("sparse_ae_l1", 8, 16, sparsity_weight=0.05)
        controller = L0Controller(model, target, ["l1"])
        train(model, data.X, TrainConfig(batch_size=64, max_epochs=1, threads=None), callbacks=[controller])
        controller.remove()
        weights[target] = controller.weights()["l1"]
        assert not model.encoder._forward_hooks  # the hook is gone
    assert weights[0.5] > 0.05 > weights[15.0]  # too many active latents: a larger L1 weight, and back


def test_tune_alpha_meets_the_l0():
    data = make_superposition(400, 16, 48, mean_active=4.0, random_state=5)
    alpha = tune_alpha(data.X, data.dictionary, 4.0)
    from sparseae.coding import sparse_encode

    codes = sparse_encode(data.X, data.dictionary, algorithm="lasso_lars", alpha=alpha, positive=True)
    assert abs(np.count_nonzero(codes) / 400 - 4.0) < 0.2


# ------------------------------------------------------------------------------------------------ CLI


def test_quick_bench_through_the_cli(tmp_path, capsys):
    assert main(["bench", "synthetic", "--quick", "--json", "--threads", "1", "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {row["family"]: row for row in result["rows"]}
    assert list(rows) == list(FAMILIES)
    target = result["data"]["target_l0"]
    assert target == pytest.approx(result["data"]["true_l0"]) and 2.5 < target < 3.5
    for family, row in rows.items():
        assert 0.0 <= row["mmcs"] <= 1.0 and -1.0 <= row["mcc"] <= 1.0 and 0.0 <= row["f1"] <= 1.0, family
        assert 0.0 <= row["fvu"] < 1.5 and row["seconds"] > 0 and 0.0 < row["l0"] < 20, family
    assert rows["topk"]["l0"] == pytest.approx(round(target))  # k = the target, per sample
    assert abs(rows["sparse_coding"]["l0"] - target) < 0.5  # α bisected on the learned dictionary
    # the exact codes on a learned dictionary recover the features better than chance (random: ~0.55)
    assert rows["sparse_coding"]["mmcs"] > 0.65
    saved = json.loads((tmp_path / "synthetic.json").read_text())
    assert [row["family"] for row in saved["rows"]] == list(FAMILIES)
    table = (tmp_path / "synthetic.md").read_text().splitlines()
    assert table[0].startswith("| family | L0 | FVU") and len(table) == 2 + len(FAMILIES)
    # a second run would replace the results: refused before any training, one line, status 2
    assert main(["bench", "synthetic", "--quick", "--families", "topk", "--out", str(tmp_path)]) == 2
    assert "synthetic.json exists; pass --overwrite" in capsys.readouterr().err
    assert main(["bench", "synthetic", "--quick", "--families", "lista"]) == 2
    assert "lista needs sparse_coding" in capsys.readouterr().err

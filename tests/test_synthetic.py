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
    absorption_rate,
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
    ({"child_similarity": 1.0}, "child_similarity must be < 1"),
    ({"child_similarity": -0.1}, "child_similarity must be >= 0"),
])
def test_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        make_superposition(**{"n_samples": 10, "n_features": 4, "n_latents": 40, **options})


def test_child_similarity_tilts_children_towards_their_parents_only():
    base = make_superposition(500, 16, 80, mean_active=4.0, hierarchy_fraction=0.3, random_state=4)
    same = make_superposition(500, 16, 80, mean_active=4.0, hierarchy_fraction=0.3, random_state=4,
                              child_similarity=0.0)
    np.testing.assert_array_equal(same.X, base.X)  # 0 keeps the earlier draws exactly
    tilted = make_superposition(500, 16, 80, mean_active=4.0, hierarchy_fraction=0.3, random_state=4,
                                child_similarity=0.6)
    children = np.nonzero(tilted.parents >= 0)[0]
    roots = np.nonzero(tilted.parents < 0)[0]
    assert len(children) == 24 and (tilted.parents == base.parents).all()
    cosines = (tilted.dictionary[children] * tilted.dictionary[tilted.parents[children]]).sum(axis=1)
    np.testing.assert_allclose(cosines, 0.6, atol=1e-6)
    base_cosines = (base.dictionary[children] * base.dictionary[base.parents[children]]).sum(axis=1)
    assert np.abs(base_cosines).max() < 0.8 and np.abs(base_cosines).mean() < 0.35  # random in 16 dims
    np.testing.assert_allclose(np.linalg.norm(tilted.dictionary, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(tilted.dictionary[roots], base.dictionary[roots])
    np.testing.assert_array_equal(tilted.codes, base.codes)  # same firing and magnitudes, new directions
    np.testing.assert_allclose(tilted.X, tilted.codes @ tilted.dictionary, atol=1e-5)
    dataset = load_dataset("synthetic", n_samples=500, n_features=16, n_latents=80, mean_active=4.0,
                           hierarchy_fraction=0.3, random_state=4, child_similarity=0.6)
    np.testing.assert_array_equal(dataset.X, tilted.X)


# -------------------------------------------------------------------------------------------- scores


def test_absorption_rate_on_a_constructed_case():
    parents = np.array([-1, 0, 0, -1, 3])  # features 1 and 2 are children of 0, feature 4 of 3
    truth = np.zeros((9, 5))
    truth[0, 0] = 1  # parent alone: not a chance to absorb
    truth[1, [0, 1]] = truth[2, [0, 1]] = truth[3, [0, 2]] = truth[4, [0, 1, 2]] = 1
    truth[5, [3, 4]] = truth[6, [3, 4]] = 1
    truth[7, 3] = truth[8, 3] = 1  # parent 3 alone twice: its latent misses once (the control)
    learned, true = np.array([2, 0, 1, 3, 4]), np.arange(5)  # parent 0 ↔ latent 2, child 1 ↔ latent 0, ...
    Z = np.zeros((9, 5))
    Z[0, 2] = 1.0
    Z[1, 0] = 1.0  # parent silent, child's latent on: absorbed
    Z[2, [2, 0]] = 1.0  # both on: not absorbed
    Z[3, :] = 0.0  # both silent: a miss, not absorption
    Z[4, [2, 1]] = [0.05, 1.0]  # parent latent barely on: absorbed only at threshold 0.1
    Z[5, 4] = 1.0  # parent 3 silent, child 4 on: absorbed
    Z[6, [3, 4]] = 1.0
    Z[8, 3] = 1.0
    # parent 0: 1 of 4 joint firings absorbed, 0 of 1 lone firings missed; parent 3: 1 of 2, 1 of 2
    assert absorption_rate(Z, truth, parents, learned, true) == pytest.approx(((0.25 + 0.5) / 2, 0.25))
    assert absorption_rate(Z, truth, parents, learned, true, threshold=0.1) == pytest.approx((0.5, 0.25))
    # child 4 unmatched: parent 3 cannot be scored, parent 0 alone counts
    assert absorption_rate(Z, truth, parents, learned[:4], true[:4]) == pytest.approx((0.25, 0.0))
    assert np.isnan(absorption_rate(Z, truth, np.full(5, -1), learned, true)).all()  # no hierarchy
    with pytest.raises(DataError, match="parents must be 5 integers"):
        absorption_rate(Z, truth, parents[:4], learned, true)
    with pytest.raises(DataError, match="parents must be -1 or a feature index below 5"):
        absorption_rate(Z, truth, np.array([-1, 0, 0, -1, 7]), learned, true)


def test_absorption_in_recovery_scores_separates_absorbing_from_faithful_codes():
    data = make_superposition(3000, 16, 48, mean_active=3.0, hierarchy_fraction=0.3, child_similarity=0.6,
                              random_state=2)
    faithful = recovery_scores(data.X, data.X, data.codes, data.dictionary, data.dictionary, data.codes,
                               parents=data.parents)
    assert faithful["absorption"] == faithful["parent_miss"] == 0.0 and faithful["mcc"] == pytest.approx(1.0)
    # an absorbing code: wherever a child fires, its parent's code is folded into the child's latent
    absorbed = data.codes.copy()
    for child in np.nonzero(data.parents >= 0)[0][::-1]:  # deepest first, so grandparents fold down too
        parent = data.parents[child]
        both = (absorbed[:, child] > 0) & (absorbed[:, parent] > 0)
        absorbed[both, child] += absorbed[both, parent]
        absorbed[both, parent] = 0.0
    scores = recovery_scores(data.X, data.X, absorbed, data.dictionary, data.dictionary, data.codes,
                             parents=data.parents)
    # the parent is silent beside a child, rarely alone (only where the matching pairs it elsewhere)
    assert scores["absorption"] > 0.9 and scores["parent_miss"] < 0.3
    assert "absorption" not in recovery_scores(
        data.X, data.X, absorbed, data.dictionary, data.dictionary, data.codes)


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
        assert 0.0 <= row["absorption"] <= 1.0 and 0.0 <= row["parent_miss"] <= 1.0, family  # has a hierarchy
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
    assert main(["bench", "synthetic", "--quick", "--child-similarity", "1.5"]) == 2
    assert "child_similarity must be < 1" in capsys.readouterr().err
    assert main(["bench", "synthetic", "--quick", "--families", "topk", "--child-similarity", "0.6",
                 "--json", "--threads", "1"]) == 0
    tilted = json.loads(capsys.readouterr().out)
    assert tilted["config"]["child_similarity"] == 0.6
    assert tilted["rows"][0]["mmcs"] != rows["topk"]["mmcs"]  # other data: other directions learned

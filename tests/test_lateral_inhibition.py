"""Lateral inhibition (Gregor, Szlam & LeCun 2011): E = ½‖x − Dz‖² + λ‖z‖₁ + ½|z|ᵀS|z|.

The solvers against a generic solver (scipy) and an exact brute force, the optimality conditions,
monotone energy, gradients, the ascent on S and its bound, tree form, the model through the trainer,
save/load, the estimator, the CLI, the tree picture and the branch-similarity measure, and errors.
"""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
import yaml
from scipy.optimize import minimize

from sparseae.coding import (
    check_inhibition_matrix,
    coactivation,
    duality_gap,
    fista,
    inhibition_ascent,
    inhibition_codes,
    inhibition_energy,
    inhibition_mask,
    inhibition_stationarity,
    project_inhibition,
    tree_inhibition,
    tree_relatives,
)
from sparseae.errors import ConfigError, DataError
from sparseae.estimators import LateralInhibitionCoder
from sparseae.evaluate.tree import branch_labels, branch_similarity
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.groups import balanced_tree
from sparseae.io import load_model, save_model
from sparseae.models import create_model
from sparseae.train import TrainConfig, train
from sparseae.viz.tree import save_filter_tree, tree_layout

LAM = 0.2
METHODS = ("ista", "fista", "cod")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_problem(k: int = 5, n: int = 8, batch: int = 6, seed: int = 0):
    """X (batch, n), D (n, k) unit-norm atoms (for k ≤ n a perturbed orthonormal set, DᵀD well
    conditioned), S (k, k) symmetric ≥ 0 zero diagonal with λ_max(S) = 1 (rescale it for the convex /
    non-convex cases); float64."""
    gen = torch.Generator().manual_seed(seed)
    if k <= n:
        Q, _ = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))
        D = Q @ (torch.eye(k, dtype=torch.float64) + 0.25 * torch.randn(k, k, generator=gen, dtype=torch.float64))
    else:
        D = torch.randn(n, k, generator=gen, dtype=torch.float64)
    D = D / D.norm(dim=0)
    A = torch.rand(k, k, generator=gen, dtype=torch.float64)
    S = A + A.T
    S.fill_diagonal_(0.0)
    S = S / torch.linalg.eigvalsh(S)[-1]
    X = 1.5 * torch.randn(batch, n, generator=gen, dtype=torch.float64)
    return X, D, S


def energy_np(z, x, D, S, lam):
    a = np.abs(z)
    return 0.5 * np.sum((x - D @ z) ** 2) + lam * a.sum() + 0.5 * a @ S @ a


def scipy_codes(X, D, S, lam, nonnegative=False):
    """min E by L-BFGS-B on the smooth split z = p − q, p, q ≥ 0 (|z| ≤ p + q and S ≥ 0, so the split
    problem has the same minimum)."""
    D, S = D.numpy(), S.numpy()
    k = D.shape[1]
    codes = []
    for x in X.numpy():
        def fun(w):
            p, q = w[:k], (w[k:] if not nonnegative else np.zeros(k))
            u, z = p + q, p - q
            r = D @ z - x  # noqa: B023 (the closure is called by the solver within this iteration)
            value = 0.5 * r @ r + lam * u.sum() + 0.5 * u @ S @ u
            g_common = S @ u + lam
            g_p = D.T @ r + g_common
            return value, (g_p if nonnegative else np.concatenate([g_p, -D.T @ r + g_common]))
        size = k if nonnegative else 2 * k
        res = minimize(fun, np.full(size, 0.1), jac=True, method="L-BFGS-B", bounds=[(0, None)] * size,
                       options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 20000})
        codes.append(res.x[:k] - (0 if nonnegative else res.x[k:]))
    return torch.tensor(np.array(codes))


def brute_force_minimum(x, D, S, lam):
    """The global min of E for one row: over every sign pattern s ∈ {−1, 0, 1}^k, the stationary point of
    the quadratic on that face of the orthants when its Hessian is positive definite and the point lies
    in the face; the global minimizer is one of them."""
    x, D, S = x.numpy(), D.numpy(), S.numpy()
    G, c = D.T @ D, D.T @ x
    best, best_z = 0.5 * x @ x, np.zeros(D.shape[1])
    for signs in itertools.product((-1, 0, 1), repeat=D.shape[1]):
        s = np.array(signs, dtype=float)
        on = np.flatnonzero(s)
        if not len(on):
            continue
        H = G[np.ix_(on, on)] + np.outer(s[on], s[on]) * S[np.ix_(on, on)]
        if np.linalg.eigvalsh(H)[0] <= 1e-12:
            continue
        z_on = np.linalg.solve(H, c[on] - lam * s[on])
        if np.all(s[on] * z_on > 0):
            z = np.zeros(D.shape[1])
            z[on] = z_on
            value = energy_np(z, x, D, S, lam)
            if value < best:
                best, best_z = value, z
    return best, best_z


# ------------------------------------------------------------------------------------- the solvers


@pytest.mark.parametrize("nonnegative", [False, True])
def test_zero_inhibition_is_the_lasso(nonnegative):
    X, D, _ = tiny_problem(k=12, n=8, batch=10)
    reference = fista(X, D, LAM, max_iter=20000, tol=1e-15, nonnegative=nonnegative).codes
    for method in METHODS:
        result = inhibition_codes(X, D, LAM, torch.zeros(12, 12, dtype=torch.float64), method=method,
                                  max_iter=50000, tol=1e-12, nonnegative=nonnegative)
        assert result.converged
        torch.testing.assert_close(result.codes, reference, rtol=0, atol=1e-7)
        assert float(duality_gap(X, D, result.codes, LAM, nonnegative=nonnegative).max()) < 1e-9


@pytest.mark.parametrize("nonnegative", [False, True])
def test_convex_case_matches_a_generic_solver(nonnegative):
    """λ_max(S) < λ_min(DᵀD): E is convex (½|z|ᵀ(S + μI)|z| is convex for μ ≥ λ_max(S)), so every
    method reaches the one minimum that scipy's L-BFGS-B finds on the split problem."""
    X, D, S = tiny_problem()
    S = 0.9 * float(torch.linalg.eigvalsh(D.T @ D)[0]) * S
    expected = scipy_codes(X, D, S, LAM, nonnegative)
    expected_energy = inhibition_energy(X, D, expected, LAM, S)
    for method in METHODS:
        result = inhibition_codes(X, D, LAM, S, method=method, max_iter=50000, tol=1e-14, nonnegative=nonnegative)
        torch.testing.assert_close(result.codes, expected, rtol=0, atol=1e-6)
        assert float((result.objective - expected_energy).max()) < 1e-10
        torch.testing.assert_close(result.objective, inhibition_energy(X, D, result.codes, LAM, S), rtol=1e-14, atol=0)
        if nonnegative:
            assert float(result.codes.min()) >= 0.0


def test_nonconvex_case_stationary_points_and_the_global_minimum_by_brute_force():
    """Strong inhibition (λ_max(S) = 2.5 > λ_min(DᵀD)): several local minima. Every result satisfies the
    first-order conditions, no single coordinate can lower E (a dense 1-D scan), and the best of a few
    starts is the global minimum found by enumerating the sign patterns."""
    X, D, S = tiny_problem()
    S = 2.5 * S
    assert float(torch.linalg.eigvalsh(D.T @ D)[0]) < 2.5
    gen = torch.Generator().manual_seed(1)
    starts = [None] + [torch.randn(X.shape[0], 5, generator=gen, dtype=torch.float64) for _ in range(4)]
    best = torch.full((X.shape[0],), float("inf"), dtype=torch.float64)
    for method in METHODS:
        for z0 in starts:
            result = inhibition_codes(X, D, LAM, S, method=method, z0=z0, max_iter=50000, tol=1e-14)
            assert float(inhibition_stationarity(X, D, result.codes, LAM, S).max()) < 1e-9
            best = torch.minimum(best, result.objective)
    steps = torch.linspace(-1.0, 1.0, 2001, dtype=torch.float64)
    for row in range(X.shape[0]):
        for unit in range(5):  # E along each coordinate, on a grid of moves
            moved = result.codes[row].repeat(len(steps), 1)
            moved[:, unit] += steps
            scan = inhibition_energy(X[row].expand(len(steps), -1), D, moved, LAM, S)
            assert float(scan.min()) >= float(result.objective[row]) - 1e-12
    for row in range(X.shape[0]):
        value, _ = brute_force_minimum(X[row], D, S, LAM)
        assert float(best[row]) == pytest.approx(value, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_energy_decreases_monotonically(method):
    X, D, S = tiny_problem(k=16, n=10, batch=20, seed=3)
    result = inhibition_codes(X, D, LAM, 0.5 * S, method=method, max_iter=400, stop="none", return_history=True)
    history = np.array(result.history)
    assert len(history) == 400 and result.n_iter == 400 and not result.converged
    assert np.all(np.diff(history) <= 1e-12 * history[:-1])
    assert history[-1] < 0.5 * float(0.5 * X.square().sum(1).mean())  # E(0) = ½‖x‖²
    assert history[-1] == pytest.approx(float(result.objective.mean()), rel=1e-12)


def test_stopping_rules_and_warm_start():
    X, D, S = tiny_problem(k=10, n=8, batch=12)
    for method in METHODS:
        result = inhibition_codes(X, D, LAM, S, method=method, stop="stationarity", tol=1e-8, max_iter=100000,
                                  check_every=5)
        assert result.converged
        assert float(inhibition_stationarity(X, D, result.codes, LAM, S).max()) <= 1e-8 * LAM
        again = inhibition_codes(X, D, LAM, S, method=method, z0=result.codes, tol=1e-6, check_every=1)
        assert again.converged and again.n_iter == 1
    coarse = inhibition_codes(X, D, LAM, S, method="ista", max_iter=7, stop="none")
    assert coarse.n_iter == 7 and not coarse.converged
    float32 = inhibition_codes(X.float(), D.float(), LAM, S.float(), method="fista", tol=1e-5, max_iter=5000)
    assert float32.codes.dtype == torch.float32 and float32.converged


def test_energy_gradients_in_float64():
    """∂E/∂S = ½|z||z|ᵀ and ∂E/∂D = (Dz − x)zᵀ: autograd against central differences."""
    X, D, S = tiny_problem(k=4, n=5, batch=3)
    Z = torch.randn(3, 4, dtype=torch.float64) + 0.5  # away from the kinks of |z|
    D.requires_grad_(True)
    S.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d, s: inhibition_energy(X, d, Z, LAM, s), (D, S), eps=1e-6, atol=1e-9)
    inhibition_energy(X, D, Z, LAM, S).mean().backward()
    torch.testing.assert_close(S.grad, coactivation(Z), rtol=1e-14, atol=0)
    torch.testing.assert_close(D.grad, (Z @ D.T - X).T.detach() @ Z / 3, rtol=1e-12, atol=1e-14)


def test_model_loss_passes_the_gradient_check():
    """The loss E(x, z*) at the inferred z*: its autograd gradient in D is the derivative of min_z E
    (envelope theorem) when z* is solved to float64 precision."""
    x = np.random.default_rng(0).standard_normal((3, 8))
    model = create_model("lateral_inhibition", 8, 7, tree={"depth": 2, "branching": 2}, inhibition="fixed",
                         inhibition_value=0.3, sparsity_weight=LAM, method="cod", inference_max_iter=20000)
    result = check_gradients(model, x, max_checks_per_parameter=10)
    assert result.passed and result.relative_error < UFLDL_TOLERANCE
    assert result.n_checked >= 9
    assert result.per_parameter.keys() == {"decoder.weight_"}  # S is a buffer, never an optimizer parameter


# ------------------------------------------------------------------------------------ S: tree and bound


def test_tree_relatives_and_masks():
    parent = balanced_tree(2, 2).tolist()  # 0 → 1, 2; 1 → 3, 4; 2 → 5, 6
    R = tree_relatives(parent)
    expected_pairs = {(0, j) for j in range(7)} | {(1, 3), (1, 4), (2, 5), (2, 6)}
    expected = torch.zeros(7, 7, dtype=torch.bool)
    for i, j in expected_pairs:
        expected[i, j] = expected[j, i] = True
    expected.fill_diagonal_(True)
    assert torch.equal(R, expected)
    assert torch.equal(inhibition_mask(7, parent), ~expected)
    assert torch.equal(inhibition_mask(3), ~torch.eye(3, dtype=torch.bool))
    S = tree_inhibition({"depth": 2, "branching": 2}, 0.5)
    assert float(S[3, 5]) == 0.5 and float(S[3, 4]) == 0.5 and float(S[1, 3]) == 0.0 and float(S[0, 6]) == 0.0
    assert branch_labels(parent).tolist() == [-1, 1, 2, 1, 1, 2, 2]


@pytest.mark.parametrize("norm", ["row_sum", "frobenius"])
def test_projection_keeps_s_in_its_set(norm):
    gen = torch.Generator().manual_seed(0)
    mask = inhibition_mask(7, balanced_tree(2, 2))
    raw = torch.randn(7, 7, generator=gen, dtype=torch.float64) * 3
    S = project_inhibition(raw, mask, 1.5, norm)
    assert torch.equal(S, S.T) and float(S.min()) >= 0 and bool((S[~mask] == 0).all())
    size = S.sum(1).max() if norm == "row_sum" else torch.linalg.matrix_norm(S)
    assert float(size) <= 1.5 + 1e-12
    torch.testing.assert_close(project_inhibition(S, mask, 1.5, norm), S, rtol=0, atol=0)  # feasible: unchanged
    if norm == "frobenius":  # the exact projection: the cone's projection, scaled into the ball
        cone = (0.5 * (raw + raw.T)).clamp_min(0) * mask
        torch.testing.assert_close(S, cone * 1.5 / torch.linalg.matrix_norm(cone))
    uniform = project_inhibition(torch.ones(5, 5, dtype=torch.float64), inhibition_mask(5), 2.0, "row_sum")
    torch.testing.assert_close(uniform.sum(1), torch.full((5,), 2.0, dtype=torch.float64))


def test_one_ascent_step_is_the_energy_gradient():
    Z = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0]], dtype=torch.float64)
    S = inhibition_ascent(torch.zeros(3, 3, dtype=torch.float64), Z, 0.5, inhibition_mask(3), 100.0)
    expected = 0.5 * 0.5 * torch.tensor([[0, 2, 0], [2, 0, 3], [0, 3, 0]], dtype=torch.float64) / 2
    torch.testing.assert_close(S, expected, rtol=1e-15, atol=0)


def pair_data(n: int = 400, seed: int = 0):
    """X (n, 12) float32 from 6 unit-norm atoms D (12, 6): units 0 and 1 are always on together, so are 2
    and 3; 4 and 5 are on alone (non-negative magnitudes in [0.5, 1.5])."""
    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(12, 6, generator=gen, dtype=torch.float64)
    D /= D.norm(dim=0)
    kind = torch.randint(0, 4, (n,), generator=gen)
    Z = torch.zeros(n, 6, dtype=torch.float64)
    rows = torch.arange(n)
    first = torch.tensor([0, 2, 4, 5])[kind]
    Z[rows, first] = 0.5 + torch.rand(n, generator=gen, dtype=torch.float64)
    paired = kind < 2
    Z[rows[paired], first[paired] + 1] = 0.5 + torch.rand(int(paired.sum()), generator=gen, dtype=torch.float64)
    X = Z @ D.T + 0.01 * torch.randn(n, 12, generator=gen, dtype=torch.float64)
    return X.float().numpy(), D


def test_learned_inhibition_concentrates_on_co_active_units_within_its_bound():
    X, D = pair_data()
    model = create_model("lateral_inhibition", 12, 6, sparsity_weight=0.05, inhibition_rate=1.0,
                         inhibition_bound=0.5, nonnegative=True)
    model.set_dictionary(D)
    assert float(model.inhibition.abs().max()) == 0.0
    train(model, X, TrainConfig(optimizer="sgd", learning_rate=1e-3, batch_size=100, max_epochs=2))
    S = model.inhibition
    assert torch.equal(S, S.T) and float(S.diagonal().abs().max()) == 0.0 and float(S.min()) >= 0
    assert float(S.sum(1).max()) <= 0.5 * (1 + 1e-6)
    order = torch.argsort(torch.triu(S, 1).flatten(), descending=True)[:2]
    assert sorted((int(i) // 6, int(i) % 6) for i in order) == [(0, 1), (2, 3)]
    # measured: S[0, 1] ≈ 0.48, S[2, 3] ≈ 0.49, every other entry < 0.03
    assert float(S[0, 1]) > 0.4 and float(S[2, 3]) > 0.4
    others = S.clone()
    others[0, 1] = others[1, 0] = others[2, 3] = others[3, 2] = 0
    assert float(others.max()) < 0.1


def tree_data(n: int = 300, seed: int = 0):
    """Samples that activate one root-to-leaf path of the 7-node binary tree (balanced_tree(2, 2)) of
    random atoms, non-negative magnitudes: X (n, 16) float32."""
    parent = torch.as_tensor(balanced_tree(2, 2))
    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(16, 7, generator=gen, dtype=torch.float64)
    D /= D.norm(dim=0)
    leaf = torch.tensor([3, 4, 5, 6])[torch.randint(0, 4, (n,), generator=gen)]
    Z = torch.zeros(n, 7, dtype=torch.float64)
    for node in (leaf, parent[leaf], torch.zeros(n, dtype=torch.long)):
        Z[torch.arange(n), node] = 0.5 + torch.rand(n, generator=gen, dtype=torch.float64)
    return (Z @ D.T + 0.01 * torch.randn(n, 16, generator=gen, dtype=torch.float64)).float().numpy()


def test_tree_form_learning_reduces_reconstruction_and_keeps_the_tree_zeros():
    X = tree_data()
    model = create_model("lateral_inhibition", 16, 7, sparsity_weight=0.05, tree={"depth": 2, "branching": 2},
                         inhibition_rate=1.0, inhibition_bound=1.0, nonnegative=True)
    history = train(model, X, TrainConfig(optimizer="adam", learning_rate=2e-2, batch_size=50, max_epochs=8)).history
    reconstruction = [record["train_reconstruction"] for record in history]
    # measured: 1.12 → 0.075 over 8 epochs, falling every epoch
    assert reconstruction[-1] < 0.15 * reconstruction[0]
    assert all(b < a for a, b in itertools.pairwise(reconstruction))
    assert all(record["train_inhibition"] > 0 for record in history[1:])
    S = model.inhibition
    relatives = tree_relatives(model.tree)
    assert bool((S[relatives] == 0).all())
    assert float(S[~relatives].max()) > 0.1
    assert float(S.sum(1).max()) <= 1.0 + 1e-6


def test_fixed_inhibition_does_not_change():
    X = tree_data(100)
    S0 = tree_inhibition({"depth": 2, "branching": 2}, 0.25)
    model = create_model("lateral_inhibition", 16, 7, inhibition="fixed", inhibition_matrix=S0.numpy(),
                         tree={"depth": 2, "branching": 2})
    train(model, X, TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=50, max_epochs=1))
    assert torch.equal(model.inhibition, S0)
    assert model.spec["params"]["inhibition_matrix"] == S0.tolist()  # an array given by hand is saved as JSON


# ------------------------------------------------------------------------ save/load, estimator, CLI


def test_save_load_round_trip_keeps_s(tmp_path):
    X = tree_data(100)
    model = create_model("lateral_inhibition", 16, 7, tree=[-1, 0, 0, 1, 1, 2, 2], inhibition_rate=1.0,
                         method="cod", inference_max_iter=300)
    train(model, X, TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=50, max_epochs=1))
    assert float(model.inhibition.max()) > 0
    save_model(model, tmp_path / "li")
    loaded = load_model(tmp_path / "li")
    assert loaded.spec == model.spec
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.from_numpy(X[:20])
    torch.testing.assert_close(loaded.encode(x), model.encode(x), rtol=0, atol=0)
    config = json.loads((tmp_path / "li" / "config.json").read_text())
    assert config["model"] == "lateral_inhibition" and config["params"]["tree"] == [-1, 0, 0, 1, 1, 2, 2]


def test_estimator_fit_transform_score_save_load(tmp_path):
    X = tree_data(200)
    estimator = LateralInhibitionCoder(n_components=7, tree={"depth": 2, "branching": 2}, sparsity_weight=0.05,
                                       inhibition_rate=1.0, nonnegative=True, learning_rate=1e-2, batch_size=50,
                                       max_epochs=3, random_state=0)
    Z = estimator.fit(X).transform(X)
    assert Z.shape == (200, 7) and Z.dtype == np.float32 and float(Z.min()) >= 0
    assert 0.05 < float((Z != 0).mean()) < 0.9
    X_hat = estimator.inverse_transform(Z)
    assert float(((X_hat - X) ** 2).sum(1).mean()) < 0.5 * float((X ** 2).sum(1).mean())
    S = estimator.inhibition_
    assert S.shape == (7, 7) and float(S.max()) > 0 and np.all(S[tree_relatives(estimator.model_.tree).numpy()] == 0)
    energy = estimator.score(X)
    assert energy < 0
    x, z = torch.from_numpy(X), torch.from_numpy(Z)
    with torch.no_grad():
        expected = sum(v.mean() for v in estimator.model_.energy_terms(x, z).values())
    assert energy == pytest.approx(-float(expected), rel=1e-4)
    estimator.save(tmp_path / "est")
    loaded = LateralInhibitionCoder.load(tmp_path / "est")
    np.testing.assert_array_equal(loaded.transform(X), Z)
    np.testing.assert_array_equal(loaded.inhibition_, S)
    assert loaded.get_params() == estimator.get_params()
    with pytest.raises(ConfigError, match="optimizer"):
        LateralInhibitionCoder(optimizer="lbfgs").fit(X)


def test_cli_trains_a_tiny_config(tmp_path, capsys):
    from sparseae.cli import main

    np.save(tmp_path / "tree.npy", tree_data(200))
    config = {"model": {"name": "lateral_inhibition", "n_components": 7, "sparsity_weight": 0.05,
                        "tree": {"depth": 2, "branching": 2}, "inhibition_rate": 1.0, "nonnegative": True},
              "data": {"name": "array", "path": str(tmp_path / "tree.npy")},
              "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 50, "max_epochs": 2,
                        "device": "cpu"},
              "output": {"plots": False}}
    (tmp_path / "li.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "li.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    model = load_model(tmp_path / "run" / "model")
    assert model.spec["name"] == "lateral_inhibition" and model.tree == [-1, 0, 0, 1, 1, 2, 2]
    assert float(model.inhibition.max()) > 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 2
    capsys.readouterr()
    assert main(["train", str(tmp_path / "li.yaml"), "--out", str(tmp_path / "bad"),
                 "--set", "model.tree.branching=3", "--quiet"]) == 2
    assert "13 nodes" in capsys.readouterr().err


# ------------------------------------------------------------------------------ picture and measure


def test_filter_tree_picture_and_layout(tmp_path):
    parent = balanced_tree(2, 3).tolist()
    position = tree_layout(parent)
    assert position[:, 1].tolist() == [0] + [1] * 3 + [2] * 9
    assert position[4:, 0].tolist() == list(range(9))  # leaves left to right
    assert position[1, 0] == 1.0 and position[0, 0] == 4.0  # parents centred over their children
    W = np.random.default_rng(0).standard_normal((13, 64))
    path = save_filter_tree(W, parent, tmp_path / "tree.png", (8, 8), title="tree", labels=True)
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(DataError, match="13 nodes"):
        save_filter_tree(W[:12], parent, tmp_path / "bad.png", (8, 8))


def test_branch_similarity_sees_branches_and_not_their_permutation():
    parent = balanced_tree(2, 3).tolist()
    rng = np.random.default_rng(0)
    themes = rng.standard_normal((3, 30))
    labels = branch_labels(parent)
    vectors = rng.standard_normal((13, 30))
    for node in range(1, 13):
        vectors[node] += 2.0 * themes[labels[node] - 1]
    result = branch_similarity(vectors, parent, n_permutations=300)
    assert result["within"] > 0.6 and result["across"] < 0.3 and result["p_value"] < 0.01
    assert result["n_within_pairs"] == 3 * 6 and result["n_across_pairs"] == 12 * 11 // 2 - 18
    assert abs(result["permuted_ratio"] - 1.0) < 0.5 * (result["ratio"] - 1.0)
    unrelated = branch_similarity(rng.standard_normal((13, 30)), parent, n_permutations=300)
    assert unrelated["p_value"] > 0.01 and 0.5 < unrelated["ratio"] < 2.0
    relatives = branch_similarity(vectors, parent, pairs="relatives")
    assert relatives["n_within_pairs"] == 12 + 9
    codes = np.abs(vectors @ rng.standard_normal((30, 200)))
    activity = branch_similarity(codes, parent, similarity="activity_correlation")
    assert -1.0 <= activity["across"] <= activity["within"] <= 1.0
    with pytest.raises(DataError, match="one row per node"):
        branch_similarity(vectors[:5], parent)


# ------------------------------------------------------------------------------------------- errors


def test_bad_inhibition_matrices_are_config_errors():
    S = tree_inhibition({"depth": 1, "branching": 2}, 0.5)
    with pytest.raises(ConfigError, match=r"≥ 0.*S\[0, 1\]"):
        check_inhibition_matrix(-torch.ones(3, 3) + torch.eye(3), 3)
    asymmetric = S.clone()
    asymmetric[1, 2] = 0.9
    with pytest.raises(ConfigError, match="symmetric"):
        check_inhibition_matrix(asymmetric, 3)
    with pytest.raises(ConfigError, match="zero diagonal"):
        check_inhibition_matrix(S + torch.eye(3), 3)
    with pytest.raises(ConfigError, match=r"\(4, 4\)"):
        check_inhibition_matrix(S, 4)
    with pytest.raises(ConfigError, match="NaN"):
        check_inhibition_matrix(torch.full((3, 3), float("nan")), 3)
    X, D, _ = tiny_problem(k=3, n=4, batch=2)
    with pytest.raises(ConfigError, match="symmetric"):
        inhibition_codes(X, D, LAM, asymmetric.double())
    with pytest.raises(ConfigError, match="relatives"):  # tree form: no inhibition along a branch
        create_model("lateral_inhibition", 4, 3, tree=[-1, 0, 0], inhibition_matrix=torch.ones(3, 3) - torch.eye(3))
    with pytest.raises(ConfigError, match="bound"):
        create_model("lateral_inhibition", 4, 3, inhibition_matrix=(torch.ones(3, 3) - torch.eye(3)).tolist(),
                     inhibition_bound=1.0)
    fixed = create_model("lateral_inhibition", 4, 3, inhibition="fixed", inhibition_matrix=S.tolist())
    with pytest.raises(ConfigError, match="≥ 0"):
        fixed.set_inhibition(-S)


@pytest.mark.parametrize("lam", [0.0, -0.1])
def test_nonpositive_lambda_is_a_config_error(lam):
    X, D, S = tiny_problem(k=3, n=4, batch=2)
    with pytest.raises(ConfigError, match="lam"):
        inhibition_codes(X, D, lam, S)
    with pytest.raises(ConfigError, match="sparsity_weight"):
        create_model("lateral_inhibition", 4, 3, sparsity_weight=lam)


@pytest.mark.parametrize("tree, message", [
    ([-1, 2, 1], "cycle"),
    ([-1, 0, 5], "parent entries"),
    ([-1, 0, 1, 1], "4 nodes but the code has 3"),
    ({"depth": 1, "branching": 3}, "4 nodes"),
    ({"depth": 1, "width": 3}, "tree"),
    ("root", "parent list"),
])
def test_invalid_trees_are_config_errors(tree, message):
    with pytest.raises(ConfigError, match=message):
        create_model("lateral_inhibition", 4, 3, tree=tree)


@pytest.mark.parametrize("params, message", [
    ({"method": "newton"}, "method"),
    ({"inhibition": "random"}, "inhibition"),
    ({"bound_norm": "max"}, "bound_norm"),
    ({"inhibition_bound": 0.0}, "inhibition_bound"),
    ({"inhibition_rate": -1.0}, "inhibition_rate"),
    ({"inference_max_iter": 0}, "inference_max_iter"),
])
def test_bad_hyperparameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        create_model("lateral_inhibition", 4, 3, **params)

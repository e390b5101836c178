"""Tests of sparseae.coding: proximal operators and the batched ISTA/FISTA sparse-coding solvers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import sparse_encode

from sparseae.coding import (
    L1Prox,
    ProximalOperator,
    SparseCodeResult,
    duality_gap,
    fista,
    ista,
    lasso_objective,
    lipschitz_constant,
    nonnegative_soft_threshold,
    soft_threshold,
)
from sparseae.errors import ConfigError, DataError

LAM = 0.3


def make_problem(n_features=64, n_components=128, batch=50, seed=0, dtype=torch.float64):
    """Random dictionary with unit-norm atoms (columns) and Gaussian signals."""
    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(n_features, n_components, generator=gen, dtype=dtype)
    D = D / D.norm(dim=0)
    X = torch.randn(batch, n_features, generator=gen, dtype=dtype)
    return X, D


def sklearn_codes(X, D, lam, positive=False):
    # sparse_encode divides alpha by n_features before calling Lasso, whose objective is
    # (1/(2 n_features))‖x − zD‖² + (alpha/n_features)‖z‖₁; so sparse_encode's alpha *is* λ of
    # ½‖x − Dz‖² + λ‖z‖₁ (checked through the KKT conditions in test_sklearn_alpha_is_lambda).
    codes = sparse_encode(X.numpy(), D.T.numpy(), algorithm="lasso_cd", alpha=lam,
                          positive=positive, max_iter=5000)
    return torch.from_numpy(codes)


def solve_exactly(X, D, lam=LAM, **kw):
    return fista(X, D, lam, max_iter=20000, tol=1e-12, stop="duality_gap", **kw)


@pytest.fixture(scope="module")
def problem():
    return make_problem()


@pytest.fixture(scope="module")
def solution(problem):
    X, D = problem
    return solve_exactly(X, D)


# ---------------------------------------------------------------------------- proximal operators


def test_soft_threshold_by_hand():
    v = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0])
    assert soft_threshold(v, 1.0).tolist() == [-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 2.0]
    assert nonnegative_soft_threshold(v, 1.0).tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 2.0]
    assert soft_threshold(v, 0.0).tolist() == v.tolist()
    # per-unit thresholds broadcast over the batch
    V = torch.tensor([[2.0, -2.0, 0.5], [-4.0, 1.0, -0.25]])
    theta = torch.tensor([1.0, 3.0, 0.25])
    assert soft_threshold(V, theta).tolist() == [[1.0, 0.0, 0.25], [-3.0, 0.0, 0.0]]
    assert nonnegative_soft_threshold(V, theta).tolist() == [[1.0, 0.0, 0.25], [0.0, 0.0, 0.0]]
    assert soft_threshold(V.double(), theta.double()).dtype == torch.float64


@pytest.mark.parametrize("theta", [0.0, 0.3, 1.0, 2.5])
def test_prox_is_argmin_on_a_grid(theta):
    v = torch.linspace(-4, 4, 41, dtype=torch.float64)
    grid = torch.linspace(-6, 6, 120001, dtype=torch.float64)  # spacing 1e-4
    cost = 0.5 * (grid[None, :] - v[:, None]) ** 2 + theta * grid.abs()[None, :]
    brute = grid[cost.argmin(dim=1)]
    assert torch.allclose(soft_threshold(v, theta), brute, atol=1e-4, rtol=0)
    cost_nn = torch.where(grid[None, :] >= 0, cost, torch.inf)
    brute_nn = grid[cost_nn.argmin(dim=1)]
    assert torch.allclose(nonnegative_soft_threshold(v, theta), brute_nn, atol=1e-4, rtol=0)


def test_l1prox_objects():
    v = torch.tensor([[-2.0, 0.5, 3.0]])
    assert isinstance(L1Prox(), ProximalOperator)
    assert L1Prox()(v, 1.0).tolist() == [[-1.0, 0.0, 2.0]]
    assert L1Prox(nonnegative=True)(v, 1.0).tolist() == [[0.0, 0.0, 2.0]]
    assert L1Prox().penalty(v, 2.0).tolist() == [11.0]
    assert L1Prox().penalty(v, torch.tensor([1.0, 2.0, 0.0])).tolist() == [3.0]
    with pytest.raises(TypeError):
        ProximalOperator()  # abstract


# ---------------------------------------------------------------------------- Lipschitz constant


@pytest.mark.parametrize("shape", [(64, 128), (100, 30), (8, 8)])
def test_lipschitz_constant_matches_eigvalsh(shape):
    gen = torch.Generator().manual_seed(1)
    D = torch.randn(*shape, generator=gen, dtype=torch.float64)
    true = torch.linalg.eigvalsh(D.T @ D).max()
    L = lipschitz_constant(D, n_iter=200)
    assert L.dtype == torch.float64 and L.ndim == 0
    assert true <= L <= 1.01 * true * (1 + 1e-12)  # safe step, inflation at most 1 %
    assert L / 1.01 == pytest.approx(float(true), rel=1e-3)
    # reproducible with a generator, and the default is deterministic
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert lipschitz_constant(D, generator=g1) == lipschitz_constant(D, generator=g2)
    assert lipschitz_constant(D) == lipschitz_constant(D)
    assert lipschitz_constant(D.float()).dtype == torch.float32


def test_lipschitz_constant_of_zero_dictionary():
    assert float(lipschitz_constant(torch.zeros(4, 3))) == 0.0


# ---------------------------------------------------------------------------- agreement with sklearn


def test_sklearn_alpha_is_lambda(problem):
    X, D = problem
    Z = sklearn_codes(X, D, LAM)
    corr = (X - Z @ D.T) @ D  # Dᵀr: |·| ≤ λ everywhere, = λ·sign(z) on the support
    assert corr.abs().max() <= LAM * (1 + 1e-5)
    support = Z != 0
    assert torch.allclose(corr[support], LAM * Z[support].sign(), rtol=1e-5, atol=0)


def test_fista_matches_sklearn_lasso_cd(problem, solution):
    X, D = problem
    Z_sk = sklearn_codes(X, D, LAM)
    F_sk = lasso_objective(X, D, Z_sk, LAM)
    assert solution.converged
    assert isinstance(solution, SparseCodeResult)
    assert solution.codes.shape == (50, 128) and solution.objective.shape == (50,)
    assert torch.allclose(solution.objective, lasso_objective(X, D, solution.codes, LAM))
    rel = (solution.objective - F_sk).abs() / F_sk
    assert rel.max() < 1e-6
    assert solution.objective.sum() <= F_sk.sum() * (1 + 1e-9)  # never worse than sklearn
    # codes: the solution is unique here (the support is far smaller than n_features)
    assert torch.allclose(solution.codes, Z_sk, atol=1e-4, rtol=0)
    assert ((solution.codes != 0) == (Z_sk != 0)).float().mean() > 0.99
    assert (solution.codes != 0).float().mean() < 0.5  # and the codes are sparse


def test_fista_codes_match_sklearn_when_strongly_convex():
    X, D = make_problem(n_features=64, n_components=32, batch=40, seed=3)  # DᵀD ≻ 0
    result = solve_exactly(X, D, lam=0.2)
    Z_sk = sklearn_codes(X, D, 0.2)
    assert torch.allclose(result.codes, Z_sk, atol=1e-6, rtol=0)
    F_sk = lasso_objective(X, D, Z_sk, 0.2)
    assert ((result.objective - F_sk).abs() / F_sk).max() < 1e-8


def test_nonnegative_fista_matches_sklearn_positive(problem):
    X, D = problem
    result = solve_exactly(X, D, nonnegative=True)
    assert (result.codes >= 0).all()
    Z_sk = sklearn_codes(X, D, LAM, positive=True)
    F_sk = lasso_objective(X, D, Z_sk, LAM)
    assert ((result.objective - F_sk).abs() / F_sk).max() < 1e-6
    assert torch.allclose(result.codes, Z_sk, atol=1e-4, rtol=0)
    gap = duality_gap(X, D, result.codes, LAM, nonnegative=True)
    assert (gap / result.objective).max() < 1e-10


def test_ista_converges_to_the_same_solution(problem, solution):
    X, D = problem
    result = ista(X, D, LAM, max_iter=50000, tol=1e-10, stop="duality_gap")
    assert result.converged
    assert ((result.objective - solution.objective).abs() / solution.objective).max() < 1e-8


# ---------------------------------------------------------------------------- convergence behaviour


@pytest.mark.parametrize("restart", [None, "gradient", "objective"])
def test_fista_needs_fewer_iterations_than_ista(problem, solution, restart):
    X, D = problem
    target = float(solution.objective.mean()) * (1 + 1e-4)
    kw = dict(max_iter=800, stop="none", return_history=True)
    h_ista = ista(X, D, LAM, **kw).history
    h_fista = fista(X, D, LAM, restart=restart, **kw).history

    def first_below(h):
        hits = [i for i, value in enumerate(h) if value <= target]
        return hits[0] + 1 if hits else len(h) + 1

    assert len(h_ista) == len(h_fista) == 800
    assert first_below(h_fista) < first_below(h_ista) <= 800
    assert first_below(h_fista) < 0.5 * first_below(h_ista)
    # ISTA with step 1/L never increases the objective
    h = np.asarray(h_ista)
    assert (np.diff(h) <= 1e-12 * h[:-1]).all()


def test_duality_gap_nonnegative_and_vanishes(problem, solution):
    X, D = problem
    gen = torch.Generator().manual_seed(7)
    F_star = solution.objective
    for Z in [torch.zeros(50, 128, dtype=torch.float64),
              torch.randn(50, 128, generator=gen, dtype=torch.float64),
              0.1 * torch.randn(50, 128, generator=gen, dtype=torch.float64),
              fista(X, D, LAM, max_iter=20, stop="none").codes]:
        gap = duality_gap(X, D, Z, LAM)
        assert gap.shape == (50,)
        assert (gap >= 0).all()
        # the gap bounds the suboptimality
        assert (lasso_objective(X, D, Z, LAM) - F_star <= gap * (1 + 1e-9) + 1e-12).all()
    gap = duality_gap(X, D, solution.codes, LAM)
    assert (gap >= 0).all() and gap.sum() <= 1e-12 * F_star.sum() and (gap / F_star).max() < 1e-9
    # the gap of the iterates decreases to 0
    gaps = [float(duality_gap(X, D, fista(X, D, LAM, max_iter=m, stop="none").codes, LAM).max())
            for m in (10, 100, 1000)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-8


@pytest.mark.parametrize("stop", ["relative_change", "duality_gap"])
@pytest.mark.parametrize("solver", [ista, fista])
def test_warm_start_from_solution_converges_in_two_checks(problem, solution, stop, solver):
    X, D = problem
    result = solver(X, D, LAM, z0=solution.codes, max_iter=1000, tol=1e-8, stop=stop,
                    check_every=10)
    assert result.converged and result.n_iter <= 20
    assert torch.allclose(result.codes, solution.codes, atol=1e-8)


def test_stop_rules_and_history(problem):
    X, D = problem
    result = fista(X, D, LAM, max_iter=37, stop="none", return_history=True)
    assert result.n_iter == 37 and not result.converged and len(result.history) == 37
    assert result.history[-1] == pytest.approx(float(result.objective.mean()), rel=1e-12)
    assert fista(X, D, LAM, max_iter=37).history is None
    loose = fista(X, D, LAM, max_iter=5000, tol=1e-3)
    tight = fista(X, D, LAM, max_iter=5000, tol=1e-7)
    assert loose.converged and tight.converged
    assert loose.n_iter % 10 == 0 and loose.n_iter < tight.n_iter
    certified = fista(X, D, LAM, max_iter=5000, tol=1e-6, stop="duality_gap")
    gap = duality_gap(X, D, certified.codes, LAM)
    assert certified.converged and gap.sum() <= 1e-6 * certified.objective.sum()
    checked = fista(X, D, LAM, max_iter=5000, tol=1e-3, check_every=3)
    assert checked.n_iter % 3 == 0
    # the last iteration is always checked
    capped = fista(X, D, LAM, max_iter=5, tol=1.0, check_every=10)
    assert capped.converged and capped.n_iter == 5


def test_batch_rows_are_independent(problem):
    X, D = problem
    full = fista(X, D, LAM, max_iter=200, stop="none").codes
    parts = torch.cat([fista(X[i:i + 7], D, LAM, max_iter=200, stop="none").codes
                       for i in range(0, 50, 7)])
    assert torch.allclose(full, parts, atol=1e-10)


def test_gram_and_dictionary_products_agree(problem):
    X, D = problem
    a = fista(X, D, LAM, max_iter=300, stop="none", gram=True)
    b = fista(X, D, LAM, max_iter=300, stop="none", gram=False)
    assert torch.allclose(a.codes, b.codes, atol=1e-8)
    c = ista(X, D, LAM, max_iter=300, stop="none", gram=True)
    d = ista(X, D, LAM, max_iter=300, stop="none", gram=False)
    assert torch.allclose(c.codes, d.codes, atol=1e-10)


def test_per_unit_lambda_satisfies_kkt(problem):
    X, D = problem
    lam = torch.linspace(0.1, 0.6, 128, dtype=torch.float64)
    result = fista(X, D, lam, max_iter=20000, tol=1e-12, stop="duality_gap")
    assert result.converged
    Z = result.codes
    corr = (X - Z @ D.T) @ D
    assert (corr.abs() <= lam * (1 + 1e-5)).all()
    support = Z != 0
    assert torch.allclose(corr[support], (lam.expand_as(Z) * Z.sign())[support], rtol=1e-5)
    assert torch.allclose(result.objective, lasso_objective(X, D, Z, lam))


def test_float32_numpy_and_mixed_dtypes(problem, solution):
    X, D = problem
    result = fista(X.float(), D.float(), LAM, max_iter=2000, tol=1e-6)
    assert result.codes.dtype == torch.float32 and result.objective.dtype == torch.float32
    assert result.converged
    rel = (result.objective.double() - solution.objective).abs() / solution.objective
    assert rel.max() < 1e-4
    from_numpy = fista(X.numpy(), D.numpy(), LAM, max_iter=50, stop="none")
    assert torch.equal(from_numpy.codes, fista(X, D, LAM, max_iter=50, stop="none").codes)
    mixed = fista(X.float(), D, LAM, max_iter=5, stop="none")
    assert mixed.codes.dtype == torch.float64
    given_L = fista(X, D, LAM, L=lipschitz_constant(D), max_iter=50, stop="none")
    assert torch.allclose(given_L.codes, from_numpy.codes)


def test_large_lambda_and_zero_dictionary_give_zero_codes(problem):
    X, D = problem
    lam_max = float((X @ D).abs().max())  # for λ ≥ ‖Dᵀx‖∞ the solution is z = 0
    for solver in (ista, fista):
        result = solver(X, D, lam_max * 1.001, stop="duality_gap", tol=1e-12)
        assert result.converged and result.n_iter == 10 and (result.codes == 0).all()
    for dtype in (torch.float32, torch.float64):
        zero = fista(X.to(dtype), torch.zeros(64, 128, dtype=dtype), 100.0)
        assert zero.converged and (zero.codes == 0).all()
        assert torch.allclose(zero.objective, 0.5 * X.to(dtype).square().sum(dim=1))
    assert soft_threshold(torch.tensor([1.0, -2.0]), float("inf")).tolist() == [0.0, 0.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(problem, solution):
    X, D = problem
    result = solve_exactly(X.cuda(), D.cuda())
    assert result.codes.is_cuda and result.objective.is_cuda
    assert torch.allclose(result.objective.cpu(), solution.objective, rtol=1e-9)
    r32 = fista(X.float().cuda(), D.float().cuda(), LAM, max_iter=2000, tol=1e-6)
    assert r32.codes.dtype == torch.float32 and r32.converged


# ---------------------------------------------------------------------------- errors


def test_bad_input_raises(problem):
    X, D = problem
    for lam in (0, 0.0, -1.0):
        with pytest.raises(ConfigError, match="> 0"):
            fista(X, D, lam)
    with pytest.raises(ConfigError, match="> 0"):
        ista(X, D, torch.zeros(128, dtype=torch.float64))
    with pytest.raises(ConfigError):
        fista(X, D, float("nan"))
    with pytest.raises(ConfigError):
        fista(X, D, torch.ones(7))  # does not broadcast to (batch, n_components)
    with pytest.raises(DataError, match=r"\(64, 128\).*\(50, 63\)"):
        fista(X[:, :63], D, LAM)
    bad = X.clone()
    bad[3, 5] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        fista(bad, D, LAM)
    bad[3, 5] = float("inf")
    with pytest.raises(DataError):
        ista(bad, D, LAM)
    for max_iter in (0, -3):
        with pytest.raises(ConfigError, match="max_iter"):
            fista(X, D, LAM, max_iter=max_iter)
    with pytest.raises(ConfigError, match="stop"):
        fista(X, D, LAM, stop="sometimes")
    with pytest.raises(ConfigError, match="restart"):
        fista(X, D, LAM, restart="always")
    with pytest.raises(ConfigError):
        fista(X, D, LAM, check_every=0)
    with pytest.raises(ConfigError):
        fista(X, D, LAM, L=-1.0)
    with pytest.raises(DataError, match="z0"):
        fista(X, D, LAM, z0=torch.zeros(50, 127, dtype=torch.float64))
    with pytest.raises(DataError):
        fista(X[0], D, LAM)  # 1-D
    with pytest.raises(ConfigError, match="nonnegative"):
        fista(X, D, LAM, nonnegative=True, prox=L1Prox())
    with pytest.raises(ConfigError):
        fista(X, D, LAM, prox=soft_threshold)  # a function, not a ProximalOperator
    with pytest.raises(DataError):
        duality_gap(X, D, torch.zeros(50, 3), LAM)
    with pytest.raises(ConfigError):
        lasso_objective(X, D, torch.zeros(50, 128), -0.1)

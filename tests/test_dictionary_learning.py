"""Online dictionary learning (sparseae.coding.online): the update, the statistics, recovery."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparseae.coding import sparse_encode
from sparseae.coding.online import (
    OnlineDictionaryLearner,
    _bcd_sweep_numpy,
    _sweep,
    online_dictionary_learning,
    sparse_coding_objective,
    update_dictionary,
)
from sparseae.errors import ConfigError, DataError

pytest.importorskip("numba")


def _planted(seed=0, n=3000, n_features=20, k=15, nnz=3, noise=0.01):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((k, n_features))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = np.zeros((n, k))
    support = np.argsort(rng.random((n, k)), axis=1)[:, :nnz]
    values = rng.choice([-1, 1], size=(n, nnz)) * rng.uniform(0.5, 1.5, size=(n, nnz))
    np.put_along_axis(Z, support, values, axis=1)
    return Z @ D + noise * rng.standard_normal((n, n_features)), D


def _stats(seed=1, k=12, n_features=9, n=200):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, k)) * (rng.random((n, k)) < 0.3)
    X = rng.standard_normal((n, n_features))
    D = rng.standard_normal((k, n_features))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return Z.T @ Z / n, Z.T @ X / n, D, X


def _surrogate(D, A, B):
    """½ tr(D A Dᵀ)... in row layout: ½ Σ_jl A_jl d_j·d_l − Σ_j b_j·d_j."""
    return 0.5 * np.einsum("jl,jf,lf->", A, D, D) - np.einsum("jf,jf->", B, D)


def test_column_update_is_the_exact_minimiser_float64_gradcheck():
    """Without the ball constraint active, the update of atom j zeroes the surrogate's gradient in
    d_j (autograd, float64); with it, the atom is the projection of that minimiser."""
    A, B, D, X = _stats()
    A = A + 5 * np.eye(len(A))  # small steps: the updated atoms stay inside the unit ball
    D = 0.1 * D
    j = 0
    new = D.copy()
    _sweep(new, A, B, False, 0.0)
    Dt = torch.tensor(np.vstack([new[:1], D[1:]]), dtype=torch.float64, requires_grad=True)
    At, Bt = torch.tensor(A), torch.tensor(B)
    value = 0.5 * torch.einsum("jl,jf,lf->", At, Dt, Dt) - (Bt * Dt).sum()
    (grad,) = torch.autograd.grad(value, Dt)
    assert np.linalg.norm(new[j]) < 1
    assert float(grad[j].abs().max()) < 1e-12
    # the autograd gradient is the closed form D A − B (row layout: A D − B)
    Dt2 = torch.tensor(D, dtype=torch.float64, requires_grad=True)
    value = 0.5 * torch.einsum("jl,jf,lf->", At, Dt2, Dt2) - (Bt * Dt2).sum()
    (grad,) = torch.autograd.grad(value, Dt2)
    np.testing.assert_allclose(grad.numpy(), A @ D - B, atol=1e-13)


def test_compiled_sweep_equals_numpy_and_decreases_the_surrogate():
    A, B, D, X = _stats()
    compiled, reference = D.copy(), D.copy()
    values = [_surrogate(D, A, B)]
    for _ in range(5):
        _sweep(compiled, A, B, False, 0.0)
        values.append(_surrogate(compiled, A, B))
        _bcd_sweep_numpy(reference, A, B, False, 0.0, np.zeros(len(A), bool), None)
    np.testing.assert_allclose(compiled, reference, atol=1e-12)
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:], strict=False))
    assert values[-1] < values[0] - 1e-3
    assert np.all(np.linalg.norm(compiled, axis=1) <= 1 + 1e-12)
    positive = D.copy()
    _sweep(positive, A, B, True, 0.0)
    assert positive.min() >= 0


def test_unused_atoms_are_resampled_from_the_data():
    A, B, D, X = _stats()
    A[3, :] = A[:, 3] = 0.0
    n = update_dictionary(D, A, B, X, rng=np.random.default_rng(0))
    assert n == 1
    cos = np.abs(X @ D[3]) / np.linalg.norm(X, axis=1)
    assert cos.max() == pytest.approx(1.0, abs=1e-12)   # a normalized row of X


def test_statistics_follow_the_minibatch_weighting():
    X, _ = _planted(2, n=64)
    learner = OnlineDictionaryLearner(15, 0.1, random_state=0)
    learner.initialize(X)
    D0 = learner.components_.copy()
    Z = sparse_encode(X[:32], D0, algorithm="lasso_lars", alpha=0.1)
    learner.partial_fit(X[:32])
    np.testing.assert_allclose(learner.A_, Z.T @ Z / 32, atol=1e-12)   # β = 0 at the first step
    np.testing.assert_allclose(learner.B_, Z.T @ X[:32] / 32, atol=1e-12)
    A1 = learner.A_.copy()
    beta = learner._beta(32)
    D1 = learner.components_.copy()
    Z2 = sparse_encode(X[32:], D1, algorithm="lasso_lars", alpha=0.1)
    learner.partial_fit(X[32:])
    assert 0 < beta < 1
    np.testing.assert_allclose(learner.A_, beta * A1 + Z2.T @ Z2 / 32, atol=1e-12)
    assert learner.n_steps_ == 2


def _recovery(D_true, components):
    """For each planted atom, the largest |cos| with a learned one: (k_true,)."""
    unit = components / np.maximum(np.linalg.norm(components, axis=1, keepdims=True), 1e-300)
    return np.abs(D_true @ unit.T).max(axis=1)


def test_converges_to_a_planted_dictionary_and_lowers_the_objective():
    """From atoms 0.8 (cos) away from the planted ones, learning returns to them (≥ 0.99)."""
    X, D_true = _planted(0)
    rng = np.random.default_rng(7)
    start = D_true + 0.75 * rng.standard_normal(D_true.shape) / np.sqrt(D_true.shape[1])
    start /= np.linalg.norm(start, axis=1, keepdims=True)
    assert _recovery(D_true, start).mean() < 0.85
    before = sparse_coding_objective(X, start, 0.05)
    result = online_dictionary_learning(X, 15, 0.05, n_epochs=3, batch_size=256, dict_init=start,
                                        random_state=0)
    after = sparse_coding_objective(X, result.components, 0.05)
    best = sparse_coding_objective(X, D_true, 0.05)
    assert after < 0.6 * before and after <= 1.02 * best
    assert _recovery(D_true, result.components).mean() >= 0.99
    assert result.n_steps == 3 * 12 and result.n_epochs == pytest.approx(3.0)
    assert np.mean(result.costs[-12:]) < 0.7 * np.mean(result.costs[:3])


def test_recovers_planted_atoms_from_data():
    """From random samples, a 2× overcomplete dictionary finds every planted atom (measured mean
    0.977, worst 0.946 at the time of writing)."""
    X, D_true = _planted(0, n_features=20, k=8, nnz=2)
    result = online_dictionary_learning(X, 16, 0.05, n_epochs=5, batch_size=256, random_state=0)
    recovery = _recovery(D_true, result.components)
    assert recovery.mean() >= 0.95 and recovery.min() >= 0.9, recovery


def test_positive_codes_and_dictionary_and_other_coders():
    X, _ = _planted(3, n=600)
    X = np.abs(X)
    result = online_dictionary_learning(X, 10, 0.05, n_epochs=1, batch_size=100, random_state=0,
                                        positive_code=True, positive_dict=True)
    assert result.components.min() >= 0
    Z = result.learner.encode(X[:50])
    assert Z.min() >= 0
    for algorithm, extra in (("lasso_cd", {}), ("omp", {"n_nonzero_coefs": 3}),
                             ("lars", {"n_nonzero_coefs": 3})):
        out = online_dictionary_learning(X, 10, 0.05, n_epochs=1, batch_size=100, random_state=0,
                                         algorithm=algorithm, **extra)
        assert np.isfinite(out.components).all() and out.n_steps == 6


def test_seeded_runs_repeat_and_dict_init_is_used():
    X, D_true = _planted(4, n=500)
    a = online_dictionary_learning(X, 15, 0.05, batch_size=100, random_state=3)
    b = online_dictionary_learning(X, 15, 0.05, batch_size=100, random_state=3)
    np.testing.assert_array_equal(a.components, b.components)
    c = online_dictionary_learning(X, 15, 0.05, batch_size=100, dict_init=D_true, n_epochs=0.2,
                                   random_state=0)
    assert np.abs(np.sum(c.components * D_true, axis=1)).min() > 0.9


def test_bad_input_errors():
    X, _ = _planted(5, n=50)
    with pytest.raises(DataError, match="NaN"):
        online_dictionary_learning(np.full((4, 3), np.nan), 2, 0.1)
    with pytest.raises(DataError, match="2-D"):
        online_dictionary_learning(np.ones(5), 2, 0.1)
    with pytest.raises(ConfigError, match="algorithm"):
        online_dictionary_learning(X, 4, 0.1, algorithm="fista")
    with pytest.raises(ConfigError, match="positive_code"):
        OnlineDictionaryLearner(4, 0.1, algorithm="omp", positive_code=True)
    with pytest.raises(DataError, match="dict_init"):
        OnlineDictionaryLearner(4, 0.1, dict_init=np.ones((3, 20)))
    with pytest.raises(ConfigError, match="n_epochs"):
        online_dictionary_learning(X, 4, 0.1, n_epochs=0)
    with pytest.raises(ConfigError, match="alpha"):
        online_dictionary_learning(X, 4, -1.0)
    learner = OnlineDictionaryLearner(4, 0.1, random_state=0)
    learner.partial_fit(X)
    with pytest.raises(DataError, match="features"):
        learner.partial_fit(X[:, :5])

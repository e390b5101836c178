"""sparseae.coding.sparse_encode against scikit-learn's, the duality-gap certificate, edge cases
and input errors."""
from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import sparse_encode as sk_sparse_encode
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import orthogonal_mp_gram

from sparseae.coding import duality_gap, sparse_encode
from sparseae.coding import encode as encode_module
from sparseae.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]


def _bench_module():
    spec = importlib.util.spec_from_file_location(
        "bench_fista_vs_sklearn", ROOT / "benchmarks" / "bench_fista_vs_sklearn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_problem(n_samples=40, n_features=20, n_components=50, seed=0):
    rng = np.random.default_rng(seed)
    dictionary = rng.standard_normal((n_components, n_features))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    return rng.standard_normal((n_samples, n_features)), dictionary


@pytest.fixture(scope="module")
def dct_problem():
    """200 centred 8×8 china.jpg patches over the 64×256 overcomplete DCT (the benchmark's)."""
    X, D, _ = _bench_module().build_problem(200, 64, 256, "dct", 0)
    alpha = 0.1 * float(np.abs(X @ D).max(axis=1).mean())
    return X, np.ascontiguousarray(D.T), alpha


def objective(X, dictionary, Z, alpha):
    return 0.5 * ((X - Z @ dictionary) ** 2).sum(axis=1) + alpha * np.abs(Z).sum(axis=1)


def gap(X, dictionary, Z, alpha, positive=False):
    return duality_gap(torch.from_numpy(X), torch.from_numpy(dictionary.T).contiguous(),
                       torch.from_numpy(Z), alpha, nonnegative=positive).numpy()


def sklearn(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sk_sparse_encode(*args, **kwargs)


# ------------------------------------------------------------------------------------------
# the Lasso solvers


@pytest.mark.parametrize("positive", [False, True])
def test_lasso_lars_matches_sklearn_random(positive):
    X, dictionary = random_problem()
    Z = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=0.3, positive=positive)
    Z_sk = sklearn(X, dictionary, algorithm="lasso_lars", alpha=0.3, positive=positive)
    assert isinstance(Z, np.ndarray) and Z.shape == (40, 50) and Z.dtype == np.float64
    np.testing.assert_allclose(Z, Z_sk, atol=1e-10)
    np.testing.assert_allclose(objective(X, dictionary, Z, 0.3),
                               objective(X, dictionary, Z_sk, 0.3), rtol=1e-12)
    assert 2 < (Z != 0).sum(axis=1).mean() < 20
    if positive:
        assert Z.min() >= 0


@pytest.mark.parametrize("algorithm", ["lasso_lars", "lasso_cd"])
def test_exact_solvers_certified_on_dct_patches(dct_problem, algorithm):
    """Real problem: relative duality gap ≤ 1e-10 per sample, and never worse than sklearn."""
    X, dictionary, alpha = dct_problem
    Z = sparse_encode(X, dictionary, algorithm=algorithm, alpha=alpha)
    F = objective(X, dictionary, Z, alpha)
    assert (gap(X, dictionary, Z, alpha) <= 1e-10 * F).all()
    Z_sk = sklearn(X, dictionary, algorithm=algorithm, alpha=alpha, max_iter=10000)
    F_sk = objective(X, dictionary, Z_sk, alpha)
    assert (F <= F_sk + 1e-12 * F_sk).all()
    assert F.mean() < F_sk.mean() or algorithm == "lasso_lars"
    assert 10 < (Z != 0).sum(axis=1).mean() < 40  # ~25 atoms per patch at this λ


@pytest.mark.parametrize("positive", [False, True])
def test_lasso_cd_matches_lars_and_sklearn(positive):
    X, dictionary = random_problem(seed=1)
    Z = sparse_encode(X, dictionary, algorithm="lasso_cd", alpha=0.2, positive=positive)
    Z_lars = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=0.2, positive=positive)
    Z_sk = sklearn(X, dictionary, algorithm="lasso_cd", alpha=0.2, positive=positive)
    np.testing.assert_allclose(Z, Z_lars, atol=1e-6)
    np.testing.assert_allclose(Z, Z_sk, atol=1e-3)  # sklearn stops at its own tol=1e-8
    F = objective(X, dictionary, Z, 0.2)
    assert (gap(X, dictionary, Z, 0.2, positive) <= 1e-10 * F).all()
    assert (F <= objective(X, dictionary, Z_sk, 0.2) + 1e-12).all()


@pytest.mark.parametrize("positive", [False, True])
def test_fista_reaches_the_lars_objective(positive):
    X, dictionary = random_problem(seed=2)
    Z = sparse_encode(X, dictionary, algorithm="fista", alpha=0.3, positive=positive,
                      max_iter=20000, tol=1e-9)
    Z_lars = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=0.3, positive=positive)
    F, F_lars = objective(X, dictionary, Z, 0.3), objective(X, dictionary, Z_lars, 0.3)
    assert abs(F.sum() - F_lars.sum()) <= 1e-8 * F_lars.sum()
    assert (F >= F_lars - 1e-12).all()


def test_warm_start_lasso_cd():
    X, dictionary = random_problem(seed=3)
    Z_star = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=0.25)
    # from the solution: nothing moves
    Z = sparse_encode(X, dictionary, algorithm="lasso_cd", alpha=0.25, init=Z_star)
    np.testing.assert_allclose(Z, Z_star, atol=1e-12)
    # from a poor start (wrong signs, dense): the same minimiser
    init = np.random.default_rng(0).standard_normal(Z_star.shape)
    Z = sparse_encode(X, dictionary, algorithm="lasso_cd", alpha=0.25, init=init)
    np.testing.assert_allclose(Z, Z_star, atol=1e-7)
    # init is not modified, and a warm start at the previous α's codes gives the new codes
    assert np.isfinite(init).all() and (init != 0).all()
    Z_next = sparse_encode(X, dictionary, algorithm="lasso_cd", alpha=0.2, init=Z_star)
    np.testing.assert_allclose(Z_next, sparse_encode(X, dictionary, algorithm="lasso_lars",
                                                     alpha=0.2), atol=1e-7)


def test_too_few_iterations_warn(dct_problem):
    X, dictionary, alpha = dct_problem
    for algorithm, max_iter in (("lasso_lars", 3), ("lasso_cd", 1), ("fista", 5)):
        with pytest.warns(ConvergenceWarning, match=f"{algorithm} stopped at max_iter"):
            Z = sparse_encode(X, dictionary, algorithm=algorithm, alpha=alpha, max_iter=max_iter)
        F = objective(X, dictionary, Z, alpha)
        assert (gap(X, dictionary, Z, alpha) > 1e-6 * F).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=alpha)


def test_threshold_matches_sklearn():
    X, dictionary = random_problem(seed=4)
    for positive in (False, True):
        Z = sparse_encode(X, dictionary, algorithm="threshold", alpha=0.7, positive=positive)
        Z_sk = sklearn(X, dictionary, algorithm="threshold", alpha=0.7, positive=positive)
        np.testing.assert_allclose(Z, Z_sk, atol=1e-12)
        assert (Z == 0).mean() > 0.3


# ------------------------------------------------------------------------------------------
# LARS and OMP with a number of atoms


def test_lars_matches_sklearn_and_is_equiangular():
    X, dictionary = random_problem(seed=5)
    for n_nonzero in (1, 4, 7):
        Z = sparse_encode(X, dictionary, algorithm="lars", n_nonzero_coefs=n_nonzero)
        Z_sk = sklearn(X, dictionary, algorithm="lars", n_nonzero_coefs=n_nonzero)
        np.testing.assert_allclose(Z, Z_sk, atol=1e-9)
        assert ((Z != 0).sum(axis=1) == n_nonzero).all()
    # further along the path scikit-learn's lars_path leaves it on some rows (its active
    # correlations differ); the defining property of a LAR knot is checked directly instead:
    # every active atom and the next one to enter have the same |correlation| with the residual
    for n_nonzero in (12, 19):
        Z = sparse_encode(X, dictionary, algorithm="lars", n_nonzero_coefs=n_nonzero)
        corr = np.abs((X - Z @ dictionary) @ dictionary.T)
        lam = corr.max(axis=1, keepdims=True)
        active = Z != 0
        assert (active.sum(axis=1) == n_nonzero).all()
        np.testing.assert_allclose(np.where(active, corr, lam), np.broadcast_to(lam, Z.shape),
                                   rtol=1e-10)
        assert (np.sort(np.where(active, -1, corr), axis=1)[:, -1] >= lam[:, 0] * (1 - 1e-10)).all()


def test_omp_matches_sklearn(dct_problem):
    X, dictionary, _ = dct_problem
    gram = dictionary @ dictionary.T
    for n_nonzero in (1, 10, 30):
        Z = sparse_encode(X, dictionary, algorithm="omp", n_nonzero_coefs=n_nonzero)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Z_sk = orthogonal_mp_gram(gram, dictionary @ X.T, n_nonzero_coefs=n_nonzero).T
        np.testing.assert_allclose(Z, Z_sk, atol=1e-8)
        assert ((Z != 0).sum(axis=1) == n_nonzero).all()
    # alpha: the squared residual norm to reach (a sample already within it gets no atom;
    # scikit-learn's loop adds one before testing)
    Z = sparse_encode(X, dictionary, algorithm="omp", alpha=0.002)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z_sk = orthogonal_mp_gram(gram, dictionary @ X.T, tol=0.002,
                                  norms_squared=(X ** 2).sum(axis=1)).T
    small = (X ** 2).sum(axis=1) <= 0.002
    assert 0 < small.sum() < 100 and (Z[small] == 0).all()
    np.testing.assert_allclose(Z[~small], Z_sk[~small], atol=1e-8)
    residual = ((X - Z @ dictionary) ** 2).sum(axis=1)
    assert (residual <= 0.002 + 1e-12).all() and (Z != 0).sum(axis=1).max() > 10


def test_more_atoms_than_features_gives_the_exact_fit():
    X, dictionary = random_problem(n_samples=10, n_features=8, n_components=20, seed=6)
    for algorithm in ("lars", "omp"):
        Z = sparse_encode(X, dictionary, algorithm=algorithm, n_nonzero_coefs=15)
        assert ((Z != 0).sum(axis=1) == 8).all()
        np.testing.assert_allclose(Z @ dictionary, X, atol=1e-10)
    Z = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=0.0)
    np.testing.assert_allclose(Z @ dictionary, X, atol=1e-10)


# ------------------------------------------------------------------------------------------
# edge cases


@pytest.mark.parametrize("algorithm", ["lasso_lars", "lasso_cd", "lars", "omp", "threshold",
                                       "fista"])
def test_all_zero_inputs_give_zero_codes(algorithm):
    X, dictionary = random_problem(n_samples=5)
    X[2] = 0.0
    Z = sparse_encode(X, dictionary, algorithm=algorithm, alpha=0.1 if algorithm != "omp"
                      else None)
    assert (Z[2] == 0).all() and (Z[[0, 1, 3, 4]] != 0).any(axis=1).all()
    Z = sparse_encode(np.zeros((3, 20)), dictionary, algorithm=algorithm)
    assert Z.shape == (3, 50) and (Z == 0).all()


@pytest.mark.parametrize("algorithm", ["lasso_lars", "lasso_cd", "fista", "threshold"])
def test_alpha_at_least_the_largest_correlation_gives_zero(algorithm):
    X, dictionary = random_problem(n_samples=6)
    alpha_max = np.abs(X @ dictionary.T).max()  # over all samples
    Z = sparse_encode(X, dictionary, algorithm=algorithm, alpha=alpha_max)
    if algorithm == "fista":  # iterates of floating-point steps: exactly at the boundary only rounding remains
        assert np.abs(Z).max() <= 1e-12  # (3e-16 with torch 2.13 / numpy 2.4: the shrink of c·step vs α·step)
        Z = sparse_encode(X, dictionary, algorithm=algorithm, alpha=alpha_max * (1 + 1e-9))
    assert (Z == 0).all()
    Z = sparse_encode(X, dictionary, algorithm=algorithm, alpha=0.99 * alpha_max)
    assert (Z != 0).sum() >= 1


@pytest.mark.parametrize("algorithm", ["lasso_lars", "lasso_cd"])
def test_duplicated_atoms(algorithm):
    """The same optimum as without the copies (an atom repeated, two negated)."""
    X, dictionary = random_problem(n_samples=20, n_features=8, n_components=20, seed=7)
    doubled = np.vstack([dictionary, dictionary[:3], -dictionary[3:5]])
    Z = sparse_encode(X, doubled, algorithm=algorithm, alpha=0.05)
    Z_ref = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=0.05)
    F = objective(X, doubled, Z, 0.05)
    np.testing.assert_allclose(F, objective(X, dictionary, Z_ref, 0.05), rtol=1e-10)
    assert (gap(X, doubled, Z, 0.05) <= 1e-10 * F).all()
    Z_omp = sparse_encode(X, doubled, algorithm="omp", n_nonzero_coefs=8)
    np.testing.assert_allclose(Z_omp @ doubled, X, atol=1e-9)


# ------------------------------------------------------------------------------------------
# types, devices, threads, precomputed products


def test_torch_in_torch_out_and_dtype():
    X, dictionary = random_problem(seed=8)
    Xt, Dt = torch.from_numpy(X).float(), torch.from_numpy(dictionary).float()
    for algorithm in ("lasso_lars", "omp", "threshold", "fista"):
        Z = sparse_encode(Xt, Dt, algorithm=algorithm, alpha=0.3 if algorithm != "omp" else None)
        assert isinstance(Z, torch.Tensor) and Z.dtype == torch.float32 and Z.shape == (40, 50)
    Z = sparse_encode(Xt, Dt, algorithm="lasso_lars", alpha=0.3)
    Z64 = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=0.3)
    np.testing.assert_allclose(Z.numpy(), Z64, atol=1e-5)
    Z = sparse_encode(X.astype(np.float32), dictionary.astype(np.float32), alpha=0.3)
    assert isinstance(Z, np.ndarray) and Z.dtype == np.float32
    Z = sparse_encode(np.rint(X * 3).astype(np.int64), dictionary, alpha=0.3)
    assert Z.dtype == np.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_stay_on_the_gpu():
    X, dictionary = random_problem(seed=9)
    Xc, Dc = torch.from_numpy(X).cuda(), torch.from_numpy(dictionary).cuda()
    ref = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=0.3)
    for algorithm in ("lasso_lars", "lasso_cd", "fista", "omp", "threshold"):
        Z = sparse_encode(Xc, Dc, algorithm=algorithm, alpha=0.3 if algorithm != "omp" else None,
                          tol=1e-10 if algorithm == "fista" else None, max_iter=20000)
        assert Z.device.type == "cuda"
        if algorithm in ("lasso_lars", "lasso_cd", "fista"):
            np.testing.assert_allclose(Z.cpu().numpy(), ref, atol=1e-5)


def test_threads_and_precomputed_products_give_identical_codes(dct_problem):
    X, dictionary, alpha = dct_problem
    one = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=alpha, n_jobs=1)
    two = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=alpha, n_jobs=2)
    assert np.array_equal(one, two)
    pre = sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=alpha,
                        gram=dictionary @ dictionary.T, cov=dictionary @ X.T)
    np.testing.assert_allclose(pre, one, atol=1e-12)
    omp1 = sparse_encode(X, dictionary, algorithm="omp", n_nonzero_coefs=5, n_jobs=1)
    omp2 = sparse_encode(X, dictionary, algorithm="omp", n_nonzero_coefs=5, n_jobs=-1)
    assert np.array_equal(omp1, omp2)


def test_auto_choice():
    X, dictionary = random_problem(seed=10)
    np.testing.assert_allclose(sparse_encode(X, dictionary, alpha=0.3),
                               sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=0.3))
    np.testing.assert_allclose(sparse_encode(X, dictionary, n_nonzero_coefs=4),
                               sparse_encode(X, dictionary, algorithm="omp", n_nonzero_coefs=4))
    init = sparse_encode(X, dictionary, alpha=0.3)
    np.testing.assert_allclose(sparse_encode(X, dictionary, alpha=0.25, init=init),
                               sparse_encode(X, dictionary, algorithm="lasso_lars", alpha=0.25),
                               atol=1e-7)


# ------------------------------------------------------------------------------------------
# errors


def test_bad_inputs_raise_data_errors():
    X, dictionary = random_problem(n_samples=5)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN or inf"):
        sparse_encode(bad, dictionary)
    with pytest.raises(DataError, match="features"):
        sparse_encode(X, dictionary[:, :10])
    with pytest.raises(DataError, match="empty"):
        sparse_encode(np.zeros((0, 20)), dictionary)
    with pytest.raises(DataError, match="2-D"):
        sparse_encode(X[0], dictionary)
    with pytest.raises(DataError, match="gram"):
        sparse_encode(X, dictionary, algorithm="lasso_lars", gram=np.eye(3))
    with pytest.raises(DataError, match="cov"):
        sparse_encode(X, dictionary, algorithm="omp", cov=np.zeros((50, 4)))
    with pytest.raises(DataError, match="init"):
        sparse_encode(X, dictionary, algorithm="lasso_cd", init=np.zeros((5, 3)))


def test_bad_hyperparameters_raise_config_errors():
    X, dictionary = random_problem(n_samples=5)
    cases = [
        (dict(algorithm="lasso"), "algorithm"),
        (dict(alpha=-1.0), "alpha"),
        (dict(algorithm="fista", alpha=0.0), "alpha"),
        (dict(algorithm="omp", positive=True), "positive"),
        (dict(algorithm="lars", positive=True), "positive"),
        (dict(algorithm="lars", init=np.zeros((5, 50))), "init"),
        (dict(algorithm="omp", n_nonzero_coefs=51), "n_nonzero_coefs"),
        (dict(algorithm="omp", n_nonzero_coefs=0), "n_nonzero_coefs"),
        (dict(max_iter=0), "max_iter"),
        (dict(n_jobs=0), "n_jobs"),
        (dict(tol=-1e-3), "tol"),
        (dict(positive="yes"), "positive"),
    ]
    for kwargs, word in cases:
        with pytest.raises(ConfigError, match=word):
            sparse_encode(X, dictionary, **kwargs)


def test_missing_numba_is_said_plainly(monkeypatch):
    X, dictionary = random_problem(n_samples=3)
    monkeypatch.setattr(encode_module, "_kernels", None)
    for name in [name for name in sys.modules if name.startswith("sparseae.coding.kernels")]:
        monkeypatch.delitem(sys.modules, name)  # the package and its solver modules: imported afresh
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now fails
    with pytest.raises(ImportError, match="pip install numba"):
        sparse_encode(X, dictionary, algorithm="lasso_lars")
    Z = sparse_encode(X, dictionary, algorithm="threshold", alpha=0.5)  # works without numba
    assert Z.shape == (3, 50)


def test_an_edit_of_the_shared_kernel_helpers_drops_the_cached_compilations(tmp_path):
    """numba re-validates a cached function against its own file only; the solvers inline
    common.py's helpers, so a changed common.py must drop every cached compilation."""
    pytest.importorskip("numba")
    from sparseae.coding.kernels import forget_stale_compilations

    cache = tmp_path / "__pycache__"
    cache.mkdir()
    (tmp_path / "common.py").write_text("A = 1\n")
    compiled = [cache / "lars._lars_sample-140.py311.nbi", cache / "lars._lars_sample-140.py311.1.nbc"]
    for path in [*compiled, cache / "lars.cpython-311.pyc"]:
        path.write_bytes(b"x")
    assert forget_stale_compilations(tmp_path)  # no stamp yet: compiled with an unknown common.py
    assert not any(path.exists() for path in compiled) and (cache / "lars.cpython-311.pyc").exists()
    for path in compiled:  # recompiled with this common.py
        path.write_bytes(b"x")
    assert not forget_stale_compilations(tmp_path) and all(path.exists() for path in compiled)
    (tmp_path / "common.py").write_text("A = 2\n")  # an edit
    assert forget_stale_compilations(tmp_path) and not any(path.exists() for path in compiled)
    assert len(list(cache.glob("common-*.stamp"))) == 1
    assert not forget_stale_compilations(tmp_path / "missing")  # no common.py there: nothing to do


def test_a_parallel_solve_leaves_torchs_thread_count_alone():
    """numba's OpenMP threading layer shares OpenMP's thread count with torch: a 2-thread solve
    must not leave torch (set to 1 thread by the user) running on 2."""
    rng = np.random.default_rng(0)
    dictionary = rng.standard_normal((64, 16))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        for algorithm in ("lasso_lars", "omp", "lasso_cd"):
            sparse_encode(rng.standard_normal((200, 16)), dictionary, algorithm=algorithm, alpha=0.1,
                          n_nonzero_coefs=3, n_jobs=2)
            assert torch.get_num_threads() == 1, algorithm
    finally:
        torch.set_num_threads(previous)

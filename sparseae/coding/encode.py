"""Sparse coding of a batch against a fixed dictionary, scikit-learn's ``sparse_encode`` API.

:func:`sparse_encode` takes ``X`` ``(n_samples, n_features)`` and ``dictionary``
``(n_components, n_features)`` (atoms are rows, as in scikit-learn) and returns the codes
``(n_samples, n_components)``: NumPy in, NumPy out; torch tensors in, tensors out on the same
device. The Lasso solvers minimise, per row,

    ½‖x − Dz‖² + α‖z‖₁        (D = dictionaryᵀ; optionally z ≥ 0)

exactly as scikit-learn means it (scikit-learn divides ``alpha`` by ``n_features`` before its
``Lasso``/``LassoLars``, whose loss carries ``1/(2·n_features)``: the same problem).

Design notes. Per-sample loops (LARS, OMP, coordinate descent) are compiled with numba: it is
made for this (wheels for Linux, macOS and Windows, no compiler at install time), and ``prange``
runs samples in parallel without the GIL. Everything works on the Gram form: ``G = DᵀD``
``(k, k)`` once per call and ``C = XD`` ``(n_samples, k)`` by one BLAS product, so a LARS or OMP
step costs O(k·|A|) (``|A|`` the active atoms) instead of O(n_features·k); ``G[A, A]`` is
factored by Cholesky updates (a row appended when an atom enters, a rotation-based rank-1 update
when one leaves), ``L⁻¹s_A`` is kept between steps, and the solves and the ``G[:, A]w`` products
are written so LLVM vectorises them. LARS ends with a solve of ``G_AA z_A = c_A − α s_A``: its
codes are exact to rounding (relative duality gap ~1e-15). ``lasso_cd`` sweeps all atoms (in
decreasing ``|dⱼᵀx|``), then the non-zero ones, alternating with Newton steps on the support
with an exact line search, and stops on the duality-gap certificate ``gap ≤ tol · objective``
computed in O(k) from the maintained ``Dᵀr``; it is the solver for warm starts. ``auto`` on the
CPU picks ``lasso_lars``: it was the fastest of these solvers at every batch size (10²–10⁵),
dictionary size (256–4,096 atoms) and λ of ``benchmarks/bench_sparse_encode.py --grid``
(coordinate descent 3–60× slower on the coherent DCT dictionaries, ~2.5× on a learned MNIST one;
figures in BENCHMARKS.md), and again in every cell of ``benchmarks/bench_sparse_encode_scaling.py``
(DCT, random and MNIST dictionaries at ~5, 15 and 50 non-zeros per code). The compiled
kernels run float64 on the CPU (threads: ``n_jobs``, else ``torch.get_num_threads()``); CUDA
tensors make a round trip through the host for them, while ``threshold`` and ``fista`` (what
``auto`` picks on a GPU) run on the tensor's device. Numba compiles on the first call (seconds)
and caches the machine code next to the module.
"""
from __future__ import annotations

import importlib
import numbers
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ..errors import ConfigError, DataError
from ..validation import check_choice, check_finite, check_number
from .solvers import _as_matrix, _check_problem, fista

__all__ = ["sparse_encode", "ALGORITHMS"]

#: The values ``algorithm`` accepts.
ALGORITHMS = ("auto", "lasso_lars", "lasso_cd", "lars", "omp", "threshold", "fista")
_LASSO = ("lasso_lars", "lasso_cd", "fista")
_COMPILED = ("lasso_lars", "lasso_cd", "lars", "omp")

_kernels = None


def _load_kernels():
    """Import :mod:`.kernels` (and numba) on first use, with one clear error if numba is missing."""
    global _kernels
    if _kernels is None:
        try:
            _kernels = importlib.import_module("sparseae.coding.kernels")
        except ImportError as exc:
            if "numba" not in str(exc):
                raise
            raise ImportError("sparse_encode's lasso_lars, lasso_cd, lars and omp need numba: "
                              "pip install numba (or use algorithm='fista' or 'threshold')"
                              ) from exc
    return _kernels


def _as_input(A: Any, name: str) -> torch.Tensor:
    """A 2-D floating tensor (NumPy integer arrays become float64), or :class:`DataError`."""
    if not isinstance(A, torch.Tensor):
        try:
            arr = np.asarray(A)
        except Exception as exc:  # ragged lists
            raise DataError(f"{name} cannot be read as a numeric array: {exc}") from None
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.float64)
        A = arr
    return _as_matrix(A, name)


def _threads(n_jobs: Any) -> int:
    if n_jobs is None:
        return torch.get_num_threads()
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ConfigError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
    if n_jobs < 0:  # -1: all cores, -2: all but one...
        import os
        return max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))
    return int(n_jobs)


def _auto(device: torch.device, n_nonzero_coefs: Any, alpha: Any, init: Any) -> str:
    """The solver ``algorithm="auto"`` picks (see :func:`sparse_encode`)."""
    if n_nonzero_coefs is not None and alpha is None and init is None:
        return "omp"
    if device.type != "cpu":
        return "fista"
    return "lasso_lars" if init is None else "lasso_cd"


def sparse_encode(X: Any, dictionary: Any, *, gram: Any = None, cov: Any = None,
                  algorithm: str = "auto", n_nonzero_coefs: int | None = None,
                  alpha: float | None = None, init: Any = None, max_iter: int = 1000,
                  n_jobs: int | None = None, check_input: bool = True, positive: bool = False,
                  tol: float | None = None) -> Any:
    """Sparse codes of ``X`` ``(n_samples, n_features)`` over ``dictionary``
    ``(n_components, n_features)``; returns ``(n_samples, n_components)``.

    ``algorithm``:

    * ``"lasso_lars"``: the exact Lasso solution by the LARS homotopy (compiled).
    * ``"lasso_cd"``: the Lasso by coordinate descent on ``G = DᵀD`` with active sets (compiled),
      stopped when the duality gap is ``≤ tol·objective`` (``tol`` default 1e-10); starts from
      ``init`` when given.
    * ``"fista"``: the Lasso by batched FISTA (:func:`~sparseae.coding.solvers.fista`) on the
      input's device, stopped when ``Σ gap ≤ tol·Σ objective`` (default 1e-6) or after
      ``max_iter`` iterations; starts from ``init`` when given.
    * ``"lars"``: least angle regression stopped with ``n_nonzero_coefs`` atoms (compiled).
    * ``"omp"``: orthogonal matching pursuit with ``n_nonzero_coefs`` atoms, or, when ``alpha``
      is given, until the squared residual norm is ``≤ alpha`` (compiled, Cholesky updates).
    * ``"threshold"``: ``sign(c)·max(|c| − alpha, 0)`` with ``c = dictionary·x``.
    * ``"auto"`` (default): ``"omp"`` when ``n_nonzero_coefs`` is given and ``alpha`` is not;
      otherwise the Lasso: ``"fista"`` for tensors on a GPU; on the CPU ``"lasso_cd"`` when
      ``init`` is given (the solver that uses a warm start), else ``"lasso_lars"`` (fastest
      measured at every size of ``benchmarks/bench_sparse_encode_scaling.py``).

    ``alpha``: the ℓ1 weight of the Lasso solvers (≥ 0; > 0 for ``fista``), the threshold of
    ``threshold``, the residual target of ``omp``; default 1.0 (``None`` for ``omp``).
    ``n_nonzero_coefs``: atoms for ``lars``/``omp``, default ``min(max(n_features // 10, 1),
    n_components)``; more atoms than features are allowed (the fit is exact earlier).
    ``gram``: precomputed ``dictionary @ dictionary.T`` ``(n_components, n_components)``;
    ``cov``: precomputed ``dictionary @ X.T`` ``(n_components, n_samples)`` (both used by the
    compiled solvers, ``cov`` also by ``threshold``).
    ``max_iter``: LARS steps, CD sweeps or FISTA iterations. ``n_jobs``: CPU threads of the
    compiled solvers (default ``torch.get_num_threads()``; −1 all cores). ``positive``: codes ≥ 0
    (Lasso solvers and ``threshold``). ``check_input=False`` skips the NaN/inf scan.
    """
    check_choice(algorithm, "algorithm", ALGORITHMS)
    check_number(max_iter, "max_iter", low=1, integer=True)
    if not isinstance(positive, (bool, np.bool_)):
        raise ConfigError(f"positive must be True or False, got {positive!r}")
    if tol is not None:
        check_number(tol, "tol", low=0)
    Xt, D = _problem(X, dictionary, check_input)
    n_samples, n_features = Xt.shape
    k = D.shape[1]
    out_dtype, device = Xt.dtype, Xt.device
    if algorithm == "auto":
        algorithm = _auto(device, n_nonzero_coefs, alpha, init)
    n_nonzero_coefs, alpha = _algorithm_settings(algorithm, n_nonzero_coefs, alpha, positive, init, n_features, k)
    C = None if cov is None else _precomputed(
        cov, "cov", "be dictionary @ X.T of shape (n_components, n_samples)", (k, n_samples), Xt, check_input).T
    if init is not None:
        init = _precomputed(init, "init", "have shape (n_samples, n_components)", (n_samples, k), Xt, check_input)
    with torch.no_grad():
        Z = _codes(algorithm, Xt, D, C, gram, init, alpha, n_nonzero_coefs, max_iter, n_jobs, bool(positive), tol)
        Z = Z.to(device=device, dtype=out_dtype)
    if isinstance(X, torch.Tensor):
        return Z
    return Z.cpu().numpy()


def _codes(algorithm: str, X: torch.Tensor, D: torch.Tensor, C: torch.Tensor | None, gram: Any,
           init: torch.Tensor | None, alpha: float | None, n_nonzero_coefs: int | None, max_iter: int,
           n_jobs: int | None, positive: bool, tol: float | None) -> torch.Tensor:
    """The codes ``(n_samples, n_components)`` by ``algorithm`` (settled, checked): soft
    thresholding of ``C = XD``, batched FISTA, or a compiled kernel (:func:`_compiled`)."""
    if algorithm == "threshold":
        C = X @ D if C is None else C
        return (C - alpha).clamp_min(0) if positive else torch.sign(C) * (C.abs() - alpha).clamp_min(0)
    if algorithm == "fista":
        result = fista(X, D, alpha, z0=init, max_iter=max_iter, tol=1e-6 if tol is None else tol,
                       nonnegative=positive, stop="duality_gap")
        if not result.converged:
            _warn_unconverged("fista", max_iter, stacklevel=4)
        return result.codes
    torch_threads = torch.get_num_threads()
    try:
        return _compiled(algorithm, X, D, C, gram, init, alpha, n_nonzero_coefs, max_iter,
                         _threads(n_jobs), positive, tol)
    finally:  # numba's OpenMP threading layer changes the OpenMP thread count torch reads
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)


def _problem(X: Any, dictionary: Any, check_input: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X (n_samples, n_features), D = dictionary.T (n_features, n_components))`` as tensors of
    one dtype on X's device; with ``check_input`` also checked for NaN/inf (:func:`_check_problem`)."""
    Xt = _as_input(X, "X")
    Dt = _as_input(dictionary, "dictionary")
    if Dt.shape[1] != Xt.shape[1]:
        raise DataError(f"dictionary has {Dt.shape[1]} features per atom (shape "
                        f"{tuple(Dt.shape)} = (n_components, n_features)) but X has "
                        f"{Xt.shape[1]} (shape {tuple(Xt.shape)})")
    if Dt.device != Xt.device:
        Dt = Dt.to(Xt.device)
    if check_input:
        return _check_problem(Xt, Dt.T)
    dtype = torch.promote_types(Xt.dtype, Dt.dtype)
    return Xt.to(dtype), Dt.T.to(dtype)


def _algorithm_settings(algorithm: str, n_nonzero_coefs: int | None, alpha: float | None, positive: bool,
                        init: Any, n_features: int, k: int) -> tuple[int | None, float | None]:
    """``(n_nonzero_coefs, alpha)`` checked for ``algorithm`` (not ``"auto"``), defaults filled in;
    :class:`ConfigError` for an option the algorithm does not take."""
    if positive and algorithm in ("lars", "omp"):
        raise ConfigError(f"positive=True is not supported by algorithm={algorithm!r} "
                          "(use lasso_lars, lasso_cd, fista or threshold)")
    if init is not None and algorithm not in ("lasso_cd", "fista"):
        raise ConfigError(f"init (a warm start) is used by lasso_cd and fista only, not by "
                          f"algorithm={algorithm!r}")
    if algorithm in ("lars", "omp"):
        if n_nonzero_coefs is None and (algorithm == "lars" or alpha is None):
            n_nonzero_coefs = min(max(n_features // 10, 1), k)
    if n_nonzero_coefs is not None and algorithm in ("lars", "omp"):
        check_number(n_nonzero_coefs, "n_nonzero_coefs", low=1, integer=True)
        if n_nonzero_coefs > k:
            raise ConfigError(f"n_nonzero_coefs must be <= n_components = {k}, "
                              f"got {n_nonzero_coefs}")
    if alpha is None and algorithm != "omp":
        alpha = 1.0
    if alpha is not None:
        check_number(alpha, "alpha", low=0)
        alpha = float(alpha)
    if algorithm == "fista" and alpha == 0:
        raise ConfigError("alpha must be > 0 for algorithm='fista' (use lasso_lars for alpha = 0)")
    return n_nonzero_coefs, alpha


def _precomputed(value: Any, name: str, must: str, shape: tuple[int, int], X: torch.Tensor,
                 check_input: bool) -> torch.Tensor:
    """``value`` (``cov`` or ``init``) as a tensor on X's device and dtype, checked to have ``shape``
    (:class:`DataError` saying what it ``must`` be) and, with ``check_input``, no NaN/inf."""
    tensor = _as_input(value, name).to(device=X.device, dtype=X.dtype)
    if tuple(tensor.shape) != shape:
        raise DataError(f"{name} must {must} = {shape}, got {tuple(tensor.shape)}")
    if check_input:
        check_finite(tensor, name)
    return tensor


def _compiled(algorithm: str, X: torch.Tensor, D: torch.Tensor, C: torch.Tensor | None,
              gram: Any, init: torch.Tensor | None, alpha: float | None,
              n_nonzero_coefs: int | None, max_iter: int, n_threads: int, positive: bool,
              tol: float | None) -> torch.Tensor:
    """Run a numba kernel on float64 CPU copies; returns the codes ``(n_samples, k)``."""
    kernels = _load_kernels()
    X64 = X.detach().to("cpu", torch.float64)
    D64 = D.detach().to("cpu", torch.float64)
    n_samples, n_features = X64.shape
    k = D64.shape[1]
    if gram is None:
        G = D64.T @ D64
    else:
        G = _as_input(gram, "gram").detach().to("cpu", torch.float64)
        if tuple(G.shape) != (k, k):
            raise DataError(f"gram must be dictionary @ dictionary.T of shape (n_components, "
                            f"n_components) = {(k, k)}, got {tuple(G.shape)}")
        check_finite(G, "gram")
    Cm = X64 @ D64 if C is None else C.detach().to("cpu", torch.float64)
    G = np.ascontiguousarray(G.numpy())
    Cm = np.ascontiguousarray(Cm.numpy())
    if init is not None:
        Z = np.array(init.detach().to("cpu", torch.float64).numpy(), order="C")
    else:
        Z = np.zeros((n_samples, k))
    counts = np.zeros(n_samples, dtype=np.int64)
    if algorithm in ("lasso_lars", "lars"):
        lasso = algorithm == "lasso_lars"
        max_active = min(n_features, k) if lasso else int(n_nonzero_coefs)
        kernels.run_parallel(kernels.lars_batch, n_threads, n_samples, G, Cm,
                             float(alpha) if lasso else 0.0, positive, lasso, max_active,
                             int(max_iter), Z, counts)
    elif algorithm == "omp":
        xx = np.ascontiguousarray((X64 * X64).sum(dim=1).numpy())
        max_atoms = min(n_features, k) if n_nonzero_coefs is None else int(n_nonzero_coefs)
        tol_res = -1.0 if alpha is None else float(alpha)
        kernels.run_parallel(kernels.omp_batch, n_threads, n_samples, G, Cm, xx,
                             max_atoms, tol_res, Z, counts)
    else:  # lasso_cd
        xx = np.ascontiguousarray((X64 * X64).sum(dim=1).numpy())
        kernels.run_parallel(kernels.cd_batch, n_threads, n_samples, G, Cm, xx, float(alpha),
                             positive, 1e-10 if tol is None else float(tol), int(max_iter),
                             min(n_features, k), Z, counts)
    if (algorithm == "lasso_cd" and (counts < 0).any()) or \
            (algorithm in ("lasso_lars", "lars") and (counts >= max_iter).any()):
        _warn_unconverged(algorithm, max_iter, stacklevel=5)
    return torch.from_numpy(Z)


def _warn_unconverged(algorithm: str, max_iter: int, stacklevel: int) -> None:
    """A :class:`ConvergenceWarning` pointing at the caller of :func:`sparse_encode`
    (``stacklevel``: the frames up to it, counting this one)."""
    warnings.warn(f"sparse_encode: {algorithm} stopped at max_iter={max_iter} before converging on "
                  "some samples; raise max_iter", ConvergenceWarning, stacklevel=stacklevel)

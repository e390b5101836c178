"""Online dictionary learning (Mairal, Bach, Ponce & Sapiro 2009; JMLR 2010).

Learns ``k`` atoms (rows of ``components`` ``(k, n_features)``, scikit-learn's layout, each of
norm ≤ 1) minimising the mean over samples of ``½‖x − zD‖² + α‖z‖₁``. Per mini-batch
``X_t`` ``(η, n_features)``:

1. exact codes ``Z_t`` ``(η, k)`` by :func:`~sparseae.coding.sparse_encode` with the current
   dictionary (``lasso_lars`` by default; any of its Lasso solvers, or ``lars``/``omp``);
2. sufficient statistics ``A ← βA + Z_tᵀZ_t/η`` ``(k, k)`` and ``B ← βB + Z_tᵀX_t/η``
   ``(k, n_features)``. The weight of the past is the paper's rescaling (its §3.4.2)
   ``β = (1 − 1/(t+1))^ρ`` at step ``t``, so batch ``s`` counts ``((s+1)/(t+1))^ρ``: codes
   computed with early, poor dictionaries fade (``forget_rate`` ρ, default 4, see below for
   :func:`online_dictionary_learning`'s; ``None`` gives its
   mini-batch rule ``β = (θ + 1 − η)/(θ + 1)``, ``θ = tη`` for ``t < η`` and ``η² + t − η``
   after, which averages nearly uniformly over the first η steps);
3. block-coordinate descent on ``½tr(DᵀDA) − tr(DᵀB)``, one sweep over the atoms:
   ``dⱼ ← Π(dⱼ + (bⱼ − Σ_l A_jl d_l)/A_jj)``, ``Π`` the projection onto the unit ball (after
   clipping at 0 for ``positive_dict``). The sweep is a compiled loop (numba) when numba is
   present (a NumPy loop otherwise). Atoms are then restarted from data: an unused one
   (``A_jj`` ≤ 1e-6 of the mean diagonal) and the less used of two near-duplicates
   (``|cos| > 0.99``) becomes a row of the batch drawn with probability ∝ its squared residual,
   normalized, with its statistics zeroed.

The dictionary starts from random distinct samples (normalized) unless ``dict_init`` is given.

Defaults (``batch_size`` ``min(1024, max(64, ⌈n/12⌉))``, ``n_epochs=2``, ρ = 4) were chosen with
``benchmarks/bench_dictionary_learning.py`` (20,000 china.jpg patches with 256 atoms, 20,000 MNIST
digits with 400 atoms, 1 thread): they reach SPAMS ``trainDL``'s held-out objective (2 epochs at
batch 256) after 1.1 and 1.6 epochs, in 1.5 s against 4.6 s and 7.1 s against 16.2 s. In the
tuning runs (batch 512) ρ = 1, uniform averaging, ended 2 epochs on the patches at 0.0881 (trainDL
0.0877), and ρ = 8 ended 1 epoch on MNIST at 0.1860 against 0.1822 for ρ = 1. On small data a
fixed batch of 1024 left too few dictionary updates (3,000 patches: 6 steps in 2 epochs, held-out
0.0924 against trainDL's 0.0916 after its 24 steps); the default batch therefore keeps at least 12
steps per epoch, as trainDL's 256 does there (:func:`default_batch_size`; 16 steps were slower on
MNIST for no better objective), which leaves every set of 12,288 samples or more at 1024.
Forgetting then kept too few samples per atom on 3,000 MNIST digits (ρ = 4: the last ~1/5 of the
samples seen, 3 per atom; held-out 0.1904 against trainDL's 0.1890; ρ = 2 0.1889, ρ = 1 0.1888,
while the patches did best at ρ = 4): :func:`default_forget_rate` lowers ρ so that the
statistics' window, about ``n_seen/(ρ + 1)`` samples, holds at least 5 per atom (ρ between 1
and 4; 4 for both 20,000-sample problems). Figures in BENCHMARKS.md.
"""
from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..validation import check_choice, check_number
from .encode import sparse_encode

__all__ = ["OnlineDictionaryLearner", "OnlineResult", "default_batch_size", "default_forget_rate",
           "online_dictionary_learning", "sparse_coding_objective", "update_dictionary"]

#: Coders the learner accepts (``threshold`` and ``fista`` are not exact codes).
FIT_ALGORITHMS = ("lasso_lars", "lasso_cd", "lars", "omp")
#: ``A_jj`` at or below this times the mean of ``diag(A)`` marks atom ``j`` as unused.
_DEAD_RATIO = 1e-6
#: Of two atoms with ``|cos|`` above this, the less used one is restarted.
_DUPLICATE_COS = 0.99

#: The default mini-batch: at most this many samples ...
_MAX_BATCH = 1024
#: ... at least this many (the statistics of smaller batches are too noisy) ...
_MIN_BATCH = 64
#: ... and at least this many steps per epoch when the data allow it.
_MIN_STEPS_PER_EPOCH = 12
#: The default forgetting: ρ at most this ...
_MAX_FORGET = 4.0
#: ... and lowered (down to 1) until the statistics' window holds this many samples per atom.
_SAMPLES_PER_ATOM = 5

_sweep_kernel: Any = None


def default_batch_size(n_samples: int) -> int:
    """The mini-batch :func:`online_dictionary_learning` uses when ``batch_size`` is None:
    ``min(1024, max(64, ⌈n_samples/12⌉))`` capped at ``n_samples``, i.e. 1024 from 12,288
    samples up and at least 12 dictionary updates per epoch below (down to batches of 64)."""
    check_number(n_samples, "n_samples", low=1, integer=True)
    batch = min(_MAX_BATCH, max(_MIN_BATCH, math.ceil(n_samples / _MIN_STEPS_PER_EPOCH)))
    return min(batch, int(n_samples))


def default_forget_rate(n_seen: float, n_components: int) -> float:
    """The forgetting ρ :func:`online_dictionary_learning` uses when ``forget_rate="auto"``:
    ``min(4, max(1, n_seen/(5·n_components) − 1))`` for ``n_seen`` samples in the whole run. With
    weights ``((s+1)/(t+1))^ρ`` the statistics average over about the last ``n_seen/(ρ + 1)``
    samples; this keeps that at ≥ 5 samples per atom where ρ = 4 would not."""
    check_number(n_seen, "n_seen", low=0, low_inclusive=False)
    check_number(n_components, "n_components", low=1, integer=True)
    rho = n_seen / (_SAMPLES_PER_ATOM * int(n_components)) - 1.0
    return float(min(_MAX_FORGET, max(1.0, rho)))


def _bcd_sweep_py(D, A, Bt, positive, dead_tol, dead, r):  # pragma: no cover - compiled
    """One block-coordinate sweep over the atoms (rows of ``D`` ``(k, n)``), in place."""
    k, n = D.shape
    for j in range(k):
        ajj = A[j, j]
        if ajj <= dead_tol:
            dead[j] = True
            continue
        dead[j] = False
        for f in range(n):
            r[f] = Bt[j, f]
        for m in range(k):
            a = A[j, m]
            if a != 0.0:
                for f in range(n):
                    r[f] -= a * D[m, f]
        inv = 1.0 / ajj
        norm2 = 0.0
        for f in range(n):
            v = D[j, f] + r[f] * inv
            if positive and v < 0.0:
                v = 0.0
            D[j, f] = v
            norm2 += v * v
        if norm2 > 1.0:
            scale = 1.0 / math.sqrt(norm2)
            for f in range(n):
                D[j, f] *= scale


def _sweep(D: np.ndarray, A: np.ndarray, Bt: np.ndarray, positive: bool, dead_tol: float
           ) -> np.ndarray:
    """Run the sweep (compiled when numba is present); returns the unused-atom mask ``(k,)``."""
    global _sweep_kernel
    if _sweep_kernel is None:
        try:
            from .kernels import _jit
            _sweep_kernel = _jit(nogil=True, fastmath={"contract", "reassoc"})(_bcd_sweep_py)
        except ImportError:  # no numba: the same sweep with NumPy row operations
            _sweep_kernel = _bcd_sweep_numpy
    dead = np.zeros(D.shape[0], dtype=np.bool_)
    _sweep_kernel(D, A, Bt, bool(positive), float(dead_tol), dead, np.empty(D.shape[1]))
    return dead


def _bcd_sweep_numpy(D, A, Bt, positive, dead_tol, dead, r):
    for j in range(D.shape[0]):
        if A[j, j] <= dead_tol:
            dead[j] = True
            continue
        D[j] += (Bt[j] - A[j] @ D) / A[j, j]
        if positive:
            np.clip(D[j], 0, None, out=D[j])
        D[j] /= max(float(np.linalg.norm(D[j])), 1.0)


def _as_data(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as a finite C-contiguous float64 array (n_samples, n_features), or :class:`DataError`."""
    try:
        arr = np.asarray(X.detach().cpu().numpy() if hasattr(X, "detach") else X)
    except Exception as exc:
        raise DataError(f"{name} cannot be read as a numeric array: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2 or 0 in arr.shape:
        raise DataError(f"{name} must be a non-empty 2-D array (n_samples, n_features), "
                        f"got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"{name} holds NaN or infinite values")
    return arr


def _rng(random_state: Any) -> np.random.Generator:
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.Generator)):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    raise ConfigError(f"random_state must be None, an integer or a NumPy generator, "
                      f"got {random_state!r}")


def _normalized_rows(rows: np.ndarray, rng: np.random.Generator, positive: bool) -> np.ndarray:
    """Rows scaled to unit norm (clipped at 0 first for ``positive``); a zero row becomes a random
    unit direction."""
    rows = np.array(rows, dtype=np.float64)
    if positive:
        np.clip(rows, 0, None, out=rows)
    norms = np.linalg.norm(rows, axis=1)
    flat = norms <= np.finfo(np.float64).tiny
    if flat.any():
        noise = rng.standard_normal((int(flat.sum()), rows.shape[1]))
        rows[flat] = np.abs(noise) if positive else noise
        norms = np.linalg.norm(rows, axis=1)
    return rows / norms[:, None]


def sparse_coding_objective(X: Any, components: Any, alpha: float, *, algorithm: str = "lasso_lars",
                            positive: bool = False, n_jobs: int | None = None) -> float:
    """Mean over the rows of ``X`` ``(n, n_features)`` of ``½‖x − zD‖² + α‖z‖₁`` with exact codes
    ``z`` by :func:`sparse_encode` over ``components`` ``(k, n_features)`` (the held-out objective)."""
    X = _as_data(X)
    D = _as_data(components, "components")
    Z = sparse_encode(X, D, algorithm=algorithm, alpha=alpha, positive=positive, n_jobs=n_jobs)
    residual = X - Z @ D
    return float((0.5 * np.einsum("ij,ij->i", residual, residual)
                  + alpha * np.abs(Z).sum(axis=1)).mean())


class OnlineDictionaryLearner:
    """The state of online dictionary learning, fed one mini-batch at a time by :meth:`partial_fit`.

    Parameters: ``n_components`` k; ``alpha`` the ℓ1 weight (for ``omp``/``lars``, which do not
    use it, the number of atoms per code is ``n_nonzero_coefs``); ``algorithm`` one of
    ``lasso_lars`` (default), ``lasso_cd``, ``lars``, ``omp``; ``positive_code`` /
    ``positive_dict``; ``dict_init`` ``(k, n_features)`` (else random samples of the first batch,
    or of ``init_data`` when given); ``n_jobs`` the coder's threads; ``random_state``;
    ``coder_max_iter`` the coder's ``max_iter``; ``forget_rate`` ρ: the past statistics are
    weighted by ``β = (1 − 1/(t+1))^ρ`` at step ``t`` (0-based), so batch ``s`` counts
    ``((s+1)/(t+1))^ρ`` at step ``t``; ``None`` for the paper's mini-batch rule (see the module).

    Attributes: ``components_`` ``(k, n_features)`` float64; ``A_`` ``(k, k)``, ``B_``
    ``(k, n_features)`` the statistics; ``n_steps_`` batches seen; ``n_resampled_`` atoms
    replaced so far.
    """

    def __init__(self, n_components: int, alpha: float = 1.0, *, algorithm: str = "lasso_lars",
                 n_nonzero_coefs: int | None = None, positive_code: bool = False,
                 positive_dict: bool = False, dict_init: Any = None, n_jobs: int | None = None,
                 random_state: Any = None, coder_max_iter: int = 1000,
                 forget_rate: float | None = 4.0) -> None:
        check_number(n_components, "n_components", low=1, integer=True)
        if forget_rate is not None:
            check_number(forget_rate, "forget_rate", low=0)
        check_number(alpha, "alpha", low=0)
        check_choice(algorithm, "algorithm", FIT_ALGORITHMS)
        check_number(coder_max_iter, "coder_max_iter", low=1, integer=True)
        for name, value in (("positive_code", positive_code), ("positive_dict", positive_dict)):
            if not isinstance(value, (bool, np.bool_)):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
        if positive_code and algorithm in ("lars", "omp"):
            raise ConfigError(f"positive_code=True is not supported by algorithm={algorithm!r} "
                              "(use lasso_lars or lasso_cd)")
        self.n_components = int(n_components)
        self.alpha = float(alpha)
        self.algorithm = algorithm
        self.n_nonzero_coefs = n_nonzero_coefs
        self.positive_code = bool(positive_code)
        self.positive_dict = bool(positive_dict)
        self.n_jobs = n_jobs
        self.coder_max_iter = int(coder_max_iter)
        self.forget_rate = None if forget_rate is None else float(forget_rate)
        self.rng = _rng(random_state)
        self.components_: np.ndarray | None = None
        if dict_init is not None:
            D = _as_data(dict_init, "dict_init")
            if D.shape[0] != self.n_components:
                raise DataError(f"dict_init must have n_components = {self.n_components} rows "
                                f"(n_components, n_features), got shape {D.shape}")
            self.components_ = D.copy()
        self.A_: np.ndarray | None = None
        self.B_: np.ndarray | None = None
        self.n_steps_ = 0
        self.n_resampled_ = 0

    def initialize(self, X: np.ndarray) -> None:
        """Start the dictionary from ``n_components`` distinct random rows of ``X`` (normalized;
        drawn with replacement when ``X`` has fewer rows) and zero the statistics."""
        X = _as_data(X)
        if self.components_ is None:
            replace = X.shape[0] < self.n_components
            rows = self.rng.choice(X.shape[0], self.n_components, replace=replace)
            self.components_ = _normalized_rows(X[rows], self.rng, self.positive_dict)
            if replace:  # repeated samples: perturb the copies so the atoms differ
                self.components_ = _normalized_rows(
                    self.components_ + 0.01 * self.rng.standard_normal(self.components_.shape),
                    self.rng, self.positive_dict)
        elif self.components_.shape[1] != X.shape[1]:
            raise DataError(f"dict_init has {self.components_.shape[1]} features but X has "
                            f"{X.shape[1]}")
        k, n = self.components_.shape
        self.A_ = np.zeros((k, k))
        self.B_ = np.zeros((k, n))

    def encode(self, X: np.ndarray) -> np.ndarray:
        """Codes ``(n, k)`` of ``X`` over the current dictionary by the learner's coder."""
        if self.algorithm in ("lars", "omp"):
            return sparse_encode(X, self.components_, algorithm=self.algorithm,
                                 n_nonzero_coefs=self.n_nonzero_coefs, n_jobs=self.n_jobs,
                                 max_iter=self.coder_max_iter, check_input=False)
        return sparse_encode(X, self.components_, algorithm=self.algorithm, alpha=self.alpha,
                             positive=self.positive_code, n_jobs=self.n_jobs,
                             max_iter=self.coder_max_iter, check_input=False)

    def partial_fit(self, X: Any) -> float:
        """One step on the mini-batch ``X`` ``(η, n_features)``; returns its mean cost
        ``½‖x − zD‖² + α‖z‖₁`` under the dictionary before the step."""
        X = _as_data(X)
        if self.A_ is None:
            self.initialize(X)
        if X.shape[1] != self.components_.shape[1]:
            raise DataError(f"X has {X.shape[1]} features but the dictionary has "
                            f"{self.components_.shape[1]}")
        eta = X.shape[0]
        Z = self.encode(X)
        residual = X - Z @ self.components_
        cost = float((0.5 * np.einsum("ij,ij->", residual, residual)
                      + self.alpha * np.abs(Z).sum()) / eta)
        beta = self._beta(eta)
        self.A_ *= beta
        self.A_ += (Z.T @ Z) / eta
        self.B_ *= beta
        self.B_ += (Z.T @ X) / eta
        self.update_dictionary(X, weights=np.einsum("ij,ij->i", residual, residual))
        self.n_steps_ += 1
        return cost

    def _beta(self, eta: int) -> float:
        """The weight of the past statistics at this step."""
        t = self.n_steps_
        if self.forget_rate is None:
            theta = (t + 1) * eta if t < eta - 1 else eta * eta + t + 1 - eta
            return (theta + 1 - eta) / (theta + 1)
        return (1.0 - 1.0 / (t + 1)) ** self.forget_rate

    def update_dictionary(self, X: np.ndarray, weights: np.ndarray | None = None) -> int:
        """One block-coordinate sweep with the current statistics (:func:`update_dictionary`);
        restarted atoms come from rows of ``X``. Returns the number restarted."""
        n_dead = update_dictionary(self.components_, self.A_, self.B_, X, rng=self.rng,
                                   positive=self.positive_dict, weights=weights)
        self.n_resampled_ += n_dead
        return n_dead


def update_dictionary(components: np.ndarray, A: np.ndarray, B: np.ndarray, X: np.ndarray, *,
                      rng: np.random.Generator, positive: bool = False,
                      weights: np.ndarray | None = None) -> int:
    """One block-coordinate sweep, in place, on ``components`` ``(k, n_features)`` (float64,
    C-contiguous) for the statistics ``A`` ``(k, k)`` = Σ zzᵀ and ``B`` ``(k, n_features)`` =
    Σ zxᵀ (any common scale): ``dⱼ ← Π(dⱼ + (bⱼ − Σ_l A_jl d_l)/A_jj)``.

    Then atoms are restarted: unused ones (``A_jj ≤ 1e-6·mean(diag A)``) and, of two atoms with
    ``|cos| > 0.99``, the less used: each becomes a row of ``X`` ``(n, n_features)`` (drawn with
    probability ∝ ``weights`` ``(n,)``, e.g. the rows' squared residuals; uniform when None),
    normalized, and its row and column of ``A`` and row of ``B`` are zeroed (its old statistics
    belong to the old atom). Returns the number of atoms restarted."""
    diag = np.diag(A).copy()
    dead_tol = _DEAD_RATIO * max(float(diag.mean()), np.finfo(np.float64).tiny)
    dead = _sweep(components, A, B, positive, dead_tol)
    norms = np.linalg.norm(components, axis=1)
    unit = components / np.maximum(norms, np.finfo(np.float64).tiny)[:, None]
    cos = np.abs(unit @ unit.T)
    np.fill_diagonal(cos, 0.0)
    first, second = np.nonzero(np.triu(cos > _DUPLICATE_COS, 1))
    for i, j in zip(first, second, strict=True):
        if not (dead[i] or dead[j]):
            dead[j if diag[j] <= diag[i] else i] = True
    n_dead = int(dead.sum())
    if n_dead:
        p = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            p = w / w.sum() if w.sum() > 0 and np.count_nonzero(w) >= n_dead else None
        rows = rng.choice(X.shape[0], n_dead, replace=X.shape[0] < n_dead, p=p)
        components[dead] = _normalized_rows(X[rows], rng, positive)
        A[dead, :] = 0.0
        A[:, dead] = 0.0
        B[dead] = 0.0
    return n_dead


@dataclass
class OnlineResult:
    """What :func:`online_dictionary_learning` returns: ``components`` ``(k, n_features)``,
    ``n_steps`` mini-batches, ``n_epochs`` passes (fractional when stopped early), ``costs`` the
    mean cost of each batch (before its step), ``seconds`` the wall time, ``learner`` the
    :class:`OnlineDictionaryLearner` (to continue with ``partial_fit``)."""

    components: np.ndarray
    n_steps: int
    n_epochs: float
    costs: list[float] = field(default_factory=list)
    seconds: float = 0.0
    learner: OnlineDictionaryLearner | None = None


def _run_settings(n_samples: int, n_components: int, n_epochs: float, batch_size: int | None,
                  forget_rate: float | str | None) -> tuple[int, float | None]:
    """``(batch_size, forget_rate)`` of a run, checked, the defaults (None, ``"auto"``) resolved
    for ``n_samples`` samples and ``n_epochs`` passes."""
    check_number(n_epochs, "n_epochs", low=0, low_inclusive=False)
    if batch_size is None:
        batch_size = default_batch_size(n_samples)
    check_number(batch_size, "batch_size", low=1, integer=True)
    if isinstance(forget_rate, str):
        if forget_rate != "auto":
            raise ConfigError(f"forget_rate must be a number >= 0, None or 'auto', got {forget_rate!r}")
        check_number(n_components, "n_components", low=1, integer=True)
        forget_rate = default_forget_rate(float(n_epochs) * n_samples, n_components)
    return int(batch_size), forget_rate


def online_dictionary_learning(X: Any, n_components: int, alpha: float, *, n_epochs: float = 2.0,
                               batch_size: int | None = None, algorithm: str = "lasso_lars",
                               n_nonzero_coefs: int | None = None, positive_code: bool = False,
                               positive_dict: bool = False, dict_init: Any = None,
                               shuffle: bool = True, n_jobs: int | None = None,
                               random_state: Any = None, forget_rate: float | str | None = "auto",
                               max_seconds: float | None = None,
                               callback: Callable[[OnlineDictionaryLearner, int], Any] | None = None
                               ) -> OnlineResult:
    """Learn ``n_components`` atoms for ``X`` ``(n_samples, n_features)`` by online dictionary
    learning (see the module); returns an :class:`OnlineResult` (``components`` ``(k,
    n_features)``).

    ``n_epochs``: passes over ``X`` (a fraction stops mid-pass; default 2); ``batch_size`` η
    (default None: :func:`default_batch_size`, 1024 from 12,288 samples up, else at least 12
    steps per epoch); ``shuffle``: a new random order each pass. ``forget_rate``: ρ (see
    :class:`OnlineDictionaryLearner`; default ``"auto"``: :func:`default_forget_rate` of the
    ``n_epochs·n_samples`` samples the run will see, 4 on large data). ``max_seconds``: stop after this much
    wall time (checked after each batch). ``callback(learner, step)`` is called after every step;
    returning ``True`` stops. The other arguments are :class:`OnlineDictionaryLearner`'s.
    """
    X = _as_data(X)
    batch_size, forget_rate = _run_settings(X.shape[0], n_components, n_epochs, batch_size,
                                            forget_rate)
    if max_seconds is not None:
        check_number(max_seconds, "max_seconds", low=0, low_inclusive=False)
    if callback is not None and not callable(callback):
        raise ConfigError(f"callback must be callable, got {callback!r}")
    learner = OnlineDictionaryLearner(n_components, alpha, algorithm=algorithm,
                                      n_nonzero_coefs=n_nonzero_coefs, positive_code=positive_code,
                                      positive_dict=positive_dict, dict_init=dict_init,
                                      n_jobs=n_jobs, random_state=random_state,
                                      forget_rate=forget_rate)
    n = X.shape[0]
    eta = min(int(batch_size), n)
    per_epoch = math.ceil(n / eta)
    total = max(1, math.ceil(n_epochs * per_epoch))
    start = time.perf_counter()
    order = learner.rng.permutation(n) if shuffle else np.arange(n)
    learner.initialize(X)
    costs: list[float] = []
    step = 0
    while step < total:
        position = step % per_epoch
        if position == 0 and step and shuffle:
            order = learner.rng.permutation(n)
        batch = X[order[position * eta:(position + 1) * eta]] if shuffle else \
            X[position * eta:(position + 1) * eta]
        costs.append(learner.partial_fit(batch))
        step += 1
        if callback is not None and callback(learner, step) is True:
            break
        if max_seconds is not None and time.perf_counter() - start >= max_seconds:
            break
    return OnlineResult(components=learner.components_, n_steps=step, n_epochs=step / per_epoch,
                        costs=costs, seconds=time.perf_counter() - start, learner=learner)

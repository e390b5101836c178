"""LISTA's depth curve (Gregor & LeCun 2010): how many FISTA iterations a trained T-step LISTA is worth.

Every method approximates the same optimal codes ``z* = argmin_z ½‖x − Dz‖² + λ‖z‖₁`` on one
dictionary D (n_features, n_components); the error of codes Z is ``mean‖z − z*‖² / mean‖z*‖²``
(:func:`relative_error`). :func:`lista_depth_chain` trains LISTA at increasing depths T, each
warm-started from the trained T − 1 network (the same shared W_e, S, θ applied once more), by
:func:`train_lista`; :func:`solver_curve` records ISTA's/FISTA's error at every iteration and
:func:`iterations_to_match` reads off the iterations a trained depth is worth. Used by
``benchmarks/bench_lista_curve.py`` and the ``lista_depth`` recipe evaluation.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from ..coding import L1Prox, fista, sparse_encode
from ..errors import ConfigError
from ..validation import check_choice, check_number

__all__ = ["relative_error", "ErrorRecorder", "solver_curve", "iterations_to_match", "exact_codes",
           "LISTATraining", "train_lista", "DepthResult", "lista_depth_chain"]


def relative_error(Z: torch.Tensor, Z_star: torch.Tensor) -> float:
    """``Σ‖z − z*‖² / Σ‖z*‖²`` of codes Z against Z_star, both (n, n_components)."""
    return float((Z - Z_star).square().sum() / Z_star.square().sum())


class ErrorRecorder(L1Prox):
    """The ℓ1 prox, recording Σ‖z − z*‖² of every iterate it returns (one per solver iteration)."""

    def __init__(self, target: torch.Tensor, nonnegative: bool = False) -> None:
        super().__init__(nonnegative)
        self.target, self.errors = target, []

    def __call__(self, v: torch.Tensor, step_threshold) -> torch.Tensor:
        z = super().__call__(v, step_threshold)
        self.errors.append((z - self.target).square().sum())
        return z


def solver_curve(solver: Callable, X: torch.Tensor, D: torch.Tensor, lam: float, L: torch.Tensor,
                 Z_star: torch.Tensor, n_iter: int) -> np.ndarray:
    """Relative code error of ``solver`` (:func:`~sparseae.coding.ista` or ``fista``, from zero) on
    X (n, n_features) after iterations 1…n_iter: (n_iter,)."""
    recorder = ErrorRecorder(Z_star)
    solver(X, D, lam, L=L, max_iter=n_iter, stop="none", prox=recorder)
    return (torch.stack(recorder.errors) / Z_star.square().sum()).numpy()


def iterations_to_match(curve: np.ndarray, error: float) -> int | None:
    """The first iteration (1-based) of ``curve`` (n_iter,) whose error is ≤ ``error``; None when none is."""
    hits = np.nonzero(np.asarray(curve) <= error)[0]
    return int(hits[0]) + 1 if len(hits) else None


def exact_codes(X: torch.Tensor, D: torch.Tensor, lam: float, *, targets: str = "lasso_lars",
                L: torch.Tensor | None = None, zstar_iter: int = 600) -> torch.Tensor:
    """z* (n, n_components) of X (n, n_features) on D (n_features, n_components): the exact Lasso by
    LARS (``targets="lasso_lars"``), or FISTA from zero for ``zstar_iter`` iterations (``"fista"``)."""
    check_choice(targets, "targets", ("lasso_lars", "fista"))
    if targets == "lasso_lars":
        Z = sparse_encode(X, D.t().contiguous(), algorithm="lasso_lars", alpha=lam)
        return torch.as_tensor(Z, dtype=X.dtype)
    return fista(X, D, lam, L=L, max_iter=zstar_iter, stop="none").codes


#: Fewer steps than this train at the constant peak rate (a one-cycle schedule needs a few steps per phase).
MIN_ONE_CYCLE_STEPS = 10


@dataclass(frozen=True)
class LISTATraining:
    """How :func:`train_lista` trains one depth: SGD with momentum 0.9 (or Adam) at peak rate
    ``lr / T`` on a one-cycle schedule over ``epochs`` epochs (under 10 steps in all: constant), batches
    of ``batch_size``, gradient norm clipped at ``clip``, stopped after ``patience`` epochs without a
    better validation error."""

    epochs: int = 18
    patience: int = 4
    batch_size: int = 100
    lr: float = 0.1
    clip: float = 1.0
    optimizer: str = "sgd"
    seed: int = 0

    def validate(self) -> LISTATraining:
        for name in ("epochs", "patience", "batch_size"):
            check_number(getattr(self, name), name, low=1, integer=True)
        check_number(self.lr, "lr", low=0.0, low_inclusive=False)
        check_number(self.clip, "clip", low=0.0, low_inclusive=False)
        check_choice(self.optimizer, "optimizer", ("sgd", "adam"))
        return self


def train_lista(model, X: torch.Tensor, Z: torch.Tensor, X_val: torch.Tensor, Z_val: torch.Tensor,
                settings: LISTATraining = LISTATraining()) -> tuple[object, int, int]:
    """Train ``model`` (LISTA, T = its n_steps) on inputs X (n, n_features) and cached targets Z
    (n, n_components) in place; returns (model with the weights of its best validation error,
    epochs run, best epoch; 0: the start). The start counts as a candidate, so a warm-started T
    never ends above its start."""
    settings = settings.validate()
    T = model.encoder.n_steps
    torch.manual_seed(settings.seed)
    rate = settings.lr / T
    params = list(model.encoder.parameters())
    optimizer = (torch.optim.SGD(params, lr=rate, momentum=0.9) if settings.optimizer == "sgd"
                 else torch.optim.Adam(params, lr=rate))
    total_steps = settings.epochs * -(-X.shape[0] // settings.batch_size)
    schedule = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=rate, pct_start=0.2, total_steps=total_steps)
                if total_steps >= MIN_ONE_CYCLE_STEPS else torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0))
    generator = torch.Generator().manual_seed(settings.seed + T)
    with torch.no_grad():
        best, best_epoch = relative_error(model.encode(X_val), Z_val), 0
    best_state = copy.deepcopy(model.encoder.state_dict())
    epoch = 0
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(X.shape[0], generator=generator)
        for start in range(0, X.shape[0], settings.batch_size):
            rows = order[start:start + settings.batch_size]
            optimizer.zero_grad(set_to_none=True)
            model.loss(X[rows], targets=Z[rows]).loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.clip)
            optimizer.step()
            schedule.step()
            model.apply_constraints()
        with torch.no_grad():
            error = relative_error(model.encode(X_val), Z_val)
        if error < best:
            best, best_epoch, best_state = error, epoch, copy.deepcopy(model.encoder.state_dict())
        elif epoch - best_epoch >= settings.patience:
            break
    model.encoder.load_state_dict(best_state)
    return model, epoch, best_epoch


@dataclass(frozen=True)
class DepthResult:
    """One depth of the chain: T, epochs run, best epoch, seconds, and the test error of the untrained
    network (ISTA, T + 1 iterations), at its start (after the warm start) and trained."""

    T: int
    epochs: int
    best_epoch: int
    seconds: float
    untrained: float
    initial: float
    trained: float


def lista_depth_chain(D: torch.Tensor, lam: float, depths: Iterable[int], train: tuple[torch.Tensor, torch.Tensor],
                      validation: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], *,
                      settings: LISTATraining = LISTATraining(), warm_start: bool = True,
                      report: Callable[[DepthResult], None] | None = None) -> tuple[list[DepthResult], object]:
    """LISTA on D (n_features, n_components), λ = ``lam``, trained at each T of ``depths`` (sorted
    increasing): the smallest from ISTA's weights, each deeper one from the trained previous (shared
    weights; ``warm_start=False``: from ISTA). ``train``/``validation``/``test``: (X (n, n_features),
    z* (n, n_components)) pairs. Returns the per-depth results and the deepest trained model;
    ``report`` is called after each depth."""
    from ..models import lista_from_dictionary

    depths = sorted({int(t) for t in depths})
    if not depths or depths[0] < 1:
        raise ConfigError(f"depths must be positive integers, got {depths!r}")
    X_test, Z_test = test
    results, previous = [], None
    for T in depths:
        tic = time.perf_counter()
        model = lista_from_dictionary(D, lam, T)
        with torch.no_grad():
            untrained = relative_error(model.encode(X_test), Z_test)
            if previous is not None and warm_start:
                model.encoder.load_state_dict(previous.encoder.state_dict())  # shared weights
            initial = relative_error(model.encode(X_test), Z_test)
        model, epochs, best_epoch = train_lista(model, *train, *validation, settings)
        with torch.no_grad():
            trained = relative_error(model.encode(X_test), Z_test)
        results.append(DepthResult(T, epochs, best_epoch, time.perf_counter() - tic, untrained, initial, trained))
        if report is not None:
            report(results[-1])
        previous = model
    return results, previous

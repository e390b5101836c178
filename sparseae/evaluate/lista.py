"""LISTA's depth curve (Gregor & LeCun 2010): how many FISTA iterations a trained T-step LISTA is worth.

Every method approximates the same optimal codes ``z* = argmin_z ½‖x − Dz‖² + λ‖z‖₁`` on one
dictionary D (n_features, n_components); the error of codes Z is ``mean‖z − z*‖² / mean‖z*‖²``
(:func:`relative_error`). :func:`lista_depth_chain` trains LISTA at increasing depths T, each
warm-started from the trained T − 1 network (the same shared W_e, S, θ applied once more), by
:func:`train_lista` (one-cycle over a fixed number of epochs, or to convergence on a plateau-decay
schedule); the model may be Gregor & LeCun's shared-weight LISTA or the untied variant with per-layer
thresholds (``model_params``); :func:`solver_curve` records ISTA's/FISTA's error at every iteration and
:func:`iterations_to_match` reads off the iterations a trained depth is worth. Used by
``benchmarks/bench_lista_curve.py`` and the ``lista_depth`` recipe evaluation.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..coding import L1Prox, fista, lasso_l1_bound, sparse_encode
from ..digests import update_with_tensor
from ..errors import ConfigError
from ..validation import check_bool, check_choice, check_number

__all__ = ["relative_error", "ErrorRecorder", "solver_curve", "iterations_to_match", "exact_codes",
           "LISTATraining", "LISTAFit", "STOP_REASONS", "train_lista", "DepthResult", "lista_depth_chain",
           "STABILITY_BOUND", "max_l1_ratio", "WarmStart"]


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
    """How :func:`train_lista` trains one depth: SGD with momentum 0.9 (or Adam) at rate ``lr / T``
    (``lr`` at every depth when ``scale_lr`` is False),
    batches of ``batch_size``, gradient norm clipped at ``clip``, for at most ``epochs`` epochs, stopped
    after ``patience`` epochs without a better validation error. ``schedule``: ``"one_cycle"`` (peak
    ``lr / T``, annealed to the end of ``epochs``; under 10 steps in all: constant) or ``"plateau"``
    (constant until ``decay_patience`` epochs pass without a validation error ``threshold`` (relative)
    below the best, then × ``decay`` from the best weights so far; until an epoch beats the start, after
    each epoch that does not, so a warm start the rate would only spoil is kept at a rate that improves
    it; stops, converged, once the rate falls below ``min_lr_ratio · lr / T``)."""

    epochs: int = 18
    patience: int = 4
    batch_size: int = 100
    lr: float = 0.1
    clip: float = 1.0
    optimizer: str = "sgd"
    seed: int = 0
    schedule: str = "one_cycle"
    decay: float = 0.5
    decay_patience: int = 1
    threshold: float = 1e-3
    min_lr_ratio: float = 0.01
    scale_lr: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LISTATraining:
        """The settings among ``params`` (e.g. a ``lista_depth`` evaluation's), other keys ignored; validated."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in params.items() if key in names}).validate()

    def validate(self) -> LISTATraining:
        for name in ("epochs", "patience", "batch_size", "decay_patience"):
            check_number(getattr(self, name), name, low=1, integer=True)
        check_number(self.lr, "lr", low=0.0, low_inclusive=False)
        check_number(self.clip, "clip", low=0.0, low_inclusive=False)
        check_choice(self.optimizer, "optimizer", ("sgd", "adam"))
        check_choice(self.schedule, "schedule", ("one_cycle", "plateau"))
        check_number(self.decay, "decay", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        check_number(self.threshold, "threshold", low=0.0)
        check_number(self.min_lr_ratio, "min_lr_ratio", low=0.0, high=1.0, low_inclusive=False)
        check_bool(self.scale_lr, "scale_lr")
        return self


#: Why :func:`train_lista` stopped: the rate decayed away (``"converged"``: the plateau schedule's below
#: ``min_lr_ratio`` of its start, or a one-cycle schedule run to its end), ``patience`` epochs passed
#: without a better validation error (``"patience"``), or the ``epochs`` budget ran out first (``"epochs"``:
#: the only one that leaves a depth possibly short of convergence).
STOP_REASONS = ("converged", "patience", "epochs")


class LISTAFit(NamedTuple):
    """What :func:`train_lista` returns: the model with the weights of its best validation error, the
    epochs run, the best epoch (0: the start) and why training stopped (one of :data:`STOP_REASONS`)."""

    model: object
    epochs: int
    best_epoch: int
    stopped: str


def train_lista(model, X: torch.Tensor, Z: torch.Tensor, X_val: torch.Tensor, Z_val: torch.Tensor,
                settings: LISTATraining = LISTATraining()) -> LISTAFit:
    """Train ``model`` (LISTA, T = its n_steps) on inputs X (n, n_features) and cached targets Z
    (n, n_components) in place; returns a :class:`LISTAFit`. The start counts as a candidate, so a
    warm-started T never ends above its start."""
    settings = settings.validate()
    T = model.encoder.n_steps
    torch.manual_seed(settings.seed)
    rate = start_rate = settings.lr / T if settings.scale_lr else settings.lr
    params = list(model.encoder.parameters())
    optimizer = (torch.optim.SGD(params, lr=rate, momentum=0.9) if settings.optimizer == "sgd"
                 else torch.optim.Adam(params, lr=rate))
    total_steps = settings.epochs * -(-X.shape[0] // settings.batch_size)
    one_cycle = settings.schedule == "one_cycle" and total_steps >= MIN_ONE_CYCLE_STEPS
    schedule = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=rate, pct_start=0.2, total_steps=total_steps)
                if one_cycle else None)
    since_progress = 0  # epochs since the validation error last fell by the relative threshold (plateau)
    generator = torch.Generator().manual_seed(settings.seed + T)
    with torch.no_grad():
        best, best_epoch = relative_error(model.encode(X_val), Z_val), 0
    best_state = copy.deepcopy(model.encoder.state_dict())
    epoch, stopped = 0, "epochs"
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(X.shape[0], generator=generator)
        for start in range(0, X.shape[0], settings.batch_size):
            rows = order[start:start + settings.batch_size]
            optimizer.zero_grad(set_to_none=True)
            model.loss(X[rows], targets=Z[rows]).loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.clip)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            model.apply_constraints()
        with torch.no_grad():
            error = relative_error(model.encode(X_val), Z_val)
        progress = error < best * (1 - settings.threshold)
        if error < best:
            best, best_epoch, best_state = error, epoch, copy.deepcopy(model.encoder.state_dict())
        elif epoch - best_epoch >= settings.patience:
            stopped = "patience"
            break
        if settings.schedule == "plateau":
            since_progress = 0 if progress else since_progress + 1
            # until an epoch beats the start, every epoch that does not halves the rate at once
            if since_progress >= (settings.decay_patience if best_epoch else 1):
                rate *= settings.decay
                if rate < settings.min_lr_ratio * start_rate:
                    stopped = "converged"  # the rate has decayed away
                    break
                model.encoder.load_state_dict(best_state)
                for group in optimizer.param_groups:
                    group["lr"] = rate
                optimizer.state.clear()  # no momentum carried from the abandoned weights
                since_progress = 0
    if stopped == "epochs" and one_cycle:
        stopped = "converged"  # a one-cycle schedule anneals its rate away by its last epoch
    model.encoder.load_state_dict(best_state)
    return LISTAFit(model, epoch, best_epoch, stopped)


@dataclass(frozen=True)
class DepthResult:
    """One depth of the chain: T, epochs run, best epoch, seconds, and the test error of the untrained
    network (ISTA, T + 1 iterations), at its start (after the warm start) and trained; the step of the
    previous depth whose copies the warm start added (untied or per-layer weights; else None);
    ``kept_shallower``: training ended above the previous depth's validation error, so this depth computes
    the previous one's code (:meth:`~sparseae.nn.ShrinkageEncoder.warm_start_from` with ``identity``);
    ``stopped``: why its training stopped (:data:`STOP_REASONS`; None in results saved before it was kept);
    ``rejected_steps``: the previous depth's steps whose copies the warm start rejected as unstable (all of
    them: an identity warm start, ``repeated_step`` None); ``safeguarded``/``flagged``: with the chain's
    ``safeguard``, the test error of :meth:`~sparseae.models.LISTA.safeguarded_encode` (FISTA for 10·T
    iterations on the rows whose code fails the Lasso certificate) and how many test rows fell back."""

    T: int
    epochs: int
    best_epoch: int
    seconds: float
    untrained: float
    initial: float
    trained: float
    repeated_step: int | None = None
    kept_shallower: bool = False
    stopped: str | None = None
    rejected_steps: tuple[int, ...] = ()
    safeguarded: float | None = None
    flagged: int | None = None


#: ``stability_bound`` of :func:`lista_depth_chain`: a warm start whose code leaves ``stability_bound``
#: times the ball ``‖z‖₁ ≤ ‖x‖²/(4λ)`` (:func:`~sparseae.coding.lasso_l1_bound`, which holds z*) on any
#: screened row is rejected. On MNIST (``lista_depth_mnist``, two seeds) the Lasso codes fill at most 0.52 of
#: the ball and every trained depth stays within 0.65 of it; the warm starts kept reached 0.66 to 2.96, the
#: ones that blew up on an unseen digit 13.7 to 10⁶ (``benchmarks/lista_warm_start_screen.py``).
STABILITY_BOUND = 4.0


def max_l1_ratio(model, X: torch.Tensor, lam: float, batch: int = 8192) -> float:
    """The largest ``‖z‖₁ / (‖x‖²/(4λ))`` over the rows of X (n, n_features) of ``model``'s codes z: above 1,
    a code is farther out than any Lasso solution can be (:func:`~sparseae.coding.lasso_l1_bound`)."""
    worst = 0.0
    for start in range(0, X.shape[0], batch):
        rows = X[start:start + batch]
        ratio = model.encode(rows).abs().sum(dim=1) / lasso_l1_bound(rows, lam).clamp_min(1e-12)
        worst = max(worst, float(ratio.max()))
    return worst


class WarmStart(NamedTuple):
    """The warm start :func:`_warm_start` chose: the repeated step (None: shared weights, or the identity
    warm start when every step was rejected) and the steps rejected as unstable."""

    repeated_step: int | None
    rejected_steps: tuple[int, ...] = ()


@torch.no_grad()
def _warm_start(model, previous, X_val: torch.Tensor, Z_val: torch.Tensor, *, lam: float | None = None,
                screen: torch.Tensor | None = None, bound: float | None = None) -> WarmStart:
    """Warm-start ``model`` from the trained ``previous`` (fewer steps). With per-step weights, every
    step of ``previous`` is tried as the one repeated for the added steps, and the copy with the lowest
    validation error is kept, among those whose codes stay within ``bound`` times the Lasso ball
    (:func:`max_l1_ratio` ≤ ``bound``) on the validation rows and the ``screen`` rows (n, n_features), when
    ``bound`` is given; when every step is rejected, the identity warm start (the model computes
    ``previous``'s code). Shared weights have one warm start."""
    encoder = model.encoder
    if not (encoder.untied or encoder.layer_thresholds):
        encoder.warm_start_from(previous.encoder)
        return WarmStart(None)
    rows = X_val if screen is None else torch.cat([X_val, screen])
    best, best_step, rejected = float("inf"), None, []
    for step in range(previous.encoder.n_steps):
        encoder.warm_start_from(previous.encoder, repeat=step)
        if bound is not None and max_l1_ratio(model, rows, lam) > bound:
            rejected.append(step)
            continue
        error = relative_error(model.encode(X_val), Z_val)
        if error < best:
            best, best_step = error, step
    if best_step is None:
        encoder.warm_start_from(previous.encoder, identity=True)
    else:
        encoder.warm_start_from(previous.encoder, repeat=best_step)
    return WarmStart(best_step, tuple(rejected))


@torch.no_grad()
def _keep_the_shallower_if_better(model, previous, X_val: torch.Tensor, Z_val: torch.Tensor) -> bool:
    """When the trained ``model`` (untied steps) has a higher validation error than the trained ``previous``,
    make it compute exactly ``previous``'s code (the identity warm start, no training) and return True. So
    the validation error never rises with depth."""
    if relative_error(model.encode(X_val), Z_val) <= relative_error(previous.encode(X_val), Z_val):
        return False
    model.encoder.warm_start_from(previous.encoder, identity=True)
    return True


def lista_depth_chain(D: torch.Tensor, lam: float, depths: Iterable[int], train: tuple[torch.Tensor, torch.Tensor],
                      validation: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], *,
                      settings: LISTATraining = LISTATraining(), warm_start: bool = True,
                      model_params: Mapping[str, Any] | None = None,
                      stability_bound: float | None = STABILITY_BOUND, safeguard: bool = False,
                      report: Callable[[DepthResult], None] | None = None,
                      checkpoints: str | Path | None = None) -> tuple[list[DepthResult], object]:
    """LISTA on D (n_features, n_components), λ = ``lam``, trained at each T of ``depths`` (sorted
    increasing): the smallest from ISTA's weights, each deeper one from the trained previous
    (``ShrinkageEncoder.warm_start_from``: shared weights as they are; untied steps and per-layer
    thresholds with copies of the one trained step, inserted after it, that give the lowest validation
    error among those that stay within ``stability_bound`` times the Lasso ball on the validation and
    training rows (:func:`_warm_start`; None: no screen); ``warm_start=False``: from ISTA). ``safeguard``: each
    depth's result also holds its safeguarded test error (:class:`DepthResult`; training is the same, so it is
    not part of the saved depths' key). ``model_params``: more
    arguments of the ``lista`` model (e.g. ``{"untied": True, "layer_thresholds": True}``).
    ``train``/``validation``/``test``: (X (n, n_features), z* (n, n_components)) pairs. Returns the
    per-depth results and the deepest trained model; ``report`` is called after each depth.
    ``checkpoints``: a folder where each trained depth is saved (``T<T>``, a model folder with its result);
    a rerun with the same dictionary, rows, settings and depths so far loads those instead of training
    them again, so an interrupted chain resumes at its first unfinished depth."""
    depths = sorted({int(t) for t in depths})
    if not depths or depths[0] < 1:
        raise ConfigError(f"depths must be positive integers, got {depths!r}")
    X_test, Z_test = test
    results, previous = [], None
    if stability_bound is not None:
        check_number(stability_bound, "stability_bound", low=0.0, low_inclusive=False)
    chain_key = (_chain_fingerprint(D, lam, train, validation, test, settings, warm_start, model_params,
                                    {"stability_bound": stability_bound})
                 if checkpoints is not None else "")
    for T in depths:
        key = f"{chain_key}:{','.join(str(r.T) for r in results)}:{T}"  # the depths before T matter too
        saved = _load_depth(checkpoints, T, key) if checkpoints is not None else None
        if saved is None:
            saved = _train_depth(D, lam, T, previous if warm_start else None, train, validation, test, settings,
                                 model_params, stability_bound)
            if checkpoints is not None:
                _save_depth(checkpoints, saved[1], saved[0], key)
        result, previous = saved
        results.append(_safeguarded(result, previous, X_test, Z_test) if safeguard else result)
        if report is not None:
            report(results[-1])
    return results, previous


def _train_depth(D: torch.Tensor, lam: float, T: int, previous, train: tuple[torch.Tensor, torch.Tensor],
                 validation: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 settings: LISTATraining, model_params: Mapping[str, Any] | None,
                 stability_bound: float | None) -> tuple[DepthResult, object]:
    """One depth of :func:`lista_depth_chain`: LISTA with T steps from ISTA's weights, warm-started from the
    trained ``previous`` (None: not), trained, and kept as ``previous``'s code when that is better."""
    from ..models import lista_from_dictionary

    tic = time.perf_counter()
    X_test, Z_test = test
    model = lista_from_dictionary(D, lam, T, **dict(model_params or {}))
    with torch.no_grad():
        untrained = relative_error(model.encode(X_test), Z_test)
        chosen = WarmStart(None)
        if previous is not None:
            chosen = _warm_start(model, previous, *validation, lam=lam, screen=train[0], bound=stability_bound)
        initial = relative_error(model.encode(X_test), Z_test)
    model, epochs, best_epoch, stopped = train_lista(model, *train, *validation, settings)
    kept = (previous is not None and model.encoder.untied
            and _keep_the_shallower_if_better(model, previous, *validation))
    with torch.no_grad():
        trained = relative_error(model.encode(X_test), Z_test)
    return DepthResult(T, epochs, best_epoch, time.perf_counter() - tic, untrained, initial, trained,
                       chosen.repeated_step, kept, stopped, chosen.rejected_steps), model


def _safeguarded(result: DepthResult, model, X_test: torch.Tensor, Z_test: torch.Tensor) -> DepthResult:
    """``result`` with the safeguarded test error of ``model`` (FISTA for 10·T iterations on the rows whose
    code fails the Lasso certificate) and the number of those rows."""
    codes, flagged = model.safeguarded_encode(X_test, fallback_iter=10 * result.T)
    return dataclasses.replace(result, safeguarded=relative_error(codes, Z_test), flagged=int(flagged.sum()))


def _chain_fingerprint(D: torch.Tensor, lam: float, *parts_and_options: Any) -> str:
    """A SHA-256 of the dictionary, λ, the (X, z*) rows and the chain's options: what a saved depth must match."""
    digest = hashlib.sha256(repr(float(lam)).encode())

    def add(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            update_with_tensor(digest, value)
        elif isinstance(value, (tuple, list)):
            for item in value:
                add(item)
        elif isinstance(value, LISTATraining):
            digest.update(json.dumps(dataclasses.asdict(value), sort_keys=True).encode())
        else:
            digest.update(json.dumps(dict(value) if isinstance(value, Mapping) else value, sort_keys=True).encode())
    add(D)
    for value in parts_and_options:
        add(value)
    return digest.hexdigest()


def _save_depth(folder: str | Path, model, result: DepthResult, key: str) -> None:
    """Save a trained depth as the model folder ``folder/T<T>`` with its result and chain key."""
    from ..io import save_model

    save_model(model, Path(folder) / f"T{result.T}", overwrite=True,
               extra={"lista_depth_chain": {"key": key, "result": dataclasses.asdict(result)}})


def _load_depth(folder: str | Path, T: int, key: str) -> tuple[DepthResult, object] | None:
    """The saved depth T of this chain (its result and model), or None when absent or saved by another chain."""
    from ..io import load_model, read_config

    path = Path(folder) / f"T{T}"
    if not path.is_dir():
        return None
    saved = read_config(path).get("extra", {}).get("lista_depth_chain", {})
    if saved.get("key") != key:
        return None
    result = dict(saved["result"])
    result["rejected_steps"] = tuple(result.get("rejected_steps", ()))  # a JSON list when saved
    return DepthResult(**result), load_model(path).eval()

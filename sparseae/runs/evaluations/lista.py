"""The LISTA depth curve of a sparse-coding run (``lista_depth``): learned ISTA at each depth T against
FISTA's iterations."""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ...data import images
from ...errors import ConfigError, DataError
from ...evaluate.lista import STABILITY_BOUND
from ...validation import check_bool, check_number
from ..data import load_datasets
from .registry import FinishedRun, register_evaluation

# ------------------------------------------------------------------------------ LISTA depth curve

#: The depth curve's data and picture, written into the run folder by ``lista_depth``.
DEPTH_CURVE_JSON = "lista_depth.json"
DEPTH_CURVE_PNG = "lista_depth.png"
#: Each trained depth, saved as it finishes, so an interrupted ``lista_depth`` resumes where it stopped.
DEPTH_CHAIN_DIR = "lista_depth_chain"


@register_evaluation("lista_depth", metrics=("lista_error_deepest", "fista_equivalent_deepest", "lista_depth_deepest",
                                             "lista_error_shallowest", "lista_error_falls"))
def _lista_depth(run: FinishedRun, *, depths: list = (1, 2, 3, 5, 7, 10), data: Mapping[str, Any] | None = None,
                 skip: int = 0, n_train: int = 48000, n_val: int = 1000, n_test: int = 1000, epochs: int = 18,
                 patience: int = 4, batch_size: int = 100, lr: float = 0.1, clip: float = 1.0, max_iter: int = 500,
                 seed: int = 0, warm_start: bool = True, optimizer: str = "sgd", schedule: str = "one_cycle",
                 decay: float = 0.5, decay_patience: int = 1, min_lr_ratio: float = 0.01, scale_lr: bool = True,
                 untied: bool = False, layer_thresholds: bool = False, shifted_copies: int = 0,
                 stability_bound: float | None = STABILITY_BOUND, safeguard: bool = False) -> dict[str, float]:
    """Gregor & LeCun 2010: LISTA on the run's ``sparse_coding`` dictionary D and λ, trained at each T of ``depths``
    (each warm-started from the trained T − 1 when ``warm_start``) on the exact Lasso codes z* (LARS) of
    ``n_train`` rows, ``n_val`` for early stopping, by ``optimizer`` at ``lr``/T on the ``schedule`` (``decay``,
    ``decay_patience``, ``min_lr_ratio``, ``scale_lr`` False: ``lr`` at every T;
    :class:`~sparseae.evaluate.lista.LISTATraining`) (:func:`~sparseae.evaluate.lista.lista_depth_chain`);
    ``untied``/``layer_thresholds``: the ``lista`` model's options (a separate S_k per step, a θ_k per shrinkage;
    default Gregor & LeCun's shared weights); ``stability_bound``: warm starts whose codes leave that many times
    the Lasso ball ‖z‖₁ ≤ ‖x‖²/(4λ) on a validation or training row are rejected (null: none are); ``safeguard``:
    each depth is scored by :meth:`~sparseae.models.LISTA.safeguarded_encode` (a test row whose code leaves that
    ball gets FISTA's code after 10·T iterations instead), with ``lista_raw_error_T<T>`` (LISTA alone) and
    ``lista_flagged_T<T>`` (the rows that fell back) beside it. Per T also
    ``lista_epochs_T<T>``, ``lista_best_epoch_T<T>`` and ``lista_converged_T<T>`` (1: stopped by the schedule or
    patience, 0: by the epoch budget).
    Rows: the run's training set with ``data`` changes of its data section (e.g. ``{n_samples: null}``: all of
    it), less its first ``skip`` rows (the dictionary's own), shuffled by ``seed``; ``shifted_copies`` adds that
    many copies of the ``n_train`` training rows, each shifted by a random pixel (image data only); test rows:
    ``n_test`` of the evaluation set (``data.test``), else the next shuffled rows. Per T: ``lista_error_T<T>``
    (mean‖z − z*‖² / mean‖z*‖² on the test rows) and ``fista_equivalent_T<T>`` (the FISTA iterations from zero
    that reach it; ``max_iter`` + 1 when ``max_iter`` do not); the deepest and shallowest T's, and
    ``lista_error_falls`` (1.0 when the error falls strictly with T). Writes :data:`DEPTH_CURVE_JSON` and
    :data:`DEPTH_CURVE_PNG` (the curve against ISTA's and FISTA's) into the run folder, and each trained depth
    into :data:`DEPTH_CHAIN_DIR` as it finishes: rerun on the same run (``sparseae train --resume``), the chain
    resumes at its first unfinished depth."""
    from ...evaluate.lista import LISTATraining, exact_codes, lista_depth_chain

    if run.config.model_name != "sparse_coding" or run.model.spec["params"].get("nonnegative", False):
        raise ConfigError("evaluation 'lista_depth' needs a sparse_coding model with signed codes (its dictionary "
                          "and λ)")
    _check_chain_options(depths, {"skip": skip, "n_train": n_train, "n_val": n_val, "n_test": n_test,
                                  "max_iter": max_iter, "shifted_copies": shifted_copies},
                         {"warm_start": warm_start, "untied": untied, "layer_thresholds": layer_thresholds,
                          "safeguard": safeguard}, stability_bound)
    settings = LISTATraining(epochs=epochs, patience=patience, batch_size=batch_size, lr=lr, clip=clip, seed=seed,
                             optimizer=optimizer, schedule=schedule, scale_lr=scale_lr, decay=decay,
                             decay_patience=decay_patience, min_lr_ratio=min_lr_ratio)
    D, lam = run_dictionary(run)
    train, val, test = lista_rows(run, data, skip, n_train, n_val, n_test, seed, shifted_copies)
    (X_train, Z_train), (X_val, Z_val), (X_test, Z_test) = ((X, exact_codes(X, D, lam)) for X in (train, val, test))
    curves = solver_curves(X_test, D, lam, Z_test, max_iter)
    results, _ = lista_depth_chain(D, lam, depths, (X_train, Z_train), (X_val, Z_val), (X_test, Z_test),
                                   settings=settings.validate(), warm_start=warm_start,
                                   model_params={"untied": untied, "layer_thresholds": layer_thresholds},
                                   stability_bound=stability_bound, safeguard=safeguard,
                                   checkpoints=run.run_dir / DEPTH_CHAIN_DIR)
    write_depth_curve(run.run_dir, curves, [r.T for r in results], [reported_error(r) for r in results],
                      untied=untied)
    return _lista_metrics(results, curves["FISTA"], max_iter)


def _check_chain_options(depths: Any, counts: Mapping[str, Any], switches: Mapping[str, Any],
                         stability_bound: Any) -> None:
    """The ``lista_depth`` evaluation's settings: a non-empty list of depths ≥ 1, counts (``skip`` and
    ``shifted_copies`` ≥ 0, the others ≥ 1), booleans, and a positive ``stability_bound`` or None."""
    if not isinstance(depths, (list, tuple)) or not depths:
        raise ConfigError(f"evaluate.depths must be a non-empty list of LISTA depths T, got {depths!r}")
    for T in depths:
        check_number(T, "evaluate.depths[]", low=1, integer=True)
    for name, value in counts.items():
        check_number(value, f"evaluate.{name}", low=0 if name in ("skip", "shifted_copies") else 1, integer=True)
    for name, value in switches.items():
        check_bool(value, f"evaluate.{name}")
    if stability_bound is not None:
        check_number(stability_bound, "evaluate.stability_bound", low=0.0, low_inclusive=False)


def solver_curves(X: torch.Tensor, D: torch.Tensor, lam: float, Z_star: torch.Tensor,
                  max_iter: int) -> dict[str, np.ndarray]:
    """{"ISTA": ..., "FISTA": ...}: each solver's error mean‖z − z*‖² / mean‖z*‖² from zero after
    iterations 1…max_iter, (max_iter,), on X (n, n_features) with exact codes Z_star (n, n_components)."""
    from ...coding import fista, ista
    from ...evaluate.lista import solver_curve
    from ...models import lista_from_dictionary

    L = lista_from_dictionary(D, lam, 1).lipschitz
    return {name: solver_curve(solver, X, D, lam, L, Z_star, max_iter) for name, solver in (("ISTA", ista),
                                                                                              ("FISTA", fista))}


def run_dictionary(run: FinishedRun) -> tuple[torch.Tensor, float]:
    """The run's ``sparse_coding`` dictionary D (n_features, n_components), float32 on the CPU, and its λ."""
    return run.model.dictionary.detach().float().cpu(), float(run.model.spec["params"].get("sparsity_weight", 0.1))


def write_depth_curve(run_dir: Path, curves: Mapping[str, np.ndarray], depths: list[int], errors: list[float], *,
                      untied: bool = False) -> None:
    """The depth curve's data and picture in ``run_dir``: :data:`DEPTH_CURVE_JSON` ({"depths", "errors",
    and each solver's curve by name}) and :data:`DEPTH_CURVE_PNG` (:func:`~sparseae.viz.save_depth_curve`)."""
    from ...io import write_json_atomic
    from ...viz import save_depth_curve

    run_dir = Path(run_dir)
    solvers = {name: [float(v) for v in curve] for name, curve in curves.items()}
    write_json_atomic(run_dir / DEPTH_CURVE_JSON, {"depths": [int(T) for T in depths],
                                                   "errors": [float(e) for e in errors], **solvers})
    label = "LISTA" + (" (untied S_k)" if untied else "") + ", depth T"
    save_depth_curve(curves, depths, errors, run_dir / DEPTH_CURVE_PNG, label=label,
                     title="code prediction error on the test rows")


def reported_error(result) -> float:
    """A depth's test error as the evaluation reports it: safeguarded when the chain computed it, else LISTA's."""
    return result.trained if result.safeguarded is None else result.safeguarded


def _lista_metrics(results: list, curve: np.ndarray, max_iter: int) -> dict[str, float]:
    """The ``lista_depth`` metrics (see :func:`_lista_depth`) of the chain's per-depth ``results`` against
    FISTA's error ``curve`` (max_iter,)."""
    from ...evaluate.lista import iterations_to_match

    metrics: dict[str, float] = {}
    for result in results:
        reached = iterations_to_match(curve, reported_error(result))
        metrics[f"lista_error_T{result.T}"] = reported_error(result)
        if result.safeguarded is not None:
            metrics[f"lista_raw_error_T{result.T}"] = result.trained
            metrics[f"lista_flagged_T{result.T}"] = float(result.flagged)
        metrics[f"fista_equivalent_T{result.T}"] = float(reached if reached is not None else max_iter + 1)
        metrics[f"lista_epochs_T{result.T}"] = float(result.epochs)
        metrics[f"lista_best_epoch_T{result.T}"] = float(result.best_epoch)
        if result.stopped is not None:  # 0: the epoch budget ran out before the schedule converged
            metrics[f"lista_converged_T{result.T}"] = float(result.stopped != "epochs")
    errors = [reported_error(result) for result in results]
    deepest = results[-1].T
    return {**metrics, "lista_error_deepest": errors[-1],
            "fista_equivalent_deepest": metrics[f"fista_equivalent_T{deepest}"],
            "lista_depth_deepest": float(deepest), "lista_error_shallowest": errors[0],
            "lista_error_falls": float(bool(np.all(np.diff(errors) < 0)))}


def lista_rows(run: FinishedRun, data: Mapping[str, Any] | None, skip: int, n_train: int, n_val: int, n_test: int,
               seed: int, shifted_copies: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The LISTA training, validation and test inputs (n, n_features), float32 (see :func:`_lista_depth`);
    the training rows followed by ``shifted_copies`` copies of them shifted by a pixel (images only)."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"evaluate.data must be a mapping of data-section changes, got {data!r}")
    config = run.config.override({f"data.{key}": value for key, value in (data or {}).items()})
    train_set, eval_set = load_datasets(config)
    rng = np.random.default_rng(seed)
    pool = np.asarray(train_set.X, dtype=np.float32)[skip:]
    pool = pool[rng.permutation(len(pool))]
    held_out = config.test_data_spec() is not None
    needed = n_train + n_val + (0 if held_out else n_test)
    if len(pool) < needed:
        raise DataError(f"evaluation 'lista_depth' needs {needed} training rows after skipping {skip}, the data "
                        f"has {len(pool)}")
    if held_out:
        test = np.asarray(eval_set.X, dtype=np.float32)
        if len(test) < n_test:
            raise DataError(f"evaluation 'lista_depth' needs {n_test} test rows, the evaluation set has {len(test)}")
        test = test[rng.permutation(len(test))[:n_test]]
    else:
        test = pool[n_train + n_val:needed]
    train = pool[:n_train]
    if shifted_copies:
        if train_set.image_shape is None:
            raise ConfigError(f"evaluate.shifted_copies needs image data; {train_set.name!r} has no image shape")
        train = np.concatenate([train, images.shifted_copies(train, train_set.image_shape, shifted_copies, seed)])
    return tuple(torch.from_numpy(np.ascontiguousarray(part)) for part in (train, pool[n_train:n_train + n_val], test))


class RunRows(NamedTuple):
    """A finished ``lista_depth`` run's pieces as its evaluation built them: the run, the evaluation settings
    (every one, defaults filled in), the dictionary D (n_features, n_components), λ, and the training
    (shifted copies included), validation and test rows (n, n_features)."""

    run: FinishedRun
    params: dict[str, Any]
    D: torch.Tensor
    lam: float
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def run_rows(run_dir: str | Path, evaluation: Mapping[str, Any] | None = None) -> RunRows:
    """Rebuild a finished run's LISTA rows from its folder and the ``lista_depth`` settings it ran with
    (``evaluation``: e.g. a recipe's ``Recipe.evaluation(assignments=...)``; the evaluation's defaults fill
    the rest): what the benchmark scripts that study a run's saved depths start from."""
    from .registry import load_finished_run

    defaults = {name: parameter.default for name, parameter in inspect.signature(_lista_depth).parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    params = {**defaults, **{key: value for key, value in (evaluation or {}).items() if key != "name"}}
    run = load_finished_run(Path(run_dir))
    D, lam = run_dictionary(run)
    train, val, test = lista_rows(run, params["data"], params["skip"], params["n_train"], params["n_val"],
                                  params["n_test"], params["seed"], params["shifted_copies"])
    return RunRows(run, params, D, lam, train, val, test)

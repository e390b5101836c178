"""Run folders: their layout and names, checking and clearing one, finding the model in one.

A run folder ``DIR`` holds::

    config.yaml       the resolved run config (every default written out)
    checkpoint/       the last finished epoch (a loadable model + optimizer state), for --resume
    pretrain/         for a model with a classifier head and a ``pretrain`` section: the
                      unsupervised phase's checkpoint/ and metrics.jsonl; for a deep model or a
                      ``conv_stack``, one layer<k>/ per layer of greedy pre-training
    metrics.jsonl     one JSON record per epoch
    model/            the final model (model.safetensors + config.json)
    summary.json      final metrics (see :func:`~sparseae.runs.metrics.compute_metrics`), timings
    *.png             filters, curves, reconstructions, activity... (:func:`~sparseae.runs.plots.write_plots`)
    report.html       ``sparseae report`` (and compare-<other run>.html for a comparison)
    tracking.json     with ``train.loggers``: the tracking runs' ids (a resume continues them), and
                      the loggers' tensorboard/, mlruns/, wandb/ (:mod:`sparseae.train.loggers`)

Training into a folder is :func:`~sparseae.runs.execute.execute_run`; metrics and pictures are
:mod:`~sparseae.runs.metrics` and :mod:`~sparseae.runs.plots`. Nothing here prints; the CLI's
:mod:`~sparseae.cli.output` module reports the results.
"""
from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from .. import locking
from ..errors import CheckpointError, OutputExistsError
from ..io import CONFIG_FILE, load_model, resolve_saved
from ..models import Autoencoder
from ..train.checkpoint import CHECKPOINT_DIR, checkpoint_path, has_checkpoint
from ..train.loggers import LOGGER_DIRS, TRACKING_FILE

RUN_FORMAT = "sparseae-run"
#: The commands named in config.yaml (:func:`~sparseae.config.written_by`): a demo replaces only its own runs.
TRAIN_COMMAND = "sparseae train"
DEMO_COMMAND = "sparseae demo"
CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "summary.json"
MODEL_NAME = "model"
PLOT_NAMES = ("filters.png", "curves.png", "reconstructions.png", "activity.png", "angles.png", "confusion.png",
              "precision_recall.png", "firing.png")
REPORT_NAME = "report.html"
COMPARISON_PREFIX = "compare-"
#: Every name a run folder may hold; a folder with anything else is not ours to overwrite.
PRETRAIN_DIR = "pretrain"
RUN_ENTRIES = frozenset({CONFIG_NAME, METRICS_NAME, SUMMARY_NAME, MODEL_NAME, MODEL_NAME + ".old",
                         CHECKPOINT_DIR, CHECKPOINT_DIR + ".old", PRETRAIN_DIR, REPORT_NAME, *PLOT_NAMES,
                         locking.LOCK_NAME, TRACKING_FILE, *LOGGER_DIRS})


def _is_ours(entry: Path) -> bool:
    # Atomic writes leave hidden "*.tmp" siblings only if killed mid-write.
    return (entry.name in RUN_ENTRIES or (entry.name.startswith(".") and entry.name.endswith(".tmp"))
            or (entry.name.startswith(COMPARISON_PREFIX) and entry.name.endswith(".html")))


def run_dir_state(path: Path) -> str:
    """``"missing"``, ``"empty"``, ``"run"`` (only files a run writes) or ``"foreign"``."""
    if not path.exists():
        return "missing"
    if not path.is_dir():
        return "foreign"
    entries = locking.contents(path)  # the lock of a writer (or a stale one) is no content
    if not entries:
        return "empty"
    return "run" if all(_is_ours(entry) for entry in entries) else "foreign"


def check_run_dir(path: Path, *, resume: bool, overwrite: bool) -> str:
    """Raise unless a run may write to ``path``; returns :func:`run_dir_state`. Changes nothing.

    A finished or unfinished run is replaced only with ``overwrite``; a folder holding files a run
    does not write is never replaced; ``resume`` needs a checkpoint.
    """
    state = run_dir_state(path)
    if resume and overwrite:
        raise OutputExistsError("--resume and --overwrite exclude each other: resume continues the run "
                                f"in {path}, overwrite starts it again")
    if resume:
        if not (has_checkpoint(path) or has_checkpoint(path / PRETRAIN_DIR)
                or has_checkpoint(path / PRETRAIN_DIR / "layer1")):
            why = "the folder does not exist" if state == "missing" else f"no {CHECKPOINT_DIR}/ in it"
            raise CheckpointError(f"nothing to resume in {path}: {why}; run without --resume to start")
        return state
    if state == "foreign":
        if path.is_dir():
            others = sorted(entry.name for entry in path.iterdir() if not _is_ours(entry))
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise OutputExistsError(f"{path} is not a sparseae run folder (it holds {shown}); refusing to "
                                    "write into it, even with --overwrite: choose another --out")
        raise OutputExistsError(f"{path} is a file, not a folder; choose another --out")
    if state == "run" and not overwrite:
        kind = "finished" if (path / SUMMARY_NAME).exists() else "unfinished"
        raise OutputExistsError(f"{path} already holds a {kind} sparseae run; pass --resume to continue "
                                "it or --overwrite to replace it (nothing was changed)")
    return state


def clear_run_dir(path: Path) -> None:
    """Delete what a run wrote in ``path`` (only names in :data:`RUN_ENTRIES` and its temp files;
    the lock stays with its holder)."""
    for entry in locking.contents(path):
        if _is_ours(entry):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch records of ``run_dir/metrics.jsonl`` ([] when there is none)."""
    path = run_dir / METRICS_NAME
    if not path.exists():
        return []
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} is corrupt: {exc}") from None
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise CheckpointError(f"{path} is corrupt: record {number} is {type(record).__name__}, not a JSON "
                                  "object of an epoch's metrics")
    return records


def is_run_dir(path: Path) -> bool:
    """True for a folder with the run config or a model/checkpoint of a run."""
    return path.is_dir() and any((path / name).exists() for name in (CONFIG_NAME, MODEL_NAME, CHECKPOINT_DIR))


def lock_if_run_dir(folder: Path | None, purpose: str) -> contextlib.AbstractContextManager:
    """The lock of ``folder`` (:func:`sparseae.locking.acquire`) when it is a run folder or a
    writer's lock is in it, for a command that writes files there; else a no-op context."""
    if folder is not None and (is_run_dir(folder) or (folder / locking.LOCK_NAME).exists()):
        return locking.acquire(folder, purpose)
    return contextlib.nullcontext()


def pretrained_first_layer(run_dir: Path | None, model: Autoencoder) -> Autoencoder | None:
    """A deep model's first greedily pre-trained layer as it was before fine-tuning
    (``run_dir/pretrain/layer1``), on the model's device; None for other runs and bare models."""
    if run_dir is None or model.training_procedure != "pretrain_finetune":
        return None
    layer_dir = run_dir / PRETRAIN_DIR / "layer1"
    if not has_checkpoint(layer_dir):
        return None
    parameter = next(model.parameters())
    return load_model(checkpoint_path(layer_dir)).to(parameter.device)


def locate_model(path: str | Path) -> tuple[Path, Path | None]:
    """(model folder, run folder or None) for a path to a saved model, a SAELens SAE folder (run
    folder None; :func:`~sparseae.io.load_model` reads it) or a run folder.

    A run folder's final ``model/`` is preferred; an unfinished run falls back to its checkpoint.
    """
    from ..io.saelens import is_saelens_folder

    path = Path(path)
    if is_saelens_folder(path) and not (path / CONFIG_FILE).exists() and not is_run_dir(path):
        return path, None
    if (path / CONFIG_FILE).exists() or (path.with_name(path.name + ".old") / CONFIG_FILE).exists():
        parent = path.parent
        return resolve_saved(path), (parent if (parent / CONFIG_NAME).exists() else None)
    if is_run_dir(path):
        for candidate in (path / MODEL_NAME, checkpoint_path(path)):
            try:
                return resolve_saved(candidate), path
            except CheckpointError:
                continue
        raise CheckpointError(f"{path} is a run folder without a trained model: neither {MODEL_NAME}/ nor "
                              f"{CHECKPOINT_DIR}/ holds one (was training stopped before the first epoch?)")
    if not path.exists():
        raise CheckpointError(f"no saved model or run folder at {path}: it does not exist")
    raise CheckpointError(f"{path} is not a sparseae model or run folder: it has no {CONFIG_FILE} "
                          f"(model) and no {CONFIG_NAME} (run)")

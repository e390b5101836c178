"""Train this config into this folder: :func:`execute_run` (phases, the folder, metrics, plots)."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import distributed, locking
from .._version import __version__
from ..config import RunConfig
from ..errors import CheckpointError
from ..io import read_config, resolve_saved, save_model, write_json_atomic
from ..models import Autoencoder, create_model
from ..train.checkpoint import checkpoint_path, has_checkpoint
from ..train.loggers import check_logger_installed, run_loggers
from .data import data_provenance, describe_data, load_datasets
from .folder import (
    CONFIG_NAME,
    MODEL_NAME,
    PRETRAIN_DIR,
    RUN_FORMAT,
    SUMMARY_NAME,
    TRAIN_COMMAND,
    check_run_dir,
    clear_run_dir,
    pretrained_first_layer,
)
from .metrics import compute_metrics
from .plots import write_plots
from .procedures import PROCEDURES, check_pretrain_section, procedure_of, training_phases


def _check_resumable(run_dir: Path, model: Autoencoder) -> None:
    if not has_checkpoint(run_dir):
        if model.training_procedure in ("pretrain_finetune", "layerwise"):
            return  # only layer checkpoints so far: each layer's run checks its own
        run_dir = run_dir / PRETRAIN_DIR
    saved = read_config(resolve_saved(checkpoint_path(run_dir)))
    if saved["model"] != model.spec["name"] or saved["params"] != model.spec["params"]:
        changed = sorted(key for key in set(saved["params"]) | set(model.spec["params"])
                         if saved["params"].get(key) != model.spec["params"].get(key))
        what = f"model {saved['model']!r}, not {model.spec['name']!r}" if saved["model"] != model.spec["name"] \
            else f"other model parameters ({', '.join(changed)})"
        raise CheckpointError(f"cannot resume: the checkpoint in {run_dir} has {what}; resume with the "
                              "run's own config (omit CONFIG and --model) or start a new run")


def execute_run(config: RunConfig, *, resume: bool = False, overwrite: bool = False,
                progress: bool = False, announce: Callable[[dict[str, Any]], None] | None = None,
                command: str = TRAIN_COMMAND) -> dict[str, Any]:
    """:func:`_execute_run` holding the run folder's lock (see :mod:`sparseae.locking`) from before
    the folder is checked until the summary is written: a second writer is refused."""
    if resume and not config.output_dir.exists():
        check_run_dir(config.output_dir, resume=True, overwrite=overwrite)  # nothing to resume, nor lock
    with locking.hold_on_primary(config.output_dir, "sparseae training"):
        return _execute_run(config, resume=resume, overwrite=overwrite, progress=progress, announce=announce,
                            command=command)


def _execute_run(config: RunConfig, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = False, announce: Callable[[dict[str, Any]], None] | None = None,
                 command: str = TRAIN_COMMAND) -> dict[str, Any]:
    """Train ``config`` into its output folder and return the summary (also saved as summary.json).

    Checks the folder first (see :func:`check_run_dir`), loads the data, builds the model (seeded
    with ``train.random_state``), trains with checkpoints, saves ``model/``, computes
    :func:`compute_metrics` and writes the plots. An existing run is cleared only once the data
    and model are ready. ``announce(facts)`` is called just before training starts, its
    ``phases`` from :func:`training_phases`; ``progress`` shows a labelled bar per phase and one
    (``encode``) while the metrics are computed, and config.yaml records it as ``train.progress``;
    ``command`` is named on config.yaml's first line (:func:`~sparseae.config.written_by`). A resume
    rewrites config.yaml only once its training stopped without an error: one that diverged (or
    failed) leaves config.yaml, ``model/`` and summary.json as they were.
    """
    started = time.perf_counter()
    run_dir = config.output_dir
    primary = distributed.is_primary()  # under torchrun only rank 0 writes; every rank trains
    folder_state = check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    distributed.barrier()  # every rank has looked at the folder before rank 0 changes it
    shown = bool(progress and primary)  # recorded as it runs (a pretrain section's own value too)
    config = config.override({"train.progress": shown, **({"pretrain.progress": shown} if "progress" in config.pretrain
                                                           else {})})
    train_config = config.train_config()
    train_config.training_device()  # this machine can train as train.device asks (before any work)
    for name in train_config.loggers:
        check_logger_installed(name)  # its package, before any work
    train_set, eval_set = load_datasets(config)
    torch.manual_seed(train_config.random_state)
    model = create_model(config.model_name, train_set.n_features, config.n_components, **config.model_params)
    check_pretrain_section(config, model)
    run_procedure = PROCEDURES[procedure_of(model)]
    _prepare_folder(config, model, folder_state, resume, command)
    if announce is not None:
        announce(_run_facts(config, model, train_set, train_config, resume))
    with run_loggers(train_config.loggers, run_dir, config.resolved(model.spec), enabled=primary,
                     resume=resume) as trackers:
        result = _train_phases(run_procedure, config, model, train_set, train_config, resume, command)
        summary = _summary(config, model, train_set, eval_set, result)
        if primary:
            _write_results(summary, config, model, train_set, eval_set, train_config, result.history, started)
        for tracker in trackers:  # train.loggers: the summary's numbers, at the last epoch
            tracker.log_summary(summary, summary["epochs"])
    return summary


def _prepare_folder(config: RunConfig, model: Autoencoder, folder_state: str, resume: bool,
                    command: str) -> None:
    """Check a resume fits the checkpoint, or clear an existing run; create the folder and write
    config.yaml (a resume keeps the run's own until its training did not fail). Ranks meet after."""
    run_dir, primary = config.output_dir, distributed.is_primary()
    if resume:
        _check_resumable(run_dir, model)
    elif folder_state == "run" and primary:
        clear_run_dir(run_dir)
    if primary:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            config.write(run_dir / CONFIG_NAME, model.spec, command=command)
    distributed.barrier()


def _run_facts(config: RunConfig, model: Autoencoder, train_set, train_config, resume: bool) -> dict[str, Any]:
    """What ``announce`` is told just before training starts."""
    run_dir = config.output_dir
    return {"model": config.model_name, "data": config.data_name, "n_train": train_set.n_samples,
            "n_features": train_set.n_features, "n_components": model.n_components,
            "optimizer": train_config.optimizer, "max_epochs": train_config.max_epochs,
            "lbfgs_max_iter": train_config.lbfgs_max_iter, "device": str(train_config.resolved_device()),
            "run_dir": str(run_dir), "resume": resume,
            "phases": training_phases(config, model, train_config, run_dir)}


def _train_phases(run_procedure, config: RunConfig, model: Autoencoder, train_set, train_config, resume: bool,
                  command: str):
    """The model family's procedure run on ``train_set``; a resume's config.yaml is rewritten once
    it stopped without an error (or was interrupted). An interrupt says what was checkpointed."""
    run_dir, primary = config.output_dir, distributed.is_primary()
    try:
        result = run_procedure(model, config, train_set, train_config, run_dir, resume)
    except KeyboardInterrupt:
        if resume and primary:  # stopped, not failed: a further --resume goes on with these settings
            config.write(run_dir / CONFIG_NAME, model.spec, command=command)
        where = (f"the last finished epoch is checkpointed in {run_dir}: continue with --resume"
                 if has_checkpoint(run_dir) else "no epoch had finished, so nothing was checkpointed")
        raise KeyboardInterrupt(f"training interrupted; {where}") from None
    if resume and primary:
        config.write(run_dir / CONFIG_NAME, model.spec, command=command)
    return result


def _summary(config: RunConfig, model: Autoencoder, train_set, eval_set, result) -> dict[str, Any]:
    """The run's facts known on every rank once training ended (no metrics yet)."""
    history = result.history
    return {
        "format": RUN_FORMAT, "sparseae_version": __version__,
        "model": config.model_name, "n_features": train_set.n_features, "n_components": model.n_components,
        "data": config.data_name, "eval_data": describe_data(config) if eval_set is not train_set else "train",
        "n_train": train_set.n_samples, "n_eval": eval_set.n_samples,
        "image_shape": list(eval_set.image_shape) if eval_set.image_shape else None,
        "epochs": history[-1]["epoch"] if history else 0, "stop_reason": result.stop_reason,
        "final_loss": history[-1]["train_loss"] if history else None,
        "world_size": distributed.world_size(),
        **({"provenance": provenance} if (provenance := data_provenance(config)) is not None else {}),
    }


def _write_results(summary: dict[str, Any], config: RunConfig, model: Autoencoder, train_set, eval_set,
                   train_config, history: list[dict[str, float]], started: float) -> None:
    """Save ``model/``, add the metrics, plots and timings to ``summary`` and write summary.json."""
    run_dir = config.output_dir
    save_model(model, run_dir / MODEL_NAME, overwrite=True,
               extra={"run": str(run_dir), "epochs": summary["epochs"], "data": config.data_name,
                      **({"provenance": summary["provenance"]} if "provenance" in summary else {})})
    from tqdm.auto import tqdm

    with tqdm(total=eval_set.n_samples, desc="encode", unit="sample", unit_scale=True, dynamic_ncols=True,
              leave=False, disable=not train_config.progress) as bar:
        summary["metrics"] = compute_metrics(model, train_set, eval_set, random_state=train_config.random_state,
                                             pretrained=pretrained_first_layer(run_dir, model), progress=bar.update,
                                             firing_rates=True)
    if "firing_rates" in summary["metrics"]:  # per latent, on the evaluation set: not a flat metric
        summary["firing_rates"] = summary["metrics"].pop("firing_rates")
    summary["plots"] = [str(path) for path in write_plots(model, history, eval_set, run_dir,
                                                           random_state=train_config.random_state,
                                                           firing="provenance" in summary)] \
        if config.plots else []
    summary["train_seconds"] = float(sum(record.get("seconds", 0.0) for record in history))
    summary["wall_seconds"] = time.perf_counter() - started
    summary["run_dir"] = str(run_dir)
    write_json_atomic(run_dir / SUMMARY_NAME, summary)

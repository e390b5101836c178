"""Run folders: check them, train a config into one, find the model in one.

A run folder ``DIR`` holds::

    config.yaml       the resolved run config (every default written out)
    checkpoint/       the last finished epoch (a loadable model + optimizer state), for --resume
    pretrain/         for a model with a classifier head and a ``pretrain`` section: the
                      unsupervised phase's checkpoint/ and metrics.jsonl; for a deep model or a
                      ``conv_stack``, one layer<k>/ per layer of greedy pre-training
    metrics.jsonl     one JSON record per epoch
    model/            the final model (model.safetensors + config.json)
    summary.json      final metrics (see :func:`~sparseae.cli.evaluation.compute_metrics`), timings
    *.png             filters, curves, reconstructions, activity... (:func:`~sparseae.cli.evaluation.write_plots`)
    report.html       ``sparseae report`` (and compare-<other run>.html for a comparison)

Metrics and pictures are computed by :mod:`~sparseae.cli.evaluation`. Nothing here prints; the CLI's
:mod:`~sparseae.cli.output` module reports the results.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .. import __version__, locking
from ..config import STACK_KEYS, RunConfig
from ..errors import CheckpointError, ConfigError, DataError, OutputExistsError
from ..io import CONFIG_FILE, load_model, read_config, resolve_saved, save_model, write_json_atomic
from ..models import Autoencoder, SupervisedAutoencoder, create_model
from ..models.conv_stack import ConvStack
from ..models.deep import MLPEncoder, pretrain_deep_model
from ..models.supervised import fit_supervised
from ..train import TrainResult, distributed, train
from ..train.checkpoint import CHECKPOINT_DIR, checkpoint_path, has_checkpoint
from .evaluation import compute_metrics, describe_data, load_datasets, write_plots

RUN_FORMAT = "sparseae-run"
#: The commands named in config.yaml (:func:`~sparseae.config.written_by`): a demo replaces only its own runs.
TRAIN_COMMAND = "sparseae train"
DEMO_COMMAND = "sparseae demo"
CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "summary.json"
MODEL_NAME = "model"
PLOT_NAMES = ("filters.png", "curves.png", "reconstructions.png", "activity.png", "angles.png", "confusion.png",
              "precision_recall.png")
REPORT_NAME = "report.html"
COMPARISON_PREFIX = "compare-"
#: Every name a run folder may hold; a folder with anything else is not ours to overwrite.
PRETRAIN_DIR = "pretrain"
RUN_ENTRIES = frozenset({CONFIG_NAME, METRICS_NAME, SUMMARY_NAME, MODEL_NAME, MODEL_NAME + ".old",
                         CHECKPOINT_DIR, CHECKPOINT_DIR + ".old", PRETRAIN_DIR, REPORT_NAME, *PLOT_NAMES,
                         locking.LOCK_NAME})


# ------------------------------------------------------------------------------- run folders

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
    if run_dir is None or not isinstance(getattr(model, "encoder", None), MLPEncoder):
        return None
    layer_dir = run_dir / PRETRAIN_DIR / "layer1"
    if not has_checkpoint(layer_dir):
        return None
    parameter = next(model.parameters())
    return load_model(checkpoint_path(layer_dir)).to(parameter.device)


def locate_model(path: str | Path) -> tuple[Path, Path | None]:
    """(model folder, run folder or None) for a path to a saved model or to a run folder.

    A run folder's final ``model/`` is preferred; an unfinished run falls back to its checkpoint.
    """
    path = Path(path)
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


# -------------------------------------------------------------------------------------- run

def _train_supervised(model: SupervisedAutoencoder, config: RunConfig, train_set, train_config,
                      run_dir: Path, resume: bool):
    """A model with a classifier head: data-dependent initialization (when the model has one),
    the optional unsupervised ``pretrain`` phase into ``run_dir/pretrain``, then training with the
    dataset's labels."""
    if train_set.y is None:
        raise DataError(f"model {config.model_name!r} has a classifier head and trains on labels, but "
                        f"dataset {config.data_name!r} has none")
    if hasattr(model, "initialize_from_data") and not resume:
        model.initialize_from_data(train_set.X, generator=torch.Generator().manual_seed(train_config.random_state))
    pretrain_config = config.pretrain_config(progress=train_config.progress)
    return fit_supervised(model, train_set.X, train_set.y, pretrain_config=pretrain_config,
                          train_config=train_config, run_dir=run_dir, pretrain_dir=run_dir / PRETRAIN_DIR,
                          resume=resume)["train"]


def _train_stack(model: Autoencoder, config: RunConfig, train_set, train_config, run_dir: Path, resume: bool):
    """A deep model: greedy layer-wise pre-training into ``run_dir/pretrain/layer<k>`` (when the
    config has a ``pretrain`` section), then fine-tuning of the whole stack (on the labels for a
    model with a classifier head)."""
    supervised = isinstance(model, SupervisedAutoencoder) and model.needs_targets
    if supervised and train_set.y is None:
        raise DataError(f"model {config.model_name!r} has a classifier head and trains on labels, but "
                        f"dataset {config.data_name!r} has none")
    pretrain_config = config.pretrain_config(progress=train_config.progress)
    if pretrain_config is not None and not has_checkpoint(run_dir):
        layer_model, layer_params = config.layer_spec
        pretrain_deep_model(model, train_set.X, pretrain_config, layer_model=layer_model,
                            layer_params=layer_params, run_dir=run_dir / PRETRAIN_DIR, resume=resume)
    return train(model, train_set.X, train_config, y=train_set.y if supervised else None,
                 run_dir=run_dir, resume=resume, progress_label="train" if pretrain_config is None else "fine-tune")


def _train_conv_stack(model: ConvStack, config: RunConfig, train_set, train_config, run_dir: Path,
                      resume: bool) -> TrainResult:
    """A ``conv_stack``: greedy layer-wise training of its ``conv_sae`` layers into
    ``run_dir/pretrain/layer<k>``, with the ``train`` settings changed by the ``pretrain`` section's
    (as a deep model's pre-training); there is no fine-tuning. The layers' histories, one after the
    other (epochs numbered on), are the run's."""
    layer_config = config.pretrain_config(progress=train_config.progress) or train_config
    results = model.fit_layers(train_set.X, layer_config, run_dir=run_dir / PRETRAIN_DIR, resume=resume)
    history = [{**record, "epoch": epoch} for epoch, record in
               enumerate((record for result in results for record in result.history), start=1)]
    return TrainResult(history=history, best_epoch=len(history), stop_reason=results[-1].stop_reason)


def training_phases(config: RunConfig, model: Autoencoder, train_config, run_dir: Path) -> list[dict[str, Any]]:
    """The phases a run trains, in order, as its progress bars name them: ``{"name", "layers"
    (greedy layer-wise: the number of layers, each trained with this budget; else None),
    "optimizer", "epochs", "lbfgs_max_iter"}``."""
    def phase(name: str, phase_config, layers: int | None = None) -> dict[str, Any]:
        return {"name": name, "layers": layers, "optimizer": phase_config.optimizer,
                "epochs": phase_config.n_epochs, "lbfgs_max_iter": phase_config.lbfgs_max_iter}

    pretrain_config = config.pretrain_config(progress=train_config.progress)
    if isinstance(model, ConvStack):
        return [phase("pretrain", pretrain_config or train_config, len(model.layers))]
    phases = []
    if pretrain_config is not None:
        if isinstance(model.encoder, MLPEncoder):
            if not has_checkpoint(run_dir):  # a resumed fine-tuning does not pre-train again
                phases.append(phase("pretrain", pretrain_config, len(model.encoder.layers)))
        else:
            phases.append(phase("pretrain", pretrain_config))
    return phases + [phase("fine-tune" if pretrain_config is not None else "train", train_config)]


def _check_pretrain_section(config: RunConfig, model: Autoencoder) -> None:
    """Refuse a ``pretrain`` section the model would not use (nothing is ignored silently)."""
    if not config.pretrain:
        return
    layered = isinstance(model, ConvStack) or isinstance(model.encoder, MLPEncoder)
    if not (layered or isinstance(model, SupervisedAutoencoder)):
        raise ConfigError(f"model {config.model_name!r} has no pre-training phase: the pretrain section "
                          "applies to deep models (deep_autoencoder, mlp_classifier), conv_stack and "
                          "models with a classifier head; remove it")
    if set(config.pretrain) & set(STACK_KEYS) and not isinstance(model.encoder, MLPEncoder):
        where = "a conv_stack's layers are model.layers" if isinstance(model, ConvStack) else \
            f"model {config.model_name!r} is pre-trained whole, not layer by layer"
        raise ConfigError(f"{where}; pretrain.layer_model and pretrain.layer_params belong to "
                          "deep_autoencoder and mlp_classifier")


def _check_resumable(run_dir: Path, model: Autoencoder) -> None:
    if not has_checkpoint(run_dir):
        if isinstance(model.encoder, MLPEncoder) or isinstance(model, ConvStack):
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
    state = check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    distributed.barrier()  # every rank has looked at the folder before rank 0 changes it
    shown = bool(progress and primary)  # recorded as it runs (a pretrain section's own value too)
    config = config.override({"train.progress": shown, **({"pretrain.progress": shown} if "progress" in config.pretrain
                                                           else {})})
    train_config = config.train_config()
    train_config.training_device()  # this machine can train as train.device asks (before any work)
    train_set, eval_set = load_datasets(config)
    torch.manual_seed(train_config.random_state)
    model = create_model(config.model_name, train_set.n_features, config.n_components, **config.model_params)
    _check_pretrain_section(config, model)
    if resume:
        _check_resumable(run_dir, model)
    elif state == "run" and primary:
        clear_run_dir(run_dir)
    if primary:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:  # a resume keeps the run's config.yaml until its training did not fail
            config.write(run_dir / CONFIG_NAME, model.spec, command=command)
    distributed.barrier()
    if announce is not None:
        announce({"model": config.model_name, "data": config.data_name, "n_train": train_set.n_samples,
                  "n_features": train_set.n_features, "n_components": model.n_components,
                  "optimizer": train_config.optimizer, "max_epochs": train_config.max_epochs,
                  "lbfgs_max_iter": train_config.lbfgs_max_iter, "device": str(train_config.resolved_device()),
                  "run_dir": str(run_dir), "resume": resume,
                  "phases": training_phases(config, model, train_config, run_dir)})
    try:
        if isinstance(model, ConvStack):
            result = _train_conv_stack(model, config, train_set, train_config, run_dir, resume)
        elif isinstance(model.encoder, MLPEncoder):
            result = _train_stack(model, config, train_set, train_config, run_dir, resume)
        elif isinstance(model, SupervisedAutoencoder):
            result = _train_supervised(model, config, train_set, train_config, run_dir, resume)
        else:
            result = train(model, train_set.X, train_config, run_dir=run_dir, resume=resume)
    except KeyboardInterrupt:
        if resume and primary:  # stopped, not failed: a further --resume goes on with these settings
            config.write(run_dir / CONFIG_NAME, model.spec, command=command)
        where = (f"the last finished epoch is checkpointed in {run_dir}: continue with --resume"
                 if has_checkpoint(run_dir) else "no epoch had finished, so nothing was checkpointed")
        raise KeyboardInterrupt(f"training interrupted; {where}") from None
    if resume and primary:
        config.write(run_dir / CONFIG_NAME, model.spec, command=command)
    history = result.history
    summary: dict[str, Any] = {
        "format": RUN_FORMAT, "sparseae_version": __version__,
        "model": config.model_name, "n_features": train_set.n_features, "n_components": model.n_components,
        "data": config.data_name, "eval_data": describe_data(config) if eval_set is not train_set else "train",
        "n_train": train_set.n_samples, "n_eval": eval_set.n_samples,
        "image_shape": list(eval_set.image_shape) if eval_set.image_shape else None,
        "epochs": history[-1]["epoch"] if history else 0, "stop_reason": result.stop_reason,
        "final_loss": history[-1]["train_loss"] if history else None,
    }
    summary["world_size"] = distributed.world_size()
    if not primary:
        return summary
    save_model(model, run_dir / MODEL_NAME, overwrite=True,
               extra={"run": str(run_dir), "epochs": summary["epochs"], "data": config.data_name})
    from tqdm.auto import tqdm

    with tqdm(total=eval_set.n_samples, desc="encode", unit="sample", unit_scale=True, dynamic_ncols=True,
              leave=False, disable=not train_config.progress) as bar:
        summary["metrics"] = compute_metrics(model, train_set, eval_set, random_state=train_config.random_state,
                                             pretrained=pretrained_first_layer(run_dir, model), progress=bar.update)
    summary["plots"] = [str(path) for path in write_plots(model, history, eval_set, run_dir,
                                                           random_state=train_config.random_state)] \
        if config.plots else []
    summary["train_seconds"] = float(sum(record.get("seconds", 0.0) for record in history))
    summary["wall_seconds"] = time.perf_counter() - started
    summary["run_dir"] = str(run_dir)
    write_json_atomic(run_dir / SUMMARY_NAME, summary)
    return summary


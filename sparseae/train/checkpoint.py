"""Training checkpoints: the model (safetensors + JSON), the optimizer and the loop's state.

A checkpoint is a folder ``RUN_DIR/checkpoint`` that is also a loadable model
(:func:`sparseae.io.load_model`), plus ``trainer.pt`` (optimizer state, epoch, history;
loaded with ``weights_only=True``, so no code runs) and ``best.safetensors`` (the weights with
the best monitored loss, for early stopping). It is written to a temporary folder and swapped in
with one rename, so a kill at any moment leaves the previous checkpoint intact.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .._version import __version__
from ..errors import CheckpointError
from ..files import staged_folder, write_json_atomic
from ..io import CONFIG_FILE, FORMAT, FORMAT_VERSION, WEIGHTS_FILE, load_state, read_config, read_weights, resolve_saved
from ..models.base import with_defaults

CHECKPOINT_DIR = "checkpoint"
TRAINER_FILE = "trainer.pt"
BEST_FILE = "best.safetensors"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def has_checkpoint(run_dir: str | Path) -> bool:
    path = checkpoint_path(run_dir)
    return (path / CONFIG_FILE).exists() or (path.with_name(path.name + ".old") / CONFIG_FILE).exists()


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_checkpoint(run_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    trainer_state: dict[str, Any], best_state: dict[str, torch.Tensor] | None) -> Path:
    """Write the checkpoint atomically; returns its folder."""
    target = checkpoint_path(run_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    weights, best = _cpu(model.state_dict()), None if best_state is None else _cpu(best_state)
    # disk full, a file-size limit: one OSError; the old checkpoint stays
    with staged_folder(target) as staging:
        save_file(weights, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        if best is not None:
            save_file(best, str(staging / BEST_FILE), metadata={"format": FORMAT})
        write_json_atomic(staging / CONFIG_FILE, {
            "format": FORMAT, "format_version": FORMAT_VERSION, "sparseae_version": __version__,
            "model": model.spec["name"], "params": model.spec["params"],
            "extra": {"epoch": trainer_state["epoch"]}})
        with open(staging / TRAINER_FILE, "wb") as handle:  # a handle keeps the OSError's errno
            torch.save({"optimizer": optimizer.state_dict(), "state": trainer_state}, handle)
    return target


def load_checkpoint(run_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore ``model`` and ``optimizer`` in place; returns (trainer_state, best_state)."""
    folder = resolve_saved(checkpoint_path(run_dir))
    config = read_config(folder)
    if (config["model"] != model.spec["name"]
            or with_defaults(config["model"], config["params"]) != model.spec["params"]):
        raise CheckpointError(
            f"the checkpoint in {folder} belongs to model {config['model']!r} {config['params']}, "
            f"not to {model.spec['name']!r} {model.spec['params']}; use another run folder or "
            "start without --resume")
    load_state(model, folder / WEIGHTS_FILE)
    try:
        saved = torch.load(folder / TRAINER_FILE, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        trainer_state = saved["state"]
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{folder / TRAINER_FILE} is missing or corrupt: {exc}") from None
    best_state = read_weights(folder / BEST_FILE, model) if (folder / BEST_FILE).exists() else None
    return trainer_state, best_state

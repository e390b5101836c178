"""Saving and loading models: a folder with ``model.safetensors`` and ``config.json``.

Loading reads JSON and raw tensors only — it never unpickles, so a model file cannot run code.
Writes are atomic: everything goes to a temporary sibling folder that replaces the target in
one rename, so a crash leaves either the old model or the new one, never half of each.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .errors import CheckpointError, ConfigError, OutputExistsError

FORMAT = "sparseae-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_directory(staging: Path, target: Path) -> None:
    """Move the finished folder ``staging`` to ``target``, replacing an old ``target``.

    The old folder is renamed aside first and removed last; :func:`resolve_saved` falls back to
    it if a crash falls between the two renames.
    """
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    if old.exists():
        shutil.rmtree(old)


def resolve_saved(path: str | os.PathLike) -> Path:
    """The folder holding a saved model: ``path`` itself, or the ``.old`` copy an interrupted
    replacement left behind."""
    path = Path(path)
    if (path / CONFIG_FILE).exists():
        return path
    old = path.with_name(path.name + ".old")
    if (old / CONFIG_FILE).exists():
        return old
    if path.is_file():
        raise CheckpointError(f"{path} is a file; a sparseae model is a folder with {CONFIG_FILE} "
                              f"and {WEIGHTS_FILE}")
    if not path.exists():
        raise CheckpointError(f"no saved model at {path}: the folder does not exist")
    raise CheckpointError(f"{path} is not a sparseae model: {CONFIG_FILE} is missing")


def save_model(model: torch.nn.Module, path: str | os.PathLike, *, overwrite: bool = False,
               extra: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (built by :func:`~sparseae.models.create_model`) to the folder ``path``.

    ``extra``: JSON-able facts stored beside the config (e.g. training summary). An existing
    folder is replaced only when ``overwrite`` is true, and only if it is a sparseae model.
    """
    path = Path(path)
    spec = getattr(model, "spec", None)
    if not spec:
        raise ConfigError("only models made by sparseae.create_model can be saved (model.spec is empty)")
    if path.exists():
        if not overwrite:
            raise OutputExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) "
                                    "to replace it")
        if not (path / CONFIG_FILE).exists():
            raise OutputExistsError(f"{path} exists and is not a sparseae model; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        config = {"format": FORMAT, "format_version": FORMAT_VERSION, "sparseae_version": __version__,
                  "model": spec["name"], "params": spec["params"], "extra": extra or {}}
        write_json_atomic(staging / CONFIG_FILE, config)
        replace_directory(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The validated ``config.json`` of a saved model (raises :class:`CheckpointError`)."""
    folder = resolve_saved(path)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE} is corrupt: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{folder} is not a sparseae model (its {CONFIG_FILE} has no "
                              f"'format': '{FORMAT}')")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{folder} was written by a newer sparseae (format "
                              f"{config['format_version']}); upgrade sparseae to read it")
    if not isinstance(config.get("model"), str) or not isinstance(config.get("params"), dict):
        raise CheckpointError(f"{folder / CONFIG_FILE} lacks 'model' or 'params'")
    return config


def load_state(model: torch.nn.Module, weights_file: Path) -> None:
    """Load a safetensors file into ``model``, checking names and shapes (CheckpointError)."""
    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights_file} is missing or corrupt: {exc}") from None
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights_file} does not fit this model (missing: {missing or 'none'}; "
                              f"unexpected: {unexpected or 'none'}) — is it another model's file?")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{weights_file}: {name} has shape {tuple(tensor.shape)}, the model "
                                  f"expects {tuple(expected[name].shape)}")
    model.load_state_dict(tensors)


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a saved model from its JSON config and load its weights (no pickle involved)."""
    from .models import create_model

    config = read_config(path)
    params = dict(config["params"])
    try:
        n_features, n_components = params.pop("n_features"), params.pop("n_components")
        model = create_model(config["model"], n_features, n_components, **params)
    except (KeyError, ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: its config does not describe a model this sparseae can "
                              f"build: {exc}") from None
    load_state(model, resolve_saved(path) / WEIGHTS_FILE)
    return model.to(map_location)

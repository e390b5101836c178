"""Saving and loading models: a folder with ``model.safetensors`` and ``config.json``.

Loading reads JSON and raw tensors only — it never unpickles, so a model file cannot run code.
Writes are atomic: everything goes to a temporary sibling folder that replaces the target in
one rename, so a crash leaves either the old model or the new one, never half of each.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .._version import __version__
from ..devices import device_problem
from ..errors import CheckpointError, ConfigError, OutputExistsError
from ..files import replace_directory, staged_folder, write_json_atomic, writing  # noqa: F401 (re-exported)
from ..models import create_model
from ..models.base import Autoencoder, migrate_params

FORMAT = "sparseae-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MAX_HEADER_BYTES = 100 << 20  # a safetensors header longer than this is refused unread
#: Bits per element of each safetensors dtype (the header's shapes are checked against the data).
_DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16,
               "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64,
               "F64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


# ------------------------------------------------------------------------------------------ writing

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
    spec = model.spec if isinstance(model, Autoencoder) else None  # a plain module has no spec
    if not spec:
        raise ConfigError("only models made by sparseae.create_model can be saved (model.spec is empty)")
    if path.exists():
        if not overwrite:
            raise OutputExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) "
                                    "to replace it")
        if not (path / CONFIG_FILE).exists():
            raise OutputExistsError(f"{path} exists and is not a sparseae model; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "sparseae_version": __version__,
              "model": spec["name"], "params": spec["params"], "extra": extra or {}}
    with staged_folder(path) as staging:
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        write_json_atomic(staging / CONFIG_FILE, config)
    return path


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The validated ``config.json`` of a saved model (raises :class:`CheckpointError`); parameters
    an older sparseae saved under names since changed come under their new names."""
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
    config["params"] = migrate_params(config["model"], config["params"])
    return config


def _not_safetensors(file: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{file} is corrupt or not a safetensors file: {why}")


def _parse_header(file: Path, header: Any, data_bytes: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name → (dtype, shape) from a parsed header, each entry checked against the data's size."""
    if not isinstance(header, dict):
        raise _not_safetensors(file, "its header is not a JSON object")
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
            valid = (all(type(n) is int and n >= 0 for n in (*shape, start, end)) and dtype in _DTYPE_BITS
                     and start <= end and (math.prod(shape) * _DTYPE_BITS[dtype] + 7) // 8 == end - start)
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            raise _not_safetensors(file, f"the header's entry for {name!r} is invalid")
        if end > data_bytes:
            raise _not_safetensors(file, f"it is truncated ({name!r} needs {end} bytes of data, the file "
                                         f"has {data_bytes})")
        tensors[name] = (dtype, shape)
    return tensors


def read_safetensors_header(file: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name → (dtype, shape) of each tensor of a safetensors ``file``, read from its header alone
    (at most :data:`MAX_HEADER_BYTES`; nothing is allocated for the data). Raises
    :class:`CheckpointError` for a missing file or one that is not safetensors (text, zip, pickle...)."""
    file = Path(file)
    try:
        with open(file, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            length = int.from_bytes(handle.read(8), "little") if size >= 8 else 0
            raw = handle.read(length) if 2 <= length <= min(MAX_HEADER_BYTES, size - 8) else None
    except FileNotFoundError:
        raise CheckpointError(f"{file} is missing") from None
    except OSError as exc:
        raise CheckpointError(f"{file} cannot be read: {exc.strerror or exc}") from None
    if raw is None:
        raise _not_safetensors(file, f"it is only {size} bytes long" if size < 8 else
                               f"its first 8 bytes announce a {length}-byte header in a {size}-byte file")
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
        raise _not_safetensors(file, "its header is not JSON") from None
    return _parse_header(file, header, size - 8 - length)


def check_shapes(weights_file: Path, expected: Mapping[str, tuple[int, ...]], expecter: str) -> None:
    """Raise :class:`CheckpointError` unless the safetensors ``weights_file`` holds exactly the
    tensors ``expected`` (name → shape) by ``expecter``; reads the header only."""
    found = read_safetensors_header(weights_file)
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights_file} does not fit {expecter} (missing: {missing or 'none'}; "
                              f"unexpected: {unexpected or 'none'}) — is it another model's file?")
    for name, shape in expected.items():
        if found[name][1] != tuple(shape):
            raise CheckpointError(f"{weights_file}: {name} has shape {found[name][1]}, but {expecter} "
                                  f"expects {tuple(shape)}")


def read_weights(weights_file: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file made for ``model`` (names and shapes checked from the
    header before anything is loaded); :class:`CheckpointError` when they do not fit."""
    check_shapes(weights_file, {k: tuple(v.shape) for k, v in model.state_dict().items()}, "this model")
    try:
        return load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights_file} is missing or corrupt: {exc}") from None


def load_state(model: torch.nn.Module, weights_file: Path) -> None:
    """Load a safetensors file into ``model``, checking names and shapes (CheckpointError)."""
    model.load_state_dict(read_weights(weights_file, model))


def _config_shapes(name: str, n_features: Any, n_components: Any, params: dict[str, Any]
                   ) -> dict[str, tuple[int, ...]] | None:
    """State-dict shapes of the model a config describes, built on the meta device (no memory);
    None when it cannot be built there (an initialization that needs values): the real build decides."""
    try:
        with torch.device("meta"):
            model = create_model(name, n_features, n_components, **params)
    except Exception:  # noqa: BLE001 — the real build repeats it and reports the config's error
        return None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_config_fits(config_file: Path, config: dict[str, Any], weights_file: Path) -> None:
    """Refuse (:class:`CheckpointError`) a config whose sizes disagree with the weights' header,
    before a model is built: every model has at least one weight per input and per code unit."""
    params = dict(config["params"])
    n_features, n_components = params.pop("n_features", None), params.pop("n_components", None)
    stored = sum(math.prod(shape) for _, shape in read_safetensors_header(weights_file).values())
    for name, size in (("n_components", n_components), ("n_features", n_features)):
        if type(size) is int and size > stored:  # every model has a weight per input and per unit
            raise CheckpointError(f"{config_file} claims {name}={size}, but {weights_file} "
                                  f"holds {stored} numbers in all: they do not belong together")
    shapes = _config_shapes(config["model"], n_features, n_components, params)
    if shapes is not None:
        check_shapes(weights_file, shapes, str(config_file))


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a saved model from its JSON config and load its weights (no pickle involved). The
    config's shapes are checked against the weights' header before any memory is allocated.
    A SAELens folder (``cfg.json`` + ``sae_weights.safetensors``) loads as our model
    (:func:`sparseae.io.saelens.import_saelens`)."""
    from .saelens import import_saelens, is_saelens_folder

    if is_saelens_folder(path) and not (Path(path) / CONFIG_FILE).exists():
        return import_saelens(path).to(_map_location(map_location))
    config = read_config(path)
    folder = resolve_saved(path)
    check_config_fits(folder / CONFIG_FILE, config, folder / WEIGHTS_FILE)
    params = dict(config["params"])
    try:
        n_features, n_components = params.pop("n_features"), params.pop("n_components")
        model = create_model(config["model"], n_features, n_components, **params)
    except (KeyError, TypeError, ValueError, MemoryError) as exc:
        raise CheckpointError(f"{path}: its config does not describe a model this sparseae can "
                              f"build: {exc}") from None
    load_state(model, folder / WEIGHTS_FILE)
    return model.to(_map_location(map_location))


def _map_location(device: str | torch.device) -> torch.device:
    """``map_location`` as a device this machine has, else :class:`ConfigError` saying why."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"map_location must name a device ('cpu', 'cuda', 'cuda:N', 'mps'), got {device!r}") from None
    problem = device_problem(resolved)
    if problem is not None:
        raise ConfigError(f"map_location {device!r}: {problem}")
    return resolved

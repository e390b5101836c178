"""SAELens SAE folders from models, saved models and run folders.

The format itself (both directions, every convention) is :mod:`sparseae.io.saelens`; this module
adds what needs the run layer: exporting a run folder's model with the input normalization its
training data had.
"""
from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import read_run_config
from ..errors import ConfigError, DataNotFoundError
from ..io import load_model
from ..io.saelens import (
    ARCHITECTURES,
    CFG_FILE,
    SPARSITY_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    import_saelens,
    is_saelens_folder,
    saelens_firing_rates,
)
from ..io.saelens import export_saelens as _export_model
from ..runs import CONFIG_NAME, MODEL_NAME, SUMMARY_NAME, locate_model

__all__ = ["ARCHITECTURES", "CFG_FILE", "DATA_KEY", "DATA_PATHS_KEY", "SPARSITY_FILE", "STATE_FILE",
           "WEIGHTS_FILE", "evaluation_base", "export_saelens", "import_saelens", "is_saelens_folder",
           "missing_data_paths", "run_firing_rates", "saelens_firing_rates"]


#: ``cfg.json``'s ``metadata`` key holding the ``data`` section of the run an SAE was exported from,
#: its file and folder options (:data:`PATH_OPTIONS`) made absolute.
DATA_KEY = "sparseae_data"
#: ``metadata`` key holding those paths relative to the exported folder (``"test.path"`` for the
#: ``test`` section's): where they are looked for when the absolute ones are gone (a copied folder).
DATA_PATHS_KEY = "sparseae_data_relative_paths"
#: The data options that name a file or a folder; ``path`` must exist for the data to load.
PATH_OPTIONS = ("path", "cache_dir")


def _path_options(data: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """(section, option, dotted name) of each path-valued option of a ``data`` section and its ``test``."""
    sections = [(data, "")] + ([(data["test"], "test.")] if isinstance(data.get("test"), dict) else [])
    return [(section, option, prefix + option) for section, prefix in sections for option in PATH_OPTIONS
            if isinstance(section.get(option), str) and section[option]]


def _exists(path: str) -> bool:
    """Whether ``path`` (a file, folder, or shards' glob pattern) names something here."""
    path = os.path.expanduser(path)
    return bool(glob.glob(path)) if glob.has_magic(path) else os.path.exists(path)


def _recorded_data(data: dict[str, Any], out_dir: str | os.PathLike) -> tuple[dict[str, Any], dict[str, str]]:
    """The run's ``data`` section with its paths absolute (a relative one is taken from the working
    directory, as the run read it), and {dotted option: that path relative to ``out_dir``}."""
    data = json.loads(json.dumps(data))  # a deep copy
    relative: dict[str, str] = {}
    for section, option, name in _path_options(data):
        absolute = os.path.abspath(os.path.expanduser(section[option]))
        section[option] = absolute
        try:
            relative[name] = Path(os.path.relpath(absolute, os.path.abspath(out_dir))).as_posix()
        except ValueError:  # another drive (Windows): no relative path
            pass
    return data, relative


def _locate_data(folder: Path, data: dict[str, Any], relative: Any, replaced: set[str] | None) -> dict[str, Any]:
    """``data`` with each recorded path that is missing here replaced by the same path relative to
    ``folder`` (:data:`DATA_PATHS_KEY`) when that exists; :class:`DataNotFoundError` naming the path when
    a ``path`` is found in neither place, unless ``replaced`` (None: all) holds its ``data.`` name."""
    relative = relative if isinstance(relative, dict) else {}
    for section, option, name in _path_options(data):
        recorded = section[option]
        if _exists(recorded):
            continue
        beside = relative.get(name)
        moved = os.path.normpath(folder.absolute() / beside) if isinstance(beside, str) and beside else None
        if moved is not None and _exists(moved):
            section[option] = moved
        elif option == "path" and replaced is not None and f"data.{name}" not in replaced:
            also = f" nor at {moved} (relative to the folder)" if moved is not None and moved != recorded else ""
            raise DataNotFoundError(f"{folder} was exported from a run on data.{name}={recorded}, which is not "
                                    f"here{also}: pass --set data.{name}=WHERE_IT_IS (or --data NAME)")
    return data


def missing_data_paths(cfg: dict[str, Any]) -> list[str]:
    """The ``data.path`` options (``data.test.path`` too) of a SAELens folder's ``cfg`` (its cfg.json,
    read) that name nothing here: files ``sparseae evaluate`` of the folder will not find."""
    data = (cfg.get("metadata") or {}).get(DATA_KEY)
    if not isinstance(data, dict):
        return []
    return [f"data.{name}={section[option]}" for section, option, name in _path_options(data)
            if option == "path" and not _exists(section[option])]


def _resolve(model_or_run_path: Any) -> tuple[torch.nn.Module, str, str, dict[str, Any] | None]:
    """(model, input normalization of its training data, where it came from, the run's data section)."""
    if isinstance(model_or_run_path, torch.nn.Module):
        return model_or_run_path, "none", type(model_or_run_path).__name__, None
    model_dir, run_dir = locate_model(model_or_run_path)
    normalization, data = "none", None
    if run_dir is not None:
        data = read_run_config(run_dir / CONFIG_NAME).get("data") or {}
        data = data if isinstance(data, dict) else None
        normalization = str(data.get("normalize", "none")) if data is not None else "none"
    return load_model(model_dir), normalization, str(model_or_run_path), data


def evaluation_base(folder: str | os.PathLike, model: torch.nn.Module, *, data_given: bool,
                    overrides: Sequence[str] | None = None) -> dict[str, Any]:
    """The run config (before ``--data``/``--set``) that evaluates the SAELens folder ``folder``,
    whose loaded model is ``model``: its model's name and size, and the ``data`` section of the
    sparseae run it was exported from (``metadata.sparseae_data``), its files looked for where they
    were, then relative to ``folder`` (a folder copied with its data). :class:`ConfigError` when it
    has none and ``data_given`` is false; :class:`DataNotFoundError` naming a data file found in
    neither place, unless ``data_given`` or ``overrides`` (the ``--set`` assignments) replace it."""
    folder = Path(folder)
    cfg = json.loads((folder / CFG_FILE).read_text(encoding="utf-8"))
    metadata = cfg.get("metadata") or {}
    data = metadata.get(DATA_KEY)
    base: dict[str, Any] = {"model": {"name": model.spec["name"], "n_components": model.n_components}}
    if isinstance(data, dict) and data.get("name"):
        replaced = None if data_given else {text.split("=", 1)[0].strip() for text in overrides or ()}
        base["data"] = _locate_data(folder, data, metadata.get(DATA_PATHS_KEY), replaced)
    elif not data_given:
        raise ConfigError(f"{folder} is a SAELens folder with no record of the data it was trained on: pass "
                          "--data NAME (harvested activations: --data shards --set data.path=DIR)")
    return base


def run_firing_rates(model_dir: Path, run_dir: Path | None) -> list[float] | None:
    """The per-latent firing rates (on the evaluation set) that a finished run recorded in its
    summary.json for its final ``model/``; None for a bare model, a checkpoint or an older run."""
    if run_dir is None or model_dir.resolve() != (run_dir / MODEL_NAME).resolve():
        return None
    try:
        summary = json.loads((run_dir / SUMMARY_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    rates = summary.get("firing_rates") if isinstance(summary, dict) else None
    return rates if isinstance(rates, list) else None


def export_saelens(model_or_run_path: Any, out_dir: str | os.PathLike, *, sparsity: Any = None,
                   input_normalization: str | None = None, metadata: dict[str, Any] | None = None,
                   overwrite: bool = False) -> Path:
    """Write a model, a saved model folder or a run folder's model as a SAELens SAE folder ``out_dir``.

    ``sparsity``: firing rates (n_components,) in [0, 1], written as SAELens's
    ``sparsity.safetensors`` (log10(rate + 1e-10)); default: for a finished run's model, the rates
    its summary.json recorded (:func:`run_firing_rates`). ``input_normalization``: none | l2 | center_l2,
    the normalization the model's inputs had (default: the run's ``data.normalize``, none for a bare
    model); ``"none"`` also exports a ``center_l2`` run's SAE as one for inputs the caller normalizes.
    ``metadata``: SAELens metadata to record (``hook_name``, ``model_name``...); a run's ``data`` section
    goes in as :data:`DATA_KEY`, its files' paths absolute (a relative one from the working directory),
    and relative to ``out_dir`` as :data:`DATA_PATHS_KEY` (found when both are moved). ``overwrite``:
    replace an existing SAELens folder. Raises :class:`~sparseae.errors.ConfigError` for a model with
    no SAELens form.
    """
    model, trained_on, source, data = _resolve(model_or_run_path)
    if sparsity is None and not isinstance(model_or_run_path, torch.nn.Module):
        sparsity = run_firing_rates(*locate_model(model_or_run_path))
    if data is not None:  # what `sparseae evaluate SAELENS_DIR` evaluates on without --data
        data, relative = _recorded_data(data, out_dir)
        metadata = {DATA_KEY: data, **({DATA_PATHS_KEY: relative} if relative else {}), **(metadata or {})}
    return _export_model(model, out_dir, sparsity=sparsity, input_normalization=input_normalization,
                         metadata=metadata, overwrite=overwrite, trained_on=trained_on, source=source)

"""SAELens SAE folders from models, saved models and run folders.

The format itself (both directions, every convention) is :mod:`sparseae.io.saelens`; this module
adds what needs the run layer: exporting a run folder's model with the input normalization its
training data had.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..config import read_run_config
from ..errors import ConfigError
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

__all__ = ["ARCHITECTURES", "CFG_FILE", "DATA_KEY", "SPARSITY_FILE", "STATE_FILE", "WEIGHTS_FILE",
           "evaluation_base", "export_saelens", "import_saelens", "is_saelens_folder", "run_firing_rates",
           "saelens_firing_rates"]


#: ``cfg.json``'s ``metadata`` key holding the ``data`` section of the run an SAE was exported from.
DATA_KEY = "sparseae_data"


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


def evaluation_base(folder: str | os.PathLike, model: torch.nn.Module, *, data_given: bool) -> dict[str, Any]:
    """The run config (before ``--data``/``--set``) that evaluates the SAELens folder ``folder``,
    whose loaded model is ``model``: its model's name and size, and the ``data`` section of the
    sparseae run it was exported from (``metadata.sparseae_data``). :class:`ConfigError` when it has
    none and ``data_given`` is false."""
    cfg = json.loads((Path(folder) / CFG_FILE).read_text(encoding="utf-8"))
    data = (cfg.get("metadata") or {}).get(DATA_KEY)
    base: dict[str, Any] = {"model": {"name": model.spec["name"], "n_components": model.n_components}}
    if isinstance(data, dict) and data.get("name"):
        base["data"] = data
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
    ``metadata``: SAELens metadata to record (``hook_name``, ``model_name``...). ``overwrite``:
    replace an existing SAELens folder. Raises :class:`~sparseae.errors.ConfigError` for a model with
    no SAELens form.
    """
    model, trained_on, source, data = _resolve(model_or_run_path)
    if sparsity is None and not isinstance(model_or_run_path, torch.nn.Module):
        sparsity = run_firing_rates(*locate_model(model_or_run_path))
    if data is not None:  # what `sparseae evaluate SAELENS_DIR` evaluates on without --data
        metadata = {DATA_KEY: data, **(metadata or {})}
    return _export_model(model, out_dir, sparsity=sparsity, input_normalization=input_normalization,
                         metadata=metadata, overwrite=overwrite, trained_on=trained_on, source=source)

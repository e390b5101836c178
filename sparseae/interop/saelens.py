"""SAELens SAE folders from models, saved models and run folders.

The format itself (both directions, every convention) is :mod:`sparseae.io.saelens`; this module
adds what needs the run layer: exporting a run folder's model with the input normalization its
training data had.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..config import read_run_config
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
from ..runs import CONFIG_NAME, locate_model

__all__ = ["ARCHITECTURES", "CFG_FILE", "SPARSITY_FILE", "STATE_FILE", "WEIGHTS_FILE", "export_saelens",
           "import_saelens", "is_saelens_folder", "saelens_firing_rates"]


def _resolve(model_or_run_path: Any) -> tuple[torch.nn.Module, str, str]:
    """(model, input normalization of its training data, where it came from)."""
    if isinstance(model_or_run_path, torch.nn.Module):
        return model_or_run_path, "none", type(model_or_run_path).__name__
    model_dir, run_dir = locate_model(model_or_run_path)
    normalization = "none"
    if run_dir is not None:
        data = read_run_config(run_dir / CONFIG_NAME).get("data") or {}
        normalization = str(data.get("normalize", "none")) if isinstance(data, dict) else "none"
    return load_model(model_dir), normalization, str(model_or_run_path)


def export_saelens(model_or_run_path: Any, out_dir: str | os.PathLike, *, sparsity: Any = None,
                   input_normalization: str | None = None, metadata: dict[str, Any] | None = None,
                   overwrite: bool = False) -> Path:
    """Write a model, a saved model folder or a run folder's model as a SAELens SAE folder ``out_dir``.

    ``sparsity``: firing rates (n_components,) in [0, 1], written as SAELens's
    ``sparsity.safetensors`` (log10(rate + 1e-10)). ``input_normalization``: none | l2 | center_l2,
    the normalization the model's inputs had (default: the run's ``data.normalize``, none for a bare
    model); ``"none"`` also exports a ``center_l2`` run's SAE as one for inputs the caller normalizes.
    ``metadata``: SAELens metadata to record (``hook_name``, ``model_name``...). ``overwrite``:
    replace an existing SAELens folder. Raises :class:`~sparseae.errors.ConfigError` for a model with
    no SAELens form.
    """
    model, trained_on, source = _resolve(model_or_run_path)
    return _export_model(model, out_dir, sparsity=sparsity, input_normalization=input_normalization,
                         metadata=metadata, overwrite=overwrite, trained_on=trained_on, source=source)

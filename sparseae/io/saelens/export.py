"""Ours → SAELens: :func:`export_saelens` writes a model as a SAELens SAE folder.
The conventions: :mod:`sparseae.io.saelens`."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ..._version import __version__
from ...data.datasets import NORMALIZATIONS
from ...digests import tensors_sha256
from ...errors import ConfigError, DataError, OutputExistsError
from .form import saelens_form
from .format import (
    CFG_FILE,
    DTYPES,
    FORMAT_VERSION,
    SPARSITY_EPS,
    SPARSITY_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    is_saelens_folder,
)
from .load import rebuild_state


def _fold_l2(tensors: dict[str, torch.Tensor], d_in: int, transcoder: bool = False) -> dict[str, torch.Tensor]:
    """Our SAE on unit-norm inputs as SAELens's ``constant_norm_rescale`` (inputs at norm √d_in;
    a transcoder's output is not rescaled, so only its W_enc changes)."""
    root = math.sqrt(d_in)
    folded = dict(tensors)
    factors = (("W_enc", 1 / root),) if transcoder else (("W_enc", 1 / root), ("W_dec", root), ("b_dec", root))
    for key, factor in factors:
        folded[key] = (tensors[key].double() * factor).to(tensors[key].dtype)
    return folded


def _firing_rates(sparsity: Any, n_components: int) -> torch.Tensor:
    rates = torch.as_tensor(np.asarray(sparsity, dtype=np.float64))
    if rates.shape != (n_components,):
        raise DataError(f"sparsity must hold one firing rate per latent, shape ({n_components},), got "
                        f"{tuple(rates.shape)}")
    if not torch.isfinite(rates).all() or (rates < 0).any() or (rates > 1).any():
        raise DataError("sparsity must hold firing rates in [0, 1] (the share of inputs a latent fires on)")
    return torch.log10(rates + SPARSITY_EPS).float()


def export_saelens(model: torch.nn.Module, out_dir: str | os.PathLike, *, sparsity: Any = None,
                   input_normalization: str | None = None, metadata: dict[str, Any] | None = None,
                   overwrite: bool = False, trained_on: str | None = None, source: str | None = None) -> Path:
    """Write a model as a SAELens SAE folder ``out_dir`` (a run's model: :func:`sparseae.interop.export_saelens`).

    ``sparsity``: firing rates (n_components,) in [0, 1], written as SAELens's
    ``sparsity.safetensors`` (log10(rate + 1e-10)). ``input_normalization``: none | l2 | center_l2,
    the normalization the model's inputs had (default: the run's ``data.normalize``, none for a bare
    model); ``"none"`` also exports a ``center_l2`` run's SAE as one for inputs the caller normalizes.
    ``metadata``: SAELens metadata to record (``hook_name``, ``model_name``...). ``overwrite``:
    replace an existing SAELens folder. Raises :class:`ConfigError` for a model with no SAELens form.
    """
    from ...files import staged_folder, write_json_atomic

    trained_on, source = trained_on or "none", source or type(model).__name__
    normalization = _export_normalization(trained_on if input_normalization is None else input_normalization,
                                          source)
    fields, tensors = saelens_form(model)
    spec = dict(model.spec)  # saelens_form above: an Autoencoder
    d_sae, d_in = tensors["W_dec"].shape
    transcoder = "d_out" in fields
    if transcoder:  # the decoder writes d_out features, the encoder reads d_in
        d_in = tensors["W_enc"].shape[0]
    if normalization == "l2" and "W_enc" not in tensors:
        raise ConfigError(f"{source} was trained on unit-norm inputs (l2), which SAELens's matching-pursuit SAE "
                          "cannot rescale (its atoms must keep unit norm); export with input_normalization 'none'")
    if normalization == "l2":
        tensors = _fold_l2(tensors, d_in, transcoder)
    dtype = tensors["W_dec"].dtype
    if dtype not in DTYPES.values():
        raise ConfigError(f"SAELens stores float32, float64, float16 or bfloat16 weights, not {dtype}")
    ours = {"model": spec.get("name"), "params": spec.get("params"), "input_normalization": normalization,
            "sparseae_version": __version__, "weights_sha256": tensors_sha256(tensors)}
    if normalization != trained_on:
        ours["trained_on"] = trained_on
    meta = {"sae_lens_version": FORMAT_VERSION, "sae_lens_training_version": None, **(metadata or {}),
            "sparseae": ours}
    cfg = {"architecture": fields.pop("architecture"), "d_in": int(d_in), "d_sae": int(d_sae),
           "dtype": str(dtype).removeprefix("torch."), "device": "cpu",
           "normalize_activations": "constant_norm_rescale" if normalization == "l2" else "none",
           "reshape_activations": "none", **fields, "metadata": meta}
    rates = None if sparsity is None else _firing_rates(sparsity, int(d_sae))
    # what an import would rebuild from these files alone, and what of our state it would miss
    rebuilt = rebuild_state(cfg, tensors, use_state=None)
    state = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    missed = {key: value for key, value in state.items()
              if key not in rebuilt or rebuilt[key].dtype != value.dtype or not torch.equal(rebuilt[key], value)}

    out = _export_target(Path(out_dir), overwrite)
    with staged_folder(out) as staging:
        save_file(tensors, str(staging / WEIGHTS_FILE))
        write_json_atomic(staging / CFG_FILE, cfg)
        if rates is not None:
            save_file({"sparsity": rates}, str(staging / SPARSITY_FILE))
        if missed:
            save_file(missed, str(staging / STATE_FILE), metadata={"format": "sparseae-saelens-state"})
    return out


def _export_normalization(normalization: str, source: str) -> str:
    """``normalization`` checked: one SAELens can express (:class:`ConfigError` naming ``source``)."""
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"input_normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    if normalization == "center_l2":
        raise ConfigError(f"{source} was trained on inputs normalized with center_l2 (training mean subtracted, "
                          "then unit norm), which SAELens cannot express; export with input_normalization "
                          "'none' (CLI: --input-normalization none) if the caller normalizes the inputs")
    return normalization


def _export_target(out: Path, overwrite: bool) -> Path:
    """``out`` once it may be written: absent, or a SAELens folder to be replaced with ``overwrite``
    (else :class:`OutputExistsError`); its parent folder is created."""
    if out.exists():
        if not overwrite:
            raise OutputExistsError(f"{out} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
        if not is_saelens_folder(out):
            raise OutputExistsError(f"{out} exists and is not a SAELens folder; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out

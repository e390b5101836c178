"""The SAELens folder layout: its file names, config versions, architectures and dtypes, shared by
:mod:`.export` and :mod:`.load`."""
from __future__ import annotations

import os
from pathlib import Path

import torch

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SPARSITY_FILE = "sparsity.safetensors"
STATE_FILE = "sparseae_state.safetensors"
#: The SAELens config format written (``metadata.sae_lens_version``): older ones are read by
#: SAELens through a converter that keeps only its own metadata keys.
FORMAT_VERSION = "6.0.0"
#: SAELens's ``sparsity`` tensor is log10(firing frequency + this).
SPARSITY_EPS = 1e-10
#: The SAELens architectures read and written.
ARCHITECTURES = ("standard", "topk", "jumprelu", "gated", "matching_pursuit", "transcoder", "jumprelu_transcoder")
#: SAELens architectures whose decoder writes ``d_out`` features (sparseae's ``transcoder``).
TRANSCODERS = ("transcoder", "jumprelu_transcoder")
#: SAELens config `dtype` names.
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}


def is_saelens_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding SAELens's ``cfg.json`` and ``sae_weights.safetensors``."""
    path = Path(path)
    return (path / CFG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()

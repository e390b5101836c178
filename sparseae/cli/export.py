"""``sparseae export RUN_OR_MODEL --format saelens --out DIR``: a trained SAE in another library's format
(:func:`sparseae.interop.export_saelens`)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..data.datasets import NORMALIZATIONS
from ..errors import DataError
from .output import Output

FORMATS = ("saelens",)


def _firing_rates(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"--firing-rates {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"--firing-rates {path}: not a .npy array ({' '.join(str(exc).split())[:120]})") from None


def command_export(args: argparse.Namespace, out: Output) -> int:
    """Write the model of a run folder or saved model as a SAELens folder."""
    from ..interop.saelens import CFG_FILE, export_saelens, missing_data_paths

    rates = None if args.firing_rates is None else _firing_rates(args.firing_rates)
    metadata = {key: value for key, value in (("hook_name", args.hook_name), ("model_name", args.model_name))
                if value is not None}
    folder = export_saelens(args.path, args.out, sparsity=rates, input_normalization=args.input_normalization,
                            metadata=metadata, overwrite=args.overwrite)
    files = sorted(entry.name for entry in Path(folder).iterdir())
    import json

    cfg = json.loads((Path(folder) / CFG_FILE).read_text(encoding="utf-8"))
    out.line(f"wrote {folder} ({', '.join(files)}): SAELens {cfg['architecture']} SAE, d_in {cfg['d_in']}, "
             f"d_sae {cfg['d_sae']}, normalize_activations {cfg['normalize_activations']}")
    for missing in missing_data_paths(cfg):  # a relative path the run read from another directory
        out.line(f"Warning: the run's {missing} is not found from here; `sparseae evaluate {folder}` will need "
                 "--set with where it is")
    out.json({"out": str(folder), "format": args.format, "files": files, "architecture": cfg["architecture"],
              "d_in": cfg["d_in"], "d_sae": cfg["d_sae"], "normalize_activations": cfg["normalize_activations"]})
    return 0


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``export`` subcommand."""
    parser = commands.add_parser("export", parents=[common], help="write a trained SAE in SAELens's format",
                                 description="Write a run folder's (or saved model's) SAE as a SAELens folder "
                                             "(cfg.json + sae_weights.safetensors) that SAELens's "
                                             "SAE.load_from_disk reads; sparseae.io.load_model reads it back.")
    parser.add_argument("path", metavar="RUN_OR_MODEL")
    parser.add_argument("--format", choices=FORMATS, required=True, help="the output format: saelens")
    parser.add_argument("--out", metavar="DIR", required=True, help="the folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace a SAELens folder in DIR")
    parser.add_argument("--firing-rates", metavar="FILE.npy",
                        help="per-latent firing rates in [0, 1], written as sparsity.safetensors (default: "
                             "a finished run's own, from its summary.json)")
    parser.add_argument("--input-normalization", choices=NORMALIZATIONS, default=None,
                        help="how the inputs were normalized (default: the run's data.normalize); 'none' "
                             "exports a center_l2 run's SAE for inputs the caller normalizes")
    parser.add_argument("--hook-name", help="SAELens metadata: the hook the SAE reads (e.g. blocks.0.hook_resid_pre)")
    parser.add_argument("--model-name", help="SAELens metadata: the model whose activations it reads")
    parser.set_defaults(handler=command_export)

"""``sparseae harvest``: a Hugging Face model's activations at one layer into our shards (with a
token table and provenance), and the spliced-model part of ``sparseae evaluate``."""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..errors import SparseAEError
from .output import Output, plural

#: Texts the spliced-model metrics read by default (from ``--text`` or the harvest's own text).
SPLICED_TEXTS = 32


def _quiet_transformers() -> None:
    """No progress bars or config warnings from transformers on the command's stderr."""
    try:
        from transformers.utils import logging
    except ImportError:
        return  # load_hf_model says what is missing
    logging.set_verbosity_error()
    logging.disable_progress_bar()


def command_harvest(args: argparse.Namespace, out: Output) -> int:
    """Run the model over the texts and write the layer's activations to ``--out``."""
    _quiet_transformers()
    from ..data.harvest import PROVENANCE_FILE, harvest_activations, read_provenance

    store = harvest_activations(args.hf_model, args.layer, args.text, args.out, position=args.position,
                                kind=args.kind, max_tokens=args.max_tokens, batch_size=args.batch_size,
                                context_length=args.context_length, device=args.device or "cpu",
                                allow_download=args.allow_download, revision=args.revision, target=args.target)
    provenance = read_provenance(args.out)
    out.line(f"wrote {plural(store.shape[0], 'token activation')} ({store.shape[1]}-d) of "
             f"{plural(provenance['n_texts'], 'text')} from {provenance['model_class']} {provenance['hook_module']} "
             f"({provenance['position']}) to {args.out}: {plural(len(store.files), 'shard')}, tokens.json, "
             f"{PROVENANCE_FILE}")
    if args.target is not None:
        out.line(f"with {provenance['d_target']}-d targets ({args.target}, {provenance['target_hook_module']}) in "
                 f"{args.out}/{provenance['targets_dir']}")
    model = "transcoder" if args.target is not None else "topk_sae"
    out.line(f"train on them: sparseae train --model {model} --data shards --set data.path={args.out}")
    out.json({"out": str(args.out), "shape": list(store.shape), "shards": [str(f) for f in store.files],
              "provenance": provenance})
    return 0


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``harvest`` subcommand."""
    from ..data.harvest import KINDS, POSITIONS

    parser = commands.add_parser(
        "harvest", parents=[common], help="a Hugging Face model's activations into shards",
        description="Run a Hugging Face model (causal LM or encoder; offline unless --allow-download) over "
                    "texts and write one activation row per real token of one layer: .npy shards, tokens.json "
                    "and harvest.json (provenance). Train on them with --data shards --set data.path=DIR.")
    parser.add_argument("--hf-model", required=True, metavar="NAME_OR_PATH",
                        help="a local model folder, 'minilm' (the installed all-MiniLM-L6-v2), or a Hub name "
                             "(with --allow-download)")
    parser.add_argument("--layer", required=True, metavar="MODULE_PATH",
                        help="the block, e.g. encoder.layer.3 or transformer.h.2")
    parser.add_argument("--position", choices=POSITIONS, default="resid",
                        help="the block's output (resid, default), its input (resid_pre), its MLP or "
                             "attention sub-layer's output, or the MLP's input (mlp_in)")
    parser.add_argument("--target", choices=POSITIONS, default=None,
                        help="also write this position row for row into DIR/targets (e.g. --position mlp_in "
                             "--target mlp_out: the pairs a transcoder trains on)")
    parser.add_argument("--text", required=True, metavar="FILE_OR_CORPUS",
                        help="a .txt file (one text per line), a .jsonl file (its 'text' fields), or pydoc "
                             "(CPython's documentation sentences)")
    parser.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder for the shards")
    parser.add_argument("--max-tokens", type=int, default=None, help="stop after this many token rows")
    parser.add_argument("--batch-size", type=int, default=16, help="texts per forward pass (default 16)")
    parser.add_argument("--context-length", type=int, default=128, help="tokens per text at most (default 128)")
    parser.add_argument("--kind", choices=KINDS, default="auto", help="causal or encoder (default: from the config)")
    parser.add_argument("--revision", help="the model revision (branch, tag or commit) on the Hub")
    parser.add_argument("--allow-download", action="store_true", help="let the model be fetched from the Hub")
    parser.add_argument("--device", help="cpu (default), auto, cuda, cuda:N or mps")
    parser.add_argument("--threads", metavar="N|auto", default=None, help="PyTorch's CPU threads")
    parser.set_defaults(handler=command_harvest)


def add_evaluate_options(parser: argparse.ArgumentParser) -> None:
    """``evaluate --spliced --text FILE``: the spliced-model metrics."""
    parser.add_argument("--spliced", action="store_true",
                        help="splice the SAE into its Hugging Face model (from the data's harvest.json) and "
                             "measure what the model loses (automatic for harvested data)")
    parser.add_argument("--no-spliced", action="store_true", help="skip the spliced-model metrics")
    parser.add_argument("--text", metavar="FILE_OR_CORPUS", help="texts for --spliced (default: the harvest's)")
    parser.add_argument("--spliced-texts", type=int, default=SPLICED_TEXTS,
                        help=f"at most this many texts for --spliced (default {SPLICED_TEXTS})")
    parser.add_argument("--allow-download", action="store_true", help="let --spliced fetch the model from the Hub")


def spliced_section(args: argparse.Namespace, out: Output, model: Any, config: Any, train_set: Any,
                    provenance: dict[str, Any] | None) -> dict[str, Any] | None:
    """Core statistics, and (with provenance) the spliced-model metrics: printed, and returned for
    the JSON. Without ``--spliced`` a failure to load the model is a printed note, not an error."""
    from ..data.harvest import load_hf_model, read_texts
    from ..errors import ConfigError
    from ..evaluate.spliced import sae_reconstruction, spliced_metrics

    explicit = bool(getattr(args, "spliced", False))
    if getattr(args, "no_spliced", False) or (provenance is None and not explicit):
        return None
    if provenance is None:
        raise ConfigError("--spliced needs activations harvested by `sparseae harvest` (their harvest.json "
                          "names the model and layer); this run's data has none")
    from ..models import Transcoder

    transcoder = isinstance(model, Transcoder)  # spliced in place of the MLP's output, from its input
    if transcoder and provenance.get("target") is None:
        raise ConfigError("a transcoder is spliced where its targets were harvested; this data's harvest.json "
                          "names no --target")
    result: dict[str, Any] = {"provenance": provenance,
                              "core": _core_section(out, model, train_set.X,
                                                    train_set.targets if transcoder else None)}
    _quiet_transformers()
    try:
        hf_model, tokenizer, kind = load_hf_model(provenance["model_path"] or provenance["model"],
                                                  kind=provenance["kind"], allow_download=args.allow_download,
                                                  revision=provenance.get("revision"))
        source = args.text if args.text is not None else provenance["text"]
        texts, _ = read_texts(source, limit=args.spliced_texts)
    except SparseAEError as exc:
        if explicit:
            raise
        out.line(f"spliced-model metrics skipped: {exc} (pass --spliced --text FILE to insist)")
        return result
    mean = None  # center_l2: the raw training mean load_datasets subtracted (train_set.X is normalized)
    if config.normalize == "center_l2":
        from ..data import load_dataset

        mean = np.asarray(load_dataset(config.data_name, **config.data_options).X, dtype=np.float64).mean(axis=0)
    reconstruct = sae_reconstruction(model, config.normalize, mean, raw_output=transcoder)
    raw_mean = _raw_mean(config, provenance.get("targets_dir") if transcoder else None)
    position = provenance["target"] if transcoder else provenance["position"]
    spliced = spliced_metrics(hf_model, tokenizer, texts, reconstruct, layer=provenance["layer"],
                              position=position, kind=kind, mean=raw_mean,
                              context_length=provenance.get("context_length", 128),
                              input_position=provenance["position"] if transcoder else None)
    result["spliced"] = spliced
    what = f"{position} predicted from {spliced['input_hook']} ({provenance['position']})" if transcoder \
        else provenance["position"]
    title = f"spliced into {provenance['model_class']} {spliced['hook']} ({what}), " \
            f"{plural(spliced['n_texts'], 'text')}:"
    out.table(_spliced_rows(spliced, kind), title)
    return result


def _core_section(out: Output, model: Any, X: Any, targets: Any = None) -> dict[str, Any]:
    """SAEBench's core statistics of ``model`` on the training rows ``X`` (n, d) (and a transcoder's
    ``targets``): printed as a table, returned without the per-latent lists (the log10-rate
    histogram's counts and edges kept)."""
    from ..evaluate.spliced import core_stats

    core = core_stats(model, X, targets=targets)
    section = {key: value for key, value in core.items() if not isinstance(value, list)}
    section["log10_rate_counts"] = core["log10_rate_counts"]
    section["log10_rate_edges"] = core["log10_rate_edges"]
    out.table([("shrinkage ‖ŷ‖/‖y‖" if targets is not None else "shrinkage ‖x̂‖/‖x‖", f"{core['shrinkage']:.4f}"),
               ("dead / dense (>10%) latents",
                f"{100 * core['dead_fraction']:.1f}% / {100 * core['dense_fraction']:.1f}%"),
               ("mean encoder/decoder cosine", "n/a" if core["mean_encoder_decoder_cosine"] is None
                else f"{core['mean_encoder_decoder_cosine']:.4f}")],
              f"core statistics (SAEBench) on {core['n_rows']} training rows:")
    return section


def _spliced_rows(spliced: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    """The printed ``(label, value)`` rows of the spliced-model metrics: cross-entropies and loss
    recovered for a causal model, embedding cosines (and kept neighbours) for an encoder."""
    if kind == "causal":
        return [("CE clean / spliced", f"{spliced['ce_clean']:.4f} / {spliced['ce_spliced']:.4f}"),
                ("CE zero- / mean-ablated", f"{spliced['ce_zero_ablated']:.4f} / {spliced['ce_mean_ablated']:.4f}"),
                ("loss recovered (zero / mean)", f"{spliced['loss_recovered_zero']:.4f} / "
                                                 f"{spliced['loss_recovered_mean']:.4f}"),
                ("KL(clean ‖ spliced) per token", f"{spliced['kl_clean_spliced']:.5f}")]
    rows = [("embedding cosine clean·spliced", f"{spliced['cosine_clean_spliced']:.4f}"),
            ("embedding cosine clean·zero-ablated", f"{spliced['cosine_clean_zero_ablated']:.4f}")]
    if "k" in spliced:
        rows.append((f"top-{spliced['k']} neighbours kept (spliced / zero)",
                     f"{spliced['neighbours_kept_spliced']:.3f} / {spliced['neighbours_kept_zero_ablated']:.3f}"))
    return rows


def _raw_mean(config: Any, sub_folder: str | None = None) -> np.ndarray:
    """The mean raw activation of (the first 20,000 rows of) the harvested shards: mean-ablation's
    vector, read from the shard folder itself (the run's data may be normalized); ``sub_folder``:
    of a paired harvest's targets instead (a transcoder's, ablated in the MLP output's place)."""
    from pathlib import Path

    from ..data import ShardedArray

    folder = Path(str(config.data_options["path"]).rstrip("/*"))
    rows = ShardedArray(folder / sub_folder if sub_folder else config.data_options["path"])
    return np.asarray(rows[:min(len(rows), 20000)], dtype=np.float64).mean(axis=0)

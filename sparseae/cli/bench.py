"""``sparseae bench synthetic``: the ground-truth benchmark of issue 24
(:func:`sparseae.runs.synthetic_bench.run_synthetic_benchmark`): every SAE family and sparse coding at
one matched L0 on activations of a known dictionary, scored on feature recovery."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OutputExistsError
from .output import Output

#: The table's columns: (row key, header, format).
COLUMNS = (("family", "family", "{}"), ("l0", "L0", "{:.2f}"), ("fvu", "FVU", "{:.3f}"),
           ("mmcs", "mean max cos", "{:.3f}"), ("mcc", "MCC", "{:.3f}"), ("f1", "F1", "{:.3f}"),
           ("absorption", "absorbed", "{:.3f}"),
           ("parent_miss", "parent miss", "{:.3f}"), ("dead", "dead", "{:.2f}"), ("seconds", "seconds", "{:.1f}"))
RESULT_FILES = ("synthetic.json", "synthetic.md")


def format_row(row: dict[str, Any]) -> str:
    """One row of the benchmark's Markdown table."""
    return "| " + " | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS) + " |"


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    """The benchmark's rows as a Markdown table, one string per line."""
    return ["| " + " | ".join(header for _, header, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS),
            *map(format_row, rows)]


def _families(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError("--families needs at least one family name")
    return names


def _config(args: argparse.Namespace):
    from ..runs.synthetic_bench import SyntheticBenchConfig

    overrides: dict[str, Any] = {}
    for option, key in (("l0", "l0"), ("samples", "n_train"), ("epochs", "epochs"), ("width", "width"),
                        ("seed", "seed"), ("child_similarity", "child_similarity")):
        if getattr(args, option) is not None:
            overrides[key] = getattr(args, option)
    families = _families(args.families)
    if families is not None:
        overrides["families"] = families
    return (SyntheticBenchConfig.quick(**overrides) if args.quick else SyntheticBenchConfig(**overrides)).validate()


def _check_free(folder: Path, overwrite: bool) -> None:
    existing = [name for name in RESULT_FILES if (folder / name).exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{folder / existing[0]} exists; pass --overwrite to replace it")


def _write(folder: Path, result: dict[str, Any], table: list[str], overwrite: bool) -> None:
    _check_free(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESULT_FILES[0]).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (folder / RESULT_FILES[1]).write_text("\n".join(table) + "\n", encoding="utf-8")


def command_bench_synthetic(args: argparse.Namespace, out: Output) -> int:
    """Train and score every family; print the table (or one JSON object)."""
    from ..runs.synthetic_bench import run_synthetic_benchmark

    config = _config(args)
    if args.out is not None:
        _check_free(Path(args.out), args.overwrite)  # refuse before the minutes of training, not after
    out.line(f"synthetic data: {config.n_latents} features in {config.n_features} dimensions, "
             f"{config.n_train} training / {config.n_eval} held-out samples; every model "
             f"{config.width or config.n_latents} latents at the true L0 (or --l0)")
    for line in format_table([]):
        out.line(line)
    result = run_synthetic_benchmark(config, on_row=lambda row: out.line(format_row(row)))
    table = format_table(result["rows"])
    out.line(f"true L0 {result['data']['true_l0']:.2f}, matched L0 {result['data']['target_l0']:.2f}")
    if args.out is not None:
        _write(Path(args.out), result, table, args.overwrite)
        out.line(f"wrote {Path(args.out) / RESULT_FILES[0]} and {RESULT_FILES[1]}")
    out.json(result)
    return 0


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``bench`` subcommand and its ``synthetic`` benchmark."""
    from ..runs.synthetic_bench import FAMILIES
    from .common import add_threads

    bench = commands.add_parser("bench", parents=[common], help="built-in benchmarks",
                                description="Built-in benchmarks: synthetic (feature recovery on data with a "
                                            "known dictionary, issue 24).")
    which = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    synthetic = which.add_parser("synthetic", parents=[common], help="feature recovery at matched L0",
                                 description="Generate activations from a known dictionary (512 features in 64 "
                                             "dimensions, Zipf-like, correlated and hierarchical firing), train "
                                             f"each family ({', '.join(FAMILIES)}) at the same L0 and print L0, "
                                             "FVU, mean max cosine, MCC, F1 of firing and absorption against "
                                             "the truth.")
    synthetic.add_argument("--quick", action="store_true",
                           help="64 features in 16 dimensions, 4,000 samples, 3 epochs (seconds)")
    synthetic.add_argument("--l0", type=float, default=None, help="the matched L0 (default: the true codes')")
    synthetic.add_argument("--families", metavar="A,B,...", help=f"a subset of {','.join(FAMILIES)}")
    synthetic.add_argument("--samples", type=int, default=None, help="training samples (default 40,000)")
    synthetic.add_argument("--epochs", type=int, default=None, help="SAE training epochs (default 20)")
    synthetic.add_argument("--width", type=int, default=None, help="latents of every model (default: the "
                                                                   "number of true features)")
    synthetic.add_argument("--child-similarity", type=float, default=None, metavar="S",
                           help="cosine of each child feature's direction with its parent's, in [0, 1) "
                                "(default 0: independent directions; > 0: absorption-prone data)")
    synthetic.add_argument("--seed", type=int, default=None, help="seed of the data and the models (default 0)")
    synthetic.add_argument("--out", metavar="DIR", help="also write synthetic.json and synthetic.md there")
    synthetic.add_argument("--overwrite", action="store_true", help="replace those files in DIR")
    add_threads(synthetic)
    synthetic.set_defaults(handler=command_bench_synthetic)

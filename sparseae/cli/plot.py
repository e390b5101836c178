"""``sparseae plot``: the PNGs of a run folder (filters, curves, reconstructions, activity)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..runs import folder as run_folder
from ..runs import plots as run_plots
from .common import READ_DEVICE, add_download, add_set, add_threads, datasets_for, load_trained
from .output import Output


def command_plot(args: argparse.Namespace, out: Output) -> int:
    """``sparseae plot``: the PNGs of a run folder, holding the lock of the run folder they go into
    (refused while a training writes there: see :mod:`sparseae.locking`)."""
    target = Path(args.out) if args.out is not None else run_folder.locate_model(args.run_dir)[1]
    with run_folder.lock_if_run_dir(target, "sparseae plot"):
        return _plot(args, out)


def _plot(args: argparse.Namespace, out: Output) -> int:
    model, config, run_dir, model_dir = load_trained(args, args.run_dir, out)
    if args.out is None and run_dir is None:
        raise ConfigError(f"{model_dir} is a saved model, not a run folder: pass --out DIR for the pictures")
    out_dir = Path(args.out) if args.out is not None else run_dir
    history = run_folder.read_history(run_dir) if run_dir is not None else []
    _, eval_set = datasets_for(model, config)
    random_state = config.train.get("random_state", 0)
    paths = run_plots.write_plots(model, history, eval_set, out_dir, random_state=random_state)
    for path in paths:
        out.line(f"wrote {path}")
    out.json({"plots": [str(path) for path in paths]})
    return 0


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``plot`` subcommand."""
    plot = commands.add_parser("plot", parents=[common], help="draw a run folder's pictures",
                               description="Write filters.png, curves.png, reconstructions.png and "
                                           "activity.png from a run folder (model + metrics.jsonl).")
    plot.add_argument("run_dir", metavar="RUN_DIR")
    plot.add_argument("--out", metavar="DIR", help="where the PNGs go (default: RUN_DIR)")
    plot.add_argument("--data", help="use this dataset instead of the run's")
    add_set(plot, "data.split=test")
    plot.add_argument("--device", help=READ_DEVICE)
    add_download(plot)
    add_threads(plot)
    plot.set_defaults(handler=command_plot)

"""``sparseae train``: train a config into a run folder (``--resume``: continue one)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import distributed
from ..config import load_config, read_run_config
from ..errors import ConfigError
from ..runs import execute as run_execute
from ..runs import folder as run_folder
from . import recipes
from .common import add_download, add_set, add_threads, announce, flag_overrides, report_summary
from .output import Output


def command_train(args: argparse.Namespace, out: Output) -> int:
    """``sparseae train``: train a config into a run folder. Under ``torchrun`` (``WORLD_SIZE`` > 1)
    every rank trains its share of each batch with DistributedDataParallel; only rank 0 prints
    and writes."""
    joined = distributed.init_from_environment()
    finished = False
    try:
        status = _train(args, Output("quiet") if joined and not distributed.is_primary() else out)
        finished = True
        return status
    finally:
        if joined:
            distributed.shutdown(wait=finished)  # on an error the other ranks may never arrive


def _train(args: argparse.Namespace, out: Output) -> int:
    base = None
    with_recipe = recipes.uses_recipe(args)
    if args.config is None and args.resume and args.model is None and args.data is None and not with_recipe:
        if args.out is None:
            raise ConfigError("--resume without a CONFIG needs --out RUN_DIR: the run to continue")
        run_folder.check_run_dir(Path(args.out), resume=True, overwrite=False)
        if (Path(args.out) / run_folder.CONFIG_NAME).exists():
            base = read_run_config(Path(args.out) / run_folder.CONFIG_NAME)
    config = recipes.recipe_config(args) if with_recipe else \
        load_config(args.config, model=args.model, data=args.data, assignments=args.set, base=base)
    config = config.override(flag_overrides(args)).validate()
    summary = run_execute.execute_run(config, resume=args.resume, overwrite=args.overwrite, progress=out.human,
                                      announce=announce(out))
    if not distributed.is_primary():
        return 0  # rank 0 reports
    report_summary(out, summary)
    if with_recipe:
        summary = recipes.report_recipe(out, args, summary)  # ours beside the published figure
    out.json(summary)
    return 0


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``train`` subcommand."""
    train = commands.add_parser("train", parents=[common], help="train a model into a run folder",
                                description="Train a model: config file (YAML/TOML) and/or flags.")
    train.add_argument("config", nargs="?", help="run config, .yaml/.yml/.toml/.json")
    train.add_argument("--model", help="model name (see `sparseae models`)")
    train.add_argument("--data", help="dataset name (see `sparseae datasets`)")
    add_set(train)
    train.add_argument("--out", metavar="DIR", help="run folder (output.dir; default runs/<model>_<data>)")
    train.add_argument("--resume", action="store_true", help="continue the run in DIR from its checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace a previous run in DIR")
    train.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (train.device)")
    train.add_argument("--log-to", metavar="LOGGERS", help="experiment trackers, comma-separated: tensorboard, "
                       "mlflow, wandb (train.loggers; written inside the run folder)")
    add_download(train)
    add_threads(train, " (train.threads)")
    recipes.add_train_options(train)
    train.set_defaults(handler=command_train)

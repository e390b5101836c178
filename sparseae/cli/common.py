"""What several ``sparseae`` verbs share: their common options, the config changes of their flags,
and loading a trained model with its config and data.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config import RunConfig, load_config, read_run_config
from ..errors import DataError
from ..io import load_model, read_config
from ..runs import data as run_data
from ..runs import folder as run_folder
from ..train.loggers import check_logger_names
from .output import Output, describe_phases, plural

#: The largest ``--seed`` (scikit-learn's estimators, which the probe uses, take seeds below 2**32).
MAX_CLI_SEED = 2**32 - 1

#: ``--device`` of the commands that use a trained model (:func:`sparseae.runs.data.evaluation_device`).
READ_DEVICE = ("where the model runs: auto, cpu, cuda, cuda:N or mps (default: the run's train.device "
               "when this machine has it, else the CPU)")


def add_set(parser: argparse.ArgumentParser, example: str = "train.max_epochs=5") -> None:
    """``--set SECTION.KEY=VALUE``, repeatable."""
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"change one config value (YAML scalar), e.g. {example}; repeatable")


def add_threads(parser: argparse.ArgumentParser, setting: str = "") -> None:
    """``--threads N|auto``: PyTorch's CPU threads while the command runs."""
    parser.add_argument("--threads", metavar="N|auto", default=None,
                        help=f"PyTorch's CPU threads{setting}: N, or auto (the default: from the problem's size "
                             "and the free cores)")


def add_download(parser: argparse.ArgumentParser) -> None:
    """``--download``: the dataset may be downloaded once into the cache."""
    parser.add_argument("--download", action="store_true",
                        help="let the dataset be downloaded once into the cache (data.download=true; MNIST)")


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--out``, ``--device``, ``--threads`` and ``--download`` as config changes (not parsed as YAML)."""
    changes: dict[str, Any] = {}
    if getattr(args, "download", False):
        changes["data.download"] = True
    if getattr(args, "out", None) is not None:
        changes["output.dir"] = str(args.out)
    if getattr(args, "device", None) is not None:
        changes["train.device"] = args.device
    if getattr(args, "threads", None) is not None:
        changes["train.threads"] = args.threads
    if getattr(args, "log_to", None) is not None:
        changes["train.loggers"] = check_logger_names(args.log_to, "--log-to")
    return changes


def announce(out: Output):
    """The run's header: model, data, device, and its phases with their epochs (as the bars name them)."""
    def announce(facts: dict[str, Any]) -> None:
        verb = "Resuming" if facts["resume"] else "Training"
        out.line(f"{verb} {facts['model']} on {facts['data']} ({plural(facts['n_train'], 'sample')} × "
                 f"{plural(facts['n_features'], 'feature')}) → {plural(facts['n_components'], 'unit')} on "
                 f"{facts['device']}: {describe_phases(facts['phases'])}; run folder {facts['run_dir']}")
    return announce


def report_summary(out: Output, summary: dict[str, Any], title: str = "Results") -> None:
    """A finished run's metrics table, where its model went and the pictures it drew."""
    out.metrics_table(summary["metrics"], f"{title} (on {summary['eval_data']}, {summary['n_eval']} samples)",
                      extra=[("epochs", summary["epochs"]), ("stop reason", summary["stop_reason"]),
                             ("final loss", summary["final_loss"]),
                             ("training time (s)", round(summary["train_seconds"], 2))])
    out.line(f"Model saved to {Path(summary['run_dir']) / run_folder.MODEL_NAME}")
    if summary["plots"]:
        names = ", ".join(Path(path).name for path in summary["plots"])
        out.line(f"Pictures in {summary['run_dir']}: {names}")


def _config_for(model_dir: Path, run_dir: Path | None, args: argparse.Namespace, model: Any = None) -> RunConfig:
    """The run's config (or one naming the saved model, or a SAELens folder's model and the data of
    the run it was exported from), with ``--data``/``--set``/``--download``."""
    from ..interop.saelens import evaluation_base, is_saelens_folder

    if run_dir is not None and (run_dir / run_folder.CONFIG_NAME).exists():
        base = read_run_config(run_dir / run_folder.CONFIG_NAME)
    elif model is not None and run_dir is None and is_saelens_folder(model_dir):
        base = evaluation_base(model_dir, model, data_given=args.data is not None, overrides=args.set)
    else:
        saved = read_config(model_dir)
        base = {"model": {"name": saved["model"], "n_components": saved["params"].get("n_components")}}
    config = load_config(base=base, data=args.data, assignments=args.set)
    changes = flag_overrides(argparse.Namespace(download=args.download))
    return config.override(changes).validate()


def load_trained(args: argparse.Namespace, path: str, out: Output | None = None
                 ) -> tuple[Any, RunConfig, Path | None, Path]:
    """The model, on ``--device``, else on the run's device when this machine has it, else on the
    CPU (saying so on ``out``: :func:`run_data.evaluation_device`); its config; the folders."""
    model_dir, run_dir = run_folder.locate_model(path)
    model = load_model(model_dir)
    config = _config_for(model_dir, run_dir, args, model)
    device, note = run_data.evaluation_device(args.device, config.train.get("device", "auto"))
    if note is not None and out is not None:
        out.line(note)
    model.to(device)
    return model, config, run_dir, model_dir


def datasets_for(model: Any, config: RunConfig):
    """The run's training and evaluation datasets, checked against the model's input size."""
    train_set, eval_set = run_data.load_datasets(config)
    if eval_set.n_features != model.n_features:
        raise DataError(f"dataset {config.data_name!r} has {eval_set.n_features} features, but the model "
                        f"expects {model.n_features}")
    return train_set, eval_set

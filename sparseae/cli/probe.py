"""``sparseae probe``: a linear probe (logistic regression) on a trained model's codes."""
from __future__ import annotations

import argparse

import numpy as np

from ..errors import DataError
from ..runs import data as run_data
from ..runs import metrics as run_metrics
from ..validation import check_number
from .common import MAX_CLI_SEED, READ_DEVICE, add_download, add_set, add_threads, datasets_for, load_trained
from .output import Output


def command_probe(args: argparse.Namespace, out: Output) -> int:
    """``sparseae probe``: self-taught learning — a logistic regression on a trained model's codes
    of labelled data (split into a training and a test part), beside the same probe on raw inputs."""
    from ..evaluate.probe import split_probe

    check_number(args.test_fraction, "--test-fraction", low=0.0, high=1.0, low_inclusive=False,
                 high_inclusive=False)
    check_number(args.C, "--C", low=0.0, low_inclusive=False)
    check_number(args.seed, "--seed", low=0, high=MAX_CLI_SEED, integer=True)
    model, config, _, model_dir = load_trained(args, args.path, out)
    dataset, _ = datasets_for(model, config)
    if dataset.y is None:
        raise DataError(f"dataset {config.data_name!r} has no labels: the probe needs labelled data")
    X = np.asarray(dataset.X)
    with out.progress(dataset.n_samples, "encode", "sample") as bar:
        codes, _ = run_metrics.encode_decode(model, X, decode=False, progress=bar.update)
    probe = split_probe(codes, dataset.y, X_raw=X if args.compare_raw else None, test_fraction=args.test_fraction,
                        C=args.C, random_state=args.seed)  # the recipes' `probe` evaluation too
    result = {"model_dir": str(model_dir), "model": model.spec["name"], "data": run_data.describe_data(config),
              "n_train": probe["n_train"], "n_test": probe["n_test"], "n_components": model.n_components,
              "accuracy": probe["accuracy"], "train_accuracy": probe["train_accuracy"]}
    rows = [(f"probe on {model.spec['name']} codes ({model.n_components})", probe["accuracy"])]
    if args.compare_raw:
        result["raw_accuracy"] = probe["raw_accuracy"]
        rows.append((f"probe on raw inputs ({dataset.n_features})", probe["raw_accuracy"]))
    out.line(f"Linear probe (logistic regression, C={args.C:g}) on {result['data']}: "
             f"{probe['n_train']} training and {probe['n_test']} test samples")
    out.table(((name, f"{100 * accuracy:.2f}%") for name, accuracy in rows), "test accuracy:")
    out.json(result)
    return 0


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``probe`` subcommand."""
    probe = commands.add_parser("probe", parents=[common], help="linear probe on a model's codes",
                                description="Self-taught learning: encode labelled data with a trained "
                                            "model, fit a logistic regression on part of it and report "
                                            "its accuracy on the rest (and the same probe on raw inputs).")
    probe.add_argument("path", metavar="MODEL_DIR_or_RUN_DIR")
    probe.add_argument("--data", help="labelled dataset to probe with (default: the run's)")
    add_set(probe, "data.classes=[0,1,2,3,4]")
    probe.add_argument("--test-fraction", type=float, default=0.5, help="held-out share (default 0.5)")
    probe.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the probe (default 1)")
    probe.add_argument("--compare-raw", action="store_true", help="also probe the raw inputs")
    probe.add_argument("--seed", type=int, default=0, help="seed of the split and the probe")
    probe.add_argument("--device", help=READ_DEVICE)
    add_download(probe)
    add_threads(probe)
    probe.set_defaults(handler=command_probe)

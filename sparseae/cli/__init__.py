"""The ``sparseae`` command: train, evaluate, plot, report, gradcheck, demo, models, datasets, examples.

``main(argv) -> exit status``: 0 success, 1 a failed gradient check, 2 a usage or user error
(``sparseae: error: <message>`` on one line of stderr, never a traceback unless ``--debug``),
130 interrupted.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from .._version import __version__
from ..errors import SparseAEError
from ..gradcheck import UFLDL_TOLERANCE
from .output import Output, print_error

__all__ = ["build_parser", "main", "run"]

_EPILOG = """\
examples:
  sparseae demo                                  UFLDL sparse autoencoder on natural-image patches
  sparseae train examples/ufldl_patches.yaml --out runs/ufldl
  sparseae train --model sparse_ae_l1 --data digits --set model.n_components=32 --set train.max_epochs=5
  sparseae train --out runs/ufldl --resume --set train.lbfgs_max_iter=800
  sparseae evaluate runs/ufldl --json
  sparseae report runs/ufldl                     one HTML page: runs/ufldl/report.html
  sparseae gradcheck --model sparse_ae_kl --n-features 64 --n-components 25
  sparseae recipes                               the paper reproductions; then sparseae train --recipe NAME
"""


def _common_options() -> argparse.ArgumentParser:
    """--json/--quiet/--debug, accepted after the subcommand as well as before it."""
    common = argparse.ArgumentParser(add_help=False)
    modes = common.add_mutually_exclusive_group()
    modes.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON object on stdout (no progress bar)")
    modes.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                       help="print nothing but errors")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    return common


def _add_set(parser: argparse.ArgumentParser, example: str = "train.max_epochs=5") -> None:
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"change one config value (YAML scalar), e.g. {example}; repeatable")


#: ``--device`` of the commands that use a trained model (:func:`sparseae.runs.data.evaluation_device`).
_READ_DEVICE = ("where the model runs: auto, cpu, cuda, cuda:N or mps (default: the run's train.device "
                "when this machine has it, else the CPU)")


def _add_threads(parser: argparse.ArgumentParser, setting: str = "") -> None:
    parser.add_argument("--threads", metavar="N|auto", default=None,
                        help=f"PyTorch's CPU threads{setting}: N, or auto (the default: from the problem's size "
                             "and the free cores)")


def _add_download(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--download", action="store_true",
                        help="let the dataset be downloaded once into the cache (data.download=true; MNIST)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sparseae`` command."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="sparseae", description="Sparse and regularized autoencoders on PyTorch.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"sparseae {__version__}")
    parser.add_argument("--json", action="store_true", default=False, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", "-q", action="store_true", default=False, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from . import bench, examples, export, harvest, hashing, recipes
    from . import commands as cmd

    train = commands.add_parser("train", parents=[common], help="train a model into a run folder",
                                description="Train a model: config file (YAML/TOML) and/or flags.")
    train.add_argument("config", nargs="?", help="run config, .yaml/.yml/.toml/.json")
    train.add_argument("--model", help="model name (see `sparseae models`)")
    train.add_argument("--data", help="dataset name (see `sparseae datasets`)")
    _add_set(train)
    train.add_argument("--out", metavar="DIR", help="run folder (output.dir; default runs/<model>_<data>)")
    train.add_argument("--resume", action="store_true", help="continue the run in DIR from its checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace a previous run in DIR")
    train.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (train.device)")
    train.add_argument("--log-to", metavar="LOGGERS", help="experiment trackers, comma-separated: tensorboard, "
                       "mlflow, wandb (train.loggers; written inside the run folder)")
    _add_download(train)
    _add_threads(train, " (train.threads)")
    recipes.add_train_options(train)
    train.set_defaults(handler=cmd.command_train)

    evaluate = commands.add_parser("evaluate", parents=[common], help="metrics of a trained model",
                                   description="Reconstruction, sparsity and probe metrics of a saved "
                                               "model or a run folder's model.")
    evaluate.add_argument("path", metavar="MODEL_DIR_or_RUN_DIR")
    evaluate.add_argument("--data", help="evaluate on this dataset instead of the run's")
    _add_set(evaluate, "data.split=test")
    evaluate.add_argument("--device", help=_READ_DEVICE)
    _add_download(evaluate)
    _add_threads(evaluate)
    harvest.add_evaluate_options(evaluate)
    evaluate.set_defaults(handler=cmd.command_evaluate)

    probe = commands.add_parser("probe", parents=[common], help="linear probe on a model's codes",
                                description="Self-taught learning: encode labelled data with a trained "
                                            "model, fit a logistic regression on part of it and report "
                                            "its accuracy on the rest (and the same probe on raw inputs).")
    probe.add_argument("path", metavar="MODEL_DIR_or_RUN_DIR")
    probe.add_argument("--data", help="labelled dataset to probe with (default: the run's)")
    _add_set(probe, "data.classes=[0,1,2,3,4]")
    probe.add_argument("--test-fraction", type=float, default=0.5, help="held-out share (default 0.5)")
    probe.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the probe (default 1)")
    probe.add_argument("--compare-raw", action="store_true", help="also probe the raw inputs")
    probe.add_argument("--seed", type=int, default=0, help="seed of the split and the probe")
    probe.add_argument("--device", help=_READ_DEVICE)
    _add_download(probe)
    _add_threads(probe)
    probe.set_defaults(handler=cmd.command_probe)

    index = commands.add_parser("index", parents=[common], help="build a semantic-hashing index",
                                description="Encode a dataset with a trained model, threshold the codes "
                                            "to bits and save a Hamming hash index (with the model).")
    index.add_argument("path", metavar="MODEL_DIR_or_RUN_DIR")
    index.add_argument("--data", help="dataset to index (default: the run's)")
    _add_set(index, "data.split=train")
    index.add_argument("--out", metavar="INDEX_DIR", required=True, help="where the index folder goes")
    index.add_argument("--threshold", type=float, default=0.5, help="code value above which a bit is 1")
    index.add_argument("--overwrite", action="store_true", help="replace an index in INDEX_DIR")
    index.add_argument("--device", help=_READ_DEVICE)
    _add_download(index)
    _add_threads(index)
    index.set_defaults(handler=hashing.command_index)

    query = commands.add_parser("query", parents=[common], help="nearest indexed items of inputs",
                                description="Encode inputs with the index's model and list the indexed "
                                            "items within a Hamming radius, or the k nearest.")
    query.add_argument("index", metavar="INDEX_DIR")
    query.add_argument("--input", metavar="FILE", help="queries: .npy/.npz/.csv, one row per query")
    query.add_argument("--data", help="queries from this dataset (with --rows)")
    query.add_argument("--rows", metavar="START[:STOP]", help="which rows of --input/--data")
    query.add_argument("--radius", type=int, default=2, help="Hamming radius of the lookup (default 2)")
    query.add_argument("--k", type=int, default=None, help="the k nearest by exhaustive ranking instead")
    query.add_argument("--model", metavar="MODEL_DIR_or_RUN_DIR", help="encode with this model (must be "
                                                                       "the index's)")
    query.add_argument("--show", type=int, default=10, help="items printed per query (default 10)")
    _add_threads(query)
    query.set_defaults(handler=hashing.command_query)

    plot = commands.add_parser("plot", parents=[common], help="draw a run folder's pictures",
                               description="Write filters.png, curves.png, reconstructions.png and "
                                           "activity.png from a run folder (model + metrics.jsonl).")
    plot.add_argument("run_dir", metavar="RUN_DIR")
    plot.add_argument("--out", metavar="DIR", help="where the PNGs go (default: RUN_DIR)")
    plot.add_argument("--data", help="use this dataset instead of the run's")
    _add_set(plot, "data.split=test")
    plot.add_argument("--device", help=_READ_DEVICE)
    _add_download(plot)
    _add_threads(plot)
    plot.set_defaults(handler=cmd.command_plot)

    report = commands.add_parser("report", parents=[common], help="one HTML page of a run, or of two side by side",
                                 description="Write one self-contained HTML file (it opens from disk, with no "
                                             "network): a run's config, final metrics, loss and sparsity "
                                             "curves, filters, reconstructions, unit activity, and the "
                                             "confusion matrix or precision-recall curve where they apply. "
                                             "With RUN_DIR_B, the two runs side by side.")
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.add_argument("other_run_dir", metavar="RUN_DIR_B", nargs="?", help="a second run to compare with")
    report.add_argument("--out", metavar="FILE", help="the HTML file (default RUN_DIR/report.html, or "
                                                      "RUN_DIR/compare-<name of RUN_DIR_B>.html)")
    report.add_argument("--device", help="where the model draws the pictures: cpu (default), auto, cuda, cuda:N or mps")
    _add_threads(report)
    report.set_defaults(handler=cmd.command_report)

    gradcheck = commands.add_parser("gradcheck", parents=[common], help="float64 derivative check",
                                    description="Compare autograd's gradient with central differences "
                                                "in float64; exit 0 on PASS, 1 on FAIL.")
    gradcheck.add_argument("--model", default="sparse_ae_kl", help="model name (default sparse_ae_kl)")
    gradcheck.add_argument("--n-features", type=int, default=None, help="input size (default 16)")
    gradcheck.add_argument("--n-components", type=int, default=8, help="code size (default 8)")
    _add_set(gradcheck, "model.sparsity_target=0.05")
    gradcheck.add_argument("--samples", type=int, default=10, help="data rows (default 10)")
    gradcheck.add_argument("--data", help="take the rows from this dataset instead of U[0.1, 0.9]")
    gradcheck.add_argument("--epsilon", type=float, default=1e-4, help="finite-difference step (1e-4)")
    gradcheck.add_argument("--max-checks", type=int, default=None, metavar="N",
                           help="check N random coordinates per parameter (default: all)")
    gradcheck.add_argument("--tolerance", type=float, default=UFLDL_TOLERANCE,
                           help=f"PASS threshold (default UFLDL's {UFLDL_TOLERANCE:g})")
    gradcheck.add_argument("--seed", type=int, default=0, help="seed of the data and the model")
    _add_download(gradcheck)
    _add_threads(gradcheck)
    gradcheck.set_defaults(handler=cmd.command_gradcheck)

    demo = commands.add_parser("demo", parents=[common], help="the UFLDL sparse autoencoder exercise",
                               description="Gradient check, then 400 L-BFGS iterations of a 64-25-64 "
                                           "sparse autoencoder (ρ=0.01, β=3, λ=1e-4) on 10,000 whitened "
                                           "8×8 natural-image patches; writes filters.png and friends.")
    demo.add_argument("--out", metavar="DIR", help="run folder (default runs/demo)")
    demo.add_argument("--quick", action="store_true", help="2,000 patches and 40 iterations")
    demo.add_argument("--resume", action="store_true", help="continue the demo run in DIR")
    demo.add_argument("--overwrite", action="store_true", help="replace a previous demo run in DIR")
    demo.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    _add_set(demo, "train.lbfgs_max_iter=800")
    _add_threads(demo, " (train.threads)")
    demo.set_defaults(handler=cmd.command_demo)

    models = commands.add_parser("models", parents=[common], help="list the registered models")
    models.add_argument("name", nargs="?", metavar="NAME", help="one model: its description and parameters")
    models.set_defaults(handler=cmd.command_models)
    datasets = commands.add_parser("datasets", parents=[common], help="list the registered datasets")
    datasets.set_defaults(handler=cmd.command_datasets)
    examples.add_parser(commands, common)
    recipes.add_parser(commands, common)
    export.add_parser(commands, common)
    harvest.add_parser(commands, common)
    bench.add_parser(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sparseae`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.json and args.quiet:
        parser.error("--json and --quiet exclude each other")
    out = Output("json" if args.json else "quiet" if args.quiet else "human")
    previous_threads = None
    terminated = _TerminationAsInterrupt()
    try:
        terminated.install()
        if hasattr(args, "threads"):  # a command that computes: its threads, restored after it
            import torch

            from ..threads import check_threads, set_threads

            args.threads = check_threads(args.threads, "--threads")
            previous_threads = torch.get_num_threads()
            set_threads("auto" if args.threads is None else args.threads, interop=True)
        return int(args.handler(args, out))
    except (SparseAEError, OSError) as exc:
        # OSError: the file system refused (permissions, disk full): the user's to fix, not a bug.
        if args.debug:
            raise
        print_error(str(exc) if isinstance(exc, SparseAEError) or str(exc) else repr(exc))
        return 2
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        print_error((str(exc) or "interrupted") + (" (SIGTERM)" if terminated.received else ""))
        return 143 if terminated.received else 130
    finally:
        terminated.restore()
        if previous_threads is not None:
            torch.set_num_threads(previous_threads)


class _TerminationAsInterrupt:
    """SIGTERM (``kill``, a scheduler's or torchrun's stop) handled as Ctrl-C while a command runs:
    the run releases its lock and says where its last checkpoint is; the status is then 143."""

    def __init__(self) -> None:
        self.received, self._previous = False, None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = True
        raise KeyboardInterrupt("terminated")

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


def run() -> NoReturn:
    """The ``sparseae`` program (console script and ``python -m sparseae``): exit with ``main()``'s
    status; a ``torchrun`` worker leaves without interpreter finalization
    (:func:`sparseae.distributed.exit_process` says why). Ctrl-C before a command runs (while
    the modules load) is the same one line and status 130 as during it."""
    try:
        from ..distributed import exit_process

        status = main()
    except KeyboardInterrupt:
        if "--debug" in sys.argv[1:]:
            raise
        print_error("interrupted")
        status = None  # leave outside the handler: `python -m` turns an exit raised inside it into SIGINT
    if status is None:
        raise SystemExit(130)
    exit_process(status)

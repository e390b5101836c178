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
    from . import (
        bench,
        demo,
        evaluate,
        examples,
        export,
        gradcheck,
        harvest,
        hashing,
        listings,
        plot,
        probe,
        recipes,
        report,
        train,
    )

    for module in (train, evaluate, probe, hashing, plot, report, gradcheck, demo, listings, examples, recipes,
                   export, harvest, bench):  # the order of `sparseae --help`
        module.add_parser(commands, common)
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
        from ..allocator import keep_freed_memory
        from ..distributed import exit_process

        keep_freed_memory()  # the program's own process: full-batch steps reuse their blocks
        status = main()
    except KeyboardInterrupt:
        if "--debug" in sys.argv[1:]:
            raise
        print_error("interrupted")
        status = None  # leave outside the handler: `python -m` turns an exit raised inside it into SIGINT
    if status is None:
        raise SystemExit(130)
    exit_process(status)

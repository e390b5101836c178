"""``sparseae report``: one self-contained HTML page of a run folder, or of two side by side."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..runs import folder as run_folder
from .common import add_threads
from .output import Output


def command_report(args: argparse.Namespace, out: Output) -> int:
    """``sparseae report``: one self-contained HTML page of a run folder, or of two side by side."""
    from ..report import write_report

    runs_shown = [args.run_dir] + ([args.other_run_dir] if args.other_run_dir is not None else [])
    stale: list[str] = []  # runs whose pictures could not be drawn now: said, never silent
    folder = Path(args.run_dir if args.out is None else args.out)  # where the page goes
    locked = folder if args.out is None or folder.is_dir() else folder.parent
    with run_folder.lock_if_run_dir(locked, "sparseae report"):
        path = write_report(args.run_dir, args.other_run_dir, out=args.out, device=args.device, warn=stale.append)
    for line in stale:
        out.line(f"Warning: {line}")
    out.line(f"Report written to {path} (a single file: open it in a browser, no network needed)")
    out.json({"report": str(path), "runs": [str(Path(run)) for run in runs_shown], "bytes": path.stat().st_size,
              "stale_pictures": stale})
    return 0


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``report`` subcommand."""
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
    add_threads(report)
    report.set_defaults(handler=command_report)

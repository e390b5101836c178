"""One self-contained HTML page about a run folder, or two run folders side by side (``sparseae report``).

The page opens from disk with no network: every picture is a PNG embedded as a base64 ``data:``
URI, the style sheet is inline, and there is no script and no external font. It shows the run's
status and facts, the final metrics (``summary.json``), the pictures of
:func:`sparseae.runs.plots.write_plots` — loss and sparsity curves, the filters (in the
model's topographic grid or tree when it has grid or tree groups), reconstructions beside their
inputs, unit activity with dead units marked, an SAE's recorded firing rates (log10 histogram, dead,
rare and dense latents counted), the confusion matrix of a classifier head, the
precision-recall curve of Hamming ranking for a hashing model — and the config (``config.yaml``).

A run still training, or one without a model or whose data cannot be loaded, gives a page with
what there is; every skipped section says why. A path that is not a run folder is a
:class:`~sparseae.errors.CheckpointError`. Every string from the run is HTML-escaped.
"""
from __future__ import annotations

from .page import default_report_path, render_html, write_report
from .run import RunContent, collect_run

__all__ = ["RunContent", "collect_run", "render_html", "write_report", "default_report_path"]

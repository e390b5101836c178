"""What a report shows of one run folder: its status, facts, metrics, history, config and pictures
(:func:`collect_run` → :class:`RunContent`)."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import load_config, read_run_config
from ..errors import CheckpointError, DataError, SparseAEError
from ..io import load_model
from ..runs.data import evaluation_device, load_datasets
from ..runs.folder import CONFIG_NAME, PLOT_NAMES, SUMMARY_NAME, is_run_dir, locate_model, read_history
from ..runs.metrics import firing_counts
from ..runs.plots import write_curves, write_firing_histogram, write_plots

#: The pictures, in page order: (PNG file stem, section title, caption).
FIGURES = (
    ("curves", "Loss and sparsity curves",
     "Per-epoch averages logged in metrics.jsonl: the losses on top; below, the other terms "
     "(reconstruction, sparsity penalties, classification error...)."),
    ("filters", "Filters",
     "What each unit responds to (the encoder's rows, or the decoder's atoms), each scaled to its own "
     "range; models with grid or tree groups are drawn in their topographic grid or tree; a "
     "convolutional model's kernels one per map (a second layer's as a row of kernels over the first "
     "layer's pooled maps), a locally connected model's own kernel of every unit on its sheet."),
    ("activity", "Unit activity",
     "Each unit over up to 10,000 evaluation samples: how often it is nonzero (codes that rest at 0: "
     "ReLU, TopK, shrinkage), else the span of its values (sigmoid, tanh, linear). Dead units in red, "
     "by the rule in the title: never nonzero, or a span of at most 1% of the code range (sigmoid: "
     "0.01), of the widest unit's for unbounded codes."),
    ("firing", "Firing frequencies",
     "SAEBench's core statistic for an SAE: the histogram of each latent's log10 firing rate (the fraction of "
     "evaluation rows, or tokens, where it is nonzero), as summary.json recorded it when training ended; "
     "latents that never fire in red. The table counts the dead, rare and dense latents."),
    ("reconstructions", "Reconstructions",
     "The first evaluation inputs (top row) and the model's reconstructions (bottom row), on one grey scale."),
    ("confusion", "Confusion matrix",
     "The classifier head on the evaluation set: rows are the true classes, columns the predictions."),
    ("precision_recall", "Precision-recall of Hamming ranking",
     "Binary codes (thresholded at 0.5) of up to 2,000 evaluation items: 200 queries rank the rest by "
     "Hamming distance; an item is relevant when it has the query's label. One point per radius."),
    ("angles", "Encoder-decoder angles",
     "DrSAE's unit analysis: part-units (small angle) and categorical-units (large angle), "
     "as in Rolfe & LeCun (2013), Fig. 3."),
)

#: Summary entries shown as facts beside the metrics: (summary key, label).
_FACTS = (("model", "model"), ("n_features", "input features"), ("n_components", "code units"),
          ("data", "training data"), ("n_train", "training samples"), ("eval_data", "evaluated on"),
          ("n_eval", "evaluation samples"), ("epochs", "epochs"), ("stop_reason", "stop reason"),
          ("final_loss", "final loss"), ("train_seconds", "training time (s)"),
          ("sparseae_version", "trained with sparseae"))


@dataclass
class RunContent:
    """What the page shows about one run folder.

    ``figures`` maps a picture's file stem (see :data:`FIGURES`) to its PNG bytes; ``stale``
    lists the stems taken from the run folder's own PNGs instead of being drawn now; ``notes``
    says what was skipped and why.
    """

    run_dir: Path
    status: str
    config_text: str | None = None
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    label: str | None = None
    #: the width of the code of the model drawn (a convolutional model's maps × positions)
    code_units: int | None = None
    #: a text run's feature dashboards (:mod:`sparseae.report.features`), relative to the page
    features_page: str | None = None
    #: :func:`~sparseae.runs.metrics.firing_counts` of the firing rates summary.json recorded
    firing: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """How the page names the run: ``label``, else the folder's name."""
        return self.label or self.run_dir.resolve().name or str(self.run_dir)


# --------------------------------------------------------------------------------- collecting

def _check_run_folder(run_dir: Path) -> None:
    if not run_dir.exists():
        raise CheckpointError(f"no run folder at {run_dir}: it does not exist")
    if not is_run_dir(run_dir):
        what = "a file" if not run_dir.is_dir() else f"a folder without {CONFIG_NAME}, model/ or checkpoint/"
        raise CheckpointError(f"{run_dir} is not a sparseae run folder: it is {what} "
                              "(make one with `sparseae train --out DIR`)")


def _status(summary: dict[str, Any] | None, history: list[dict[str, Any]]) -> str:
    if summary is not None:
        return f"finished after {summary.get('epochs', '?')} epochs ({summary.get('stop_reason', 'unknown stop')})"
    if history:
        return f"unfinished: {len(history)} epoch{'s' if len(history) != 1 else ''} logged"
    return "unfinished: no epoch logged yet"


def _device(device: str | None) -> torch.device:
    """``device`` (``auto``, ``cpu``, ``cuda[:N]``, ``mps``; :class:`ConfigError` when unusable
    here), CPU by default: a report is light work, and the run's own device (its ``train.device``
    is not used) may be one this machine lacks."""
    return evaluation_device(device, "cpu")[0]


def _draw_pictures(content: RunContent, folder: Path, device: torch.device) -> bool:
    """Draw the run's pictures into ``folder`` with its model on its evaluation data; returns False
    (with a note saying why) when only the curves, which need just the history, could be drawn."""
    try:
        model_dir, _ = locate_model(content.run_dir)
        model = load_model(model_dir)
    except SparseAEError as exc:
        content.notes.append(f"No trained model to draw filters, reconstructions and unit activity with: {exc}")
        write_curves(content.history, folder)
        return False
    content.code_units = int(model.n_components)
    if content.summary is None:
        content.notes.append(f"The pictures use the last checkpoint ({model_dir.name}/), not a final model.")
    try:
        if content.config is None:
            raise DataError(f"no readable {CONFIG_NAME}, so the evaluation data is unknown")
        config = load_config(base=content.config)
        model.to(device)
        _, eval_set = load_datasets(config)
        if eval_set.n_features != model.n_features:
            raise DataError(f"the data has {eval_set.n_features} features, the model expects {model.n_features}")
    except SparseAEError as exc:
        content.notes.append(f"The pictures that need the model on its evaluation data are skipped: {exc}")
        write_curves(content.history, folder)
        return False
    write_plots(model, content.history, eval_set, folder, random_state=int(config.train.get("random_state") or 0),
                firing=content.firing is None and "provenance" in (content.summary or {}))
    return True


def _recorded_firing(content: RunContent) -> list[float] | None:
    """The per-latent firing rates summary.json recorded, with their counts set on ``content``;
    None (with a note when they are unusable) when there are none."""
    rates = (content.summary or {}).get("firing_rates")
    if rates is None:
        return None
    try:
        content.firing = firing_counts(rates)
    except SparseAEError as exc:
        content.notes.append(f"The firing rates in {SUMMARY_NAME} are not drawn: {exc}")
        return None
    return rates


def collect_run(run_dir: str | os.PathLike, *, device: str | None = None) -> RunContent:
    """Read a run folder and draw its pictures (with its model on its evaluation data).

    ``device``: where the model runs (default ``cpu``). Raises :class:`CheckpointError` when
    ``run_dir`` is not a run folder and :class:`ConfigError` for a device that is not usable;
    anything else missing or unreadable becomes a note on the page.
    """
    run_dir = Path(run_dir)
    _check_run_folder(run_dir)
    where = _device(device)
    content = RunContent(run_dir=run_dir, status="")
    config_path = run_dir / CONFIG_NAME
    if config_path.exists():
        try:
            content.config_text = config_path.read_text(encoding="utf-8")
            content.config = read_run_config(config_path)
        except (OSError, UnicodeDecodeError, SparseAEError) as exc:
            content.notes.append(f"{CONFIG_NAME} could not be read: {exc}")
    else:
        content.notes.append(f"No {CONFIG_NAME} in the run folder.")
    summary_path = run_dir / SUMMARY_NAME
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            if not isinstance(summary, dict):
                raise ValueError(f"it holds a {type(summary).__name__}, not an object")
            content.summary = summary
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            content.notes.append(f"{SUMMARY_NAME} could not be read: {exc}")
    try:
        content.history = read_history(run_dir)
    except CheckpointError as exc:
        content.notes.append(str(exc))
    content.status = _status(content.summary, content.history)
    rates = _recorded_firing(content)
    with tempfile.TemporaryDirectory(prefix="sparseae-report-") as scratch:
        try:
            complete = _draw_pictures(content, Path(scratch), where)
        except SparseAEError as exc:  # e.g. a history without a single finite number
            content.notes.append(f"The pictures could not be drawn: {exc}")
            complete = False
        if rates is not None:  # needs no model: drawn even when the others could not be
            write_firing_histogram(rates, Path(scratch))
        for path in sorted(Path(scratch).glob("*.png")):
            content.figures[path.stem] = path.read_bytes()
    if not complete:  # instead of the pictures not drawn now: the ones training wrote, if any
        for name in PLOT_NAMES:
            stem = Path(name).stem
            if stem not in content.figures and (run_dir / name).is_file():
                content.figures[stem] = (run_dir / name).read_bytes()
                content.stale.add(stem)
    return content


# ---------------------------------------------------------------------------------- rendering

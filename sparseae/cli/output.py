"""Everything the ``sparseae`` command writes to the terminal (the only module that prints).

Three modes: ``human`` (tables and lines on stdout), ``json`` (exactly one JSON object on stdout,
nothing else), ``quiet`` (nothing). Errors always go to stderr as one line.
"""
from __future__ import annotations

import json
import math
import re
import sys
import unicodedata
from typing import Any, Iterable, Sequence

PROGRAM = "sparseae"

#: Human labels of the metrics in summaries and ``evaluate`` (others are shown by their key).
METRIC_LABELS = {
    "final_loss": "final loss",
    "reconstruction_error": "reconstruction error (mean ‖x − x̂‖²)",
    "mean_squared_error": "mean squared error (per element)",
    "explained_variance": "explained variance",
    "rho_hat_mean": "mean activation ρ̂",
    "sparsity_target": "sparsity target ρ",
    "rho_hat_min": "min unit ρ̂",
    "rho_hat_max": "max unit ρ̂",
    "activity_threshold": "unit active above",
    "mean_l0": "mean active units (L0)",
    "active_fraction": "active fraction",
    "dead_units": "dead units",
    "dead_fraction": "dead fraction",
    "dead_rule": "a unit is dead when",
    "orientation_selectivity": "filter orientation selectivity",
    "jacobian_norm": "mean ‖J_f(x)‖_F (encoder Jacobian)",
    "jacobian_sq_per_entry": "mean squared entry of J_f",
    "saturated_fraction": "saturated units (h < 0.05 or > 0.95)",
    "pretrained_jacobian_norm": "pre-trained layer 1: mean ‖J_f(x)‖_F",
    "pretrained_jacobian_sq_per_entry": "pre-trained layer 1: mean squared entry of J_f",
    "pretrained_saturated_fraction": "pre-trained layer 1: saturated units",
    "probe_accuracy": "linear probe accuracy",
    "probe_skipped": "linear probe",
    "classifier_error": "classifier error rate",
    "units_n_part_units": "part-units (encoder–decoder angle < 0.5 rad)",
    "units_n_categorical_units": "categorical units (encoder–decoder angle > 0.7 rad)",
    "units_median_angle": "median encoder–decoder angle (rad)",
}


def format_value(value: Any) -> str:
    """Numbers with 6 significant digits; everything else as ``str``."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "-"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``"1 epoch"``, ``"2 epochs"``: ``count`` and the noun in its number (``nouns``: an irregular plural)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def describe_phases(phases: Sequence[dict[str, Any]]) -> str:
    """The training phases of a run header (see :func:`sparseae.cli.runs.training_phases`), e.g.
    ``pretrain 2 layers (adam, 1 epoch each), then fine-tune (adam, 20 epochs)``."""
    parts = []
    for phase in phases:
        if phase["optimizer"] == "lbfgs":
            budget = f"{plural(phase['lbfgs_max_iter'], 'L-BFGS iteration')} in {plural(phase['epochs'], 'epoch')}"
        else:
            budget = f"{phase['optimizer']}, {plural(phase['epochs'], 'epoch')}"
        if phase.get("layers"):
            parts.append(f"{phase['name']} {plural(phase['layers'], 'layer')} ({budget} each)")
        else:
            parts.append(f"{phase['name']} ({budget})")
    return ", then ".join(parts)


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal (combining marks such as the hat of ρ̂ take none)."""
    return sum(0 if unicodedata.combining(char) else 1 for char in text)


_ROLE = re.compile(r":[a-z:]+:`(~?)([^`<]*?)(?:\s*<[^`>]*>)?`")


def plain_text(text: str) -> str:
    """A docstring's reStructuredText as plain text on one line: ``:func:`~a.b.name``` → ``name``,
    double and single backquotes dropped."""
    text = _ROLE.sub(lambda found: found[2].rsplit(".", 1)[-1] if found[1] else found[2], text)
    text = text.replace("\\ ", "").replace("``", "").replace("`", "")
    return _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def print_error(message: str) -> None:
    """``sparseae: error: <message>`` on stderr, on a single line, in one write (so that the lines of
    processes sharing a stderr, e.g. torchrun's ranks, never run into each other)."""
    sys.stderr.write(f"{PROGRAM}: error: {_one_line(message) or 'unknown error'}\n")
    sys.stderr.flush()


class Output:
    """Writes results in one of the modes ``human``, ``json`` or ``quiet``."""

    def __init__(self, mode: str = "human") -> None:
        self.mode = mode

    @property
    def human(self) -> bool:
        return self.mode == "human"

    def line(self, text: str = "") -> None:
        """A line of human output."""
        if self.human:
            print(text, flush=True)

    def table(self, rows: Iterable[tuple[str, Any]], title: str | None = None) -> None:
        """Two aligned columns, label and value, under an optional title."""
        if not self.human:
            return
        rows = [(label, format_value(value)) for label, value in rows]
        if title:
            print(title)
        width = max((display_width(label) for label, _ in rows), default=0)
        for label, value in rows:
            print(f"  {label}{' ' * (width - display_width(label))}  {value}")
        sys.stdout.flush()

    def metrics_table(self, metrics: dict[str, Any], title: str | None = None,
                      extra: Sequence[tuple[str, Any]] = ()) -> None:
        """The metrics dict of a run, with readable labels, known ones first."""
        ordered = [key for key in METRIC_LABELS if key in metrics]
        ordered += [key for key in metrics if key not in METRIC_LABELS]
        self.table([*extra, *((METRIC_LABELS.get(key, key), metrics[key]) for key in ordered)], title)

    def progress(self, total: int, description: str, unit: str = "it"):
        """A tqdm progress bar on stderr for long work, shown only in ``human`` mode; use it as a
        context manager and call its ``update(n)``."""
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=description, unit=unit, unit_scale=True, dynamic_ncols=True, leave=False,
                    disable=not self.human)

    def json(self, payload: Any) -> None:
        """The single JSON object of ``--json`` mode."""
        if self.mode == "json":
            print(json.dumps(payload, indent=2, default=str), flush=True)

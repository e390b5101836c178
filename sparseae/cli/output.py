"""Everything the ``sparseae`` command writes to the terminal (the only module that prints).

Three modes: ``human`` (tables and lines on stdout), ``json`` (exactly one JSON object on stdout,
nothing else), ``quiet`` (nothing). Errors always go to stderr as one line.
"""
from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from ..labels import METRIC_LABELS, format_value  # noqa: F401  (re-exported: the CLI prints with them)

PROGRAM = "sparseae"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``"1 epoch"``, ``"2 epochs"``: ``count`` and the noun in its number (``nouns``: an irregular plural)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def describe_phases(phases: Sequence[dict[str, Any]]) -> str:
    """The training phases of a run header (see :func:`sparseae.runs.procedures.training_phases`), e.g.
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

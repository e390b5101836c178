"""Mean and spread of the test and validation errors of several runs of one recipe (seeds).

Reads run folders that ``sparseae train --recipe NAME --set train.random_state=S --out DIR`` wrote
(their ``summary.json``: the recipe's metric, e.g. ``classifier_error``; the validation error of
the best epoch from ``metrics.jsonl``). Folders written by the since-retired benchmark scripts
(a ``result.json``) are read too, so the older BENCHMARKS.md rows can be summarized again:

    python benchmarks/summarize_seeds.py runs/cae-s0 runs/cae-s1 runs/cae-s2

Prints one line per run, then the mean ± sample standard deviation (the figures BENCHMARKS.md
gives as "seeds 0 / 1 / 2 → mean").
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from sparseae.runs import SUMMARY_NAME
from sparseae.runs.folder import read_history

#: The file the retired scripts wrote into their ``--run-dir``.
LEGACY_RESULT = "result.json"


def read_run(run: Path) -> tuple[str, float, float | None, float | None]:
    """(recipe, test error %, validation error % of the best epoch, refit test error %) of one run folder."""
    summary_path, legacy_path = run / SUMMARY_NAME, run / LEGACY_RESULT
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        recipe = summary.get("recipe") or {}
        metric = recipe.get("metric", "classifier_error")
        if metric not in summary.get("metrics", {}):
            raise SystemExit(f"{summary_path} has no metric {metric!r}: not a classifier's run")
        val = [record["val_error"] for record in read_history(run) if record.get("val_error") is not None]
        return (recipe.get("name", summary.get("model", "?")), 100 * summary["metrics"][metric],
                100 * min(val) if val else None, None)
    if legacy_path.is_file():
        result = json.loads(legacy_path.read_text())
        refit = (result.get("refit") or {}).get("test_error")
        return result["recipe"], result["test_error"], result["val_error"], refit
    raise SystemExit(f"{run} holds neither {SUMMARY_NAME} nor {LEGACY_RESULT}: train it with "
                     f"`sparseae train --recipe NAME --out {run}`")


def spread(values: list[float | None]) -> str:
    """``mean ± sd%`` of the values given (one value: itself; none: a dash)."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}%"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    args = parser.parse_args()
    rows = [(run, *read_run(Path(run))) for run in args.runs]

    def shown(value: float | None, width: int) -> str:
        return f"{value:{width - 1}.2f}%" if value is not None else f"{'—':>{width}}"

    print(f"{'run':<40} | {'recipe':<12} | {'test error':>10} | {'val error':>9} | {'refit test':>10}")
    for run, recipe, test, val, refit in rows:
        print(f"{run:<40} | {recipe:<12} | {shown(test, 10)} | {shown(val, 9)} | {shown(refit, 10)}")
    print(f"{'mean ± sd over ' + str(len(rows)) + ' runs':<40} | {'':<12} | {spread([r[2] for r in rows]):>10} | "
          f"{spread([r[3] for r in rows]):>9} | {spread([r[4] for r in rows]):>10}")


if __name__ == "__main__":
    main()

"""Mean and spread of the test and validation errors of several runs of one recipe (seeds).

Reads the ``result.json`` that ``reproduce_stacked_mnist.py --run-dir`` writes in each folder:

    python benchmarks/summarize_seeds.py runs/cae-s0 runs/cae-s1 runs/cae-s2

Prints one line per run, then the mean ± sample standard deviation (the figures BENCHMARKS.md
gives as "seeds 0 / 1 / 2 → mean").
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        path = Path(run) / "result.json"
        if not path.is_file():
            parser.error(f"{path} does not exist (run reproduce_stacked_mnist.py with --run-dir {run})")
        result = json.loads(path.read_text())
        refit = (result.get("refit") or {}).get("test_error")
        rows.append((run, result["recipe"], result["test_error"], result["val_error"], refit))
    print(f"{'run':<40} | {'recipe':<8} | {'test error':>10} | {'val error':>9} | {'refit test':>10}")
    for run, recipe, test, val, refit in rows:
        shown = f"{refit:9.2f}%" if refit is not None else f"{'—':>10}"
        print(f"{run:<40} | {recipe:<8} | {test:9.2f}% | {val:8.2f}% | {shown}")

    def spread(values):
        values = [v for v in values if v is not None]
        if not values:
            return "—"
        if len(values) == 1:
            return f"{values[0]:.2f}%"
        return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}%"

    print(f"{'mean ± sd over ' + str(len(rows)) + ' runs':<40} | {'':<8} | {spread([r[2] for r in rows]):>10} | "
          f"{spread([r[3] for r in rows]):>9} | {spread([r[4] for r in rows]):>10}")


if __name__ == "__main__":
    main()

"""Redraw the LISTA depth curve of a finished ``lista_depth_mnist`` run (issue 25's figure).

The ``lista_depth`` evaluation writes ``lista_depth.json`` and ``lista_depth.png`` into its run folder.
For a run made before it did, this recomputes ISTA's and FISTA's error curves on the run's
dictionary and test rows (the recipe's ``evaluate`` settings pick them, as the evaluation did; a
few seconds), takes LISTA's errors per depth from the run's summary.json, writes both files, and
checks that the FISTA iterations it finds per depth equal the summary's ``fista_equivalent_T<T>``.

    python benchmarks/plot_lista_depth.py runs/lista_depth_mnist --out docs/images/lista_depth_curve.png
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from sparseae.evaluate.lista import exact_codes, iterations_to_match
from sparseae.recipes import get_recipe
from sparseae.runs.evaluations.lista import (
    DEPTH_CURVE_JSON,
    DEPTH_CURVE_PNG,
    run_rows,
    solver_curves,
    write_depth_curve,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="the run folder (config.yaml, model/, summary.json)")
    parser.add_argument("--recipe", default="lista_depth_mnist", help="whose evaluate settings the run used")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an evaluation setting the run changed (sparseae train --set evaluate.KEY=VALUE)")
    parser.add_argument("--out", default=None, help="also copy the picture here")
    args = parser.parse_args()
    run_dir = Path(args.run)
    _, params, D, lam, _, _, X_test = run_rows(run_dir, get_recipe(args.recipe).evaluation(assignments=args.set))
    metrics = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["metrics"]
    depths = sorted(int(key[len("lista_error_T"):]) for key in metrics if key.startswith("lista_error_T"))
    errors = [metrics[f"lista_error_T{T}"] for T in depths]
    max_iter = params["max_iter"]
    curves = solver_curves(X_test, D, lam, exact_codes(X_test, D, lam), max_iter)
    write_depth_curve(run_dir, curves, depths, errors, untied=bool(params["untied"]))
    print(f"{'T':>3} | {'LISTA error':>11} | {'FISTA its':>9} | {'summary':>7} | {'ratio to 10T':>12}")
    mismatch = False
    for T, error in zip(depths, errors, strict=True):
        found = iterations_to_match(curves["FISTA"], error) or max_iter + 1
        recorded = int(metrics[f"fista_equivalent_T{T}"])
        mismatch |= found != recorded
        print(f"{T:>3} | {error:11.4f} | {found:>9} | {recorded:>7} | {found / (10 * T):12.2f}")
    print(f"wrote {run_dir / DEPTH_CURVE_JSON} and {run_dir / DEPTH_CURVE_PNG}")
    if args.out:
        shutil.copyfile(run_dir / DEPTH_CURVE_PNG, args.out)
        print(f"copied to {args.out}")
    if mismatch:
        sys.exit("the FISTA iterations found here differ from the summary's: not the run's test rows or settings")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()

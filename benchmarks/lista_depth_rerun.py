"""Rerun the LISTA depth chain of a finished ``lista_depth_mnist`` run with changed training settings.

The run's dictionary and rows are reused (the recipe's ``evaluate`` settings pick the rows, as the
``lista_depth`` evaluation does), and ``--set KEY=VALUE`` changes those settings. Each depth is
printed as it finishes: epochs (best), start and trained error, and the FISTA iterations it is worth
on the run's own curve (``lista_depth.json``; ``benchmarks/plot_lista_depth.py`` writes it for older
runs). Nothing in the run folder changes; ``--checkpoints DIR`` saves each trained depth in DIR, and a rerun
with the same settings resumes at the first depth not saved there, and each depth's line adds its error on the
first 5,000 training rows (beside the test error: how much it overfits).

    python benchmarks/lista_depth_rerun.py runs/lista_depth_mnist --set decay_patience=4 --set patience=12
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sparseae.evaluate.lista import LISTATraining, exact_codes, iterations_to_match, lista_depth_chain, relative_error
from sparseae.io import load_model
from sparseae.recipes import get_recipe
from sparseae.runs.evaluations.lista import DEPTH_CURVE_JSON, run_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a finished lista_depth_mnist run folder")
    parser.add_argument("--recipe", default="lista_depth_mnist")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one of the recipe's evaluate settings (YAML value)")
    parser.add_argument("--checkpoints", type=Path, metavar="DIR",
                        help="save each trained depth here; a rerun with the same settings resumes from them")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run_dir = Path(args.run)
    _, params, D, lam, *rows = run_rows(run_dir, get_recipe(args.recipe).evaluation(assignments=args.set))
    print("settings:", {key: params[key] for key in sorted(params)}, flush=True)
    parts = [(X, exact_codes(X, D, lam)) for X in rows]
    X5, Z5 = parts[0][0][:5000], parts[0][1][:5000]
    fista = np.asarray(json.loads((run_dir / DEPTH_CURVE_JSON).read_text(encoding="utf-8"))["FISTA"])
    settings = LISTATraining.from_params(params)

    def report(result) -> None:
        hit = iterations_to_match(fista, result.trained)
        worth = hit if hit is not None else len(fista) + 1
        fit = ""
        if args.checkpoints is not None:  # the saved depth: its error on training rows (overfitting shows here)
            with torch.no_grad():
                model = load_model(args.checkpoints / f"T{result.T}")
                fit = f", error on the first 5,000 training rows {relative_error(model.encode(X5), Z5):.4f}"
        print(f"{time.strftime('%T')} T = {result.T}: {result.epochs} epochs (best {result.best_epoch}, stopped by "
              f"{result.stopped}), start "
              f"{result.initial:.4f}, trained {result.trained:.4f}, worth {worth} FISTA iterations "
              f"(ratio to 10·T {worth / (10 * result.T):.2f}), {result.seconds:.0f} s"
              f"{', kept T − 1' if result.kept_shallower else ''}{fit}", flush=True)

    lista_depth_chain(D, lam, params["depths"], *parts, settings=settings, warm_start=params["warm_start"],
                      model_params={"untied": params["untied"], "layer_thresholds": params["layer_thresholds"]},
                      stability_bound=params["stability_bound"], report=report, checkpoints=args.checkpoints)


if __name__ == "__main__":
    main()

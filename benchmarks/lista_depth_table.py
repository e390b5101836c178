"""The per-depth table of a ``lista_depth_mnist`` run, as BENCHMARKS.md records it (reads files, trains nothing).

Reads each depth the run's evaluation saved (``RUN/lista_depth_chain/T<T>``: its result) and FISTA's
error curve on the same test rows (``RUN/lista_depth.json``), and prints one markdown row per depth:
test error, the FISTA iterations it is worth (ratio to the 10·T goal), epochs (best), why training
stopped, the error of its warm start, seconds, whether it kept T − 1's code, and the step of T − 1 its warm
start repeated (the steps the stability screen rejected in brackets; "identity": all were); with the
evaluation's ``safeguard``, the test error is the safeguarded one and the last column gives the test rows that
fell back to FISTA and LISTA's own error; then whether the
error falls strictly with T and every depth meets 10·T. FISTA's curve is the run's ``lista_depth.json``,
recomputed on the run's dictionary and test rows while the run is still training (``--set`` names the
evaluation settings the run changed, e.g. ``--set seed=1``).

    python benchmarks/lista_depth_table.py runs/lista_depth_mnist
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sparseae.evaluate.lista import LISTATraining, iterations_to_match
from sparseae.io import read_config
from sparseae.recipes import get_recipe
from sparseae.runs.evaluations.lista import DEPTH_CHAIN_DIR, DEPTH_CURVE_JSON


def saved_results(run_dir: Path) -> list[dict]:
    """The results of the depths saved in ``run_dir/lista_depth_chain``, by increasing T; a finished run's
    safeguarded scores (summary.json's ``lista_flagged_T<T>``) join them when the saved depth lacks its own
    (a depth loaded by a later evaluation is not saved again)."""
    summary = run_dir / "summary.json"
    metrics = json.loads(summary.read_text(encoding="utf-8")).get("metrics", {}) if summary.is_file() else {}
    results = []
    for folder in (run_dir / DEPTH_CHAIN_DIR).glob("T*"):
        saved = read_config(folder).get("extra", {}).get("lista_depth_chain", {})
        if "result" in saved:
            result = dict(saved["result"])
            T = result["T"]
            if result.get("safeguarded") is None and f"lista_flagged_T{T}" in metrics:
                result["safeguarded"] = metrics[f"lista_error_T{T}"]
                result["flagged"] = int(metrics[f"lista_flagged_T{T}"])
            results.append(result)
    return sorted(results, key=lambda result: result["T"])


def _why_it_stopped(epochs: int, best_epoch: int, settings: LISTATraining) -> str:
    """What ``train_lista`` would have recorded as ``stopped``: patience is checked first, then the
    schedule's rate; a depth that did neither ran out of epochs."""
    if epochs - best_epoch >= settings.patience:
        return "patience"
    return "epochs" if epochs >= settings.epochs else "converged"


def _fista_curve(run_dir: Path, recipe: str, assignments: list[str]) -> np.ndarray:
    """FISTA's error (max_iter,) on the run's dictionary and test rows, for a run still training (its
    evaluation writes the curve when the chain ends)."""
    import torch

    from sparseae.evaluate.lista import exact_codes
    from sparseae.runs.evaluations.lista import run_rows, solver_curves

    torch.set_num_threads(1)
    rows = run_rows(run_dir, get_recipe(recipe).evaluation(assignments=assignments))
    print(f"FISTA's curve recomputed on the run's {len(rows.test)} test rows "
          f"({run_dir / DEPTH_CURVE_JSON} not there yet)")
    return solver_curves(rows.test, rows.D, rows.lam, exact_codes(rows.test, rows.D, rows.lam),
                         int(rows.params["max_iter"]))["FISTA"]


def _warm_start_cell(result: dict) -> str:
    """The repeated step of T − 1 and the rejected ones: "3 (0, 1, 2)"; "identity (…)" when every step was
    rejected; "–" for the first depth or shared weights."""
    rejected = result.get("rejected_steps") or []
    step = result.get("repeated_step")
    if step is None and not rejected:
        return "–"
    shown = "identity" if step is None else str(step)
    return f"{shown} ({', '.join(str(k) for k in rejected)})" if rejected else shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a lista_depth_mnist run folder (lista_depth_chain/, lista_depth.json)")
    parser.add_argument("--fista-json", type=Path, default=None,
                        help="lista_depth.json holding FISTA's curve on the same test rows (default: the run's)")
    parser.add_argument("--recipe", default="lista_depth_mnist",
                        help="the recipe the run used: its evaluation's settings pick the test rows of a run "
                             "still training and tell why a depth stopped when its result predates 'stopped'")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an evaluation setting the run changed (sparseae train --set evaluate.KEY=VALUE)")
    args = parser.parse_args()
    run_dir = Path(args.run)
    params = get_recipe(args.recipe).evaluation(assignments=args.set)
    results = saved_results(run_dir)
    if not results:
        raise SystemExit(f"{run_dir / DEPTH_CHAIN_DIR} holds no saved depth")
    curve_file = args.fista_json or run_dir / DEPTH_CURVE_JSON
    fista = (np.asarray(json.loads(curve_file.read_text(encoding="utf-8"))["FISTA"]) if curve_file.is_file()
             else _fista_curve(run_dir, args.recipe, args.set))
    settings = LISTATraining.from_params(params)
    print("| T | test error | FISTA iterations (ratio to 10·T) | epochs (best) | stopped by | warm start's error "
          "| seconds | kept T − 1 | repeated step (rejected) | rows fell back (LISTA alone) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worth_all, errors = [], []
    for result in results:
        T = result["T"]
        safeguarded = result.get("safeguarded") is not None
        error = result["safeguarded"] if safeguarded else result["trained"]
        fell_back = f"{result['flagged']} ({result['trained']:.4f})" if safeguarded else "–"
        hit = iterations_to_match(fista, error)
        worth = hit if hit is not None else len(fista) + 1
        stopped = result.get("stopped") or _why_it_stopped(result["epochs"], result["best_epoch"], settings)
        worth_all.append(worth / (10 * T))
        errors.append(error)
        print(f"| {T} | {error:.4f} | {worth} ({worth / (10 * T):.2f}) | {result['epochs']} ({result['best_epoch']}) "
              f"| {stopped} | {result['initial']:.4f} | {result['seconds']:.0f} | {result['kept_shallower']} "
              f"| {_warm_start_cell(result)} | {fell_back} |")
    falls = bool(np.all(np.diff(errors) < 0))
    print(f"\nerror falls strictly with T: {falls}; every depth worth ≥ 10·T FISTA iterations: "
          f"{min(worth_all) >= 1} (smallest ratio {min(worth_all):.2f}); "
          f"{sum(result['seconds'] for result in results) / 60:.1f} min of depth training")


if __name__ == "__main__":
    main()

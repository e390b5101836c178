"""Was a depth of a finished ``lista_depth_mnist`` run converged? Train its saved net further and see.

Loads ``RUN/lista_depth_chain/T<T>`` (the trained depth the recipe's evaluation saved), rebuilds the run's
dictionary and rows as the ``lista_depth`` evaluation does, and trains the net again with the recipe's
settings (``--set KEY=VALUE`` changes them) starting from its saved weights: the rate restarts at the
recipe's, is halved after every epoch until one beats the start, and training stops when it has decayed
to ``min_lr_ratio`` of its start (converged) or after ``epochs``. A converged depth stops within a few
epochs with the error it had; one stopped early by the epoch cap gains. Prints, per depth, the saved and
continued test error, their relative change, the epochs, and the FISTA iterations each is worth on the
run's own curve (``lista_depth.json``; recomputed on the test rows while the run has none yet). Nothing in
the run folder changes.

    python benchmarks/lista_continue.py runs/lista_depth_mnist --depths 1 5 --threads 2
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sparseae.evaluate.lista import LISTATraining, exact_codes, iterations_to_match, relative_error, train_lista
from sparseae.io import load_model
from sparseae.recipes import get_recipe
from sparseae.runs.evaluations.lista import DEPTH_CHAIN_DIR, DEPTH_CURVE_JSON, run_rows, solver_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a finished lista_depth_mnist run folder (with lista_depth_chain/)")
    parser.add_argument("--depths", type=int, nargs="+", required=True, help="the saved depths T to continue")
    parser.add_argument("--recipe", default="lista_depth_mnist")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one of the recipe's evaluate settings (YAML value)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run)
    _, params, D, lam, train, val, test = run_rows(run_dir, get_recipe(args.recipe).evaluation(assignments=args.set))
    (X, Z), (X_val, Z_val), (X_test, Z_test) = [(rows, exact_codes(rows, D, lam)) for rows in (train, val, test)]
    curve_file = run_dir / DEPTH_CURVE_JSON
    fista = (np.asarray(json.loads(curve_file.read_text(encoding="utf-8"))["FISTA"]) if curve_file.is_file()
             else solver_curves(X_test, D, lam, Z_test, int(params["max_iter"]))["FISTA"])
    settings = LISTATraining.from_params(params)
    print(f"{len(X)} training rows, {len(X_val)} validation, {len(X_test)} test; {settings}", flush=True)

    def worth(error: float) -> int:
        hit = iterations_to_match(fista, error)
        return hit if hit is not None else len(fista) + 1

    print("| T | saved test error (FISTA its) | continued test error (FISTA its) | change | epochs (best), stopped by "
          "| seconds |")
    print("|---|---|---|---|---|---|", flush=True)
    for T in args.depths:
        model = load_model(run_dir / DEPTH_CHAIN_DIR / f"T{T}")
        with torch.no_grad():
            before = relative_error(model.encode(X_test), Z_test)
        start = time.perf_counter()
        model, epochs, best_epoch, stopped = train_lista(model.train(), X, Z, X_val, Z_val, settings)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            after = relative_error(model.eval().encode(X_test), Z_test)
        print(f"| {T} | {before:.4f} ({worth(before)}) | {after:.4f} ({worth(after)}) | "
              f"{(after - before) / before:+.2%} | {epochs} ({best_epoch}), {stopped} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()

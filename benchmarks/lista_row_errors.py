"""Which rows set a LISTA depth's mean error? Per-row errors of a run's saved depths on its validation and test rows.

For each saved depth ``RUN/lista_depth_chain/T<T>``: the mean error (as the evaluation reports it), the
median row error and the three worst rows (error of the row relative to the mean ‖z*‖², its index) and the
largest code magnitude, then the safeguarded mean (``LISTA.safeguarded_encode``: FISTA for 10·T iterations on
the rows whose code leaves the Lasso ball ‖z‖₁ ≤ ‖x‖²/(4λ)) and how many rows fell back. A depth whose mean is
set by one row shows it here.

    python benchmarks/lista_row_errors.py runs/lista_depth_mnist --depths 7 10 --set seed=1
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sparseae.evaluate.lista import exact_codes, relative_error
from sparseae.io import load_model
from sparseae.recipes import get_recipe
from sparseae.runs.evaluations.lista import DEPTH_CHAIN_DIR, run_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--depths", type=int, nargs="+", required=True)
    parser.add_argument("--recipe", default="lista_depth_mnist")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an evaluation setting the run changed (sparseae train --set evaluate.KEY=VALUE)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run)
    rows = run_rows(run_dir, get_recipe(args.recipe).evaluation(assignments=args.set))
    D, lam, val, test = rows.D, rows.lam, rows.val, rows.test
    for name, X in (("validation", val), ("test", test)):
        Z = exact_codes(X, D, lam)
        for T in args.depths:
            model = load_model(run_dir / DEPTH_CHAIN_DIR / f"T{T}").eval()
            with torch.no_grad():
                codes = model.encode(X)
                safe, flagged = model.safeguarded_encode(X, fallback_iter=10 * T)
            rows = (codes - Z).square().sum(dim=1) / Z.square().sum(dim=1).mean()
            worst = torch.topk(rows, 3)
            print(f"{name} T = {T}: mean {relative_error(codes, Z):.4f}, median row {float(rows.median()):.4f}, "
                  f"worst rows {[f'{v:.4g}' for v in worst.values.tolist()]} at {worst.indices.tolist()}, "
                  f"largest |code| {float(codes.abs().max()):.4g}; safeguarded {relative_error(safe, Z):.4f} "
                  f"({int(flagged.sum())} rows fell back)", flush=True)


if __name__ == "__main__":
    main()

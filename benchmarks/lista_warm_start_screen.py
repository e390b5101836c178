"""Which warm starts does the stability screen reject? Every candidate of each depth of a run's saved chain.

For each pair of consecutive saved depths ``RUN/lista_depth_chain/T<T>`` the deeper one's warm-start
candidates (the trained shallower net with step k repeated for the added steps, as
``sparseae.evaluate.lista._warm_start`` builds them): the validation error and the largest ``‖z‖₁`` as a
multiple of the Lasso ball ``‖x‖²/(4λ)`` on the validation and training rows (shifted copies included), the
step the run recorded and the step the screen picks (``--bound``, the chain's ``stability_bound``).

    python benchmarks/lista_warm_start_screen.py runs/lista_depth_mnist --set seed=1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sparseae.evaluate.lista import STABILITY_BOUND, exact_codes, max_l1_ratio, relative_error
from sparseae.io import load_model
from sparseae.models import lista_from_dictionary
from sparseae.recipes import get_recipe
from sparseae.runs.evaluations.lista import DEPTH_CHAIN_DIR, run_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--recipe", default="lista_depth_mnist")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an evaluation setting the run changed (sparseae train --set evaluate.KEY=VALUE)")
    parser.add_argument("--bound", type=float, default=STABILITY_BOUND)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run)
    D, lam, train, val = run_rows(run_dir, get_recipe(args.recipe).evaluation(assignments=args.set))[2:6]
    Z_val = exact_codes(val, D, lam)
    rows = torch.cat([val, train])
    depths = sorted(int(p.name[1:]) for p in (run_dir / DEPTH_CHAIN_DIR).glob("T*"))
    print("| T | recorded step | screen picks | per step: validation error (largest ‖z‖₁ / ball) |")
    print("|---|---|---|---|")
    for shallower, T in zip(depths, depths[1:], strict=False):
        previous = load_model(run_dir / DEPTH_CHAIN_DIR / f"T{shallower}").eval()
        config = json.loads((run_dir / DEPTH_CHAIN_DIR / f"T{T}" / "config.json").read_text())
        recorded = config["extra"]["lista_depth_chain"]["result"].get("repeated_step")
        model = lista_from_dictionary(D, lam, T, **{k: config["params"][k] for k in ("untied", "layer_thresholds")})
        cells, best, pick = [], float("inf"), None
        with torch.no_grad():
            for step in range(previous.encoder.n_steps):
                model.encoder.warm_start_from(previous.encoder, repeat=step)
                error, ratio = relative_error(model.encode(val), Z_val), max_l1_ratio(model, rows, lam)
                cells.append(f"{step}: {error:.4g} ({ratio:.3g})")
                if ratio <= args.bound and error < best:
                    best, pick = error, step
        print(f"| {T} | {recorded} | {'identity' if pick is None else pick} | {'; '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()

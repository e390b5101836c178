"""Claim: train with a larger tree than needed, then prune the branches whose units are rarely
active — the model gets smaller at a small cost in reconstruction, which a few epochs of
fine-tuning win back.

Model: tree-structured sparse coding (``sparse_coding`` with ``groups={"kind": "tree", ...}``:
every sub-tree is a group, exact tree prox in FISTA) on PCA-whitened 8×8 natural-image patches
(the topographic benchmark's data, ``--keep`` directions). After training,
:func:`sparseae.models.pruning.prune_tree_model` removes every branch none of whose units is
active (z* ≠ 0) on at least ``--threshold`` of the patches, at each threshold given; the pruned
model is then fine-tuned for ``--finetune`` epochs. Prints units / groups / reconstruction error
(mean ‖x − Dz*‖² per patch) before, after pruning and after fine-tuning.

    python benchmarks/bench_tree_pruning.py [--depth 3 --branching 4 --weight 1.5 --thresholds 0.02,0.025]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_topographic import whitened_patches

from sparseae.models import create_model
from sparseae.models.pruning import prune_tree_model
from sparseae.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--branching", type=int, default=4)
    parser.add_argument("--weight", type=float, default=1.5, help="λ of the tree penalty")
    parser.add_argument("--patches", type=int, default=4000)
    parser.add_argument("--keep", type=int, default=16, help="whitened directions kept")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--finetune", type=int, default=3)
    parser.add_argument("--thresholds", default="0.02,0.025", help="activation-frequency thresholds, comma separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X = whitened_patches(args.patches, 8, 0.1, args.keep, args.seed)[0].astype(np.float32)
    torch.manual_seed(args.seed)
    n_units = sum(args.branching ** d for d in range(args.depth + 1))
    tree = {"kind": "tree", "depth": args.depth, "branching": args.branching}
    model = create_model("sparse_coding", args.keep, n_units, sparsity_weight=args.weight, groups=tree,
                         inference_max_iter=100, reinit_unused_every=0)

    def fit(m, epochs: int) -> float:
        started = time.perf_counter()
        train(m, X, TrainConfig(optimizer="sgd", learning_rate=0.5, batch_size=200, max_epochs=epochs,
                                random_state=args.seed))
        return time.perf_counter() - started

    seconds = fit(model, args.epochs)
    print(f"trained {n_units} units (depth {args.depth}, branching {args.branching}) in {seconds:.0f} s")
    print(f"{'threshold':>9} | {'units':>9} | {'groups':>9} | {'branches cut':>12} | "
          f"{'error before':>12} | {'after':>7} | {f'after {args.finetune} epochs':>14}")
    for threshold in (float(t) for t in args.thresholds.split(",")):
        result = prune_tree_model(model, X, threshold)
        fit(result.model, args.finetune)
        with torch.no_grad():
            x = torch.from_numpy(X)
            tuned = float((result.model.decode(result.model.sparse_code(x)) - x).pow(2).sum(dim=1).mean())
        print(f"{threshold:9.3f} | {result.units_before:3d} -> {result.units_after:3d} | "
              f"{result.groups_before:3d} -> {result.groups_after:3d} | {len(result.removed_roots):12d} | "
              f"{result.error_before:12.3f} | {result.error_after:7.3f} | {tuned:14.3f}")


if __name__ == "__main__":
    main()

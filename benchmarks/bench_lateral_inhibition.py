"""Claim: with tree-form lateral inhibition (Gregor, Szlam & LeCun 2011) — every unit inhibits every other
unit except its ancestors and descendants — sparse coding of whitened natural-image patches organizes
its filters by the tree: units on one branch (which may be on together) are more alike than units on
different branches (which inhibit each other), "the same feature with different levels of selectivity".

Model: ``lateral_inhibition`` with a balanced tree (default depth 3, branching 3: 40 units), S learned by
projected gradient ascent (row sums ≤ β) on the entries the tree allows, or fixed at one value there;
non-negative codes (see the note printed at the end); trained with Adam on 1/f-whitened 8×8 patches of
scikit-learn's sample images (per patch mean removed, unit overall std). Measured on held-out patches:
the similarity of pairs within a branch against pairs across branches — decoder filters (|cos|) and
code activity (correlation of |z|) — each against the same units randomly re-assigned to the tree's
nodes (permutation baseline, p-value); how path-like the active sets are; where the learned inhibition
went (its correlation with the units' co-activation when inhibition is switched off). Writes the tree of
filters (``filter_tree.png``) and S ordered by the tree (``inhibition.png``).

    OMP_NUM_THREADS=1 python benchmarks/bench_lateral_inhibition.py \
        [--depth 3 --branching 3 --epochs 20 --inhibition learned --out runs/lateral_inhibition]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sparseae.coding import coactivation, dictionary_from_samples, inhibition_codes, tree_relatives
from sparseae.data.datasets import natural_image_patches
from sparseae.evaluate.tree import branch_similarity
from sparseae.models import create_model
from sparseae.train import TrainConfig, train
from sparseae.viz.tree import save_filter_tree


def save_inhibition(S: np.ndarray, path: Path) -> None:
    figure = Figure(figsize=(5, 4.4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(S, cmap="magma", interpolation="nearest")
    axes.set_title("inhibition S (units in breadth-first tree order)", fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.046)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def patches(n: int, size: int, seed: int) -> np.ndarray:
    X = natural_image_patches(n, size, whitening="1/f", random_state=seed, ufldl_normalize=False)
    X = X - X.mean(axis=1, keepdims=True)
    return (X / X.std()).astype(np.float32)


def row(name: str, r: dict) -> str:
    """One table line; a ratio is shown only when both means are positive (|cos| always is)."""
    ratio = f"{r['ratio']:5.2f}" if r["across"] > 0 and r["within"] > 0 else "    —"
    permuted = f"{r['permuted_ratio']:11.2f}" if r["across"] > 0 and r["within"] > 0 else f"{'—':>11}"
    return (f"{name:<37} | {r['within']:6.3f} | {r['across']:6.3f} | {ratio} | "
            f"{r['permuted_within']:12.3f} | {permuted} | {r['p_value']:5.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--branching", type=int, default=3)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--patches", type=int, default=20000)
    parser.add_argument("--lam", type=float, default=0.3, help="λ (data scaled to unit std)")
    parser.add_argument("--inhibition", default="learned", choices=["learned", "fixed"])
    parser.add_argument("--value", type=float, default=0.5, help="starting (or fixed) S on allowed pairs")
    parser.add_argument("--rate", type=float, default=2.0, help="ascent rate η of a learned S")
    parser.add_argument("--bound", type=float, default=20.0, help="β: every row sum of S ≤ β")
    parser.add_argument("--signed", action="store_true", help="signed codes instead of z ≥ 0")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/lateral_inhibition")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = args.patch_size
    X, X_test = patches(args.patches, size, args.seed), patches(5000, size, args.seed + 1)
    tree = {"depth": args.depth, "branching": args.branching}
    k = sum(args.branching ** d for d in range(args.depth + 1))
    torch.manual_seed(args.seed)
    model = create_model("lateral_inhibition", size * size, k, sparsity_weight=args.lam, tree=tree,
                         inhibition=args.inhibition, inhibition_value=args.value, inhibition_rate=args.rate,
                         inhibition_bound=args.bound, nonnegative=not args.signed, inference_max_iter=100)
    model.set_dictionary(dictionary_from_samples(X, k, generator=torch.Generator().manual_seed(args.seed)))
    started = time.perf_counter()
    history = train(model, X, TrainConfig(optimizer="adam", learning_rate=args.learning_rate, batch_size=256,
                                          max_epochs=args.epochs, random_state=args.seed)).history
    seconds = time.perf_counter() - started

    x = torch.from_numpy(X_test)
    model.eval()
    with torch.no_grad():
        Z = model.encode(x)
    D, S = model.dictionary.detach(), model.inhibition.detach()
    fvu = float(((x - Z @ D.T) ** 2).sum() / (x ** 2).sum())
    on = (Z != 0).float()
    relatives = tree_relatives(model.tree)
    pair_counts = on.T @ on
    pair_counts.fill_diagonal_(0)
    path_fraction = float(pair_counts[relatives].sum() / pair_counts.sum().clamp_min(1))
    all_pairs = relatives.clone().fill_diagonal_(False)
    chance = float(all_pairs.sum() / (k * (k - 1)))
    W = D.T.numpy()
    codes = Z.T.numpy()

    out = Path(args.out)
    save_filter_tree(W, model.tree, out / "filter_tree.png", (size, size),
                     title=f"tree-form lateral inhibition ({args.inhibition} S), depth {args.depth}, "
                           f"branching {args.branching}")
    save_inhibition(S.numpy(), out / "inhibition.png")

    print(f"lateral_inhibition: {k} units on a depth-{args.depth} branching-{args.branching} tree, "
          f"{size}x{size} patches, {args.patches} train / 5000 test, λ={args.lam:g}, "
          f"{'signed' if args.signed else 'non-negative'} codes, S {args.inhibition}"
          + (f" (η={args.rate:g}, row sums ≤ {args.bound:g}, start {args.value:g})" if args.inhibition == "learned"
             else f" ({args.value:g} between branches)"))
    print(f"trained {args.epochs} epochs in {seconds:.0f} s (1 thread); reconstruction "
          f"{history[0]['train_reconstruction']:.2f} -> {history[-1]['train_reconstruction']:.2f}; "
          f"test FVU {fvu:.3f}, {float(on.sum(1).mean()):.2f} units on per patch")
    print(f"co-active pairs that are tree relatives: {path_fraction:.3f} (all pairs: {chance:.3f})")
    if args.inhibition == "learned":
        with torch.no_grad():  # where did inhibition go? co-activation of the same D without inhibition
            free = inhibition_codes(x, D, args.lam, torch.zeros_like(S), nonnegative=not args.signed,
                                    max_iter=100).codes
        C = coactivation(free)
        allowed = model.inference.mask
        corr = float(np.corrcoef(S[allowed].numpy(), C[allowed].numpy())[0, 1])
        print(f"learned S: max row sum {float(S.sum(1).max()):.3f} (bound {args.bound:g}), "
              f"max entry {float(S.max()):.3f}, zero between relatives: {bool((S[relatives] == 0).all())}; "
              f"corr(S_ij, co-activation without inhibition) = {corr:.3f}")
    print()
    print(f"{'pairs (similarity)':<37} | {'within':>6} | {'across':>6} | {'ratio':>5} | "
          f"{'perm. within':>12} | {'perm. ratio':>11} | {'p':>5}")
    levels = [1] + ([args.depth - 1] if args.depth > 2 else [])
    draws = 1000
    for level in levels:
        print(row(f"level-{level} branches (filters |cos|)",
                  branch_similarity(W, model.tree, level=level, n_permutations=draws)))
    print(row("ancestor/descendant (filters |cos|)",
              branch_similarity(W, model.tree, pairs="relatives", n_permutations=draws)))
    for level in levels:
        print(row(f"level-{level} branches (code |z| corr.)", branch_similarity(
            codes, model.tree, level=level, similarity="activity_correlation", n_permutations=draws)))
    print(f"\npictures in {out}")


if __name__ == "__main__":
    main()

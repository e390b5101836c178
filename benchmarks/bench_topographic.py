"""Claim: group sparsity over overlapping windows of a 2-D grid of units makes filters learned on
whitened natural-image patches arrange topographically: orientation varies smoothly over the
grid (Hyvärinen & Hoyer 2001; Kavukcuoglu et al. 2009; Le et al. 2011).

Model: a tied linear encoder with L2 pooling over K×K toroidal windows (the ``autoencoder``
preset with ``sparsity="group"``; the reconstruction-ICA form ½‖WᵀWx − x‖² + λ Σ_j √(Σ_{i∈g_j}
(Wx)_i² + ε)), trained with Adam on whitened patches (1/f or ZCA) of scikit-learn's sample images.
Measured: each filter's preferred orientation, and the mean orientation difference between
grid neighbours against the same filters randomly permuted over the grid (ratio < 1: a map;
≈ 1: none). Writes the filters laid out on the grid and the orientation map.

    python benchmarks/bench_topographic.py [--grid 16 --window 3 --weight 0.5 --epochs 60 --out runs/topographic]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sparseae.data import load_dataset
from sparseae.evaluate.filters import orientation_selectivity, preferred_orientation, topographic_smoothness
from sparseae.models import create_model
from sparseae.nn.constraints import NormConstraint
from sparseae.train import TrainConfig, train
from sparseae.viz import save_filters


def save_orientation_map(theta: np.ndarray, selectivity: np.ndarray, side: int, path: Path) -> None:
    figure = Figure(figsize=(5, 4.4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(theta.reshape(side, side), cmap="hsv", vmin=0, vmax=np.pi, interpolation="nearest")
    axes.set_title("preferred orientation over the grid (rad)", fontsize=10)
    axes.set_xticks([])
    axes.set_yticks([])
    figure.colorbar(image, ax=axes, fraction=0.046)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=16, help="units on a grid×grid torus")
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--weight", type=float, default=0.5, help="λ of the group term")
    parser.add_argument("--patches", type=int, default=20000)
    parser.add_argument("--whitening", default="1/f", choices=["1/f", "zca"])
    parser.add_argument("--unit-norm", action="store_true", help="unit-norm filters (RICA)")
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/topographic")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = args.patch_size
    X = load_dataset("patches", n_patches=args.patches, patch_size=size, whitening=args.whitening).X
    X = (X / X.std()).astype(np.float32)
    torch.manual_seed(args.seed)
    groups = {"kind": "grid", "height": args.grid, "width": args.grid, "window": args.window}
    model = create_model("autoencoder", size * size, args.grid ** 2, activation="identity", tied=True,
                         likelihood="gaussian", sparsity="group", sparsity_weight=args.weight, groups=groups)
    if args.unit_norm:
        # RICA (Le et al. 2011) keeps each filter at unit norm, so the pooling penalty cannot
        # shrink filters instead of making them sparse
        model.constraints.append(NormConstraint("encoder.weight", dim=1, value=1.0))
        model.apply_constraints()
    started = time.perf_counter()
    history = train(model, X, TrainConfig(optimizer="adam", learning_rate=args.learning_rate, batch_size=256,
                                          max_epochs=args.epochs, random_state=args.seed)).history
    seconds = time.perf_counter() - started
    W = model.encoder.weight.detach().numpy()
    theta = preferred_orientation(W, (size, size))
    selectivity = orientation_selectivity(W, (size, size))
    smooth = topographic_smoothness(theta, args.grid, args.grid)
    out = Path(args.out)
    save_filters(W, out / "filters_on_grid.png", (size, size), layout=(args.grid, args.grid),
                 title=f"{args.grid}×{args.grid} grid, {args.window}×{args.window} pooling windows")
    save_orientation_map(theta, selectivity, args.grid, out / "orientation_map.png")
    print(f"{'model':<40} | {'selectivity':>11} | {'neighbour Δθ':>12} | {'shuffled Δθ':>11} | {'ratio':>5} | seconds")
    print(f"{f'tied linear + L2 pooling, λ={args.weight:g}':<40} | {selectivity.mean():11.3f} | "
          f"{smooth['neighbour']:12.3f} | {smooth['shuffled']:11.3f} | {smooth['ratio']:5.2f} | {seconds:.0f}")
    print(f"(loss {history[0]['train_loss']:.2f} -> {history[-1]['train_loss']:.2f}; pictures in {out})")


if __name__ == "__main__":
    main()

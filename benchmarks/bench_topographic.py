"""Claim: group sparsity over overlapping windows of a 2-D grid of units makes filters learned on
whitened natural-image patches arrange topographically: orientation varies smoothly over the
grid, with pinwheel-like singularities (Hyvärinen & Hoyer 2001; Kavukcuoglu et al. 2009; Le et
al. 2011).

Data: 8×8 patches of scikit-learn's sample images, each patch's mean removed, scaled to unit
variance, then PCA-whitened keeping the ``--keep`` directions of largest variance (ε = 0.1 on
the eigenvalues; ``ZCAWhitening(rotate_back=False)``): the dropped directions are the
high-frequency noise (JPEG) that plain ZCA would amplify into checkerboard filters, and the
model sees the ``--keep`` coordinates, so it has no null space to park weight in.
Model: reconstruction ICA with L2 pooling (the ``autoencoder`` preset: tied identity units,
``unit_norm_encoder``, ``sparsity="group"`` over K×K toroidal windows):
½‖WᵀWx − x‖² + λ Σ_j √(Σ_{i∈g_j} (Wx)_i² + ε), rows of W of unit norm, trained full batch with
L-BFGS in float64. With more units than kept directions, the reconstruction term asks for a
tight frame (WᵀW ∝ I, the overcomplete form of ICA's orthogonality) and the pooling term picks
the one whose neighbours are co-active.
``--model sparse_coding`` / ``psd``: group-sparse coding / topographic PSD (UFLDL's topographic
sparse coding): the smooth penalty λ Σ_j √(‖z‖²_{g_j} + ε) (``group_eps``), codes by accelerated
gradient with the dictionary fixed, unit-norm atoms learned by SGD; the decoder's atoms are shown.
Measured: each filter's preferred orientation and orientation selectivity; the mean orientation
difference between grid neighbours against the same filters randomly permuted over the grid
(ratio < 1: a map; ≈ 1: none), over all units and over the selective ones; the number of pinwheel
singularities (against the permuted map). Orientations are measured on the filters seen in pixel
space (``W @ inverse_components_``: the tied decoder's atoms, un-whitened). Writes them laid out
on the grid (``filters_on_grid.png``) and the orientation map (``orientation_map.png``).

    python benchmarks/bench_topographic.py [--model rica|sparse_coding|psd --grid 11 --keep 48 --out DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sparseae.data import ZCAWhitening
from sparseae.data.datasets import pca_whitened_patches
from sparseae.evaluate.filters import (
    orientation_selectivity,
    orientation_singularities,
    preferred_orientation,
    topographic_smoothness,
)
from sparseae.models import create_model
from sparseae.train import TrainConfig, train
from sparseae.viz import save_filters


def whitened_patches(n_patches: int, size: int, epsilon: float, keep: int | None, seed: int
                     ) -> tuple[np.ndarray, ZCAWhitening]:
    """Patches (n_patches, keep): per-patch mean removed, unit variance, PCA-whitened to ``keep``
    directions (the library's :func:`~sparseae.data.datasets.pca_whitened_patches`, the dataset
    ``whitened_patches`` of the recipes ``topographic_rica`` and ``tree_pruning``)."""
    return pca_whitened_patches(n_patches, size, n_directions=keep if keep is not None else size * size,
                                epsilon=epsilon, random_state=seed)


def save_orientation_map(theta: np.ndarray, selectivity: np.ndarray, side: int, path: Path,
                         pinwheels: np.ndarray | None = None) -> None:
    """Orientation as hue, selectivity as brightness; pinwheel centres as circles (white +½, black −½)."""
    from matplotlib.colors import hsv_to_rgb

    hsv = np.stack([theta / np.pi, np.ones_like(theta), np.clip(selectivity / max(selectivity.max(), 1e-12), 0.15, 1)],
                   axis=1).reshape(side, side, 3)
    figure = Figure(figsize=(5.4, 4.6))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(hsv_to_rgb(hsv), interpolation="nearest")
    if pinwheels is not None:
        for sign, colour in ((1, "white"), (-1, "black")):
            rows, cols = np.nonzero(pinwheels == sign)
            axes.scatter(cols + 0.5, rows + 0.5, marker="o", s=30, facecolors="none", edgecolors=colour)
    axes.set_title("preferred orientation (hue), selectivity (brightness)\n"
                   "o: pinwheel centres (white +½, black −½)", fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])
    mappable = axes.imshow(theta.reshape(side, side), cmap="hsv", vmin=0, vmax=np.pi, alpha=0.0)
    figure.colorbar(mappable, ax=axes, fraction=0.046, label="orientation (rad)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def fit(X: np.ndarray, args: argparse.Namespace) -> tuple[torch.nn.Module, np.ndarray, list, float]:
    """Train the ``--model`` on X (n, keep); returns the model, its filters (units, keep) in the
    whitened coordinates, the history and the training time in seconds."""
    side = args.grid
    groups = {"kind": "grid", "height": side, "width": side, "window": args.window}
    if args.model == "rica":
        model = create_model("autoencoder", args.keep, side * side, activation="identity", tied=True,
                             likelihood="gaussian", sparsity="group", sparsity_weight=args.weight, groups=groups,
                             group_eps=args.group_eps, unit_norm_encoder=True)
        config = TrainConfig(optimizer="lbfgs", learning_rate=1.0, lbfgs_max_iter=args.iters, lbfgs_iter_per_epoch=50,
                             dtype="float64", random_state=args.seed)
    else:  # group-sparse coding / topographic PSD: smooth group penalty, codes by accelerated gradient
        options = {"prediction_weight": 1.0} if args.model == "psd" else {}
        model = create_model(args.model, args.keep, side * side, sparsity_weight=args.weight, groups=groups,
                             group_eps=args.group_eps, inference_max_iter=args.inner, reinit_unused_every=0, **options)
        config = TrainConfig(optimizer="sgd", learning_rate=args.learning_rate, batch_size=args.batch_size,
                             max_epochs=args.epochs, random_state=args.seed)
    started = time.perf_counter()
    history = train(model, X, config).history
    seconds = time.perf_counter() - started
    filters = model.encoder.weight if args.model == "rica" else model.decoder.weight.t()
    return model, filters.detach().cpu().double().numpy(), history, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rica", choices=["rica", "sparse_coding", "psd"])
    parser.add_argument("--grid", type=int, default=11, help="units on a grid×grid torus")
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--weight", type=float, default=None,
                        help="λ of the group term (default 0.1 rica, 1.0 sparse coding / PSD)")
    parser.add_argument("--group-eps", type=float, default=1e-2, help="ε inside each group's square root")
    parser.add_argument("--patches", type=int, default=5000)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--keep", type=int, default=48, help="whitened directions kept")
    parser.add_argument("--zca-eps", type=float, default=0.1)
    parser.add_argument("--iters", type=int, default=800, help="L-BFGS iterations (rica)")
    parser.add_argument("--epochs", type=int, default=30, help="SGD epochs (sparse coding / PSD)")
    parser.add_argument("--learning-rate", type=float, default=3.0, help="SGD step (sparse coding / PSD)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--inner", type=int, default=50, help="inference iterations (sparse coding / PSD)")
    parser.add_argument("--selective", type=float, default=0.3, help="selectivity threshold of 'selective' units")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="folder of the pictures (default runs/topographic/MODEL)")
    args = parser.parse_args()
    args.out = args.out or f"runs/topographic/{args.model}"
    if args.weight is None:
        args.weight = 0.1 if args.model == "rica" else 1.0
    torch.set_num_threads(args.threads)
    size, side = args.patch_size, args.grid
    X, zca = whitened_patches(args.patches, size, args.zca_eps, args.keep, args.seed)
    torch.manual_seed(args.seed)
    model, filters, history, seconds = fit(X, args)
    W = filters @ zca.inverse_components_  # (units, size²): the filters in pixel space
    theta = preferred_orientation(W, (size, size))
    selectivity = orientation_selectivity(W, (size, size))
    selective = selectivity >= args.selective
    every = topographic_smoothness(theta, side, side)
    chosen = topographic_smoothness(theta, side, side, mask=selective)
    pinwheels = orientation_singularities(theta, side, side)
    permuted = (np.random.default_rng(k).permutation(theta) for k in range(100))
    shuffled_pinwheels = np.mean([np.count_nonzero(orientation_singularities(t, side, side)) for t in permuted])
    out = Path(args.out)
    title = f"{args.model}: {side}×{side} torus, {args.window}×{args.window} pooling, λ={args.weight:g}"
    save_filters(W, out / "filters_on_grid.png", (size, size), layout=(side, side), title=title)
    save_orientation_map(theta, selectivity, side, out / "orientation_map.png", pinwheels)
    print(f"{'units':<22} | {'n':>4} | {'neighbour Δθ':>12} | {'shuffled Δθ':>11} | {'ratio':>5}")
    rows = (("all", every, side * side), (f"selectivity ≥ {args.selective:g}", chosen, int(selective.sum())))
    for name, result, n in rows:
        print(f"{name:<22} | {n:4d} | {result['neighbour']:12.3f} | {result['shuffled']:11.3f} | "
              f"{result['ratio']:5.2f}")
    print(f"mean selectivity {selectivity.mean():.3f}; pinwheels {np.count_nonzero(pinwheels)} "
          f"(permuted map: {shuffled_pinwheels:.1f}) of {side * side} plaquettes")
    print(f"loss {history[0]['train_loss']:.3f} -> {history[-1]['train_loss']:.3f}; {seconds:.0f} s; pictures in {out}")


if __name__ == "__main__":
    main()

"""Claim: a denoising autoencoder's reconstruction field r(x) − x points along the score
∇_x log p(x) of the data density (Alain & Bengio 2014: r(x) − x ≈ σ² ∇ log p(x) for small
Gaussian corruption σ).

The data is :func:`~sparseae.evaluate.manifold.make_spiral`, whose density is known exactly (a
Gaussian mixture along a spiral), so the true score is computed in closed form. The DAE is a
2-H-2 tanh autoencoder with squared error and Gaussian corruption σ. The field is compared with
the score at held-out samples within 2·noise of the manifold (mean cosine similarity), for the
trained and the untrained model, and for the optimal denoiser E[x | x̃], whose field is exactly
σ² ∇ log p_σ with p_σ = p ∗ N(0, σ² I) (Tweedie), the ceiling at this σ. ``σ²-fit`` is the
least-squares factor c in r(x) − x ≈ c σ² ∇ log p_σ(x) (1 for the optimal denoiser).

    python benchmarks/dae_score_field.py [--noise 0.05] [--sigma 0.1] [--n-samples 5000]
        [--epochs 60] [--out DIR]
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sparseae.evaluate.manifold import (
    grid,
    make_spiral,
    mixture_score,
    near_manifold,
    reconstruction_field,
    score_alignment,
)
from sparseae.models import create_model
from sparseae.train import TrainConfig, train
from sparseae.viz.fields import save_vector_field


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, default=0.05, help="std of the data around the spiral")
    parser.add_argument("--sigma", type=float, default=0.1, help="std of the Gaussian corruption")
    parser.add_argument("--n-samples", type=int, default=5000)
    parser.add_argument("--n-components", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/dae_score_field"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    X, centers = make_spiral(args.n_samples, noise=args.noise, random_state=args.seed)
    X_test, _ = make_spiral(2000, noise=args.noise, random_state=args.seed + 1)
    torch.manual_seed(args.seed)
    model = create_model("autoencoder", 2, args.n_components, activation="tanh", likelihood="gaussian",
                         corruption=f"gaussian:{args.sigma}")
    near = near_manifold(X_test, centers, 2 * args.noise)
    score = mixture_score(X_test, centers, args.noise)
    untrained = score_alignment(reconstruction_field(model, X_test), score, near)
    started = time.perf_counter()
    train(model, X, TrainConfig(max_epochs=args.epochs, batch_size=128, learning_rate=3e-2,
                                lr_decay=0.05 ** (1 / args.epochs),
                                random_state=args.seed, device="cpu"))
    seconds = time.perf_counter() - started

    field = reconstruction_field(model, X_test)
    cosine = score_alignment(field, score, near)
    smoothed = mixture_score(X_test, centers, math.hypot(args.noise, args.sigma))
    cosine_smoothed = score_alignment(field, smoothed, near)
    target = args.sigma ** 2 * smoothed[near]
    fit = float(np.sum(field[near] * target) / np.sum(target * target))

    points = grid(-1.2, 1.2, 31)
    picture = save_vector_field(args.out / "dae_score_field.png", points, reconstruction_field(model, points),
                                X, unit_arrows=True,
                                title=f"DAE r(x) − x, σ = {args.sigma:g} (cosine with ∇log p near the "
                                      f"manifold: {cosine:.3f})")

    columns = [("trained", f"{cosine:.3f}"), ("untrained", f"{untrained:.3f}"),
               ("optimal denoiser", f"{score_alignment(smoothed, score, near):.3f}"),
               ("trained vs ∇log p_σ", f"{cosine_smoothed:.3f}"), ("σ²-fit", f"{fit:.2f}")]
    setting = (f"2-{args.n_components}-2 tanh, noise {args.noise:g}, σ {args.sigma:g}, {args.n_samples} samples, "
               f"{args.epochs} epochs ({seconds:.1f} s, 1 thread), {int(near.sum())} test points within 2·noise")
    print(" | ".join(["claim", "data", "measure"] + [name for name, _ in columns] + ["setting"]))
    print(" | ".join(["DAE score field", "2-D spiral", "cosine(r(x)−x, ∇log p) near the manifold"]
                     + [value for _, value in columns] + [setting]))
    print(f"picture: {picture}")
    print("command: python " + " ".join(shlex.quote(part) for part in sys.argv))


if __name__ == "__main__":
    main()

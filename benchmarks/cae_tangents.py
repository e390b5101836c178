"""Claim: a contractive autoencoder (Rifai et al. 2011) learns a locally flat code — small
‖J_f(x)‖_F, most units saturated (h < 0.05 or h > 0.95) — and the leading right singular
vectors of J_f(x) at a digit are tangents of the digit manifold (small deformations of it).

Trains ``contractive_ae`` (784-H sigmoid, tied, cross-entropy + λ‖J_f(x)‖²_F) on the first
``--n-train`` MNIST training images, draws each chosen test digit beside its ``--k`` tangent
directions, and reports ‖J_f(x)‖_F and the saturated fraction on the first ``--n-eval`` test
images. ``--compare-ae`` also trains the same network with λ = 0 (a plain autoencoder).

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/cae_tangents.py \
        [--n-train 20000] [--epochs 15] [--n-components 1000] [--contraction-weight 1.0] [--out DIR]

The CAE alone is the recipe ``sparseae train --recipe cae_tangents_mnist`` (the same settings and
measures, through the run layer); this script adds the λ = 0 comparison in one go.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sparseae.data import load_mnist
from sparseae.evaluate.manifold import code_statistics as library_code_statistics
from sparseae.models import create_model
from sparseae.nn.jacobian import tangent_directions
from sparseae.train import TrainConfig, train
from sparseae.viz.fields import save_tangent_images

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"


def fit(X: np.ndarray, n_components: int, contraction_weight: float, epochs: int, seed: int):
    """A trained 784-``n_components`` contractive AE and its training time in seconds."""
    torch.manual_seed(seed)
    model = create_model("contractive_ae", 784, n_components, contraction_weight=contraction_weight)
    started = time.perf_counter()
    train(model, X, TrainConfig(max_epochs=epochs, batch_size=64, learning_rate=1e-3, random_state=seed,
                                device="cpu"))
    return model.eval(), time.perf_counter() - started


def code_statistics(model, X: np.ndarray) -> tuple[float, float, float]:
    """Over X (n, 784): mean ‖J_f(x)‖_F, the fraction of code values h < 0.05 or h > 0.95, and
    the reconstruction's mean squared error per pixel (the library's, as the recipe
    ``cae_tangents_mnist`` computes them)."""
    stats = library_code_statistics(model, X)
    return stats["jacobian_norm"], stats["saturated"], stats["mse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=None,
                        help="mnist.npz (default: $SPARSEAE_MNIST, then ../shared/data/mnist.npz)")
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--n-components", type=int, default=1000)
    parser.add_argument("--contraction-weight", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=6, help="tangent directions per digit")
    parser.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9",
                        help="classes whose first test image is drawn")
    parser.add_argument("--n-eval", type=int, default=2000)
    parser.add_argument("--compare-ae", action="store_true", help="also train with contraction_weight 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/cae_tangents"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    path = args.mnist
    if path is None and not os.environ.get("SPARSEAE_MNIST") and SHARED_MNIST.exists():
        path = SHARED_MNIST
    X_train, _ = load_mnist(path, split="train")
    X_test, y_test = load_mnist(path, split="test")
    X_train, X_eval = X_train[:args.n_train], X_test[:args.n_eval]
    chosen = [int(np.flatnonzero(y_test == int(digit))[0]) for digit in args.digits.split(",")]

    weights = [args.contraction_weight] + ([0.0] if args.compare_ae else [])
    rows = []
    for weight in weights:
        model, seconds = fit(X_train, args.n_components, weight, args.epochs, args.seed)
        rows.append((weight, *code_statistics(model, X_eval), seconds))
        if weight == args.contraction_weight:
            inputs = torch.from_numpy(X_test[chosen])
            directions, singular_values = tangent_directions(model.encoder, inputs, args.k)
            picture = save_tangent_images(
                args.out / "cae_tangents.png", X_test[chosen].reshape(-1, 28, 28), directions,
                singular_values=singular_values,
                title=f"CAE 784-{args.n_components}, λ = {weight:g}: test digits and the leading "
                      f"right singular vectors of J_f(x) (tangents)")

    print(f"{'model':<24} | {'data':<30} | {'mean ‖J_f(x)‖_F':>15} | {'saturated':>9} | "
          f"{'test MSE':>8} | {'train s':>7}")
    for weight, jacobian_norm, saturated, mse, seconds in rows:
        name = f"{'CAE' if weight > 0 else 'AE'} 784-{args.n_components} λ={weight:g}"
        data = f"MNIST {args.n_train} train, {args.epochs} epochs"
        print(f"{name:<24} | {data:<30} | {jacobian_norm:15.3f} | "
              f"{saturated:9.3f} | {mse:8.4f} | {seconds:7.0f}")
    spectrum = singular_values.mean(dim=0)
    print(f"(on the first {args.n_eval} test digits; saturated: h < 0.05 or h > 0.95, 1 CPU thread)")
    print("mean singular values of J_f at the drawn digits: " + " ".join(f"{v:.3g}" for v in spectrum))
    print(f"picture: {picture}")
    print("command: python " + " ".join(shlex.quote(part) for part in sys.argv))


if __name__ == "__main__":
    main()

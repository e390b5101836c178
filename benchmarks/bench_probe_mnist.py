"""Claim: a linear probe on sparse-autoencoder codes beats the same probe on raw pixels, at equal
labelled data (features for a classifier / self-taught learning, MODELS.md §11).

The autoencoder learns without labels on the MNIST training images; then one multinomial
logistic regression is trained on the first ``--n-labelled`` training images, once on the
codes and once on the pixels, and both are scored on the 10,000 test images.

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/bench_probe_mnist.py \
        [--model sparse_ae_kl|sparse_ae_l1] [--n-components 200]
"""
from __future__ import annotations

import argparse
import time

import torch

from sparseae.data import load_mnist
from sparseae.evaluate import linear_probe, sparsity_stats
from sparseae.models import create_model
from sparseae.train import TrainConfig, train

PRESETS = {
    # UFLDL self-taught learning: 784-200 sigmoid, ρ = 0.1, λ = 3e-3, β = 3
    "sparse_ae_kl": dict(sparsity_weight=3.0, sparsity_target=0.1, weight_decay=3e-3, kl_momentum=0.9),
    "sparse_ae_l1": dict(sparsity_weight=0.2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sparse_ae_kl", choices=sorted(PRESETS))
    parser.add_argument("--n-components", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--n-labelled", type=int, default=10000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    X_train, y_train = load_mnist(split="train")
    X_test, y_test = load_mnist(split="test")
    torch.manual_seed(0)
    model = create_model(args.model, 784, args.n_components, **PRESETS[args.model])
    started = time.perf_counter()
    train(model, X_train, TrainConfig(max_epochs=args.epochs, batch_size=128, learning_rate=1e-3,
                                      device=args.device))
    train_seconds = time.perf_counter() - started
    model.eval().cpu()
    with torch.no_grad():
        codes_train = model.encode(torch.from_numpy(X_train[:args.n_labelled])).numpy()
        codes_test = model.encode(torch.from_numpy(X_test)).numpy()
    stats = sparsity_stats(codes_test, threshold=0.0 if args.model == "sparse_ae_l1" else 0.1)
    n = args.n_labelled
    pixels = linear_probe(X_train[:n], y_train[:n], X_test, y_test, max_iter=500)
    codes = linear_probe(codes_train, y_train[:n], codes_test, y_test, max_iter=500)
    print(f"{args.model} 784-{args.n_components}, {args.epochs} epochs unsupervised on 60k MNIST "
          f"({train_seconds:.0f} s), probe on {n} labelled, tested on 10k")
    print(f"{'features':<28} | {'test accuracy':>13} | {'dims':>5}")
    print(f"{'raw pixels':<28} | {pixels['accuracy']:13.4f} | {784:5d}")
    print(f"{args.model + ' codes':<28} | {codes['accuracy']:13.4f} | {args.n_components:5d}")
    print(f"codes: active fraction {stats['active_fraction']:.3f}, dead units {stats['dead_units']}")


if __name__ == "__main__":
    main()

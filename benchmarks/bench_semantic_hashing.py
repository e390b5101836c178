"""Claim: a deep binary autoencoder (semantic hashing, Salakhutdinov & Hinton 2009) retrieves
MNIST digits better than LSH and PCA hashing at 32 and 64 bits; where it stands against ITQ.

Protocol (issue 6): all 70,000 MNIST images; 1,000 random queries (100 per class) against the
other 69,000; relevance = same label; Hamming ranking mAP and precision within Hamming radius 2.
Every hasher learns without labels on the 69,000 database images. The autoencoder is
784-500-500-n_bits with a sigmoid code layer: layers pre-trained greedily as autoencoders, then
fine-tuned end to end while the noise before the code sigmoid rises from 0 to ``--noise``.

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/bench_semantic_hashing.py \\
        --bits 32 [--pretrain-epochs 5 --epochs 30 --threads 1]

Prints a table: method | bits | mAP | precision (r ≤ 2) | queries with a hit | seconds.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from sparseae.data import load_mnist
from sparseae.models import create_model, encode_dataset
from sparseae.retrieval import (
    ITQ,
    PCAHashing,
    RandomProjectionLSH,
    binarize,
    hamming_distances,
    mean_average_precision,
    mnist_retrieval_split,
    pack_bits,
    precision_recall_curve,
    precision_within_radius,
)
from sparseae.train import TrainConfig, train
from sparseae.train.callbacks import CodeNoiseSchedule
from sparseae.train.procedures import pretrain_deep_model
from sparseae.viz import save_precision_recall


def evaluate(bits_query: np.ndarray, bits_database: np.ndarray, y_query, y_database, curves: list | None = None,
             name: str = "") -> tuple[float, float, float]:
    """(mAP, precision within radius 2, fraction of queries with a hit); appends the method's
    precision-recall curve over Hamming radii to ``curves``."""
    distances = hamming_distances(pack_bits(bits_query), pack_bits(bits_database))
    radius = precision_within_radius(y_query, y_database, distances, radius=2)
    if curves is not None:
        curve = precision_recall_curve(y_query, y_database, distances, n_bits=bits_query.shape[1])
        curves.append((name, curve.precision, curve.recall))
    return mean_average_precision(y_query, y_database, distances), radius.precision, radius.hit_fraction


def train_hashing_autoencoder(X: np.ndarray, n_bits: int, args) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    model = create_model("semantic_hashing", X.shape[1], n_bits, hidden=args.hidden, code_noise_std=0.0)
    common = dict(optimizer="adam", batch_size=128, device=args.device, random_state=args.seed)
    pretrain_deep_model(model, X, TrainConfig(max_epochs=args.pretrain_epochs, learning_rate=1e-3, **common),
                        layer_model="autoencoder", layer_params={"likelihood": "bernoulli"})
    history = train(model, X, TrainConfig(max_epochs=args.epochs, learning_rate=args.learning_rate, **common),
                    callbacks=[CodeNoiseSchedule(0.0, args.noise, ramp_epochs=max(1, args.epochs * 2 // 3))]).history
    print(f"  fine-tuning loss {history[0]['train_loss']:.2f} -> {history[-1]['train_loss']:.2f}", flush=True)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500])
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--noise", type=float, default=4.0, help="final σ of the code noise")
    parser.add_argument("--skip-autoencoder", action="store_true", help="baselines only")
    parser.add_argument("--out", default="runs/semantic_hashing", help="precision_recall_<bits>.png go here")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    X, y = load_mnist(split="all")
    query, database = mnist_retrieval_split(y, n_per_class=100, random_state=args.seed)
    X_db, y_db, X_q, y_q = X[database], y[database], X[query], y[query]
    rows = []
    for n_bits in args.bits:
        curves: list = []
        hashers = [("LSH", RandomProjectionLSH(n_bits, random_state=args.seed)), ("PCAH", PCAHashing(n_bits)),
                   ("ITQ", ITQ(n_bits, random_state=args.seed))]
        for name, hasher in hashers:
            started = time.perf_counter()
            hasher.fit(X_db)
            seconds = time.perf_counter() - started
            scores = evaluate(hasher.encode(X_q), hasher.encode(X_db), y_q, y_db, curves, name)
            rows.append((name, n_bits, *scores, seconds))
            print(f"{name:<14} {n_bits:3d} bits: mAP {rows[-1][2]:.4f}", flush=True)
        if not args.skip_autoencoder:
            started = time.perf_counter()
            model = train_hashing_autoencoder(X_db, n_bits, args)
            seconds = time.perf_counter() - started
            codes_db, codes_q = encode_dataset(model, X_db), encode_dataset(model, X_q)
            near_binary = float(((codes_db < 0.1) | (codes_db > 0.9)).mean())
            scores = evaluate(binarize(codes_q), binarize(codes_db), y_q, y_db, curves, "deep binary AE")
            rows.append(("deep binary AE", n_bits, *scores, seconds))
            print(f"deep binary AE {n_bits:3d} bits: mAP {rows[-1][2]:.4f} ({100 * near_binary:.1f}% of code "
                  f"values within 0.1 of 0 or 1)", flush=True)
        path = save_precision_recall(curves, Path(args.out) / f"precision_recall_{n_bits}.png",
                                     title=f"MNIST, {n_bits} bits: Hamming radius 0..{n_bits}")
        print(f"wrote {path}", flush=True)
    print()
    print(f"{'method':<15} | {'bits':>4} | {'mAP':>7} | {'P(r≤2)':>7} | {'hit':>6} | {'seconds':>8}")
    for name, n_bits, mean_ap, precision, hits, seconds in rows:
        print(f"{name:<15} | {n_bits:4d} | {mean_ap:7.4f} | {precision:7.4f} | {100 * hits:5.1f}% | {seconds:8.1f}")
    print(f"(1,000 queries, 100 per class, against 69,000 MNIST images; device "
          f"{'cuda' if torch.cuda.is_available() and args.device != 'cpu' else 'cpu'})")


if __name__ == "__main__":
    main()

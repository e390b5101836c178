"""Semantic-hashing baselines on MNIST: LSH (random projections), PCA hashing and ITQ, scored by
the library's retrieval metrics on the issue's protocol, beside the binary autoencoder (BA, MAC
training, RBF anchor layer) and ITQ on the BA's own anchor features (the ablation).

Protocol (Salakhutdinov & Hinton 2009 style): all 70,000 MNIST images; 1,000 random queries
(100 per class, ``mnist_retrieval_split``) against the other 69,000; relevance = same label.
Each hasher is fitted on the 69,000 database images (pixels in [0, 1]), then queries and database
are encoded; we report mAP of exhaustive Hamming ranking (ties by database order), precision
within Hamming radius 2 (a query retrieving nothing counts 0) and the fraction of queries that
retrieve anything within radius 2. One row per (method, bits).

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/bench_hashing_baselines.py \
        [--bits 16 32 64] [--seed 0] [--threads 1] [--methods LSH PCAH ITQ BA ITQ-anchor]  # default: the first three
        [--pr-out docs/images]   # writes semantic_hashing_pr_<bits>.png

Timings (fit s: fitting on 69,000 images; rank s: encoding, distances and mAP) are wall-clock.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from sparseae.data import load_mnist
from sparseae.retrieval import (
    ITQ,
    BinaryAutoencoder,
    PCAHashing,
    RandomProjectionLSH,
    hamming_distances,
    mean_average_precision,
    mnist_retrieval_split,
    pack_bits,
    precision_recall_curve,
    precision_within_radius,
)
from sparseae.viz import save_precision_recall

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


class AnchorITQ:
    """ITQ on the standardised anchor features of a fitted :class:`BinaryAutoencoder` (the ablation:
    the same φ, no MAC)."""

    def __init__(self, autoencoder: BinaryAutoencoder, n_bits: int, seed: int, n_iter: int):
        self.autoencoder, self.itq = autoencoder, ITQ(n_bits, n_iter=n_iter, random_state=seed)

    def fit(self, X):
        self.itq.fit(self.autoencoder.features(X))
        return self

    def encode(self, X) -> np.ndarray:
        return self.itq.encode(self.autoencoder.features(X))


def hashers(n_bits: int, args) -> list:
    """(name, hasher) for each of ``args.methods``; ITQ-anchor reuses the BA fitted before it."""
    out: list = []
    for name in args.methods:
        if name == "LSH":
            out.append((name, RandomProjectionLSH(n_bits, random_state=args.seed)))
        elif name == "PCAH":
            out.append((name, PCAHashing(n_bits)))
        elif name == "ITQ":
            out.append((name, ITQ(n_bits, n_iter=args.n_iter, random_state=args.seed)))
        elif name == "BA":
            out.append((name, BinaryAutoencoder(n_bits, n_anchors=args.ba_anchors, n_nearest=args.ba_nearest,
                                                input_weight=args.ba_input_weight, n_iter=args.ba_iter,
                                                max_samples=args.ba_samples, random_state=args.seed)))
        else:  # ITQ-anchor: needs the BA of the same bits, fitted earlier in the list
            ba = dict(out).get("BA")
            if ba is None:
                raise SystemExit("--methods: ITQ-anchor needs BA before it")
            out.append((name, AnchorITQ(ba, n_bits, args.seed, args.n_iter)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=None, help="mnist.npz (default: $SPARSEAE_MNIST, else "
                        "../shared/data/mnist.npz beside the repository)")
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--seed", type=int, default=0, help="query split and random hashers")
    parser.add_argument("--n-iter", type=int, default=50, help="ITQ iterations")
    parser.add_argument("--pr-radii", type=int, default=4, help="print the PR curve up to this radius")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--methods", nargs="+", default=["LSH", "PCAH", "ITQ"],
                        choices=["LSH", "PCAH", "ITQ", "BA", "ITQ-anchor"],
                        help="BA and ITQ-anchor (ITQ on BA's features, after BA) take minutes per width")
    parser.add_argument("--ba-anchors", type=int, default=300, help="BA: RBF anchors (0: linear hash functions)")
    parser.add_argument("--ba-nearest", type=int, default=3, help="BA: anchors kept per image")
    parser.add_argument("--ba-input-weight", type=float, default=0.5, help="BA: weight of the pixels beside "
                        "the anchor affinities (0: anchors only)")
    parser.add_argument("--ba-iter", type=int, default=5, help="BA: MAC iterations")
    parser.add_argument("--ba-samples", type=int, default=10000, help="BA: database images MAC trains on")
    parser.add_argument("--pr-out", default=None, help="folder for semantic_hashing_pr_<bits>.png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # on a busy machine a multithreaded OpenBLAS spins on ITQ's small products (~30× slower)
    threadpool_limits(args.threads)
    path = args.mnist or (None if os.environ.get("SPARSEAE_MNIST") else SHARED_MNIST)
    X, y = load_mnist(path, split="all")
    queries, database = mnist_retrieval_split(y, n_per_class=100, random_state=args.seed)
    print(f"MNIST all {len(y):,}: {len(queries):,} queries (100 per class) vs {len(database):,} "
          f"database images; hashers fitted on the database; seed {args.seed}")
    header = (f"{'method':<6} | {'bits':>4} | {'mAP':>7} | {'P(r<=2)':>7} | {'hit r<=2':>8} | "
              f"{'fit s':>6} | {'rank s':>6}")
    print(header)
    print("-" * len(header))
    curves = []
    for n_bits in args.bits:
        for name, hasher in hashers(n_bits, args):
            started = time.perf_counter()
            hasher.fit(X[database])
            fitted = time.perf_counter()
            codes_q = pack_bits(hasher.encode(X[queries]))
            codes_db = pack_bits(hasher.encode(X[database]))
            dist = hamming_distances(codes_q, codes_db)
            mean_ap = mean_average_precision(y[queries], y[database], dist)
            ranked = time.perf_counter()
            within = precision_within_radius(y[queries], y[database], dist, radius=2)
            curve = precision_recall_curve(y[queries], y[database], dist, n_bits=n_bits)
            curves.append((name, n_bits, curve))
            print(f"{name:<6} | {n_bits:4d} | {mean_ap:7.4f} | {within.precision:7.4f} | "
                  f"{within.hit_fraction:8.3f} | {fitted - started:6.2f} | {ranked - fitted:6.2f}",
                  flush=True)
            if name == "BA":
                steps = hasher.history_
                print(f"         BA: kept MAC iterate {hasher.best_iteration_} of {len(steps) - 1}; nested "
                      f"reconstruction (train/held-out) {steps[0]['reconstruction']:.2f}/{steps[0]['validation']:.2f} "
                      f"(ITQ start) -> {steps[-1]['reconstruction']:.2f}/{steps[-1]['validation']:.2f}; "
                      f"Z != h(X): {steps[-1]['mismatch']:.4f}", flush=True)
        if args.pr_out:
            path = save_precision_recall([(name, c.precision, c.recall) for name, b, c in curves if b == n_bits],
                                         Path(args.pr_out) / f"semantic_hashing_pr_{n_bits}.png",
                                         title=f"MNIST, {n_bits} bits: Hamming radius 0..{n_bits}")
            print(f"wrote {path}", flush=True)
    radii = range(args.pr_radii + 1)
    print("\nprecision / recall of lookup within Hamming radius r (pooled over query-item pairs)")
    print(f"{'method':<6} | {'bits':>4} | " + " | ".join(f"{f'r={r}':>13}" for r in radii))
    for name, n_bits, curve in curves:
        cells = [f"{curve.precision[r]:.3f} / {curve.recall[r]:.3f}" if r <= n_bits else "" for r in radii]
        print(f"{name:<6} | {n_bits:4d} | " + " | ".join(f"{c:>13}" for c in cells))


if __name__ == "__main__":
    main()

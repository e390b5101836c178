"""Semantic-hashing baselines on MNIST: LSH (random projections), PCA hashing and ITQ, scored by
the library's retrieval metrics on the issue's protocol.

Protocol (Salakhutdinov & Hinton 2009 style): all 70,000 MNIST images; 1,000 random queries
(100 per class, ``mnist_retrieval_split``) against the other 69,000; relevance = same label.
Each hasher is fitted on the 69,000 database images (pixels in [0, 1]), then queries and database
are encoded; we report mAP of exhaustive Hamming ranking (ties by database order), precision
within Hamming radius 2 (a query retrieving nothing counts 0) and the fraction of queries that
retrieve anything within radius 2. One row per (method, bits).

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/bench_hashing_baselines.py \
        [--bits 16 32 64] [--seed 0] [--threads 1]

Timings (fit s: fitting on 69,000 images; rank s: encoding, distances and mAP) are wall-clock.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from sparseae.data import load_mnist
from sparseae.retrieval import (
    ITQ,
    PCAHashing,
    RandomProjectionLSH,
    hamming_distances,
    mean_average_precision,
    mnist_retrieval_split,
    pack_bits,
    precision_recall_curve,
    precision_within_radius,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


def hashers(n_bits: int, seed: int, n_iter: int):
    return [("LSH", RandomProjectionLSH(n_bits, random_state=seed)),
            ("PCAH", PCAHashing(n_bits)),
            ("ITQ", ITQ(n_bits, n_iter=n_iter, random_state=seed))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=None, help="mnist.npz (default: $SPARSEAE_MNIST, else "
                        "../shared/data/mnist.npz beside the repository)")
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--seed", type=int, default=0, help="query split and random hashers")
    parser.add_argument("--n-iter", type=int, default=50, help="ITQ iterations")
    parser.add_argument("--pr-radii", type=int, default=4, help="print the PR curve up to this radius")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
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
        for name, hasher in hashers(n_bits, args.seed, args.n_iter):
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
    radii = range(args.pr_radii + 1)
    print("\nprecision / recall of lookup within Hamming radius r (pooled over query-item pairs)")
    print(f"{'method':<6} | {'bits':>4} | " + " | ".join(f"{f'r={r}':>13}" for r in radii))
    for name, n_bits, curve in curves:
        cells = [f"{curve.precision[r]:.3f} / {curve.recall[r]:.3f}" if r <= n_bits else "" for r in radii]
        print(f"{name:<6} | {n_bits:4d} | " + " | ".join(f"{c:>13}" for c in cells))


if __name__ == "__main__":
    main()

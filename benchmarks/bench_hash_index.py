"""Claim: the Hamming hash index scales to millions of items with no Python loop per item, and a
radius-r lookup (r = 0, 1, 2) answers far faster than exhaustive Hamming ranking.

On ``--n-items`` uniformly random codes of each width in ``--bits``: index build (items/s), then
queries/s for radius-r lookups and for exhaustive ranking (popcount distances to every item, then
the top 10, or the items within radius 2 by scanning). Queries are database codes with about one
bit flipped, so lookups find something. Each timing is the best of ``--repeats``. Prints a table.

    python benchmarks/bench_hash_index.py [--n-items 1000000] [--bits 32 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sparseae.retrieval import HammingIndex, hamming_distances, pack_bits


def best_of(repeats: int, fn):
    """(best seconds, last result) over ``repeats`` calls."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-items", type=int, default=1_000_000)
    parser.add_argument("--bits", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--radii", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-queries", type=int, default=1000, help="queries per lookup timing")
    parser.add_argument("--n-rank-queries", type=int, default=100, help="queries per ranking timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    print(f"{args.n_items:,} random codes; lookups on {args.n_queries} queries, exhaustive ranking on "
          f"{args.n_rank_queries}; best of {args.repeats}; numpy {np.__version__}")
    header = f"{'bits':>4} | {'operation':<34} | {'seconds':>8} | {'rate':>16} | {'hits/query':>10}"
    print(header)
    print("-" * len(header))
    for n_bits in args.bits:
        packed = pack_bits(rng.random((args.n_items, n_bits)) < 0.5)
        seconds, index = best_of(args.repeats, lambda: HammingIndex(packed, n_bits=n_bits))
        print(f"{n_bits:4d} | {'build index':<34} | {seconds:8.3f} | {args.n_items / seconds:>10,.0f} items/s"
              f" | {'':>10}")
        near = packed[rng.integers(0, args.n_items, args.n_queries)] ^ \
            pack_bits(rng.random((args.n_queries, n_bits)) < 1.0 / n_bits)
        for radius in args.radii:
            seconds, found = best_of(args.repeats, lambda: index.lookup(near, radius))
            hits = np.mean([len(f) for f in found])
            print(f"{n_bits:4d} | {f'lookup radius {radius}':<34} | {seconds:8.3f} | "
                  f"{args.n_queries / seconds:>8,.0f} queries/s | {hits:10.2f}")
        few = near[:args.n_rank_queries]
        seconds, (_, top) = best_of(args.repeats, lambda: index.rank(few, k=10))
        print(f"{n_bits:4d} | {'exhaustive ranking, top 10':<34} | {seconds:8.3f} | "
              f"{len(few) / seconds:>8,.0f} queries/s | {10:10d}")
        seconds, dist = best_of(args.repeats, lambda: hamming_distances(few, packed))
        within = dist <= 2
        print(f"{n_bits:4d} | {'exhaustive scan, radius 2':<34} | {seconds:8.3f} | "
              f"{len(few) / seconds:>8,.0f} queries/s | {within.sum(axis=1).mean():10.2f}")
        # the lookup and the scan must agree on the items within radius 2
        for row, found in zip(within[:20], index.lookup(few[:20], 2), strict=True):
            assert np.array_equal(np.sort(found), np.flatnonzero(row)), "lookup disagrees with the scan"


if __name__ == "__main__":
    main()

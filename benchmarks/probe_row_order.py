"""Probe: does a float32 matrix product's result for a row depend on the row's position in the batch?

For layer widths (n_in → n_out) it draws random 30-row batches and random layers, and counts the
output values that differ (bit for bit) between ``layer(X)[perm]`` and ``layer(X[perm])``, in
float32 and in float64 rounded to float32 (what the estimators' inference does on the CPU since
issue 21). Prints a table; the thread count is PyTorch's unless ``--threads`` is given.

Example::

    python benchmarks/probe_row_order.py --threads 2
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def mismatches(n_in: int, n_out: int, dtype: torch.dtype, trials: int, rng: np.random.Generator) -> tuple[int, int]:
    bad = total = 0
    for _ in range(trials):
        X = torch.tensor(rng.normal(size=(30, n_in)), dtype=torch.float32)
        layer = torch.nn.Linear(n_in, n_out)
        perm = torch.as_tensor(rng.permutation(30))
        with torch.no_grad():
            layer = layer.to(dtype)
            a = layer(X.to(dtype))[perm].float()
            b = layer(X[perm].to(dtype)).float()
        bad += int((a != b).sum())
        total += a.numel()
    return bad, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.trials} trials of 30 rows")
    print("| layer | float32: values differing | float64 → float32: values differing |")
    print("|---|---|---|")
    for n_in, n_out in [(3, 4), (4, 2), (10, 4), (64, 25)]:
        b32, total = mismatches(n_in, n_out, torch.float32, args.trials, rng)
        b64, _ = mismatches(n_in, n_out, torch.float64, args.trials, rng)
        print(f"| {n_in}→{n_out} | {b32} of {total} ({100 * b32 / total:.1f}%) | {b64} of {total} |")


if __name__ == "__main__":
    main()

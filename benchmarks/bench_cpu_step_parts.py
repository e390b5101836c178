"""Claim: the three CPU choices of the training step each beat PyTorch's default way.

Times, side by side in one run, the pieces of an L1 SAE step that ``sparseae.train`` does
differently from a loop written with PyTorch's defaults (each the median of ``--repeats`` blocks
of ``--calls`` calls, the two variants alternating):

* the optimizer step: ``torch.optim.Adam`` with the defaults (on the CPU a per-tensor loop of
  element-wise ops) against ``Adam(fused=True)`` (``sparseae.train.optim.make_optimizer``);
* the batch gather: ``X[positions]`` against ``torch.index_select(X, 0, positions)``
  (``sparseae.train.batches.BatchSource``), random rows of an MNIST-sized matrix;
* the decoder's column norms: ``W.norm(dim=0)`` against ``slice_norms(W, 0)`` = sqrt(Σ w²)
  (``sparseae.nn.constraints``).

Prints: part | shape | default µs | ours µs | speed-up.

    python benchmarks/bench_cpu_step_parts.py [--features 784 --latents 256 --batch 256 --threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from sparseae.nn.constraints import slice_norms


def timed(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def compare(default: Callable[[], object], ours: Callable[[], object], calls: int, repeats: int) -> tuple[float, float]:
    for fn in (default, ours):  # warm-up
        timed(fn, max(calls // 10, 1))
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        times[0].append(timed(default, calls))
        times[1].append(timed(ours, calls))
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--latents", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rows", type=int, default=60000, help="rows of the matrix batches are gathered from")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d, h = args.features, args.latents

    def adam(fused: bool | None) -> Callable[[], object]:
        params = [torch.nn.Parameter(torch.randn(h, d)), torch.nn.Parameter(torch.randn(h)),
                  torch.nn.Parameter(torch.randn(d, h)), torch.nn.Parameter(torch.randn(d))]
        for p in params:
            p.grad = torch.randn_like(p)
        return torch.optim.Adam(params, lr=1e-3, fused=fused).step

    X = torch.rand(args.rows, d)
    order = torch.randperm(args.rows)
    cursor = {"at": 0}

    def positions() -> torch.Tensor:  # a fresh random batch each call, as in an epoch
        cursor["at"] = (cursor["at"] + args.batch) % (args.rows - args.batch)
        return order[cursor["at"]:cursor["at"] + args.batch]

    W = torch.randn(d, h)
    rows = [
        ("Adam step (4 tensors)", f"{h}x{d} + {d}x{h}", adam(None), adam(True)),
        ("batch gather", f"{args.batch} of {args.rows}x{d}", lambda: X[positions()],
         lambda: torch.index_select(X, 0, positions())),
        ("column norms", f"{d}x{h}", lambda: W.norm(dim=0, keepdim=True), lambda: slice_norms(W, 0)),
    ]
    print(f"CPU, torch threads {torch.get_num_threads()}, median of {args.repeats} blocks of {args.calls} calls")
    print(f"{'part':<22} | {'shape':<20} | {'default µs':>10} | {'ours µs':>8} | speed-up")
    for name, shape, default, ours in rows:
        slow, fast = compare(default, ours, args.calls, args.repeats)
        print(f"{name:<22} | {shape:<20} | {slow:10.1f} | {fast:8.1f} | {slow / fast:7.2f}x")


if __name__ == "__main__":
    main()

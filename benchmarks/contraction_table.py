"""Rifai et al. 2011's Table 1 figures for pre-trained first layers: how contractive, how saturated.

Reads the first pre-trained layer (``pretrain/layer1``) of each run folder of a pre-trained MNIST
classifier recipe (``sparseae train --recipe cae_mnist --out runs/cae``; likewise ``dae_g_mnist``,
``ae_mnist``...) and prints, on the first 2,000 MNIST test digits: mean ‖J_f(x)‖_F, the mean
squared entry of J (‖J_f(x)‖²_F / (784 · h), the scale of the paper's 10⁻⁴-sized figures; it
reports 0.73·10⁻⁴ for its CAE) and the fraction of saturated units (paper: 86% for the CAE).

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/contraction_table.py \\
        cae=runs/cae dae-g=runs/dae-g ae=runs/ae
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sparseae.data import load_mnist
from sparseae.evaluate import contraction_stats
from sparseae.io import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR")
    parser.add_argument("--n-test", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, _ = load_mnist(split="test")
    print(f"{'model':<8} | {'mean ‖J‖_F':>10} | {'‖J‖²/(d·h)':>10} | {'saturated':>9}")
    for item in args.runs:
        name, _, run_dir = item.partition("=")
        if not run_dir:
            parser.error(f"expected NAME=RUN_DIR, got {item!r}")
        layer = load_model(Path(run_dir) / "pretrain" / "layer1" / "checkpoint")
        stats = contraction_stats(layer, X[:args.n_test])
        print(f"{name:<8} | {stats['jacobian_norm']:10.3f} | {stats['jacobian_sq_per_entry']:10.3g} | "
              f"{100 * stats['saturated']:8.1f}%")


if __name__ == "__main__":
    main()

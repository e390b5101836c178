"""Is the CAE recipe's fine-tuning held back by SGD's iterate noise? Weight averages against the raw iterate.

Fine-tunes the ``cae`` recipe of ``reproduce_stacked_mnist.py`` (pre-training reused from
``--run-dir`` when it is there) for a fixed number of epochs, keeping exponential moving averages
of the weights (one per ``--decay``, updated after every step). Each epoch prints the validation
and test error of the raw iterate and of every average. The summary picks, for each, the epoch of
lowest validation error and reports its test error, and the mean test error over the last half of
the epochs. Test errors are printed for the analysis only; nothing is chosen on them.

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/probe_finetune_averaging.py \\
        --run-dir runs/cae-s0 --epochs 36 --decay 0.999 --decay 0.9998
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_stacked_mnist import RECIPES  # noqa: E402

from sparseae.data import load_mnist  # noqa: E402
from sparseae.models import SupervisedAutoencoder, error_rate  # noqa: E402
from sparseae.train import Callback, TrainConfig  # noqa: E402
from sparseae.train.procedures import fit_stacked  # noqa: E402


class WeightAverages(Callback):
    """EMAs of the fine-tuned model's parameters; per-epoch errors of the iterate and of each."""

    def __init__(self, decays, X_val, y_val, X_test, y_test) -> None:
        self.decays, self.sets = decays, ((X_val, y_val), (X_test, y_test))
        self.averages = None
        self.rows: list[list[float]] = []
        self.started = time.perf_counter()

    def on_epoch_start(self, epoch, model) -> None:
        if self.averages is None and isinstance(model, SupervisedAutoencoder):  # not the pre-training
            self.averages = [[p.detach().clone() for p in model.parameters()] for _ in self.decays]

    def on_step(self, step, model) -> None:
        if self.averages is not None:
            params = [p.detach() for p in model.parameters()]
            for decay, average in zip(self.decays, self.averages, strict=True):
                torch._foreach_lerp_(average, params, 1 - decay)

    def errors(self, model) -> list[float]:
        return [100 * error_rate(model, X, y) for X, y in self.sets]

    def on_epoch_end(self, epoch, record, model) -> None:
        if self.averages is None:
            return
        row = [epoch, *self.errors(model)]
        iterate = [p.detach().clone() for p in model.parameters()]
        with torch.no_grad():
            for average in self.averages:
                torch._foreach_copy_(list(model.parameters()), average)
                row += self.errors(model)
            torch._foreach_copy_(list(model.parameters()), iterate)
        self.rows.append(row)
        print(" ".join(f"{value:6.2f}" for value in row), f"({(time.perf_counter() - self.started) / 60:.1f} min)",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="checkpoints (pre-training reused from it when present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=36, help="fine-tuning epochs (no early stopping)")
    parser.add_argument("--decay", type=float, action="append", default=None, help="EMA decay per step")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    decays = args.decay or [0.999, 0.9998]
    torch.set_num_threads(args.threads)
    X, y = load_mnist(split="train")
    X_test, y_test = load_mnist(split="test")
    layers, pre, fine, _ = RECIPES["cae"]
    common = dict(device="cpu", random_state=args.seed)
    probe = WeightAverages(decays, X[50000:], y[50000:], X_test, y_test)
    print("epoch, then (val, test) error % of the iterate and of the EMAs with decay", decays)
    fit_stacked(X[:50000], layers, pretrain_config=TrainConfig(max_epochs=args.pretrain_epochs, **pre, **common),
                finetune_config=TrainConfig(**{**fine, "max_epochs": args.epochs, **common}),
                y=y[:50000], finetune="classifier", run_dir=args.run_dir, resume=True, callbacks=[probe])
    rows = np.array(probe.rows)
    late = rows[len(rows) // 2:]
    print()
    print(f"{'weights':<12} | {'best val':>8} | {'epoch':>5} | {'its test':>8} | {'mean test, last half':>20}")
    for k, name in enumerate(["iterate"] + [f"EMA {d}" for d in decays]):
        val, test = rows[:, 1 + 2 * k], rows[:, 2 + 2 * k]
        best = int(np.argmin(val))
        print(f"{name:<12} | {val[best]:7.2f}% | {int(rows[best, 0]):5d} | {test[best]:7.2f}% | "
              f"{late[:, 2 + 2 * k].mean():19.2f}%")


if __name__ == "__main__":
    main()

"""Is the CAE recipe's fine-tuning held back by SGD's iterate noise? Weight averages against the raw iterate.

Fine-tunes the ``cae_mnist`` recipe's MLP (``sparseae recipes cae_mnist``) for a fixed number of
epochs from the layer pre-trained in a run folder of that recipe (``--run-dir``, written by
``sparseae train --recipe cae_mnist --out DIR``; without one, the layer is pre-trained here as the
recipe says), keeping exponential moving averages of the weights (one per ``--decay``, updated
after every step). Each epoch prints the validation (the last 10k training images) and test error
of the raw iterate and of every average. The summary picks, for each, the epoch of lowest
validation error and reports its test error, and the mean test error over the last half of the
epochs. Test errors are printed for the analysis only; nothing is chosen on them.

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/probe_finetune_averaging.py \\
        --run-dir runs/cae-s0 --epochs 36 --decay 0.999 --decay 0.9998
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sparseae.data import load_mnist
from sparseae.io import load_model
from sparseae.models import SupervisedAutoencoder, error_rate
from sparseae.recipes import get_recipe
from sparseae.runs import PRETRAIN_DIR
from sparseae.train import Callback
from sparseae.train.checkpoint import checkpoint_path, has_checkpoint
from sparseae.train.procedures import fit_stacked


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
    parser.add_argument("--run-dir", default=None,
                        help="a run folder of `sparseae train --recipe cae_mnist`: its pretrain/layer1 is reused")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=36, help="fine-tuning epochs (no early stopping)")
    parser.add_argument("--decay", type=float, action="append", default=None, help="EMA decay per step")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-train", type=int, default=50000, help="fewer for a quick check")
    args = parser.parse_args()
    decays = args.decay or [0.999, 0.9998]
    torch.set_num_threads(args.threads)
    X, y = load_mnist(split="train")
    X_test, y_test = load_mnist(split="test")
    config = get_recipe("cae_mnist").run_config()
    common = dict(device="cpu", random_state=args.seed, threads=None, progress=False)
    layer_model, layer_params = config.layer_spec
    layer_dir = Path(args.run_dir) / PRETRAIN_DIR / "layer1" if args.run_dir else None
    if layer_dir is not None and has_checkpoint(layer_dir):
        layers, pretrain_config = [load_model(checkpoint_path(layer_dir))], None   # reused as it is
    else:
        layers = [{"name": layer_model, "n_components": config.n_components, **layer_params}]
        pretrain_config = config.pretrain_config(**common)
    finetune_config = replace(config.train_config(**common), max_epochs=args.epochs, n_iter_no_change=None,
                              validation_fraction=0.0, monitor="loss")
    probe = WeightAverages(decays, X[50000:], y[50000:], X_test, y_test)
    print("epoch, then (val, test) error % of the iterate and of the EMAs with decay", decays)
    torch.manual_seed(args.seed)
    fit_stacked(X[:args.n_train], layers, pretrain_config=pretrain_config, finetune_config=finetune_config,
                y=y[:args.n_train], finetune="classifier", callbacks=[probe])
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

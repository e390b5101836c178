"""Which SGD learning rate DrSAE needs with this library's mean-over-batch loss.

The authors' recipe says learning rate 5e-3 with minibatches of 10; if their loss was summed over
the minibatch (Torch's usual criterion) that is 5e-2 for a mean. This probe trains a small DrSAE
briefly at several rates, side by side, and prints the validation error after each epoch.

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/probe_drsae_learning_rate.py \\
        [--rates 5e-3 2e-2 5e-2 1e-1] [--n-units 200] [--n-train 10000]
"""
from __future__ import annotations

import argparse
import time

import torch

from sparseae.data import load_mnist, unit_norm_rows
from sparseae.models import create_model
from sparseae.train import TrainConfig
from sparseae.train.procedures import fit_drsae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[5e-3, 2e-2, 5e-2, 1e-1, 2e-1])
    parser.add_argument("--n-units", type=int, default=200)
    parser.add_argument("--n-steps", type=int, default=11)
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mnist", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    X, y = load_mnist(args.mnist, split="train")
    X = unit_norm_rows(X)
    print(f"DrSAE 784-{args.n_units}^{args.n_steps}-10, {args.n_train} training images, validation on "
          f"images 50000-54999, SGD batch 10, {args.pretrain_epochs} pre-training epochs")
    print(f"{'learning rate':>13} | validation error after each discriminative epoch | seconds")
    for rate in args.rates:
        torch.manual_seed(0)
        model = create_model("drsae", 784, args.n_units, n_steps=args.n_steps)
        common = dict(optimizer="sgd", learning_rate=rate, batch_size=10, device="cpu")
        started = time.perf_counter()
        results = fit_drsae(model, X[:args.n_train], y[:args.n_train], X_val=X[50000:55000],
                            y_val=y[50000:55000],
                            pretrain_config=TrainConfig(max_epochs=args.pretrain_epochs, **common),
                            train_config=TrainConfig(max_epochs=args.epochs, monitor="error", **common))
        errors = " ".join(f"{100 * r['val_error']:5.1f}%" for r in results["train"].history)
        print(f"{rate:13g} | {errors} | {time.perf_counter() - started:5.0f}", flush=True)


if __name__ == "__main__":
    main()

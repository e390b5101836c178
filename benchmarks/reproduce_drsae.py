"""Reproduce Rolfe & LeCun (ICLR 2013), Table 1: DrSAE test error on MNIST.

Published: 784-400^11-10 1.08%; 784-200^11-10 1.21%; 784-200^2-10 1.49%.

The authors' recipe (MODELS.md §5): inputs scaled to unit L2 norm; 50k train / 10k validation
(the last 10k training images) / 10k test; loss 5·½‖x − Dz‖² + 0.09‖z‖₁ (+ NLL of the classifier
on z/‖z‖ in phase 2); plain SGD, learning rate 5e-3, minibatches of 10; 100 pre-training epochs;
discriminative training with early stopping on validation error. Checkpoints go to ``--run-dir``
after every epoch, so ``--resume`` continues a run that was stopped (also across machines).

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/reproduce_drsae.py \\
        --n-units 400 --n-steps 11 --run-dir runs/drsae-400-11 [--resume]

Prints one line per epoch, then a table: configuration | test error | published | hours.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from sparseae.data import load_mnist, unit_norm_rows
from sparseae.io import save_model
from sparseae.models import create_model
from sparseae.models.drsae import encoder_decoder_angles, error_rate
from sparseae.train import Callback, TrainConfig
from sparseae.train.procedures import fit_drsae

PUBLISHED = {(400, 11): 1.08, (200, 11): 1.21, (200, 2): 1.49}


class PrintEpochs(Callback):
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, record, model) -> None:
        phase = "train" if model.needs_targets else "pretrain"
        shown = ", ".join(f"{k}={v:.5g}" for k, v in record.items() if k not in ("epoch",))
        print(f"[{phase} {epoch:3d}] {shown} ({(time.perf_counter() - self.started) / 60:.1f} min)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-units", type=int, default=400)
    parser.add_argument("--n-steps", type=int, default=11)
    parser.add_argument("--pretrain-epochs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=200, help="discriminative epochs at most")
    parser.add_argument("--patience", type=int, default=20, help="epochs without a better validation error")
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--lr-decay", type=float, default=1.0,
                        help="per-epoch factor of the discriminative phase's learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="(λ/2)(‖E‖² + ‖S‖² + ‖C‖²) in the loss (not in the paper)")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--n-train", type=int, default=50000, help="fewer for a quick run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--mnist", default=None, help="mnist.npz (default: $SPARSEAE_MNIST or the cache)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (minibatches of 10 are too small to share; 1 is "
                             "fastest when another process uses the other cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    X, y = load_mnist(args.mnist, split="train")
    X_test, y_test = load_mnist(args.mnist, split="test")
    X, X_test = unit_norm_rows(X), unit_norm_rows(X_test)
    X_train, y_train = X[:args.n_train], y[:args.n_train]
    X_val, y_val = X[50000:], y[50000:]

    torch.manual_seed(args.seed)
    model = create_model("drsae", 784, args.n_units, n_steps=args.n_steps, weight_decay=args.weight_decay)
    common = dict(optimizer="sgd", learning_rate=args.learning_rate, batch_size=args.batch_size,
                  device=args.device, random_state=args.seed)
    started = time.perf_counter()
    results = fit_drsae(
        model, X_train, y_train, X_val=X_val, y_val=y_val, seed=args.seed, run_dir=args.run_dir,
        resume=args.resume, callbacks=[PrintEpochs()],
        pretrain_config=TrainConfig(max_epochs=args.pretrain_epochs, **common),
        train_config=TrainConfig(max_epochs=args.epochs, monitor="error", n_iter_no_change=args.patience,
                                 lr_decay=args.lr_decay, **common))
    hours = (time.perf_counter() - started) / 3600
    test_error = 100 * error_rate(model, X_test, y_test)
    val_error = 100 * error_rate(model, X_val, y_val)
    angles = encoder_decoder_angles(model).summary()
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(X_test[:2000]).to(next(model.parameters())))
    active = float((codes > 0).float().mean())
    published = PUBLISHED.get((args.n_units, args.n_steps))
    name = f"DrSAE 784-{args.n_units}^{args.n_steps}-10"
    print()
    print(f"{'model':<22} | {'epochs (pre+disc)':>17} | {'best epoch':>10} | {'val error':>9} | "
          f"{'test error':>10} | {'published':>9} | {'hours':>5} | device")
    n_pre, n_disc = len(results["pretrain"].history), len(results["train"].history)
    print(f"{name:<22} | {f'{n_pre}+{n_disc}':>17} | {results['train'].best_epoch:>10} | {val_error:8.2f}% | "
          f"{test_error:9.2f}% | {f'{published:.2f}%' if published else '—':>9} | {hours:5.2f} | "
          f"{next(model.parameters()).device}")
    print(f"units: {angles['n_part_units']} part-units (angle < 0.5 rad), {angles['n_categorical_units']} "
          f"categorical-units (> 0.7 rad), median angle {angles['median_angle']:.2f}; "
          f"active fraction of test codes {active:.3f}")
    if args.run_dir:
        save_model(model, Path(args.run_dir) / "model", overwrite=True)
        (Path(args.run_dir) / "result.json").write_text(json.dumps(
            {"model": name, "test_error": test_error, "val_error": val_error, "published": published,
             "pretrain_epochs": n_pre, "train_epochs": n_disc, "hours_this_run": hours, **angles,
             "command": " ".join(sys.argv)}, indent=1))


if __name__ == "__main__":
    main()

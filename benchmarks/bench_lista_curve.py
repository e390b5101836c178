"""Benchmark: the LISTA curve (Gregor & LeCun 2010) — how many FISTA iterations one LISTA step is worth.

All methods approximate the same optimal codes ``z* = argmin_z ½‖x − Dz‖² + λ‖z‖₁`` on one dictionary
D of 400 atoms. The error of codes Z is ``mean‖z − z*‖² / mean‖z*‖²`` on held-out samples.

1. Data: MNIST (``--mnist PATH``, else ``$SPARSEAE_MNIST``), each image scaled to unit L2 norm; without
   MNIST, 10×10 patches of the 1/f-whitened natural images (:func:`sparseae.data.natural_image_patches`),
   each patch centred, all scaled by one factor to unit mean norm.
2. Dictionary: :func:`sparseae.train.procedures.learn_dictionary`, a few epochs from random samples.
3. Targets: the exact Lasso codes z* by :func:`sparseae.coding.sparse_encode` (``lasso_lars``; or
   ``--targets fista``: FISTA from zero for ``--zstar-iter`` iterations) for the LISTA training,
   validation and test sets.
4. LISTA (:func:`sparseae.evaluate.lista.lista_depth_chain`; shared weights, or with ``--untied`` a
   separate S_k per step and ``--layer-thresholds`` a θ_k per shrinkage) for each T of ``--depths``
   (1, 2, 3, 5, 7, 10), in increasing order. The smallest T starts as ISTA on D (W_e = Dᵀ/L,
   S = I − DᵀD/L, θ = λ/L); each deeper T starts from the trained previous one (shared weights applied
   T times; untied steps with the last one repeated: a warm start; ``--no-warm-start`` restarts from
   ISTA). Each trains on ‖z^T − z*‖² by SGD with momentum 0.9 (or ``--optimizer adam``) at rate
   ``lr/T`` (``--same-lr``: ``lr`` at every T), either one-cycle over ``--epochs`` epochs (the
   default), or with ``--schedule plateau`` to convergence: constant, halved (``--decay``) from the
   best weights after ``--decay-patience`` epochs without a 0.1% better validation error, stopped once
   below ``--min-lr-ratio`` of its start (or after ``--epochs``, or ``--patience`` epochs without a
   better validation error); gradient norm clipped at ``--clip``; the weights of the best validation
   error are kept. Measured on MNIST (issue 25): with shared weights, Adam or larger SGD rates drive
   ‖S‖₂ to 2–8 and the trained T − 1 net diverges when applied once more, so shared weights train by
   SGD at lr/T (‖S‖₂ ≈ 1.05); the untied net with per-layer thresholds trains by Adam at 1e-3 for every
   T on the plateau schedule (its ‖S_k‖₂ grow to 7–9; each deeper T recovers from its warm start) and
   meets the 10·T goal at every depth (BENCHMARKS.md, "LISTA against ISTA/FISTA").
5. ISTA and FISTA error at every iteration 1…``--max-iter``, recorded in one run each by a proximal
   operator that measures every iterate.

LISTA with T steps applies T + 1 shrinkages, each costing about one ISTA/FISTA iteration; the table
gives the FISTA iterations that reach each trained error and their ratio to 10·T (issue 25's goal:
≥ 1). Example::

    python benchmarks/bench_lista_curve.py --mnist ../shared/data/mnist.npz --threads 1 --plot curve.png

The figure of docs/images/lista_depth_curve.png (untied LISTA trained to convergence)::

    python benchmarks/bench_lista_curve.py --mnist ../shared/data/mnist.npz --threads 1 --untied \
        --layer-thresholds --optimizer adam --lr 0.001 --same-lr --schedule plateau --decay-patience 2 \
        --min-lr-ratio 0.03 --patience 8 --epochs 60 --plot docs/images/lista_depth_curve.png
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sparseae.coding import dictionary_from_samples, fista, ista  # noqa: E402
from sparseae.data import MNIST_ENV_VAR, load_mnist, natural_image_patches, unit_norm_rows  # noqa: E402
from sparseae.evaluate.lista import (  # noqa: E402
    LISTATraining,
    exact_codes,
    lista_depth_chain,
    relative_error,
    solver_curve,
)
from sparseae.evaluate.lista import iterations_to_match as first_iteration  # noqa: E402
from sparseae.models import lista_from_dictionary  # noqa: E402
from sparseae.train.procedures import learn_dictionary  # noqa: E402
from sparseae.viz import save_depth_curve  # noqa: E402

TABLE_ITERATIONS = (1, 2, 5, 10, 20, 50, 100, 200)


def load_data(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """Rows for dictionary learning, LISTA training, testing and validation, disjoint, in that order."""
    needed = args.n_dict + args.n_train + args.n_test + args.n_val
    path = args.mnist or os.environ.get(MNIST_ENV_VAR)
    if path:
        X, _ = load_mnist(path)
        rows = np.random.default_rng(args.seed).permutation(X.shape[0])[:needed]
        return unit_norm_rows(X[rows]), f"MNIST ({path}), unit-norm images"
    patches = natural_image_patches(needed, patch_size=10, whitening="1/f", ufldl_normalize=False,
                                    random_state=args.seed).astype(np.float64)
    patches -= patches.mean(axis=1, keepdims=True)
    patches /= np.linalg.norm(patches, axis=1).mean()
    return patches.astype(np.float32), "10x10 1/f-whitened natural-image patches (no MNIST given)"


def iterations_to_match(curve: np.ndarray, error: float) -> str:
    """The first iteration whose error is ≤ ``error`` (">N" when none is), as the table prints it."""
    hit = first_iteration(curve, error)
    return str(hit) if hit is not None else f">{len(curve)}"


def training_settings(args: argparse.Namespace) -> LISTATraining:
    return LISTATraining(epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, lr=args.lr,
                         clip=args.clip, optimizer=args.optimizer, seed=args.seed, schedule=args.schedule,
                         decay=args.decay, decay_patience=args.decay_patience, min_lr_ratio=args.min_lr_ratio,
                         scale_lr=not args.same_lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", default=None, help=f"MNIST file or folder (default ${MNIST_ENV_VAR})")
    parser.add_argument("--n-components", type=int, default=400)
    parser.add_argument("--lam", type=float, default=0.1, help="λ of ½‖x − Dz‖² + λ‖z‖₁")
    parser.add_argument("--n-dict", type=int, default=10000, help="samples for dictionary learning")
    parser.add_argument("--dict-epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=48000, help="LISTA training samples")
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--n-val", type=int, default=1000, help="validation samples (early stopping)")
    parser.add_argument("--targets", choices=("lasso_lars", "fista"), default="lasso_lars",
                        help="z* by sparse_encode's exact LARS, or by FISTA for --zstar-iter iterations")
    parser.add_argument("--zstar-iter", type=int, default=600)
    parser.add_argument("--depths", default="1,2,3,5,7,10", help="LISTA T values, increasing")
    parser.add_argument("--no-warm-start", action="store_true",
                        help="train every T from the ISTA initialization (default: from the trained "
                             "previous T, the same shared weights)")
    parser.add_argument("--untied", action="store_true", help="a separate S_k per LISTA step (default: shared S)")
    parser.add_argument("--layer-thresholds", action="store_true",
                        help="a threshold vector θ_k per shrinkage (default: one θ shared by the steps)")
    parser.add_argument("--schedule", choices=("one_cycle", "plateau"), default="one_cycle",
                        help="one-cycle over --epochs, or constant rate halved (by --decay) on each validation "
                             "plateau of --decay-patience epochs until below --min-lr-ratio of the start: converged")
    parser.add_argument("--decay", type=float, default=0.5)
    parser.add_argument("--decay-patience", type=int, default=1)
    parser.add_argument("--min-lr-ratio", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, default=18, help="most LISTA training epochs per depth")
    parser.add_argument("--patience", type=int, default=4, help="epochs without a better validation error")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate at T = 1; lr/T at T")
    parser.add_argument("--same-lr", action="store_true", help="the rate --lr at every depth, not lr/T")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping")
    parser.add_argument("--max-iter", type=int, default=500, help="ISTA/FISTA iterations")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, help="save the curves to this image file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    depths = sorted({int(t) for t in args.depths.split(",")})
    started = time.perf_counter()

    data, description = load_data(args)
    X_dict = data[:args.n_dict]
    splits = np.cumsum([args.n_dict, args.n_train, args.n_test])
    X_train, X_test, X_val = (torch.from_numpy(part) for part in np.split(data, splits)[1:])
    print(f"data: {description}; {args.n_dict} for the dictionary, {args.n_train} LISTA training, "
          f"{args.n_val} validation, {args.n_test} test samples, {data.shape[1]} features; λ = {args.lam}; "
          f"{args.threads} threads")

    tic = time.perf_counter()
    coder = learn_dictionary(X_dict, args.n_components, args.lam, max_epochs=args.dict_epochs,
                             batch_size=256, learning_rate=1e-3, inference_max_iter=50, random_state=args.seed,
                             device="cpu")
    D = coder.dictionary.detach().clone()
    start = dictionary_from_samples(X_dict, args.n_components,
                                    generator=torch.Generator().manual_seed(args.seed))
    energy = [float(fista(X_test, atoms, args.lam, max_iter=200).objective.mean()) for atoms in (start, D)]
    print(f"dictionary: {args.n_components} atoms, {args.dict_epochs} epochs of dictionary learning "
          f"({time.perf_counter() - tic:.0f} s); mean ½‖x − Dz‖² + λ‖z‖₁ on the test set "
          f"{energy[0]:.4f} (random samples) → {energy[1]:.4f} (learned)")

    tic = time.perf_counter()
    L = lista_from_dictionary(D, args.lam, 1).lipschitz
    Z_train, Z_test, Z_val = (exact_codes(X, D, args.lam, targets=args.targets, L=L, zstar_iter=args.zstar_iter)
                              for X in (X_train, X_test, X_val))
    check = fista(X_test, D, args.lam, L=L, max_iter=args.zstar_iter, stop="none").codes
    print(f"z*: {args.targets} ({time.perf_counter() - tic:.0f} s); L = {float(L):.1f}; "
          f"active atoms per code {float((Z_test != 0).sum(1).float().mean()):.1f}; error of FISTA at "
          f"{args.zstar_iter} iterations {relative_error(check, Z_test):.1e}")

    tic = time.perf_counter()
    curves = {name: solver_curve(solver, X_test, D, args.lam, L, Z_test, args.max_iter)
              for name, solver in (("ISTA", ista), ("FISTA", fista))}
    print(f"ISTA/FISTA curves ({time.perf_counter() - tic:.0f} s)")

    def report(result) -> None:
        copies = "" if result.repeated_step is None else f", warm start repeats step {result.repeated_step}"
        copies += ", trained above T − 1: computes its code" if result.kept_shallower else ""
        print(f"T = {result.T}: {result.epochs} epochs (best {result.best_epoch}), {result.seconds:.0f} s, test "
              f"error {result.initial:.4f} → {result.trained:.4f}{copies}", flush=True)

    results, _ = lista_depth_chain(D, args.lam, depths, (X_train, Z_train), (X_val, Z_val), (X_test, Z_test),
                                   settings=training_settings(args), warm_start=not args.no_warm_start,
                                   model_params={"untied": args.untied, "layer_thresholds": args.layer_thresholds},
                                   report=report)
    rows = [(r.T, r.epochs, r.best_epoch, r.seconds, r.untrained, r.initial, r.trained) for r in results]

    print("\nCode prediction error mean‖z − z*‖² / mean‖z*‖² on the test set")
    print(f"{'iterations':>10} | {'ISTA':>8} | {'FISTA':>8}")
    for k in TABLE_ITERATIONS:
        if k <= args.max_iter:
            print(f"{k:>10} | {curves['ISTA'][k - 1]:8.4f} | {curves['FISTA'][k - 1]:8.4f}")
    print()
    print(f"{'T':>3} | {'epochs':>6} | {'best':>4} | {'seconds':>7} | {'ISTA init':>9} | {'start':>7} | "
          f"{'trained':>7} | {'ISTA its':>8} | {'FISTA its':>9} | {'FISTA its / 10T':>15}")
    for T, epochs, best_epoch, seconds, untrained, initial, trained in rows:
        fista_its = iterations_to_match(curves["FISTA"], trained)
        ratio = f"{int(fista_its) / (10 * T):.2f}" if fista_its.isdigit() else "-"
        print(f"{T:>3} | {epochs:>6} | {best_epoch:>4} | {seconds:7.0f} | {untrained:9.4f} | {initial:7.4f} | "
              f"{trained:7.4f} | {iterations_to_match(curves['ISTA'], trained):>8} | {fista_its:>9} | "
              f"{ratio:>15}")
    errors = [row[-1] for row in rows]
    print(f"\nerror falls strictly with T: {bool(np.all(np.diff(errors) < 0))}. "
          "'ISTA init': the untrained network (T + 1 ISTA iterations); 'start': after the warm start "
          "from the previous T; 'ISTA its'/'FISTA its': iterations from zero that reach the trained "
          "error; 'best': the epoch whose validation error was kept.")
    print(f"total {time.perf_counter() - started:.0f} s")

    if args.plot:
        variant = ("untied S_k" if args.untied else "shared S") + (", θ_k per layer" if args.layer_thresholds else "")
        save_depth_curve(curves, [row[0] for row in rows], errors, args.plot,
                         label=f"LISTA ({variant}, trained), depth T",
                         title=f"code prediction error, MNIST, {args.n_components} atoms, λ = {args.lam}")
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()

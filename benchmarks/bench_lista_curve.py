"""Benchmark: the LISTA curve (Gregor & LeCun 2010) — how many FISTA iterations one LISTA step is worth.

All methods approximate the same optimal codes ``z* = argmin_z ½‖x − Dz‖² + λ‖z‖₁`` on one dictionary
D of 400 atoms. The error of codes Z is ``mean‖z − z*‖² / mean‖z*‖²`` on held-out samples.

1. Data: MNIST (``--mnist PATH``, else ``$SPARSEAE_MNIST``), each image scaled to unit L2 norm; without
   MNIST, 10×10 patches of the 1/f-whitened natural images (:func:`sparseae.data.natural_image_patches`),
   each patch centred, all scaled by one factor to unit mean norm.
2. Dictionary: :func:`sparseae.train.procedures.learn_dictionary`, a few epochs from random samples.
3. Targets: z* by FISTA from zero for ``--zstar-iter`` iterations (600: on MNIST FISTA's error is then
   ~1e-6, far below every number in the table) for the LISTA training set and the test set.
4. LISTA (:func:`sparseae.models.lista_from_dictionary`) for T = 1…``--max-steps``, each trained from the
   ISTA initialization for ``--epochs`` epochs with Adam on the cached targets (one-cycle schedule,
   gradient norm clipped at ``--clip``). The parameters differ in scale: W_e = Dᵀ/L and θ = λ/L are
   ~1/L = 1/λ_max(DᵀD) of S ≈ I, and S is applied T times, so W_e and θ take ``lr/(2L)`` and S takes
   ``lr/T²`` (the deeper network diverges at S's T = 1 rate; these were tuned on MNIST).
5. ISTA and FISTA error at every iteration 1…``--max-iter``, recorded in one run each by a proximal
   operator that measures every iterate.

LISTA with T steps applies T + 1 shrinkages, each costing as much as one ISTA/FISTA iteration, so
"worth" compares it with T + 1 iterations. Example::

    python benchmarks/bench_lista_curve.py --mnist ../shared/data/mnist.npz --plot lista_curve.png
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
from sparseae.coding import (  # noqa: E402
    L1Prox,
    dictionary_from_samples,
    fista,
    ista,
)
from sparseae.data import MNIST_ENV_VAR, load_mnist, natural_image_patches, unit_norm_rows  # noqa: E402
from sparseae.models import lista_from_dictionary  # noqa: E402
from sparseae.train.procedures import learn_dictionary  # noqa: E402

TABLE_ITERATIONS = (1, 2, 5, 10, 20, 50, 100, 200)


def load_data(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """Rows for dictionary learning, LISTA training and testing, disjoint, in that order."""
    needed = args.n_dict + args.n_train + args.n_test
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


class ErrorRecorder(L1Prox):
    """The ℓ1 prox, recording Σ‖z − z*‖² of every iterate it returns (one per solver iteration)."""

    def __init__(self, target: torch.Tensor, nonnegative: bool = False) -> None:
        super().__init__(nonnegative)
        self.target, self.errors = target, []

    def __call__(self, v: torch.Tensor, step_threshold) -> torch.Tensor:
        z = super().__call__(v, step_threshold)
        self.errors.append((z - self.target).square().sum())
        return z


def solver_curve(solver, X: torch.Tensor, D: torch.Tensor, lam: float, L: torch.Tensor,
                 Z_star: torch.Tensor, n_iter: int) -> np.ndarray:
    """Relative code error after iterations 1…n_iter, (n_iter,)."""
    recorder = ErrorRecorder(Z_star)
    solver(X, D, lam, L=L, max_iter=n_iter, stop="none", prox=recorder)
    return (torch.stack(recorder.errors) / Z_star.square().sum()).numpy()


def relative_error(Z: torch.Tensor, Z_star: torch.Tensor) -> float:
    return float((Z - Z_star).square().sum() / Z_star.square().sum())


def train_lista(D: torch.Tensor, lam: float, n_steps: int, X: torch.Tensor, Z: torch.Tensor,
                args: argparse.Namespace):
    """LISTA with T = n_steps trained on cached targets Z (the trainer computes targets by FISTA
    every step; with a fixed dictionary they are computed once here)."""
    torch.manual_seed(args.seed)
    model = lista_from_dictionary(D, lam, n_steps)
    encoder, L = model.encoder, float(model.lipschitz)
    rates = [args.lr / (2 * L), args.lr / n_steps ** 2]
    optimizer = torch.optim.Adam([{"params": [encoder.weight, encoder.threshold], "lr": rates[0]},
                                  {"params": [encoder.S], "lr": rates[1]}])
    per_epoch = -(-X.shape[0] // args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=rates, pct_start=0.2,
                                                   total_steps=args.epochs * per_epoch)
    generator = torch.Generator().manual_seed(args.seed)
    for _ in range(args.epochs):
        order = torch.randperm(X.shape[0], generator=generator)
        for start in range(0, X.shape[0], args.batch_size):
            rows = order[start:start + args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            model.loss(X[rows], targets=Z[rows]).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            schedule.step()
            model.apply_constraints()
    return model


def iterations_to_match(curve: np.ndarray, error: float) -> str:
    """The first iteration whose error is ≤ ``error`` (">N" when none is)."""
    hits = np.nonzero(curve <= error)[0]
    return str(int(hits[0]) + 1) if len(hits) else f">{len(curve)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", default=None, help=f"MNIST file or folder (default ${MNIST_ENV_VAR})")
    parser.add_argument("--n-components", type=int, default=400)
    parser.add_argument("--lam", type=float, default=0.1, help="λ of ½‖x − Dz‖² + λ‖z‖₁")
    parser.add_argument("--n-dict", type=int, default=10000, help="samples for dictionary learning")
    parser.add_argument("--dict-epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=10000, help="LISTA training samples")
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--zstar-iter", type=int, default=600)
    parser.add_argument("--max-steps", type=int, default=10, help="LISTA T = 1…max-steps")
    parser.add_argument("--epochs", type=int, default=6, help="LISTA training epochs")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--lr", type=float, default=0.1, help="Adam peak learning rate (S's for T = 1)")
    parser.add_argument("--clip", type=float, default=0.1, help="gradient norm clipping")
    parser.add_argument("--max-iter", type=int, default=200, help="ISTA/FISTA iterations")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, help="save the curves to this image file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    data, description = load_data(args)
    X_dict = data[:args.n_dict]
    X_train = torch.from_numpy(data[args.n_dict:args.n_dict + args.n_train])
    X_test = torch.from_numpy(data[args.n_dict + args.n_train:])
    print(f"data: {description}; {args.n_dict} for the dictionary, {args.n_train} LISTA training, "
          f"{args.n_test} test samples, {data.shape[1]} features; λ = {args.lam}; {args.threads} threads")

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
    Z_train, Z_test = (fista(X, D, args.lam, L=L, max_iter=args.zstar_iter, stop="none").codes
                       for X in (X_train, X_test))
    check = fista(X_test, D, args.lam, L=L, max_iter=args.zstar_iter // 2, stop="none").codes
    print(f"z*: FISTA, {args.zstar_iter} iterations ({time.perf_counter() - tic:.0f} s); L = {float(L):.1f}; "
          f"active atoms per code {float((Z_test != 0).sum(1).float().mean()):.1f}; error of FISTA at "
          f"{args.zstar_iter // 2} iterations {relative_error(check, Z_test):.1e}")

    tic = time.perf_counter()
    curves = {name: solver_curve(solver, X_test, D, args.lam, L, Z_test, args.max_iter)
              for name, solver in (("ISTA", ista), ("FISTA", fista))}
    print(f"ISTA/FISTA curves ({time.perf_counter() - tic:.0f} s)")

    tic = time.perf_counter()
    lista_errors: dict[int, tuple[float, float]] = {}
    for T in range(1, args.max_steps + 1):
        with torch.no_grad():
            untrained = relative_error(lista_from_dictionary(D, args.lam, T).encode(X_test), Z_test)
        model = train_lista(D, args.lam, T, X_train, Z_train, args)
        with torch.no_grad():
            lista_errors[T] = (untrained, relative_error(model.encode(X_test), Z_test))
    print(f"LISTA T = 1…{args.max_steps}: {args.epochs} epochs each, batch {args.batch_size} "
          f"({time.perf_counter() - tic:.0f} s)\n")

    print("Code prediction error mean‖z − z*‖² / mean‖z*‖² on the test set")
    print(f"{'iterations':>10} | {'ISTA':>8} | {'FISTA':>8}")
    for k in TABLE_ITERATIONS:
        if k <= args.max_iter:
            print(f"{k:>10} | {curves['ISTA'][k - 1]:8.4f} | {curves['FISTA'][k - 1]:8.4f}")
    print()
    print(f"{'LISTA T':>7} | {'layers':>6} | {'untrained':>9} | {'trained':>8} | {'ISTA its':>8} | "
          f"{'FISTA its':>9} | {'FISTA its per layer':>19}")
    for T, (untrained, trained) in lista_errors.items():
        fista_its = iterations_to_match(curves["FISTA"], trained)
        per_layer = f"{int(fista_its) / (T + 1):.1f}" if fista_its.isdigit() else "-"
        print(f"{T:>7} | {T + 1:>6} | {untrained:9.4f} | {trained:8.4f} | "
              f"{iterations_to_match(curves['ISTA'], trained):>8} | {fista_its:>9} | {per_layer:>19}")
    print("\n'ISTA its'/'FISTA its': iterations from zero that reach the trained LISTA's error; "
          "untrained LISTA T = ISTA with T + 1 iterations.")
    print(f"total {time.perf_counter() - started:.0f} s")

    if args.plot:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 4))
        axes = figure.subplots()
        k = np.arange(1, args.max_iter + 1)
        axes.loglog(k, curves["ISTA"], label="ISTA")
        axes.loglog(k, curves["FISTA"], label="FISTA")
        layers = np.array(list(lista_errors)) + 1
        axes.loglog(layers, [e[1] for e in lista_errors.values()], "o-",
                    label="LISTA (trained), T + 1 layers")
        axes.set_xlabel("iterations (LISTA: T + 1 shrinkage layers)")
        axes.set_ylabel("mean‖z − z*‖² / mean‖z*‖²")
        axes.set_title(f"code prediction error, {args.n_components} atoms, λ = {args.lam}")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(args.plot, dpi=100)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()

"""Benchmark: dictionary learning, side by side in one run at a stated thread count.

SPAMS ``trainDL`` (2 epochs at batch 256, as in issue 26) against scikit-learn's
``MiniBatchDictionaryLearning`` (lars codes, batch 256, early stopping off, stopped at
``--sklearn-seconds``), sparseae's online learner with its DEFAULT settings
(:func:`sparseae.coding.online.online_dictionary_learning`) and the projected-gradient
``learn_dictionary`` (its defaults, 2 epochs). Each is reported with its wall time and the
held-out objective ``mean ½‖x − Dz‖² + λ‖z‖₁`` with exact codes (LARS) on samples it never saw;
the online learners also with the time at which they first reach ``trainDL``'s held-out objective
(their dictionary is copied every 1/8 epoch and scored after the run; the copies are not timed).

Problems: ``dct``: 20,000 + 5,000 held-out centred china.jpg 8×8 patches (the builders of
``bench_fista_vs_sklearn.py``), 256 atoms, ``λ = 0.1·mean‖Dᵀx‖∞`` over the 64×256 DCT;
``mnist``: 20,000 + 5,000 unit-norm MNIST digits, 400 atoms, ``λ = 0.1`` (``--mnist``,
``$SPARSEAE_MNIST``, else ``../shared/data/mnist.npz``; skipped when absent). BLAS, torch and
numba are limited to ``--threads``.

Example::

    python benchmarks/bench_dictionary_learning.py --threads 1 --problems dct mnist
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sparse_encode import dct_problem, mnist_path  # noqa: E402

from sparseae.coding.online import (  # noqa: E402
    default_batch_size,
    online_dictionary_learning,
    sparse_coding_objective,
)

try:
    import spams
except ImportError:  # the "bench" extra: pip install spams-bin
    spams = None


class _Budget(Exception):
    pass


def load(problem: str, n_train: int, n_test: int, mnist: str | None):
    if problem == "dct":
        X, _, lam = dct_problem(n_train + n_test, 0)
        k = 256
    else:
        from sparseae.data import load_mnist, unit_norm_rows
        images, _ = load_mnist(mnist_path(mnist))
        rows = np.random.default_rng(0).permutation(images.shape[0])
        X = unit_norm_rows(images[rows[:n_train + n_test]].astype(np.float64))
        lam, k = 0.1, 400
    return np.ascontiguousarray(X[:n_train]), np.ascontiguousarray(X[n_train:]), lam, k


def run_problem(problem: str, args, threads: int) -> None:
    Xtr, Xte, lam, k = load(problem, args.n_train, args.n_test, args.mnist)
    score = lambda comps: sparse_coding_objective(Xte, comps, lam, n_jobs=threads)  # noqa: E731
    rows = []
    # warm-up: numba compile/load, BLAS
    online_dictionary_learning(Xtr[:2048], k, lam, n_epochs=1, n_jobs=threads, random_state=0)

    target = None
    if spams is not None:
        iters = math.ceil(2 * len(Xtr) / 256)
        Xf = np.asfortranarray(Xtr.T)
        start = time.perf_counter()
        D = spams.trainDL(Xf, K=k, lambda1=lam, iter=iters, batchsize=256, numThreads=threads,
                          verbose=False)
        seconds = time.perf_counter() - start
        target = score(np.ascontiguousarray(D.T))
        rows.append(("SPAMS trainDL (2 epochs, batch 256)", seconds, target, seconds, "2"))

    def snapshots_run(fit, per_epoch):
        """Run ``fit(record)``; ``record(components, epochs)`` keeps untimed copies."""
        snaps, paused = [], [0.0]
        start = time.perf_counter()

        def record(components, epochs):
            t0 = time.perf_counter()
            snaps.append((t0 - start - paused[0], epochs, np.array(components, dtype=np.float64)))
            paused[0] += time.perf_counter() - t0
        final = fit(record)
        seconds = time.perf_counter() - start - paused[0]
        curve = [(t, e, score(c)) for t, e, c in snaps]
        return final, seconds, curve

    def reach(curve):
        if target is None:
            return None
        for t, e, objective in curve:
            if objective <= target:
                return t, e
        return None

    # ours, default settings
    def fit_ours(record):
        state = {}

        def callback(learner, step):
            per = state.setdefault("per", math.ceil(len(Xtr) / default_batch_size(len(Xtr))))
            if step % max(1, per // 8) == 0:
                record(learner.components_, step / per)
        return online_dictionary_learning(Xtr, k, lam, n_jobs=threads, random_state=0,
                                          callback=callback)
    result, seconds, curve = snapshots_run(fit_ours, None)
    final = score(result.components)
    hit, ours_curve = reach(curve), curve
    rows.append(("sparseae online (defaults)", seconds, final, hit and hit[0],
                 f"{result.n_epochs:.2f}" + (f" (reached at {hit[1]:.2f})" if hit else "")))

    # scikit-learn
    if not args.no_sklearn:
        from sklearn.decomposition import MiniBatchDictionaryLearning

        def fit_sklearn(record):
            per = math.ceil(len(Xtr) / 256)
            every = max(1, per // 8)
            t0 = time.perf_counter()

            def callback(env):
                step = env["i"] + 1
                if step % every == 0:
                    record(env["dictionary"], step / per)
                    if time.perf_counter() - t0 > args.sklearn_seconds:
                        raise _Budget
            model = MiniBatchDictionaryLearning(k, alpha=lam, batch_size=256, max_iter=1000,
                                                tol=0.0, max_no_improvement=None,
                                                fit_algorithm="lars", random_state=0,
                                                callback=callback)
            try:
                model.fit(Xtr)
            except _Budget:
                pass
            return model
        _, seconds, curve = snapshots_run(fit_sklearn, None)
        hit = reach(curve)
        rows.append(("scikit-learn MiniBatchDictionaryLearning (batch 256)", seconds,
                     curve[-1][2] if curve else float("nan"), hit and hit[0],
                     (f"{curve[-1][1]:.2f}" if curve else "0")
                     + (f" (reached at {hit[1]:.2f})" if hit else "")))

    # projected gradient (the sparse_coding model under the trainer)
    if not args.no_learn_dictionary:
        import sparseae
        start = time.perf_counter()
        model = sparseae.learn_dictionary(Xtr, k, lam, max_epochs=2, random_state=0, device="cpu")
        seconds = time.perf_counter() - start
        comps = model.dictionary.detach().double().numpy().T
        rows.append(("sparseae learn_dictionary (defaults, Adam 1e-3, 2 epochs)", seconds,
                     score(np.ascontiguousarray(comps)), None, "2"))

    print(f"\n# {problem}: {len(Xtr)} training + {len(Xte)} held-out samples, "
          f"{Xtr.shape[1]} features, {k} atoms, lambda = {lam:.4g}, {threads} thread(s), "
          f"load average before: {os.getloadavg()[0]:.2f}")
    if target is not None:
        print(f"# target: trainDL's held-out objective {target:.5f}")
    header = ("method", "seconds", "held-out objective", "reaches target at (s)", "epochs")
    table = [header] + [(name, f"{s:.2f}", f"{o:.5f}",
                         "-" if r is None else f"{r:.2f}", e) for name, s, o, r, e in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("# sparseae online, (seconds, epochs, held-out objective) along the run: " + ", ".join(
        f"({t:.2f}, {e:.2f}, {o:.5f})" for t, e, o in ours_curve))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1], choices=[1, 2])
    parser.add_argument("--problems", nargs="+", default=["dct", "mnist"], choices=["dct", "mnist"])
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("--sklearn-seconds", type=float, default=150.0,
                        help="stop scikit-learn after this many seconds (checked every 1/8 epoch)")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--no-learn-dictionary", action="store_true")
    parser.add_argument("--mnist", default=None)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            for problem in args.problems:
                if problem == "mnist" and mnist_path(args.mnist) is None:
                    print("# MNIST not found: skipped")
                    continue
                run_problem(problem, args, threads)


if __name__ == "__main__":
    main()

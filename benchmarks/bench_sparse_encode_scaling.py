"""Benchmark: how the cost of sparse coding grows with the batch, the atoms and the sparsity.

One table: for each dictionary (64×k overcomplete DCT and 64×k random unit-norm Gaussian, k =
256, 1,024, 4,096, coding centred 8×8 china.jpg patches; the 784×400 MNIST dictionary of
``bench_sparse_encode.py`` when its cache and MNIST are present), each target sparsity (λ found
by bisection on 128 samples with ``lasso_lars`` so the codes have ~5 / 15 / 50 non-zeros; at 50
a 64-feature problem saturates near 64) and each batch size (10² … 10⁵ problems), the seconds
of every solver on the same problems in float64:

* Lasso ½‖x − Dz‖² + λ‖z‖₁: sparseae ``lasso_lars``, ``lasso_cd`` (duality gap ≤ 1e-10 of the
  objective), ``fista`` (to a 1e-10 gap, at most ``--fista-iter`` iterations) and SPAMS ``lasso``;
  each with its relative objective gap ``(F − F_best)/F_best`` against the best Lasso solver of
  the cell (mean objective);
* fixed sparsity (the Lasso's mean non-zeros, rounded): sparseae ``omp`` and SPAMS ``omp``
  (forward selection: not the same algorithm, its residual is a little lower), the gap being that
  of the mean squared residual.

Then the solver ``algorithm="auto"`` picks for that cell (:func:`sparseae.coding.encode._auto`
for a CPU array, ``alpha`` given, no warm start), the fastest of our Lasso solvers whose gap is ≤ 1e-9 ("exact"), and
auto's time over that fastest one (1.00 when it picked the fastest).

Caps, meant to keep the full run near 15 minutes on a quiet core (it took longer on the shared,
loaded machine of the recorded run): ``lasso_cd`` and ``fista`` run up to
``--slow-max`` problems (default 10⁴: at 10⁵ only the fast solvers ``lasso_lars``, ``omp`` and
SPAMS run); a solver is skipped in a cell when its time per problem at the previous batch size
predicts more than ``--budget`` seconds (at the smallest batch: its time per problem at the
sparser target times the squared ratio of the targets); a cell is skipped when ``n·k`` exceeds
``--max-cells`` (the dense codes and correlations would not fit comfortably). Skipped cells print
``-``. The 2-thread rows cover ``--multi-dicts`` at ``--multi-batch`` problems. ``--quick``: 256
atoms, 100 and 300 problems, two sparsities, FISTA at 200 iterations, 1 thread (the test's run).
``--json FILE`` writes the rows.

Examples::

    python benchmarks/bench_sparse_encode_scaling.py --quick
    python benchmarks/bench_sparse_encode_scaling.py --threads 1 2
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sparse_encode import build_problem, lasso_objective, mnist_path, spams  # noqa: E402

from sparseae.coding import sparse_encode  # noqa: E402
from sparseae.coding.encode import _auto  # noqa: E402

#: Lasso solvers of ours, in the order of the table.
OURS = ("lasso_lars", "lasso_cd", "fista")
#: Every timed column.
SOLVERS = OURS + ("SPAMS lasso", "omp", "SPAMS omp")
#: Exact: relative objective gap to the best solver of the cell at most this.
EXACT_GAP = 1e-9


def dictionaries(args) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, X (n_max, n_features), D (n_features, k) unit-norm columns)`` of the run."""
    n_max = max(args.batch)
    out = []
    X = None
    for kind in args.kinds:
        if kind == "mnist":
            continue
        for k in args.atoms:
            Xp, D, _ = build_problem(n_max, 64, k, "dct", args.seed)
            X = Xp if X is None else X
            if kind == "random":
                D = np.random.default_rng(args.seed + k).standard_normal((64, k))
                D /= np.linalg.norm(D, axis=0)
            out.append((f"{kind} 64x{k}", X, D))
    path = mnist_path(args.mnist)
    cache = ROOT / "runs/bench_sparse_encode/mnist_dict400.npy"
    if "mnist" in args.kinds and path is not None and cache.exists():
        from sparseae.data import load_mnist, unit_norm_rows
        images, _ = load_mnist(path)
        rows = np.random.default_rng(args.seed).permutation(images.shape[0])[10000:10000 + n_max]
        D = np.load(cache)
        out.append(("mnist 784x400", unit_norm_rows(images[rows].astype(np.float64)),
                    D / np.linalg.norm(D, axis=0)))
    elif "mnist" in args.kinds:
        print("# MNIST or its cached dictionary (bench_sparse_encode.py makes it) absent: no MNIST rows")
    return out


def lambda_for(X: np.ndarray, D: np.ndarray, target: float) -> tuple[float, float]:
    """``(λ, mean non-zeros)``: λ by bisection on log λ so ``lasso_lars`` codes of 128 samples have
    ~``target`` non-zeros on average."""
    Xs, dictionary = X[:128], np.ascontiguousarray(D.T)
    high = float(np.abs(Xs @ D).max())  # every code is 0 from here up
    lo, hi = math.log(high * 1e-4), math.log(high)
    nnz = 0.0
    for _ in range(18):
        mid = 0.5 * (lo + hi)
        Z = sparse_encode(Xs, dictionary, algorithm="lasso_lars", alpha=math.exp(mid), n_jobs=1)
        nnz = float((Z != 0).sum(axis=1).mean())
        if abs(nnz - target) <= 0.05 * target:
            break
        lo, hi = (lo, mid) if nnz < target else (mid, hi)
    return math.exp(mid), nnz


def runners(X, D, lam: float, n_atoms: int, threads: int, fista_iter: int) -> dict:
    """Solver name → function returning the codes ``(n, k)``."""
    dictionary = np.ascontiguousarray(D.T)
    fns = {name: (lambda a=name: sparse_encode(X, dictionary, algorithm=a, alpha=lam, n_jobs=threads))
           for name in ("lasso_lars", "lasso_cd")}
    fns["fista"] = lambda: sparse_encode(X, dictionary, algorithm="fista", alpha=lam, tol=1e-10,
                                         max_iter=fista_iter)
    fns["omp"] = lambda: sparse_encode(X, dictionary, algorithm="omp", n_nonzero_coefs=n_atoms,
                                       n_jobs=threads)
    if spams is not None:
        Xf, Df = np.asfortranarray(X.T), np.asfortranarray(D)
        fns["SPAMS lasso"] = lambda: spams.lasso(Xf, D=Df, lambda1=lam, mode=2,
                                                 numThreads=threads).toarray().T
        fns["SPAMS omp"] = lambda: spams.omp(Xf, D=Df, L=n_atoms, numThreads=threads).toarray().T
    return fns


def timed(fns: dict) -> dict:
    """``{name: (best seconds, codes)}``: up to 3 rounds in which the solvers run once each,
    alternating (so a change in the machine's load hits them alike); a solver whose first run took
    over 1 s runs once, and the rounds stop once the others take over 1 s together. Each run
    waits 50 ms first (the libraries' idle OpenMP threads spin a while after a call)."""
    best: dict = {}
    for round_ in range(3):
        for name, fn in fns.items():
            if round_ and best[name][0] > 1.0:
                continue
            time.sleep(0.05)
            start = time.perf_counter()
            Z = fn()
            seconds = time.perf_counter() - start
            if seconds < best.get(name, (math.inf,))[0]:
                best[name] = (seconds, Z)
        if sum(seconds for seconds, _ in best.values() if seconds <= 1.0) > 1.0:
            break
    return best


def predicted(name: str, per_problem: dict, n: int, k: int, n_features: int, fista_iter: int) -> float:
    """Seconds the solver is expected to take on ``n`` problems: from its time per problem at the
    previous batch size; FISTA's first from its ``fista_iter`` iterations of two ``(n, k)·(k,
    n_features)`` products at 5 GFLOP/s; else 0."""
    if name in per_problem:
        return per_problem[name] * n
    return 4.0 * n * k * n_features * fista_iter / 5e9 if name == "fista" else 0.0


def cell(name_dict: str, X, D, target: int, lam: float, n: int, threads: int, args,
         per_problem: dict) -> dict:
    """Time every solver on the first ``n`` rows; returns the row (seconds or None per solver)."""
    Xn = np.ascontiguousarray(X[:n])
    n_features, k = D.shape
    row = {"dictionary": name_dict, "n_features": n_features, "atoms": k, "target_nnz": target,
           "lambda": lam, "batch": n, "threads": threads, "seconds": {}, "gap": {}}
    lasso_objectives, residuals, nnz = {}, {}, None
    n_atoms = max(1, min(n_features, k, round(args.nnz_of.get((name_dict, target), target))))
    row["omp_atoms"] = n_atoms
    fns = runners(Xn, D, lam, n_atoms, threads, args.fista_iter)
    for name in SOLVERS:
        if name not in fns or (name in ("lasso_cd", "fista") and n > args.slow_max) or \
                predicted(name, per_problem, n, k, n_features, args.fista_iter) > args.budget:
            per_problem[name] = math.inf
            row["seconds"][name] = None
            fns.pop(name, None)
    results = timed(fns)
    for name in SOLVERS:
        if name not in results:
            continue
        seconds, Z = results[name]
        per_problem[name] = seconds / n
        row["seconds"][name] = seconds
        if name in ("omp", "SPAMS omp"):
            residuals[name] = float(((Xn - Z @ D.T) ** 2).sum(axis=1).mean())
        else:
            lasso_objectives[name] = lasso_objective(Xn, D, Z, lam)
            if name == "lasso_lars":
                nnz = float((Z != 0).sum(axis=1).mean())
    for values in (lasso_objectives, residuals):
        best = min(values.values(), default=math.nan)
        for name, value in values.items():
            row["gap"][name] = (value - best) / best if best > 0 else 0.0
    row["nnz"] = nnz
    row["auto"] = _auto(torch.device("cpu"), None, lam, None)
    exact = [(row["seconds"][m], m) for m in OURS
             if row["seconds"][m] is not None and row["gap"].get(m, math.inf) <= EXACT_GAP]
    row["fastest_exact"] = min(exact)[1] if exact else None
    auto_s = row["seconds"].get(row["auto"])
    row["auto_over_fastest"] = (auto_s / min(exact)[0]) if exact and auto_s is not None else None
    return row


def fmt_row(row: dict) -> tuple[str, ...]:
    def solver(name):
        s = row["seconds"].get(name)
        if s is None:
            return "-"
        gap = row["gap"].get(name, 0.0)
        return f"{s:.3g}" + ("" if gap <= EXACT_GAP else f" ({gap:.0e})")
    ratio = row["auto_over_fastest"]
    nnz = "" if row["nnz"] is None else f"{row['nnz']:.1f}"
    return ((row["dictionary"], str(row["target_nnz"]), nnz, f"{row['batch']:.0e}".replace("e+0", "e"),
             str(row["threads"])) + tuple(solver(m) for m in SOLVERS)
            + (row["auto"], row["fastest_exact"] or "-", "-" if ratio is None else f"{ratio:.2f}"))


HEADER = ("dictionary", "target nnz", "nnz", "batch", "threads") + SOLVERS + (
    "auto picks", "fastest exact", "auto / fastest")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small grid (seconds)")
    parser.add_argument("--kinds", nargs="+", default=["dct", "random", "mnist"],
                        choices=["dct", "random", "mnist"])
    parser.add_argument("--atoms", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--nnz", type=int, nargs="+", default=[5, 15, 50])
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--multi-dicts", nargs="+", default=["dct 64x256", "mnist 784x400"],
                        help="dictionaries timed at more than 1 thread")
    parser.add_argument("--multi-batch", type=int, nargs="+", default=[10000])
    parser.add_argument("--budget", type=float, default=20.0, help="predicted seconds per solver-cell")
    parser.add_argument("--slow-max", type=int, default=10000, help="lasso_cd/fista up to this batch")
    parser.add_argument("--fista-iter", type=int, default=3000)
    parser.add_argument("--max-cells", type=float, default=4.1e7, help="largest n·k")
    parser.add_argument("--mnist", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="sparse_encode: fista stopped")  # its gap is shown
    if args.quick:
        args.kinds, args.atoms, args.nnz, args.batch = ["dct", "random"], [256], [5, 15], [100, 300]
        args.threads, args.fista_iter = [1], 200
    from threadpoolctl import threadpool_limits
    print(f"# torch {torch.__version__}, SPAMS {'absent' if spams is None else 'present'}, "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}; float64; seconds "
          f"(best of up to 3 alternating runs, 1 over 1 s); '(gap)' = relative gap > {EXACT_GAP:g} to the best "
          f"solver of the cell; '-' = not run (lasso_cd/fista above {args.slow_max} problems, "
          f"predicted over {args.budget:g} s, or n*k over {args.max_cells:g})", flush=True)
    print("| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER), flush=True)
    rows, start = [], time.perf_counter()
    args.nnz_of = {}
    for name_dict, X, D in dictionaries(args):
        dictionary = np.ascontiguousarray(D.T)
        for algorithm in ("lasso_lars", "lasso_cd", "omp"):  # compile / load the kernels
            sparse_encode(X[:4], dictionary, algorithm=algorithm, alpha=0.1, n_nonzero_coefs=2)
        sparser: tuple[float, dict] = (1.0, {})  # (target, seconds per problem) of the last sparsity
        for target in args.nnz:
            lam, nnz = lambda_for(X, D, target)
            args.nnz_of[(name_dict, target)] = nnz
            for threads in args.threads:
                if threads > 1 and name_dict not in args.multi_dicts:
                    continue
                torch.set_num_threads(threads)
                # a denser code costs at least (ratio of non-zeros)² more per problem
                per_problem = {m: v * (target / sparser[0]) ** 2 for m, v in sparser[1].items()} \
                    if threads == 1 else {}
                with threadpool_limits(threads):
                    for n in args.batch:
                        if (threads > 1 and n not in args.multi_batch) or n > X.shape[0] or \
                                n * D.shape[1] > args.max_cells:
                            continue
                        row = cell(name_dict, X, D, target, lam, n, threads, args, per_problem)
                        rows.append(row)
                        print("| " + " | ".join(fmt_row(row)) + " |", flush=True)
                        if threads == 1 and n == min(args.batch):
                            sparser = (target, dict(per_problem))
    print(f"# {time.perf_counter() - start:.0f} s in all; load average now {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()

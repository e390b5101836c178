"""Benchmark: ``sparseae.coding.sparse_encode`` against SPAMS, scikit-learn and our batched FISTA.

Every Lasso method solves the same problems, one per sample, in float64,

    min_z ½‖x − Dz‖² + λ‖z‖₁,      D: (n_features, n_components), unit-norm atoms,

and is reported with its time (best of ``--repeats``, all set-up included: Gram matrix, ``DᵀX``),
its ratio to SPAMS ``lasso`` at the same thread count, and its relative objective gap
``(F − F_best)/F_best`` (mean objective against the best one in the run; the goal is ≤ 1e-9).

Problems:

* ``dct``: centred 8×8 patches of ``china.jpg`` over the 64×256 overcomplete DCT,
  ``λ = 0.1·mean‖Dᵀx‖∞`` (the builders of ``bench_fista_vs_sklearn.py``, imported);
* ``mnist``: unit-norm MNIST digits over 400 atoms learned on 10,000 other digits with
  :func:`sparseae.train.procedures.learn_dictionary` (3 epochs, as ``bench_lista_curve.py``), ``λ = 0.1``
  (≈15 atoms per code); the dictionary is cached in ``--cache``. Skipped when MNIST is absent
  (``--mnist``, ``$SPARSEAE_MNIST``, else ``../shared/data/mnist.npz``).

OMP rows code the same samples with a fixed number of atoms (``--omp-atoms``) and report the mean
squared residual: SPAMS ``omp`` is the same greedy selection refined by forward selection
(order-recursive: it picks the atom that lowers the residual most after orthogonalisation), so
its residuals are lower and its codes differ; scikit-learn's ``orthogonal_mp_gram`` is plain OMP,
as ours.

``--grid`` instead times each solver over batch sizes × atoms × λ (DCT dictionaries 64×256,
64×1024, 64×4096) and prints which one ``algorithm="auto"`` picks; cells whose run would take
longer than ``--budget`` seconds (extrapolated from the smaller batch) are skipped.

``--device cuda`` (issue 26's GPU claim) instead codes ``--n-samples`` problems (20,000 unless
given) of each problem in float64 on the GPU by batched FISTA to a duality gap ``Σ gap ≤
--gpu-tol·Σ F`` (1e-10), against SPAMS ``lasso`` on all of the host's cores and our ``lasso_lars``
(exact, the reference objective), and prints the relative objective gap of each (the certificate:
≤ 1e-9) and SPAMS's time over the GPU's (the goal: ≥ 10). Without CUDA it stops at once with one
line and exit status 2.

Examples::

    python benchmarks/bench_sparse_encode.py --threads 1 2 --n-samples 1000 10000
    python benchmarks/bench_sparse_encode.py --grid --threads 1
    python benchmarks/bench_sparse_encode.py --device cuda --n-samples 20000

(The table of cost against batch, atoms and sparsity for every solver, with ``auto``'s choice:
``bench_sparse_encode_scaling.py``.)
"""
from __future__ import annotations

import argparse
import importlib.util
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
from sparseae.coding import fista, sparse_encode  # noqa: E402
from sparseae.coding.encode import _auto  # noqa: E402


def _bench_fista_module():
    spec = importlib.util.spec_from_file_location(
        "bench_fista_vs_sklearn", Path(__file__).with_name("bench_fista_vs_sklearn.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FISTA_BENCH = _bench_fista_module()
build_problem, overcomplete_dct = _FISTA_BENCH.build_problem, _FISTA_BENCH.overcomplete_dct

try:
    import spams
except ImportError:  # the "bench" extra: pip install spams-bin
    spams = None


# ------------------------------------------------------------------------------------------
# problems: X (n, n_features), D (n_features, k) unit-norm columns, λ


def dct_problem(n_samples: int, seed: int = 0, n_components: int = 256, lam_ratio: float = 0.1):
    X, D, _ = build_problem(n_samples, 64, n_components, "dct", seed)
    lam = lam_ratio * float(np.abs(X @ D).max(axis=1).mean())
    return X, D, lam


def mnist_path(arg: str | None) -> Path | None:
    for candidate in (arg, os.environ.get("SPARSEAE_MNIST"), ROOT.parent / "shared/data/mnist.npz"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def mnist_problem(n_samples: int, path: Path, cache: Path, seed: int = 0, lam: float = 0.1):
    from sparseae.data import load_mnist, unit_norm_rows
    from sparseae.train.procedures import learn_dictionary

    images, _ = load_mnist(path)
    rows = np.random.default_rng(seed).permutation(images.shape[0])
    if cache.exists():
        D = np.load(cache)
    else:
        print(f"# learning the 400-atom MNIST dictionary (cached in {cache}) ...", flush=True)
        coder = learn_dictionary(unit_norm_rows(images[rows[:10000]]), 400, lam, max_epochs=3,
                                 batch_size=256, learning_rate=1e-3, inference_max_iter=50,
                                 random_state=seed, device="cpu")
        D = coder.dictionary.detach().double().numpy()
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, D)
    D = D / np.linalg.norm(D, axis=0)
    X = unit_norm_rows(images[rows[10000:10000 + n_samples]].astype(np.float64))
    return X, D, lam


# ------------------------------------------------------------------------------------------
# timing


def best_time(fn, repeats: int):
    best, out = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def interleaved(methods, repeats: int, slow: tuple[str, ...] = ()):
    """Best time of each method over ``repeats`` rounds, the methods alternating within a round
    (so a change in the machine's load hits them alike); methods whose name starts with one of
    ``slow`` run once. Each call waits 50 ms first: the libraries bring their own OpenMP runtimes
    (SPAMS, numba, torch), whose idle threads spin for a while after a parallel region and would
    otherwise slow the next library's threads on a small machine. Returns
    ``[(name, seconds, codes)]``."""
    best = {name: (math.inf, None) for name, _ in methods}
    for round_ in range(repeats):
        for name, fn in methods:
            if round_ and name.startswith(slow):
                continue
            time.sleep(0.05)
            start = time.perf_counter()
            Z = fn()
            seconds = time.perf_counter() - start
            if seconds < best[name][0]:
                best[name] = (seconds, Z)
    return [(name, *best[name]) for name, _ in methods]


def lasso_objective(X, D, Z, lam) -> float:
    return float((0.5 * ((X - Z @ D.T) ** 2).sum(axis=1) + lam * np.abs(Z).sum(axis=1)).mean())


def lasso_methods(X, D, lam, threads: int, with_sklearn: bool, with_fista: bool):
    """(name, function returning codes (n, k)) for the Lasso rows."""
    dictionary = np.ascontiguousarray(D.T)
    methods = []
    if spams is not None:
        Xf, Df = np.asfortranarray(X.T), np.asfortranarray(D)
        methods.append(("SPAMS lasso", lambda: spams.lasso(Xf, D=Df, lambda1=lam, mode=2,
                                                           numThreads=threads).toarray().T))
    for algorithm in ("auto", "lasso_lars", "lasso_cd"):
        methods.append((f"sparseae {algorithm}",
                        lambda a=algorithm: sparse_encode(X, dictionary, algorithm=a, alpha=lam,
                                                          n_jobs=threads)))
    if with_fista:
        Xt, Dt = torch.from_numpy(X), torch.from_numpy(D)
        methods.append(("sparseae fista (gap ≤ 1e-10)",
                        lambda: fista(Xt, Dt, lam, max_iter=100000, tol=1e-10,
                                      stop="duality_gap").codes.numpy()))
    if with_sklearn:
        from sklearn.decomposition import sparse_encode as sk_encode
        for algorithm in ("lasso_lars", "lasso_cd"):
            def run(a=algorithm):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return sk_encode(X, dictionary, algorithm=a, alpha=lam, max_iter=10000,
                                     n_jobs=threads if threads > 1 else None)
            methods.append((f"sklearn {algorithm}", run))
    return methods


def omp_methods(X, D, n_atoms: int, threads: int, with_sklearn: bool):
    dictionary = np.ascontiguousarray(D.T)
    methods = []
    if spams is not None:
        Xf, Df = np.asfortranarray(X.T), np.asfortranarray(D)
        methods.append(("SPAMS omp (forward selection)",
                        lambda: spams.omp(Xf, D=Df, L=n_atoms, numThreads=threads).toarray().T))
    methods.append(("sparseae omp", lambda: sparse_encode(X, dictionary, algorithm="omp",
                                                          n_nonzero_coefs=n_atoms,
                                                          n_jobs=threads)))
    if with_sklearn:
        from sklearn.linear_model import orthogonal_mp_gram

        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return orthogonal_mp_gram(D.T @ D, D.T @ X.T, n_nonzero_coefs=n_atoms).T
        methods.append(("sklearn orthogonal_mp_gram", run))
    return methods


def print_table(header, rows):
    """A Markdown table, columns padded to their widest cell."""
    table = [header] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for k, r in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def compare(args) -> None:
    problems = [("dct", "china.jpg 8x8 patches, overcomplete DCT 64x256")]
    path = mnist_path(args.mnist)
    if path is None:
        print("# MNIST not found (--mnist, $SPARSEAE_MNIST, ../shared/data/mnist.npz): "
              "skipping the MNIST rows")
    elif "mnist" in args.problems:
        problems.append(("mnist", "unit-norm MNIST digits, 400 learned atoms (784x400)"))
    problems = [p for p in problems if p[0] in args.problems]
    for kind, what in problems:
        for n in args.n_samples:
            if kind == "dct":
                X, D, lam = dct_problem(n, args.seed)
            else:
                X, D, lam = mnist_problem(n, path, Path(args.cache), args.seed)
            for threads in args.threads:
                torch.set_num_threads(threads)
                sparse_encode(X[:8], D.T, algorithm="lasso_lars", alpha=lam)  # compile / load
                sparse_encode(X[:8], D.T, algorithm="lasso_cd", alpha=lam)
                sparse_encode(X[:8], D.T, algorithm="omp", n_nonzero_coefs=2)
                with_sklearn = args.sklearn_max >= n
                with_fista = args.fista_max >= n
                methods = lasso_methods(X, D, lam, threads, with_sklearn, with_fista)
                timed = interleaved(methods, args.repeats,
                                    slow=("sklearn", "sparseae fista"))
                results = [(name, seconds, lasso_objective(X, D, Z, lam),
                            float((Z != 0).sum(axis=1).mean())) for name, seconds, Z in timed]
                best = min(r[2] for r in results)
                t_spams = next((r[1] for r in results if r[0] == "SPAMS lasso"), math.nan)
                print(f"\n# Lasso, {what}: {n} problems, lambda = {lam:.4g}, float64, "
                      f"{threads} thread(s); best of {args.repeats} (sklearn, FISTA: 1 run)")
                print_table(("method", "seconds", "time / SPAMS", "mean objective",
                             "rel. objective gap", "atoms per code"),
                            [(m, f"{s:.4f}", f"{s / t_spams:.3f}", f"{F:.12f}",
                              f"{(F - best) / best:.1e}", f"{nnz:.1f}")
                             for m, s, F, nnz in results])
                n_atoms = args.omp_atoms if kind == "dct" else args.omp_atoms_mnist
                rows = [(name, seconds, float(((X - Z @ D.T) ** 2).sum(axis=1).mean()))
                        for name, seconds, Z in interleaved(
                            omp_methods(X, D, n_atoms, threads, with_sklearn), args.repeats,
                            slow=("sklearn",))]
                t_spams = next((r[1] for r in rows if r[0].startswith("SPAMS")), math.nan)
                print(f"\n# OMP, {n_atoms} atoms per code, same problems, {threads} thread(s)")
                print_table(("method", "seconds", "time / SPAMS", "mean squared residual"),
                            [(m, f"{s:.4f}", f"{s / t_spams:.3f}", f"{r:.8f}")
                             for m, s, r in rows])


def grid(args) -> None:
    threads = args.threads[0]
    torch.set_num_threads(threads)
    print(f"# time (s) against atoms, lambda and batch size; DCT dictionaries 64 x atoms, float64, "
          f"{threads} thread(s), 1 run each; '-' = skipped (projected over --budget "
          f"{args.budget:g} s, or memory); '*' = relative objective gap to lasso_lars > 1e-9 "
          f"(FISTA capped at {args.grid_fista_iter} iterations)")
    header = ("atoms", "lambda ratio", "atoms per code", "batch", "lasso_lars", "lasso_cd",
              "fista", "SPAMS lasso", "auto picks")
    widths = (5, 12, 14, 6, 10, 10, 10, 11, 10)

    def line(cells: tuple[str, ...]) -> None:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |", flush=True)

    line(header)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for k in args.grid_atoms:
        for ratio in args.grid_lam:
            last: dict[str, float] = {}  # seconds per sample at the previous batch size
            for n in args.grid_batch:
                if n * k * 8 * 3 > args.max_bytes:
                    line((str(k), str(ratio), "", str(n), "-", "-", "-", "-", ""))
                    continue
                X, D, lam = dct_problem(n, args.seed, n_components=k, lam_ratio=ratio)
                dictionary = np.ascontiguousarray(D.T)
                sparse_encode(X[:4], dictionary, algorithm="lasso_lars", alpha=lam)  # compile
                sparse_encode(X[:4], dictionary, algorithm="lasso_cd", alpha=lam)
                cells = {}
                nnz, reference = "", None
                runs = [("lasso_lars", lambda: sparse_encode(X, dictionary, algorithm="lasso_lars",
                                                             alpha=lam, n_jobs=threads)),
                        ("lasso_cd", lambda: sparse_encode(X, dictionary, algorithm="lasso_cd",
                                                           alpha=lam, n_jobs=threads)),
                        ("fista", lambda: sparse_encode(X, dictionary, algorithm="fista",
                                                        alpha=lam, tol=1e-10,
                                                        max_iter=args.grid_fista_iter))]
                if spams is not None:
                    Xf, Df = np.asfortranarray(X.T), np.asfortranarray(D)
                    runs.append(("SPAMS lasso", lambda: spams.lasso(
                        Xf, D=Df, lambda1=lam, mode=2, numThreads=threads).toarray().T))
                for name, fn in runs:
                    per_sample = last.get(name)
                    if per_sample is None and name == "fista":  # ~2 GFLOP/s, 2·n·k·64 a step
                        per_sample = 2 * k * 64 * args.grid_fista_iter / 2e9
                    if per_sample is not None and per_sample * n > args.budget:
                        cells[name] = "-"
                        last[name] = math.inf
                        continue
                    seconds, Z = best_time(fn, 1)
                    last[name] = seconds / n
                    F = lasso_objective(X, D, Z, lam)
                    if name == "lasso_lars":
                        nnz = f"{float((Z != 0).sum(axis=1).mean()):.1f}"
                        reference = F
                    flag = "*" if reference is not None and F - reference > 1e-9 * reference else ""
                    cells[name] = f"{seconds:.3g}{flag}"
                auto = _auto(torch.device("cpu"), None, lam, None)
                line((str(k), str(ratio), nnz, str(n)) + tuple(
                    cells.get(m, "-") for m in ("lasso_lars", "lasso_cd", "fista", "SPAMS lasso"))
                    + (auto,))


def gpu_compare(args, device: torch.device) -> list[tuple[str, float, float]]:
    """Issue 26's GPU claim: FISTA on ``device`` against SPAMS on all host cores (see the
    module); prints a table per problem and returns its rows ``(method, seconds, objective)``
    (``device`` may be the CPU: the test runs this path there)."""
    cores = os.cpu_count() or 1
    path = mnist_path(args.mnist)
    n = args.n_samples[0]
    out = []
    for kind in args.problems:
        if kind == "mnist" and path is None:
            print("# MNIST not found: skipping the MNIST rows")
            continue
        X, D, lam = dct_problem(n, args.seed) if kind == "dct" else \
            mnist_problem(n, path, Path(args.cache), args.seed)
        Xg, dict_g = torch.from_numpy(X).to(device), torch.from_numpy(np.ascontiguousarray(D.T)).to(device)

        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda _device: None)

        def gpu():
            sync(device)
            Z = sparse_encode(Xg, dict_g, algorithm="fista", alpha=lam, tol=args.gpu_tol,
                              max_iter=args.gpu_max_iter)
            sync(device)
            return Z.cpu().numpy()
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
        methods = [(f"sparseae fista on {where}", gpu),
                   (f"sparseae lasso_lars ({cores} threads)",
                    lambda: sparse_encode(X, D.T, algorithm="lasso_lars", alpha=lam, n_jobs=cores))]
        if spams is not None:
            Xf, Df = np.asfortranarray(X.T), np.asfortranarray(D)
            methods.append((f"SPAMS lasso ({cores} threads)", lambda: spams.lasso(
                Xf, D=Df, lambda1=lam, mode=2, numThreads=cores).toarray().T))
        gpu()  # warm-up: CUDA context, kernels
        sparse_encode(X[:8], D.T, algorithm="lasso_lars", alpha=lam)
        results = [(name, seconds, lasso_objective(X, D, Z, lam))
                   for name, seconds, Z in interleaved(methods, args.repeats)]
        best = min(r[2] for r in results)
        t_spams = next((r[1] for r in results if r[0].startswith("SPAMS")), math.nan)
        print(f"\n# Lasso {kind}: {n} problems, lambda = {lam:.4g}, float64; best of {args.repeats}")
        print_table(("method", "seconds", "SPAMS time / this", "mean objective", "rel. objective gap"),
                    [(m, f"{s:.4f}", f"{t_spams / s:.1f}", f"{F:.12f}", f"{(F - best) / best:.1e}")
                     for m, s, F in results])
        out += results
    return out


def check_device(name: str) -> None:
    """Exit with one line (status 2) when this machine cannot run on ``name``."""
    from sparseae.devices import check_device_name, device_problem
    from sparseae.errors import ConfigError
    try:
        problem = device_problem(torch.device(check_device_name(name, "--device")))
    except (ConfigError, RuntimeError) as exc:
        problem = str(exc).splitlines()[0]
    if problem is None and name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        problem = "name cpu or cuda[:N] (the devices measured here)"
    if problem:
        print(f"bench_sparse_encode.py: error: --device {name}: {problem}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=int, nargs="+", default=None,
                        help="default 1000 10000 (with --device cuda: 20000)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--problems", nargs="+", default=["dct", "mnist"],
                        choices=["dct", "mnist"])
    parser.add_argument("--mnist", default=None, help="MNIST file (default $SPARSEAE_MNIST, "
                        "then ../shared/data/mnist.npz)")
    parser.add_argument("--cache", default=str(ROOT / "runs/bench_sparse_encode/mnist_dict400.npy"),
                        help="where the learned MNIST dictionary is kept")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--omp-atoms", type=int, default=10, help="OMP atoms per DCT code")
    parser.add_argument("--omp-atoms-mnist", type=int, default=15, help="OMP atoms per MNIST code")
    parser.add_argument("--sklearn-max", type=int, default=1000,
                        help="run scikit-learn up to this many problems (it is slow)")
    parser.add_argument("--fista-max", type=int, default=1000,
                        help="run FISTA to the 1e-10 gap up to this many problems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", action="store_true", help="the time table over sizes instead")
    parser.add_argument("--grid-batch", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    parser.add_argument("--grid-atoms", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--grid-lam", type=float, nargs="+", default=[0.2, 0.1, 0.05])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per grid cell")
    parser.add_argument("--grid-fista-iter", type=int, default=5000)
    parser.add_argument("--max-bytes", type=float, default=4e9,
                        help="skip grid cells whose n·k float64 arrays exceed this")
    parser.add_argument("--device", default="cpu",
                        help="cuda: the GPU FISTA against SPAMS on all host cores (20,000 problems)")
    parser.add_argument("--gpu-tol", type=float, default=1e-10,
                        help="FISTA's stop on the GPU: sum of duality gaps <= this * sum of objectives")
    parser.add_argument("--gpu-max-iter", type=int, default=100000)
    args = parser.parse_args(argv)
    check_device(args.device)
    if args.n_samples is None:
        args.n_samples = [1000, 10000] if args.device == "cpu" else [20000]
    print(f"# torch {torch.__version__}, numpy {np.__version__}, "
          f"SPAMS {'absent (pip install spams-bin)' if spams is None else 'present'}, "
          f"{os.cpu_count()} CPU cores")
    if args.device != "cpu":
        gpu_compare(args, torch.device(args.device))
    elif args.grid:
        grid(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()

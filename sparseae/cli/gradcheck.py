"""``sparseae gradcheck``: the float64 derivative check of one model (exit 0 on PASS, 1 on FAIL)."""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from ..config import parse_assignment
from ..data import load_dataset
from ..errors import ConfigError, DataError
from ..gradcheck import UFLDL_TOLERANCE, check_gradients
from ..models import create_model
from ..validation import check_number
from .common import MAX_CLI_SEED, add_download, add_set, add_threads
from .output import Output, plural


def gradient_check(model_name: str, n_features: int, n_components: int, params: dict[str, Any],
                   X: np.ndarray, *, epsilon: float = 1e-4, max_checks: int | None = None,
                   random_state: int = 0, tolerance: float = UFLDL_TOLERANCE,
                   threads: int | str | None = "auto") -> dict[str, Any]:
    """Build the model (seeded) and compare autograd with central differences in float64 on
    ``threads`` CPU threads (:func:`sparseae.threads.set_threads`)."""
    torch.manual_seed(random_state)
    model = create_model(model_name, n_features, n_components, **params)
    result = check_gradients(model, X, epsilon=epsilon, max_checks_per_parameter=max_checks,
                             random_state=random_state, tolerance=tolerance, threads=threads)
    n_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"model": model_name, "n_features": n_features, "n_components": n_components,
            "params": model.spec["params"], "samples": int(X.shape[0]), "epsilon": epsilon,
            "relative_error": result.relative_error, "tolerance": result.tolerance, "passed": result.passed,
            "n_checked": result.n_checked, "n_kinks": result.n_kinks, "n_parameters": int(n_parameters),
            "per_parameter": result.per_parameter, "per_parameter_share": result.per_parameter_share}


def report_gradcheck(out: Output, check: dict[str, Any]) -> None:
    """One line: the verdict and the criterion that decides it (UFLDL's ratio over every checked
    coordinate against the tolerance, and the share of coordinates at kinks)."""
    error, tolerance = check["relative_error"], check["tolerance"]
    kinks = check.get("n_kinks", 0)
    kinked = f"; {kinks} of {kinks + check['n_checked']} coordinates at kinks left out (at most 5% may be)" \
        if kinks else ""
    out.line(f"Gradient check ({check['model']}, {check['n_features']} → {check['n_components']}, float64, "
             f"{plural(check['samples'], 'sample')}, {check['n_checked']} of {check['n_parameters']} coordinates): "
             f"{'PASS' if check['passed'] else 'FAIL'}: UFLDL's ‖g_num − g‖/‖g_num + g‖ over all checked "
             f"coordinates = {error:.3e} {'<' if error < tolerance else '≥'} {tolerance:g}{kinked}")


def command_gradcheck(args: argparse.Namespace, out: Output) -> int:
    """``sparseae gradcheck``: the derivative check of one model; exit 0 on PASS, 1 on FAIL."""
    params: dict[str, Any] = {}
    data_options: dict[str, Any] = {}
    for assignment in args.set:
        path, value = parse_assignment(assignment)
        if path[0] == "model" and len(path) == 2:
            params[path[1]] = value
        elif path[0] == "data" and len(path) == 2 and args.data is not None:
            data_options[path[1]] = value
        else:
            raise ConfigError(f"gradcheck takes --set model.KEY=VALUE (and data.KEY=VALUE with --data), "
                              f"got {assignment!r}")
    if args.download:
        data_options["download"] = True
    n_components = params.pop("n_components", args.n_components)
    check_number(args.samples, "--samples", low=1, integer=True)
    check_number(args.tolerance, "--tolerance", low=0.0, low_inclusive=False)
    if args.max_checks is not None:
        check_number(args.max_checks, "--max-checks", low=1, integer=True)
    check_number(args.seed, "--seed", low=0, high=MAX_CLI_SEED, integer=True)
    rng = np.random.default_rng(args.seed)
    if args.data is not None:
        dataset = load_dataset(args.data, **data_options)
        if args.n_features is not None and args.n_features != dataset.n_features:
            raise DataError(f"--n-features {args.n_features} does not match dataset {args.data!r}, "
                            f"which has {dataset.n_features} features")
        rows = rng.choice(dataset.n_samples, size=min(args.samples, dataset.n_samples), replace=False)
        X = np.asarray(dataset.X[np.sort(rows)], dtype=np.float64)
        n_features = dataset.n_features
    else:
        n_features = 16 if args.n_features is None else args.n_features
        check_number(n_features, "--n-features", low=1, integer=True)
        try:
            X = rng.uniform(0.1, 0.9, size=(args.samples, n_features))
        except (MemoryError, ValueError):  # ValueError: more values than an array can index
            raise ConfigError(f"--samples {args.samples} × --n-features {n_features} values do not fit in "
                              "memory") from None
    check = gradient_check(args.model, n_features, n_components, params, X, epsilon=args.epsilon,
                           max_checks=args.max_checks, random_state=args.seed, tolerance=args.tolerance,
                           threads="auto" if args.threads is None else args.threads)
    report_gradcheck(out, check)
    shares = check["per_parameter_share"]
    if out.human and len(shares) > 1:
        squared = sum(share ** 2 for share in shares.values()) or 1.0
        out.table(((name, f"{share:.3e}  ({100 * share ** 2 / squared:.0f}% of the squared error)")
                   for name, share in shares.items()),
                  "per parameter, its part of that ratio (‖g_num − g‖ on its coordinates / ‖g_num + g‖ "
                  "on all; the squares add up):")
    out.json(check)
    return 0 if check["passed"] else 1


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``gradcheck`` subcommand."""
    gradcheck = commands.add_parser("gradcheck", parents=[common], help="float64 derivative check",
                                    description="Compare autograd's gradient with central differences "
                                                "in float64; exit 0 on PASS, 1 on FAIL.")
    gradcheck.add_argument("--model", default="sparse_ae_kl", help="model name (default sparse_ae_kl)")
    gradcheck.add_argument("--n-features", type=int, default=None, help="input size (default 16)")
    gradcheck.add_argument("--n-components", type=int, default=8, help="code size (default 8)")
    add_set(gradcheck, "model.sparsity_target=0.05")
    gradcheck.add_argument("--samples", type=int, default=10, help="data rows (default 10)")
    gradcheck.add_argument("--data", help="take the rows from this dataset instead of U[0.1, 0.9]")
    gradcheck.add_argument("--epsilon", type=float, default=1e-4, help="finite-difference step (1e-4)")
    gradcheck.add_argument("--max-checks", type=int, default=None, metavar="N",
                           help="check N random coordinates per parameter (default: all)")
    gradcheck.add_argument("--tolerance", type=float, default=UFLDL_TOLERANCE,
                           help=f"PASS threshold (default UFLDL's {UFLDL_TOLERANCE:g})")
    gradcheck.add_argument("--seed", type=int, default=0, help="seed of the data and the model")
    add_download(gradcheck)
    add_threads(gradcheck)
    gradcheck.set_defaults(handler=command_gradcheck)

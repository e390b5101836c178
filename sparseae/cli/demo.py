"""``sparseae demo``: the UFLDL sparse autoencoder exercise (gradient check, then training)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..config import DEMO_CONFIG, QUICK_DEMO_OVERRIDES, load_config, written_by
from ..data import load_dataset
from ..evaluate import orientation_selectivity, random_filter_baseline
from ..runs import execute as run_execute
from ..runs import folder as run_folder
from ..validation import check_number
from .common import add_set, add_threads, announce, flag_overrides, report_summary
from .gradcheck import gradient_check, report_gradcheck
from .output import Output

#: Coordinates checked per parameter by ``demo``'s gradient check (``--quick``: fewer).
DEMO_GRADCHECK_COORDINATES = 100
QUICK_DEMO_GRADCHECK_COORDINATES = 20


def command_demo(args: argparse.Namespace, out: Output) -> int:
    """``sparseae demo``: the UFLDL sparse autoencoder exercise (gradient check, then training).
    An earlier demo run in its folder is replaced, saying so; any other run only with ``--overwrite``."""
    config = load_config(base=DEMO_CONFIG)
    if args.quick:
        config = config.override(QUICK_DEMO_OVERRIDES)
    config = config.override(list(args.set)).override(flag_overrides(args)).validate()
    earlier = _earlier_demo(config.output_dir) if not (args.resume or args.overwrite) else None
    overwrite = args.overwrite or earlier is not None
    run_folder.check_run_dir(config.output_dir, resume=args.resume, overwrite=overwrite)  # before any work
    if earlier is not None:
        out.line(f"Replacing the earlier demo run ({earlier}) in {config.output_dir}: a demo replaces only "
                 "its own runs")
    params = config.model_params
    out.line("UFLDL sparse autoencoder exercise: 8×8 whitened natural-image patches, "
             f"{config.n_components} sigmoid units, ρ = {params.get('sparsity_target')}, "
             f"β = {params.get('sparsity_weight')}, λ = {params.get('weight_decay')}")
    if config.data_name == "patches":
        patch_size = config.data_options.get("patch_size", 8)
        check_number(patch_size, "data.patch_size", low=1, integer=True)
        n_features = patch_size ** 2
    else:
        n_features = load_dataset(config.data_name, **config.data_options).n_features
    # UFLDL checks the gradient on a few samples (here 10 in [0.1, 0.9], the data's range) before
    # training; a random subset of each parameter's coordinates keeps it to about a second.
    X = np.random.default_rng(0).uniform(0.1, 0.9, size=(10, n_features))
    coordinates = QUICK_DEMO_GRADCHECK_COORDINATES if args.quick else DEMO_GRADCHECK_COORDINATES
    check = gradient_check(config.model_name, n_features, config.n_components, params, X,
                           max_checks=coordinates, threads=config.train_config().threads)
    report_gradcheck(out, check)
    summary = run_execute.execute_run(config, resume=args.resume, overwrite=overwrite, progress=out.human,
                                      announce=announce(out), command=run_folder.DEMO_COMMAND)
    metrics = summary["metrics"]
    if "sparsity_target" in metrics:
        out.line(f"Mean activation ρ̂ = {metrics['rho_hat_mean']:.4g} "
                 f"(target ρ = {metrics['sparsity_target']:g}; units from {metrics['rho_hat_min']:.3g} "
                 f"to {metrics['rho_hat_max']:.3g})")
    if "orientation_selectivity" in metrics and summary["image_shape"]:
        shape = tuple(summary["image_shape"])
        baseline = float(orientation_selectivity(random_filter_baseline(1000, shape), shape).mean())
        out.line(f"Filter orientation selectivity = {metrics['orientation_selectivity']:.3f} "
                 f"(white-noise filters: {baseline:.3f}; a straight edge: 1)")
    report_summary(out, summary)
    if summary["plots"]:
        out.line(f"Look at {Path(summary['run_dir']) / 'filters.png'}: the UFLDL exercise expects "
                 "localized, oriented edge detectors.")
    out.json({"gradcheck": check, "summary": summary, "replaced_demo_run": earlier})
    return 0 if check["passed"] else 1


def _earlier_demo(folder: Path) -> str | None:
    """``"finished"`` or ``"unfinished"`` when ``folder`` holds a run ``sparseae demo`` wrote (and
    nothing else), else None."""
    if (run_folder.run_dir_state(folder) != "run"
            or written_by(folder / run_folder.CONFIG_NAME) != run_folder.DEMO_COMMAND):
        return None
    return "finished" if (folder / run_folder.SUMMARY_NAME).exists() else "unfinished"


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``demo`` subcommand."""
    demo = commands.add_parser("demo", parents=[common], help="the UFLDL sparse autoencoder exercise",
                               description="Gradient check, then 400 L-BFGS iterations of a 64-25-64 "
                                           "sparse autoencoder (ρ=0.01, β=3, λ=1e-4) on 10,000 whitened "
                                           "8×8 natural-image patches; writes filters.png and friends.")
    demo.add_argument("--out", metavar="DIR", help="run folder (default runs/demo)")
    demo.add_argument("--quick", action="store_true", help="2,000 patches and 40 iterations")
    demo.add_argument("--resume", action="store_true", help="continue the demo run in DIR")
    demo.add_argument("--overwrite", action="store_true", help="replace a previous demo run in DIR")
    demo.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    add_set(demo, "train.lbfgs_max_iter=800")
    add_threads(demo, " (train.threads)")
    demo.set_defaults(handler=command_demo)

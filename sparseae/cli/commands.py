"""The ``sparseae`` subcommands: each is ``command(args, out) -> exit status``.

They raise :class:`~sparseae.errors.SparseAEError` for anything the user can fix;
:func:`sparseae.cli.main` turns that into one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import distributed
from ..config import (
    DEMO_CONFIG,
    QUICK_DEMO_OVERRIDES,
    RunConfig,
    load_config,
    parse_assignment,
    read_run_config,
    written_by,
)
from ..data import DATASETS, load_dataset
from ..errors import ConfigError, DataError
from ..evaluate import orientation_selectivity, random_filter_baseline
from ..gradcheck import UFLDL_TOLERANCE, check_gradients
from ..io import load_model, read_config
from ..models import MODELS, create_model
from ..runs import data as run_data
from ..runs import execute as run_execute
from ..runs import folder as run_folder
from ..runs import metrics as run_metrics
from ..runs import plots as run_plots
from ..train.loggers import check_logger_names
from ..validation import check_number
from . import harvest, recipes
from .output import Output, describe_phases, display_width, plain_text, plural

#: Coordinates checked per parameter by ``demo``'s gradient check (``--quick``: fewer).
DEMO_GRADCHECK_COORDINATES = 100
QUICK_DEMO_GRADCHECK_COORDINATES = 20
#: The largest ``--seed`` (scikit-learn's estimators, which the probe uses, take seeds below 2**32).
MAX_CLI_SEED = 2**32 - 1


def _flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--out``, ``--device``, ``--threads`` and ``--download`` as config changes (not parsed as YAML)."""
    changes: dict[str, Any] = {}
    if getattr(args, "download", False):
        changes["data.download"] = True
    if getattr(args, "out", None) is not None:
        changes["output.dir"] = str(args.out)
    if getattr(args, "device", None) is not None:
        changes["train.device"] = args.device
    if getattr(args, "threads", None) is not None:
        changes["train.threads"] = args.threads
    if getattr(args, "log_to", None) is not None:
        changes["train.loggers"] = check_logger_names(args.log_to, "--log-to")
    return changes


# ------------------------------------------------------------------------------------ train

def _announce(out: Output):
    """The run's header: model, data, device, and its phases with their epochs (as the bars name them)."""
    def announce(facts: dict[str, Any]) -> None:
        verb = "Resuming" if facts["resume"] else "Training"
        out.line(f"{verb} {facts['model']} on {facts['data']} ({plural(facts['n_train'], 'sample')} × "
                 f"{plural(facts['n_features'], 'feature')}) → {plural(facts['n_components'], 'unit')} on "
                 f"{facts['device']}: {describe_phases(facts['phases'])}; run folder {facts['run_dir']}")
    return announce


def _report_summary(out: Output, summary: dict[str, Any], title: str = "Results") -> None:
    out.metrics_table(summary["metrics"], f"{title} (on {summary['eval_data']}, {summary['n_eval']} samples)",
                      extra=[("epochs", summary["epochs"]), ("stop reason", summary["stop_reason"]),
                             ("final loss", summary["final_loss"]),
                             ("training time (s)", round(summary["train_seconds"], 2))])
    out.line(f"Model saved to {Path(summary['run_dir']) / run_folder.MODEL_NAME}")
    if summary["plots"]:
        names = ", ".join(Path(path).name for path in summary["plots"])
        out.line(f"Pictures in {summary['run_dir']}: {names}")


def command_train(args: argparse.Namespace, out: Output) -> int:
    """``sparseae train``: train a config into a run folder. Under ``torchrun`` (``WORLD_SIZE`` > 1)
    every rank trains its share of each batch with DistributedDataParallel; only rank 0 prints
    and writes."""
    joined = distributed.init_from_environment()
    finished = False
    try:
        status = _train(args, Output("quiet") if joined and not distributed.is_primary() else out)
        finished = True
        return status
    finally:
        if joined:
            distributed.shutdown(wait=finished)  # on an error the other ranks may never arrive


def _train(args: argparse.Namespace, out: Output) -> int:
    base = None
    with_recipe = recipes.uses_recipe(args)
    if args.config is None and args.resume and args.model is None and args.data is None and not with_recipe:
        if args.out is None:
            raise ConfigError("--resume without a CONFIG needs --out RUN_DIR: the run to continue")
        run_folder.check_run_dir(Path(args.out), resume=True, overwrite=False)
        if (Path(args.out) / run_folder.CONFIG_NAME).exists():
            base = read_run_config(Path(args.out) / run_folder.CONFIG_NAME)
    config = recipes.recipe_config(args) if with_recipe else \
        load_config(args.config, model=args.model, data=args.data, assignments=args.set, base=base)
    config = config.override(_flag_overrides(args)).validate()
    summary = run_execute.execute_run(config, resume=args.resume, overwrite=args.overwrite, progress=out.human,
                               announce=_announce(out))
    if not distributed.is_primary():
        return 0  # rank 0 reports
    _report_summary(out, summary)
    if with_recipe:
        summary = recipes.report_recipe(out, args, summary)  # ours beside the published figure
    out.json(summary)
    return 0


# ------------------------------------------------------------------------------------- demo

def command_demo(args: argparse.Namespace, out: Output) -> int:
    """``sparseae demo``: the UFLDL sparse autoencoder exercise (gradient check, then training).
    An earlier demo run in its folder is replaced, saying so; any other run only with ``--overwrite``."""
    config = load_config(base=DEMO_CONFIG)
    if args.quick:
        config = config.override(QUICK_DEMO_OVERRIDES)
    config = config.override(list(args.set)).override(_flag_overrides(args)).validate()
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
    _report_gradcheck(out, check)
    summary = run_execute.execute_run(config, resume=args.resume, overwrite=overwrite, progress=out.human,
                               announce=_announce(out), command=run_folder.DEMO_COMMAND)
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
    _report_summary(out, summary)
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


# ---------------------------------------------------------------------------------- gradcheck

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


def _report_gradcheck(out: Output, check: dict[str, Any]) -> None:
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
    _report_gradcheck(out, check)
    shares = check["per_parameter_share"]
    if out.human and len(shares) > 1:
        squared = sum(share ** 2 for share in shares.values()) or 1.0
        out.table(((name, f"{share:.3e}  ({100 * share ** 2 / squared:.0f}% of the squared error)")
                   for name, share in shares.items()),
                  "per parameter, its part of that ratio (‖g_num − g‖ on its coordinates / ‖g_num + g‖ "
                  "on all; the squares add up):")
    out.json(check)
    return 0 if check["passed"] else 1


# --------------------------------------------------------------------------- evaluate / plot

def _config_for(model_dir: Path, run_dir: Path | None, args: argparse.Namespace, model: Any = None) -> RunConfig:
    """The run's config (or one naming the saved model, or a SAELens folder's model and the data of
    the run it was exported from), with ``--data``/``--set``/``--download``."""
    from ..interop.saelens import evaluation_base, is_saelens_folder

    if run_dir is not None and (run_dir / run_folder.CONFIG_NAME).exists():
        base = read_run_config(run_dir / run_folder.CONFIG_NAME)
    elif model is not None and run_dir is None and is_saelens_folder(model_dir):
        base = evaluation_base(model_dir, model, data_given=args.data is not None)
    else:
        saved = read_config(model_dir)
        base = {"model": {"name": saved["model"], "n_components": saved["params"].get("n_components")}}
    config = load_config(base=base, data=args.data, assignments=args.set)
    changes = _flag_overrides(argparse.Namespace(download=args.download))
    return config.override(changes).validate()


def _load(args: argparse.Namespace, path: str, out: Output | None = None
          ) -> tuple[Any, RunConfig, Path | None, Path]:
    """The model, on ``--device``, else on the run's device when this machine has it, else on the
    CPU (saying so on ``out``: :func:`run_data.evaluation_device`); its config; the folders."""
    model_dir, run_dir = run_folder.locate_model(path)
    model = load_model(model_dir)
    config = _config_for(model_dir, run_dir, args, model)
    device, note = run_data.evaluation_device(args.device, config.train.get("device", "auto"))
    if note is not None and out is not None:
        out.line(note)
    model.to(device)
    return model, config, run_dir, model_dir


def _datasets_for(model: Any, config: RunConfig):
    train_set, eval_set = run_data.load_datasets(config)
    if eval_set.n_features != model.n_features:
        raise DataError(f"dataset {config.data_name!r} has {eval_set.n_features} features, but the model "
                        f"expects {model.n_features}")
    return train_set, eval_set


def command_evaluate(args: argparse.Namespace, out: Output) -> int:
    """``sparseae evaluate``: the metrics of a saved model (or a run's model) on data."""
    model, config, run_dir, model_dir = _load(args, args.path, out)
    train_set, eval_set = _datasets_for(model, config)
    with out.progress(eval_set.n_samples, "encode", "sample") as bar:
        metrics = run_metrics.compute_metrics(model, train_set, eval_set, progress=bar.update,
                                             random_state=config.train.get("random_state", 0),
                                             pretrained=run_folder.pretrained_first_layer(run_dir, model))
    eval_name = "train" if eval_set is train_set else run_data.describe_data(config)
    result = {"model_dir": str(model_dir), "model": model.spec["name"], "n_features": model.n_features,
              "n_components": model.n_components, "data": config.data_name, "eval_data": eval_name,
              "n_eval": eval_set.n_samples, "metrics": metrics}
    out.metrics_table(metrics, f"{model.spec['name']} ({model_dir}) on {config.data_name} "
                               f"[{eval_name}, {eval_set.n_samples} samples]")
    provenance = run_data.data_provenance(config)
    if provenance is not None:
        result["provenance"] = provenance
        out.line(f"data harvested from {provenance['model']} ({provenance['model_class']}), "
                 f"{provenance['hook_module']} {provenance['position']}: {provenance['n_tokens']} tokens")
    spliced = harvest.spliced_section(args, out, model, config, train_set, provenance)
    if spliced is not None:
        result.update({key: value for key, value in spliced.items() if key != "provenance"})
    out.json(result)
    return 0


def command_plot(args: argparse.Namespace, out: Output) -> int:
    """``sparseae plot``: the PNGs of a run folder, holding the lock of the run folder they go into
    (refused while a training writes there: see :mod:`sparseae.locking`)."""
    target = Path(args.out) if args.out is not None else run_folder.locate_model(args.run_dir)[1]
    with run_folder.lock_if_run_dir(target, "sparseae plot"):
        return _plot(args, out)


def _plot(args: argparse.Namespace, out: Output) -> int:
    model, config, run_dir, model_dir = _load(args, args.run_dir, out)
    if args.out is None and run_dir is None:
        raise ConfigError(f"{model_dir} is a saved model, not a run folder: pass --out DIR for the pictures")
    out_dir = Path(args.out) if args.out is not None else run_dir
    history = run_folder.read_history(run_dir) if run_dir is not None else []
    _, eval_set = _datasets_for(model, config)
    random_state = config.train.get("random_state", 0)
    paths = run_plots.write_plots(model, history, eval_set, out_dir, random_state=random_state)
    for path in paths:
        out.line(f"wrote {path}")
    out.json({"plots": [str(path) for path in paths]})
    return 0


def command_report(args: argparse.Namespace, out: Output) -> int:
    """``sparseae report``: one self-contained HTML page of a run folder, or of two side by side."""
    from ..report import write_report

    runs_shown = [args.run_dir] + ([args.other_run_dir] if args.other_run_dir is not None else [])
    stale: list[str] = []  # runs whose pictures could not be drawn now: said, never silent
    folder = Path(args.run_dir if args.out is None else args.out)  # where the page goes
    locked = folder if args.out is None or folder.is_dir() else folder.parent
    with run_folder.lock_if_run_dir(locked, "sparseae report"):
        path = write_report(args.run_dir, args.other_run_dir, out=args.out, device=args.device, warn=stale.append)
    for line in stale:
        out.line(f"Warning: {line}")
    out.line(f"Report written to {path} (a single file: open it in a browser, no network needed)")
    out.json({"report": str(path), "runs": [str(Path(run)) for run in runs_shown], "bytes": path.stat().st_size,
              "stale_pictures": stale})
    return 0


# ------------------------------------------------------------------------------------ probe

def command_probe(args: argparse.Namespace, out: Output) -> int:
    """``sparseae probe``: self-taught learning — a logistic regression on a trained model's codes
    of labelled data (split into a training and a test part), beside the same probe on raw inputs."""
    from ..evaluate.probe import split_probe

    check_number(args.test_fraction, "--test-fraction", low=0.0, high=1.0, low_inclusive=False,
                 high_inclusive=False)
    check_number(args.C, "--C", low=0.0, low_inclusive=False)
    check_number(args.seed, "--seed", low=0, high=MAX_CLI_SEED, integer=True)
    model, config, _, model_dir = _load(args, args.path, out)
    dataset, _ = _datasets_for(model, config)
    if dataset.y is None:
        raise DataError(f"dataset {config.data_name!r} has no labels: the probe needs labelled data")
    X = np.asarray(dataset.X)
    with out.progress(dataset.n_samples, "encode", "sample") as bar:
        codes, _ = run_metrics.encode_decode(model, X, decode=False, progress=bar.update)
    probe = split_probe(codes, dataset.y, X_raw=X if args.compare_raw else None, test_fraction=args.test_fraction,
                        C=args.C, random_state=args.seed)  # the recipes' `probe` evaluation too
    result = {"model_dir": str(model_dir), "model": model.spec["name"], "data": run_data.describe_data(config),
              "n_train": probe["n_train"], "n_test": probe["n_test"], "n_components": model.n_components,
              "accuracy": probe["accuracy"], "train_accuracy": probe["train_accuracy"]}
    rows = [(f"probe on {model.spec['name']} codes ({model.n_components})", probe["accuracy"])]
    if args.compare_raw:
        result["raw_accuracy"] = probe["raw_accuracy"]
        rows.append((f"probe on raw inputs ({dataset.n_features})", probe["raw_accuracy"]))
    out.line(f"Linear probe (logistic regression, C={args.C:g}) on {result['data']}: "
             f"{probe['n_train']} training and {probe['n_test']} test samples")
    out.table(((name, f"{100 * accuracy:.2f}%") for name, accuracy in rows), "test accuracy:")
    out.json(result)
    return 0


# ----------------------------------------------------------------------- models / datasets

#: The arguments every model builder needs (:func:`~sparseae.models.create_model`).
MODEL_ARGUMENTS = {"n_features": "input size (a run takes it from its data)",
                   "n_components": "code size (a run config's model.n_components, default 64)"}
#: Columns of a one-line listing.
LISTING_WIDTH = 100


def _describe_builder(builder: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    doc = inspect.getdoc(builder) or ""
    parameters, required = {}, []
    for name, parameter in inspect.signature(builder).parameters.items():
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
        if name in skip:
            continue
        parameters[name] = ("(required)" if parameter.default is inspect.Parameter.empty
                            else parameter.default)
    paragraphs = [plain_text(part) for part in doc.split("\n\n") if part.strip()]
    return {"description": paragraphs[0] if paragraphs else "", "details": paragraphs[1:],
            "required": required, "parameters": parameters}


def _list(out: Output, kind: str, entries: dict[str, dict[str, Any]]) -> int:
    for name, entry in entries.items():
        out.line(f"{name}" + (f" — {entry['description']}" if entry["description"] else ""))
        for parameter, default in entry["parameters"].items():
            shown = "(required)" if default == "(required)" else f"= {default!r}"
            out.line(f"    {parameter} {shown}")
    out.json({kind: entries})
    return 0


def _first_sentence(text: str, width: int) -> str:
    """The first sentence of ``text``, cut at a word to at most ``width`` columns (with …)."""
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text, maxsplit=1)[0]
    if display_width(sentence) <= width:
        return sentence
    cut = sentence[:width - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(",;:—- ") + "…"


def command_models(args: argparse.Namespace, out: Output) -> int:
    """``sparseae models``: one line per registered model; ``sparseae models NAME``: that model's
    description, its required arguments and its parameters with their defaults."""
    names = MODELS.names() if args.name is None else [args.name]
    entries = {name: _describe_builder(MODELS.get(name), skip=tuple(MODEL_ARGUMENTS)) for name in names}
    if args.name is None:
        out.line(f"{plural(len(names), 'model')}; every one needs {' and '.join(MODEL_ARGUMENTS)}, "
                 "and sparseae models NAME lists its other parameters:")
        column = max(display_width(name) for name in names)
        for name, entry in entries.items():
            room = LISTING_WIDTH - column - 4
            out.line(f"  {name}{' ' * (column - display_width(name))}  {_first_sentence(entry['description'], room)}")
    else:
        entry = entries[args.name]
        out.line(f"{args.name} — {entry['description']}")
        for paragraph in entry["details"]:
            out.line()
            out.line(textwrap.fill(paragraph, LISTING_WIDTH))
        rows = [(name, f"(required) {MODEL_ARGUMENTS.get(name, '')}".rstrip()) for name in entry["required"]]
        rows += [(name, f"= {default!r}") for name, default in entry["parameters"].items()]
        out.line()
        out.table(rows, "arguments (create_model(NAME, n_features, n_components, **parameters); in a run "
                        "config: model.KEY):")
    out.json({"models": entries})
    return 0


def command_datasets(args: argparse.Namespace, out: Output) -> int:
    """``sparseae datasets``: every registered dataset with its options."""
    return _list(out, "datasets", {name: _describe_builder(DATASETS.get(name)) for name in DATASETS.names()})

"""``sparseae evaluate``: the metrics of a saved model (or a run folder's model) on data."""
from __future__ import annotations

import argparse

from ..runs import data as run_data
from ..runs import folder as run_folder
from ..runs import metrics as run_metrics
from . import harvest
from .common import READ_DEVICE, add_download, add_set, add_threads, datasets_for, load_trained
from .output import Output


def command_evaluate(args: argparse.Namespace, out: Output) -> int:
    """``sparseae evaluate``: the metrics of a saved model (or a run's model) on data."""
    model, config, run_dir, model_dir = load_trained(args, args.path, out)
    train_set, eval_set = datasets_for(model, config)
    with out.progress(eval_set.n_samples, "encode", "sample") as bar:
        metrics = run_metrics.compute_metrics(model, train_set, eval_set, progress=bar.update,
                                             random_state=config.train.get("random_state", 0),
                                             pretrained=run_folder.pretrained_first_layer(run_dir, model),
                                             firing_rates=True)
    rates = metrics.pop("firing_rates", None)  # per latent (an SAE's): counted on a line of its own
    eval_name = "train" if eval_set is train_set else run_data.describe_data(config)
    result = {"model_dir": str(model_dir), "model": model.spec["name"], "n_features": model.n_features,
              "n_components": model.n_components, "data": config.data_name, "eval_data": eval_name,
              "n_eval": eval_set.n_samples, "metrics": metrics}
    out.metrics_table(metrics, f"{model.spec['name']} ({model_dir}) on {config.data_name} "
                               f"[{eval_name}, {eval_set.n_samples} samples]")
    if rates is not None:
        result.update(firing=run_metrics.firing_counts(rates), firing_rates=rates)
        out.line(run_metrics.describe_firing(result["firing"]))
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


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``evaluate`` subcommand."""
    evaluate = commands.add_parser("evaluate", parents=[common], help="metrics of a trained model",
                                   description="Reconstruction, sparsity and probe metrics of a saved "
                                               "model or a run folder's model.")
    evaluate.add_argument("path", metavar="MODEL_DIR_or_RUN_DIR")
    evaluate.add_argument("--data", help="evaluate on this dataset instead of the run's")
    add_set(evaluate, "data.split=test")
    evaluate.add_argument("--device", help=READ_DEVICE)
    add_download(evaluate)
    add_threads(evaluate)
    harvest.add_evaluate_options(evaluate)
    evaluate.set_defaults(handler=command_evaluate)

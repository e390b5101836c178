"""The run layer: train a config into a run folder, and read one back.

Below the CLI, the estimators' neighbours and the report, above the trainer:

* :mod:`.folder`: the run-folder layout and names, checking/clearing one, :func:`locate_model`,
  :func:`read_history`
* :mod:`.data`: :func:`load_datasets`, :func:`describe_data`, :func:`evaluation_device`
* :mod:`.metrics`: :func:`compute_metrics` (summary.json, ``evaluate``, the report)
* :mod:`.plots`: :func:`write_plots`, :func:`write_curves`
* :mod:`.procedures`: each model family's training procedure by name (:data:`PROCEDURES`)
* :mod:`.execute`: :func:`execute_run`, "train this config into this folder"
"""
from .data import describe_data, evaluation_device, load_datasets
from .execute import execute_run
from .folder import (
                     CONFIG_NAME,
                     METRICS_NAME,
                     MODEL_NAME,
                     PLOT_NAMES,
                     PRETRAIN_DIR,
                     REPORT_NAME,
                     SUMMARY_NAME,
                     is_run_dir,
                     locate_model,
                     read_history,
)
from .metrics import compute_metrics
from .plots import write_curves, write_plots
from .procedures import PROCEDURES, training_phases

__all__ = ["CONFIG_NAME", "METRICS_NAME", "MODEL_NAME", "PLOT_NAMES", "PRETRAIN_DIR", "PROCEDURES", "REPORT_NAME",
           "SUMMARY_NAME", "compute_metrics", "describe_data", "evaluation_device", "execute_run", "is_run_dir",
           "load_datasets", "locate_model", "read_history", "training_phases", "write_curves", "write_plots"]

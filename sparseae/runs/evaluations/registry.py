"""The registry of evaluations: :data:`EVALUATIONS`, :func:`register_evaluation`, the check of a recipe's
``evaluate`` mapping (:func:`check_evaluation`) and :func:`run_evaluation`, which loads a finished run
(:class:`FinishedRun`) and merges the metrics into its summary.json."""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...config import RunConfig, read_run_config
from ...errors import ConfigError
from ...io import load_model
from ..folder import CONFIG_NAME, MODEL_NAME, SUMMARY_NAME

__all__ = ["EVALUATIONS", "Evaluation", "FinishedRun", "register_evaluation", "check_evaluation",
           "load_finished_run", "run_evaluation"]


@dataclass(frozen=True)
class FinishedRun:
    """A trained run as an evaluation sees it: its folder, model (eval mode, CPU), config, and
    whether it is a recipe's quick variant."""

    run_dir: Path
    model: torch.nn.Module
    config: RunConfig
    quick: bool = False


@dataclass(frozen=True)
class Evaluation:
    """A registered evaluation: ``function(run, **params) -> {metric: value}`` and its metric names."""

    name: str
    function: Callable[..., dict[str, float]]
    metrics: tuple[str, ...]

    @property
    def parameters(self) -> dict[str, inspect.Parameter]:
        """The keyword parameters a recipe may set (the function's, less ``run``)."""
        return {name: p for name, p in inspect.signature(self.function).parameters.items() if name != "run"}


#: Every registered evaluation, by name.
EVALUATIONS: dict[str, Evaluation] = {}


def register_evaluation(name: str, *, metrics: tuple[str, ...]) -> Callable:
    """Decorator: register ``function(run, **params)`` as the evaluation ``name`` returning ``metrics``."""
    def register(function: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
        if name in EVALUATIONS:
            raise ValueError(f"evaluation {name!r} is registered twice")
        EVALUATIONS[name] = Evaluation(name, function, tuple(metrics))
        return function
    return register


def check_evaluation(spec: Any, where: str) -> tuple[Evaluation, dict[str, Any]]:
    """The evaluation and parameters of a recipe's ``evaluate`` mapping (``{name: NAME, <params>}``);
    :class:`ConfigError` naming the problem (not a mapping, unknown name or parameter, a missing one)."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"{where} must be a mapping {{name: EVALUATION, <params>}}; known evaluations: "
                          f"{', '.join(sorted(EVALUATIONS))}")
    if spec["name"] not in EVALUATIONS:
        raise ConfigError(f"{where}: unknown evaluation {spec['name']!r}; known: {', '.join(sorted(EVALUATIONS))}")
    evaluation = EVALUATIONS[spec["name"]]
    params = {key: value for key, value in spec.items() if key != "name"}
    known = evaluation.parameters
    unknown = [str(key) for key in params if key not in known]
    if unknown:
        raise ConfigError(f"{where}: evaluation {evaluation.name!r} has no parameter {unknown[0]!r}; its "
                          f"parameters: {', '.join(known) or 'none'}")
    missing = [key for key, p in known.items() if p.default is inspect.Parameter.empty and key not in params]
    if missing:
        raise ConfigError(f"{where}: evaluation {evaluation.name!r} needs {', '.join(missing)}")
    return evaluation, params


def load_finished_run(run_dir: str | Path, *, quick: bool = False) -> FinishedRun:
    """The finished run in ``run_dir`` (its config.yaml and model/) as an evaluation sees it."""
    run_dir = Path(run_dir)
    config = RunConfig.from_dict(read_run_config(run_dir / CONFIG_NAME), source=str(run_dir / CONFIG_NAME))
    return FinishedRun(run_dir, load_model(run_dir / MODEL_NAME).eval(), config.validate(), quick)


def run_evaluation(spec: Mapping[str, Any], run_dir: str | Path, *, quick: bool = False) -> dict[str, float]:
    """Run the evaluation ``spec`` on the finished run in ``run_dir``; its metrics, also merged into
    the run's summary.json. A declared metric it did not return is an error (never silently absent)."""
    import json

    from ...io import write_json_atomic

    evaluation, params = check_evaluation(spec, "evaluate")
    run_dir = Path(run_dir)
    metrics = evaluation.function(load_finished_run(run_dir, quick=quick), **params)
    missing = [name for name in evaluation.metrics if name not in metrics]
    if missing:
        raise RuntimeError(f"evaluation {evaluation.name!r} did not compute {', '.join(missing)}")
    summary_file = run_dir / SUMMARY_NAME
    if summary_file.exists():
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        summary["metrics"] = {**summary.get("metrics", {}), **metrics}
        write_json_atomic(summary_file, summary)
    return dict(metrics)

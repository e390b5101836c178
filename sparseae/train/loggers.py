"""Experiment tracking as trainer callbacks: TensorBoard, MLflow (a local file store) and Weights &
Biases (offline). Each logs the run's config as parameters, every epoch record's numbers at step
``epoch``, and the final summary's numbers.

``train.loggers: [tensorboard, mlflow, wandb]`` (or ``sparseae train --log-to``) names them; each
needs its optional extra (``pip install "sparseae[tensorboard]"``). Everything is written inside the
run folder: ``RUN/tensorboard/``, ``RUN/mlruns/`` (tracking URI ``file:RUN/mlruns``), ``RUN/wandb/``.

A run keeps its tracking runs' ids in ``RUN/tracking.json`` (:data:`TRACKING_FILE`); a resumed
run (``--resume``) continues them: the same MLflow run (``run_id``), the same W&B run (``id``,
``resume="allow"``, offline), TensorBoard's event files in the same ``RUN/tensorboard/``.

A run (:func:`sparseae.runs.execute_run`) opens its loggers once (:func:`run_loggers`), so every
training phase reaches them: the phase whose history is the run's ``metrics.jsonl`` (``train`` or
``fine-tune``) logs its records' names as they are, an earlier phase (``pretrain``, ``pretrain
layer k/n``) under ``<phase>/`` (e.g. ``pretrain/train_loss``). :func:`sparseae.train.train`
called on its own opens ``config.loggers`` in its ``run_dir`` for that call.
"""
from __future__ import annotations

import abc
import contextlib
import contextvars
import importlib.util
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .trainer import Callback

#: Logger name → (the module it imports, the pip extra that installs it).
LOGGER_PACKAGES: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
}
#: The phases whose records are the run's ``metrics.jsonl`` (logged without a prefix).
MAIN_PHASES = ("train", "fine-tune")
#: In the run folder: the tracking runs' ids (what a resume continues), and each logger's folder.
TRACKING_FILE = "tracking.json"
LOGGER_DIRS = ("tensorboard", "mlruns", "wandb")


def check_logger_names(names: Any, where: str = "train.loggers") -> list[str]:
    """``names`` as a list of known logger names (a string is one name, or several joined by
    commas); :class:`ConfigError` for an unknown or repeated name or a value of another type."""
    if isinstance(names, str):
        names = [part.strip() for part in names.split(",") if part.strip()]
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"{where} must be a list of logger names ({', '.join(LOGGER_PACKAGES)}), got {names!r}")
    for name in names:
        if name not in LOGGER_PACKAGES:
            raise ConfigError(f"unknown logger {name!r} in {where}; known: {', '.join(LOGGER_PACKAGES)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{where} names {', '.join(repeated)} more than once")
    return list(names)


def check_logger_installed(name: str) -> None:
    """:class:`ConfigError` naming the pip extra when logger ``name``'s package is not installed."""
    module, extra = LOGGER_PACKAGES[name]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"logger {name!r} needs the {module} package: pip install \"sparseae[{extra}]\"")


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level, keys joined by ``.`` (``{"train": {"lr": 1}}`` → ``{"train.lr": 1}``)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite real numbers of ``values`` (flattened; booleans and text left out) as floats."""
    return {key: float(value) for key, value in flatten(values).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


class Logger(Callback, abc.ABC):
    """A tracking backend as a trainer callback. Subclasses write :meth:`log_params`,
    :meth:`log_metrics` and :meth:`close`; :meth:`on_epoch_end` logs the record's numbers (all but
    ``epoch``) at step ``epoch``, and :meth:`log_summary` the summary's numbers under ``summary/``."""

    name = ""
    prefix = ""  # set on a phase's view (see :meth:`for_phase`)
    failed = False  # set when the run stopped with an error or an interrupt: closed as such
    tracking_id: str | None = None  # the backend's run id (kept in tracking.json for a resume)

    @abc.abstractmethod
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's parameters (its config, nested by section; :func:`flatten` joins the keys)."""

    @abc.abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record ``metrics`` (name → number) at ``step``."""

    def close(self) -> None:
        """Flush and release the backend (idempotent)."""

    def on_epoch_end(self, epoch: int, record: dict[str, float], model: torch.nn.Module) -> None:
        self.log_metrics({f"{self.prefix}{k}": v for k, v in numbers(record).items() if k != "epoch"}, epoch)

    def log_summary(self, summary: Mapping[str, Any], step: int) -> None:
        """``summary``'s numbers (nested keys joined by ``.``) as ``summary/<key>`` at ``step``."""
        self.log_metrics({f"summary/{k}": v for k, v in numbers(summary).items()}, step)

    def for_phase(self, phase: str) -> Logger:
        """This logger for training phase ``phase`` (a progress label): itself for the run's main
        phase, else a view whose metric names start with ``<phase>/``."""
        if phase in MAIN_PHASES:
            return self
        view = _PhaseView(self)
        view.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", phase).strip("_") + "/"
        return view


class _PhaseView(Logger):
    def __init__(self, target: Logger) -> None:
        self.target = target

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.target.log_params(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.target.log_metrics(metrics, step)


class TensorBoardLogger(Logger):
    """Event files in ``log_dir`` (``torch.utils.tensorboard.SummaryWriter``): each number a
    scalar (float32, as TensorBoard stores them), the params as the text ``config`` (JSON)."""

    name = "tensorboard"

    def __init__(self, log_dir: str | Path) -> None:
        check_logger_installed("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_params(self, params: Mapping[str, Any]) -> None:
        text = json.dumps(flatten(params), indent=1, sort_keys=True, default=str)
        self.writer.add_text("config", text, global_step=0)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowLogger(Logger):
    """One MLflow run in experiment ``experiment`` of the tracking store ``tracking_uri``
    (default ``file:<run folder>/mlruns``, a local file store; nothing leaves the machine). The
    params are the config flattened (``train.learning_rate``), values as text."""

    name = "mlflow"

    def __init__(self, tracking_uri: str, experiment: str = "sparseae", run_name: str | None = None,
                 run_id: str | None = None) -> None:
        check_logger_installed("mlflow")
        if tracking_uri.startswith("file:"):  # MLflow 3 refuses its file store unless this is set
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            root = Path(tracking_uri.removeprefix("file:"))
            if not root.exists():
                # laid out here: MLflow caches a store per URI, and the cached one of a folder removed
                # since (an --overwrite in this process) would not lay it out again
                from mlflow.store.tracking.file_store import FileStore

                FileStore(str(root))
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.logged_params: set[str] = set()
        self.run_id = self._reopen(run_id) if run_id else None
        if self.run_id is None:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
            self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        self.tracking_id = self.run_id
        self.closed = False

    def _reopen(self, run_id: str) -> str | None:
        """``run_id`` set running again (a resumed run), or None when the store no longer has it."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return None
        if run.info.lifecycle_stage != "active":
            return None
        self.client.update_run(run_id, status="RUNNING")
        self.logged_params = set(run.data.params)  # MLflow refuses to change a logged param
        return run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, json.dumps(value, default=str) if not isinstance(value, str) else value)
                 for key, value in flatten(params).items() if key not in self.logged_params]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start:start + 1000])

    def close(self) -> None:
        if not self.closed:
            self.client.set_terminated(self.run_id, status="KILLED" if self.failed else "FINISHED")
            self.closed = True


class WandbLogger(Logger):
    """A Weights & Biases run in offline mode (``WANDB_MODE=offline``: nothing is sent; ``wandb
    sync`` can upload it later), written under ``directory/wandb/``. The params are the run's
    config (nested as given); the summary numbers also go to the run's summary."""

    name = "wandb"

    def __init__(self, directory: str | Path, project: str = "sparseae", run_name: str | None = None,
                 run_id: str | None = None) -> None:
        check_logger_installed("wandb")
        os.environ.setdefault("WANDB_SILENT", "true")  # no banner lines from an offline run
        import wandb

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        resumed = {"id": run_id, "resume": "allow"} if run_id else {}  # a resume: the same run (same id)
        self.run = wandb.init(project=project, dir=str(self.directory), name=run_name, mode="offline",
                              reinit="create_new", settings=wandb.Settings(silent=True, console="off"), **resumed)
        self.tracking_id = self.run.id
        self.closed = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.config.update(dict(params), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def log_summary(self, summary: Mapping[str, Any], step: int) -> None:
        super().log_summary(summary, step)
        for key, value in numbers(summary).items():
            self.run.summary[f"summary/{key}"] = value

    def close(self) -> None:
        if not self.closed:
            self.run.finish(exit_code=1 if self.failed else 0)
            self.closed = True


def open_logger(name: str, run_dir: str | Path, run_id: str | None = None) -> Logger:
    """Logger ``name`` writing inside ``run_dir`` (see the module docstring for where); ``run_id``:
    the tracking run to continue (MLflow, W&B; TensorBoard appends to its folder anyway)."""
    check_logger_names([name])
    run_dir = Path(run_dir)
    if name == "tensorboard":
        return TensorBoardLogger(run_dir / LOGGER_DIRS[0])
    if name == "mlflow":
        return MLflowLogger(f"file:{(run_dir / LOGGER_DIRS[1]).resolve()}", run_name=run_dir.resolve().name,
                            run_id=run_id)
    return WandbLogger(run_dir, run_name=run_dir.resolve().name, run_id=run_id)


def tracking_ids(run_dir: str | Path) -> dict[str, str]:
    """Logger name → the id of its tracking run, from ``run_dir/tracking.json`` ({} without one)."""
    try:
        ids = json.loads((Path(run_dir) / TRACKING_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return {key: value for key, value in ids.items() if isinstance(value, str)} if isinstance(ids, dict) else {}


def _keep_tracking_ids(run_dir: str | Path, loggers: Sequence[Logger]) -> None:
    from ..files import write_json_atomic

    ids = {**tracking_ids(run_dir), **{logger.name: logger.tracking_id for logger in loggers if logger.tracking_id}}
    if ids:
        write_json_atomic(Path(run_dir) / TRACKING_FILE, ids)


def open_loggers(names: Sequence[str], run_dir: str | Path, params: Mapping[str, Any],
                 resume: bool = False) -> list[Logger]:
    """The loggers ``names`` in ``run_dir``, each given ``params``; their run ids are kept in
    ``run_dir/tracking.json``, and ``resume`` continues the runs named there. All packages are
    checked first (:class:`ConfigError` naming the extra), so a missing one opens nothing."""
    names = check_logger_names(list(names))
    for name in names:
        check_logger_installed(name)
    previous = tracking_ids(run_dir) if resume else {}
    opened: list[Logger] = []
    try:
        for name in names:
            try:
                opened.append(open_logger(name, run_dir, previous.get(name)))
                opened[-1].log_params(params)
            except ConfigError:
                raise
            except Exception as exc:  # the backend's own error, as one line naming the logger
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"logger {name!r} could not start in {run_dir}: {first}") from exc
    except BaseException:
        close_loggers(opened)
        raise
    _keep_tracking_ids(run_dir, opened)
    return opened


def close_loggers(loggers: Sequence[Logger]) -> None:
    """Close each of ``loggers`` (every one, even when one fails; the first error is raised)."""
    error: BaseException | None = None
    for logger in loggers:
        try:
            logger.close()
        except Exception as exc:  # noqa: BLE001  (the others still close)
            error = error or exc
    if error is not None:
        raise error


_ACTIVE: contextvars.ContextVar[tuple[Logger, ...] | None] = contextvars.ContextVar("sparseae_loggers",
                                                                                    default=None)


@contextlib.contextmanager
def run_loggers(names: Sequence[str], run_dir: str | Path, params: Mapping[str, Any],
                enabled: bool = True, resume: bool = False) -> Iterator[list[Logger]]:
    """Open ``names`` in ``run_dir`` for a whole run: every :func:`~sparseae.train.train` call
    inside the block logs to them (see :func:`training_loggers`), whatever its own config says.
    ``enabled`` False (a rank other than 0): nothing is opened. ``resume``: continue the tracking
    runs of ``run_dir/tracking.json``. Closed on leaving the block (as failed after an error)."""
    loggers = open_loggers(names, run_dir, params, resume=resume) if enabled and names else []
    token = _ACTIVE.set(tuple(loggers))
    try:
        yield loggers
    except BaseException:
        for logger in loggers:
            logger.failed = True
        raise
    finally:
        _ACTIVE.reset(token)
        close_loggers(loggers)


def training_loggers(loggers: Sequence[str], run_dir: str | Path | None, phase: str,
                     params: Callable[[], Mapping[str, Any]], enabled: bool = True, resume: bool = False
                     ) -> tuple[list[Logger], Callable[[], None]]:
    """The logger callbacks of one :func:`~sparseae.train.train` call and what closes them: the
    run's (:func:`run_loggers`) for phase ``phase`` when a run opened them (closed by the run),
    else ``loggers`` (its config's ``loggers``) opened in ``run_dir`` with ``params()``."""
    active = _ACTIVE.get()
    if active is not None:
        return [logger.for_phase(phase) for logger in active], lambda: None
    if not loggers or not enabled:
        return [], lambda: None
    if run_dir is None:
        raise ConfigError("train.loggers write into the run folder: give train a run_dir, or no loggers")
    opened = open_loggers(loggers, run_dir, params(), resume=resume)
    return opened, lambda: close_loggers(opened)


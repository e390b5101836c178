"""One training loop for every model: minibatch Adam/SGD or full-batch L-BFGS.

Deterministic with a seed and exactly resumable: the shuffling order and every random draw of
epoch ``e`` come from a seed derived from ``(random_state, e)``, so resuming from the checkpoint
of epoch ``e`` replays epochs ``e+1…`` exactly as an uninterrupted run would.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from .. import distributed
from ..errors import ConfigError, DataError, DivergenceError
from ..files import write_text_atomic
from ..inference import evaluating
from ..models.base import Autoencoder
from ..threads import set_threads, step_work
from ..validation import as_class_labels, as_float_array
from .batches import BatchSource
from .checkpoint import checkpoint_path, has_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .graphs import GraphedStep
from .optim import make_capturable, make_optimizer, set_epoch_learning_rate, training_update
from .precision import Bf16Weights

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """``history``: one record per epoch; ``best_epoch``: the epoch whose weights the model
    holds after early stopping (else the last); ``stop_reason``: why the loop ended."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str = "max_epochs"


def epoch_seed(random_state: int, epoch: int) -> int:
    """The seed of every random draw in ``epoch`` (shuffling, noise, dropout)."""
    return (random_state * 1_000_003 + epoch * 7_919) % (2**63 - 1)


def split_validation(n_samples: int, fraction: float, random_state: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(train indices, validation indices) from a permutation fixed by ``random_state``."""
    if fraction <= 0:
        return np.arange(n_samples), None
    n_val = int(round(n_samples * fraction))
    if n_val < 1 or n_val >= n_samples:
        raise DataError(f"validation_fraction={fraction} of {n_samples} samples leaves "
                        f"{n_val} for validation and {n_samples - n_val} for training")
    order = np.random.default_rng(random_state).permutation(n_samples)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def write_metrics(run_dir: Path, history: list[dict[str, float]]) -> None:
    """``metrics.jsonl``: one JSON object per epoch, rewritten whole (so a resume never duplicates)."""
    write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(record) + "\n" for record in history),
                      sync=False)


class Callback:
    """Hooks into the loop; override what you need. Raising in a hook stops training."""

    def on_epoch_start(self, epoch: int, model: torch.nn.Module) -> None:
        """Before epoch ``epoch`` (1-based) trains, also the first epoch of a resumed run."""

    def on_step(self, step: int, model: torch.nn.Module) -> None:
        """After optimizer step number ``step`` (1-based, counted over the whole run)."""

    def on_epoch_end(self, epoch: int, record: dict[str, float], model: torch.nn.Module) -> None:
        """After epoch ``epoch`` was evaluated and checkpointed."""

    def logged_values(self) -> dict[str, float]:
        """Numbers to add to the epoch's record (metrics.jsonl, loggers) as the epoch ends, e.g. a
        schedule's current learning rate; none by default."""
        return {}


def _to_floats(sums: dict[str, torch.Tensor], count: int, prefix: str) -> dict[str, float]:
    return {f"{prefix}_{'loss' if k == 'loss' else k}": float(v) / count for k, v in sums.items()}


def batch_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None, amp: bool,
               cache: bool = True):
    """``model.loss(x)``, or ``model.loss(x, targets=y)`` when the batch has labels. ``cache``:
    autocast's cache of cast weights (off inside a CUDA graph)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=amp and cache):
        return model.loss(x) if y is None else model.loss(x, targets=y)


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, source: BatchSource, batch_size: int,
                  amp: bool = False) -> dict[str, float]:
    """Mean loss and terms over ``source`` in eval mode (no gradient, no running-stat updates)."""
    sums: dict[str, torch.Tensor] = {}
    count = 0
    step = max(batch_size * distributed.world_size(), 1024)  # rows of one step over all ranks
    with evaluating(model):
        for x, y in source.batches(step, shuffle=False, global_batch=True):
            out = batch_loss(model, x, y, amp)
            rows = distributed.rows_in_step(x)  # 0 for a rank's stand-in row
            for name, value in {"loss": out.loss.detach(), **out.terms}.items():
                sums[name] = sums.get(name, 0.0) + value.float() * rows
            count += rows
    sums, count = distributed.reduce_sums(sums, count, source.device)  # each rank saw its share
    return _to_floats(sums, count, "val")


def check_targets(model: Autoencoder, y: Any, n_samples: int, name: str) -> np.ndarray | None:
    """``y`` validated for ``model``: None when the model takes no targets (or none are needed and
    none given), int64 class labels for a classifier head, float32 rows when ``target_kind`` is
    ``"values"``. Raises :class:`DataError` (missing labels, wrong length, bad values)."""
    kind = model.target_kind
    if y is None:
        if model.needs_targets and kind == "values":
            raise DataError(f"{name} (target rows, one per sample) is required: this model predicts them")
        if model.needs_targets:
            return as_class_labels(None, n_samples, name)  # raises: labels are required
        return None
    if kind == "values":
        values = as_float_array(y, name)
        if values.shape[0] != n_samples:
            raise DataError(f"{name} has {values.shape[0]} rows for {n_samples} samples")
        return values
    if not model.needs_targets:
        return None  # an unsupervised phase ignores labels
    return as_class_labels(y, n_samples, name, n_classes=model.n_classes)


def train(model: torch.nn.Module, X: Any, config: TrainConfig | None = None, *,
          y: Any = None, X_val: Any = None, y_val: Any = None, run_dir: str | Path | None = None,
          resume: bool = False, callbacks: Sequence[Callback] = (), progress_label: str = "train") -> TrainResult:
    """Train ``model`` on ``X`` (n_samples, n_features): an array, tensor or ``np.memmap``.

    ``y``: per-sample targets, passed to each batch as ``model.loss(x, targets=y)``: class labels
    (n_samples,) for a model with a classifier head (required when its ``needs_targets`` is
    true), or values (n_samples, k) for a model whose ``target_kind`` is ``"values"`` (e.g.
    LISTA's precomputed optimal codes z*).
    ``X_val``, ``y_val``: a validation set (else ``config.validation_fraction`` of X is held out).
    ``run_dir``: where checkpoints (``checkpoint/``) and ``metrics.jsonl`` go, after every epoch.
    ``resume``: continue from the checkpoint in ``run_dir`` (if there is one).
    ``progress_label``: the name of the progress bar (``config.progress``), e.g. ``"fine-tune"``.
    Raises :class:`DivergenceError` when an epoch ends with a NaN/inf loss, weight or buffer
    (:func:`end_state_problem`), after restoring the model to its state after the previous epoch;
    that epoch's checkpoint and metrics stay as they were.
    """
    if not isinstance(model, Autoencoder):  # the hooks read below are declared there, with defaults
        raise ConfigError(f"train needs a sparseae model (a subclass of sparseae.models.Autoencoder), "
                          f"not {type(model).__name__}")
    config = (config or TrainConfig()).validate()
    loop = _setup(model, X, config, y, X_val, y_val, run_dir, resume, callbacks)
    result = TrainResult(history=loop.state["history"], best_epoch=loop.state["best_epoch"])
    first_epoch = loop.state["epoch"] + 1
    if loop.early_stopping and loop.state["bad_epochs"] >= config.n_iter_no_change:
        first_epoch, result.stop_reason = config.n_epochs + 1, "early_stopping"  # resumed after it stopped
    from .callbacks import training_schedules  # that module imports this one

    schedules, end_schedules = training_schedules(config, loop)  # train.schedule: before the others
    from .loggers import training_loggers  # that module imports this one

    trackers, close_trackers = training_loggers(config.loggers, run_dir, progress_label, lambda: asdict(config),
                                                enabled=distributed.is_primary(), resume=resume)
    loop.callbacks = [*schedules, *loop.callbacks, *trackers]
    bar = _progress_bar(loop, progress_label)
    previous_threads = torch.get_num_threads()  # train.threads holds while training, then this again
    set_threads(config.threads, step_work(model, len(loop.train_source) if config.optimizer == "lbfgs"
                                          else config.batch_size))
    try:
        for epoch in range(first_epoch, config.n_epochs + 1):
            record, converged = _run_epoch(loop, epoch, bar)
            bar.set_postfix(epoch=epoch, loss=f"{record[loop.monitor]:.4g}")
            stop_reason = _end_epoch(loop, epoch, record, converged)
            if stop_reason is not None:
                result.stop_reason = stop_reason
                break
    finally:
        bar.close()
        model.set_full_batch(False)
        torch.set_num_threads(previous_threads)
        close_trackers()
        end_schedules()
    return _finish(loop, result)


@dataclass
class _Loop:
    """What a training run carries from epoch to epoch: the model and its optimizer, the data,
    the step functions, the resumable ``state`` (saved in checkpoints) and ``best_state`` (the
    weights of the best epoch, kept under early stopping)."""

    model: Autoencoder
    config: TrainConfig
    optimizer: Any
    train_source: BatchSource
    val_source: BatchSource | None
    run_dir: Path | None
    callbacks: Sequence[Callback]
    state: dict[str, Any]
    best_state: dict[str, torch.Tensor] | None
    forward: Any = None
    update: Any = None
    graphed: GraphedStep | None = None

    @property
    def early_stopping(self) -> bool:
        return self.config.n_iter_no_change is not None

    @property
    def monitor(self) -> str:
        """The record key that early stopping and the best epoch follow."""
        return f"{'val' if self.val_source is not None else 'train'}_{self.config.monitor}"

    @property
    def write(self) -> bool:
        return self.run_dir is not None and distributed.is_primary()


def _setup(model: Autoencoder, X: Any, config: TrainConfig, y: Any, X_val: Any, y_val: Any,
           run_dir: str | Path | None, resume: bool, callbacks: Sequence[Callback]) -> _Loop:
    """Validate the data, move ``model`` to the device, build the optimizer and step functions,
    and load the checkpoint when resuming."""
    device = config.training_device()  # the machine's facts: checked here, not when a config is read
    dtype = getattr(torch, config.dtype)
    train_source, val_source = _data_sources(model, X, y, X_val, y_val, config, device, dtype)
    optimizer = make_optimizer(model, config)
    if config.cuda_graph and distributed.is_distributed():
        raise ConfigError("cuda_graph is not supported under torch.distributed; train without it")
    if config.bf16_weights and distributed.is_distributed():
        raise ConfigError("bf16_weights is not supported under torch.distributed; train without it")
    run_dir = Path(run_dir) if run_dir is not None else None
    state: dict[str, Any] = {"epoch": 0, "step": 0, "history": [], "best_loss": math.inf,
                             "best_epoch": 0, "bad_epochs": 0, "config": asdict(config)}
    best_state: dict[str, torch.Tensor] | None = None
    if resume and run_dir is not None and has_checkpoint(run_dir):
        state, best_state = load_checkpoint(run_dir, model, optimizer)
        logger.info("resumed from %s at epoch %d", run_dir, state["epoch"])
        model.to(device=device, dtype=dtype)
    loop = _Loop(model, config, optimizer, train_source, val_source, run_dir, callbacks, state, best_state)
    if config.optimizer != "lbfgs":
        _attach_step_functions(loop, device)
    return loop


def _data_sources(model: Autoencoder, X: Any, y: Any, X_val: Any, y_val: Any, config: TrainConfig,
                  device: torch.device, dtype: torch.dtype) -> tuple[BatchSource, BatchSource | None]:
    """(training rows, validation rows or None) on ``device``; ``model`` moved there in train mode."""
    X = as_float_array(X, "X", n_features=model.n_features)
    y = check_targets(model, y, X.shape[0], "y")
    if X_val is not None:
        X_val = as_float_array(X_val, "X_val", n_features=model.n_features)
        y_val = check_targets(model, y_val, X_val.shape[0], "y_val") if y is not None else None
        train_idx, val_idx = np.arange(X.shape[0]), None
    else:
        train_idx, val_idx = split_validation(X.shape[0], config.validation_fraction, config.random_state)
    model.to(device=device, dtype=dtype).train()
    model.set_full_batch(config.optimizer == "lbfgs")
    train_source = BatchSource(X, device, train_idx, dtype=dtype, targets=y)
    val_source = (BatchSource(X_val, device, dtype=dtype, targets=y_val) if X_val is not None
                  else BatchSource(X, device, val_idx, dtype=dtype, targets=y) if val_idx is not None else None)
    return train_source, val_source


def _attach_step_functions(loop: _Loop, device: torch.device) -> None:
    """The minibatch step: forward, parameter update, and its CUDA graph when ``cuda_graph`` asks.
    Built after a resume, so bf16 weights copy the resumed weights."""
    config, optimizer = loop.config, loop.optimizer
    weights = Bf16Weights(loop.model) if config.bf16_weights else None
    loop.forward = training_forward(loop.model, device, config, weights)
    loop.update = training_update(loop.model, optimizer, config, device, weights)
    if config.cuda_graph:
        make_capturable(optimizer, device)  # learning rates as device tensors: no re-capture/re-compile
        forward, update = loop.forward, loop.update
        loop.graphed = GraphedStep(lambda x, y: _backward_step(optimizer, x, y, forward, update),
                                   config.batch_size, device)


def _progress_bar(loop: _Loop, label: str):
    """A tqdm bar over every optimizer step of the run (shown when ``config.progress`` asks)."""
    from tqdm.auto import tqdm

    config = loop.config
    steps_per_epoch = 1 if config.optimizer == "lbfgs" else loop.train_source.n_batches(config.batch_size)
    total_steps = config.n_epochs * steps_per_epoch
    return tqdm(total=total_steps, initial=min(loop.state["step"], total_steps), desc=label, unit="step",
                dynamic_ncols=True, disable=not (config.progress and distributed.is_primary()), leave=False)


def _run_epoch(loop: _Loop, epoch: int, bar) -> tuple[dict[str, float], bool]:
    """Train epoch ``epoch`` and evaluate it: (its record, whether L-BFGS converged). Raises
    :class:`DivergenceError` (model restored) when the loss or the end state is not finite."""
    model, config = loop.model, loop.config
    seed = epoch_seed(config.random_state, epoch)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    last_good = copy.deepcopy(model.state_dict())
    set_epoch_learning_rate(loop.optimizer, config, epoch)
    for callback in loop.callbacks:
        callback.on_epoch_start(epoch, model)
    started = time.perf_counter()
    converged = False  # L-BFGS met its tolerances in this epoch (not saved: a resume runs on)
    try:
        if config.optimizer == "lbfgs":
            sums, count, converged = _lbfgs_epoch(model, loop.optimizer, loop.train_source, config.amp,
                                                  epoch, config)
            loop.state["step"] += 1
            bar.update(1)
            for callback in loop.callbacks:
                callback.on_step(loop.state["step"], model)
        else:
            sums, count = _minibatch_epoch(model, loop.optimizer, loop.train_source, config, generator,
                                           loop.state, bar, loop.callbacks, loop.forward, loop.update,
                                           loop.graphed)
    except RuntimeError as exc:  # a step size past the float range (huge learning rate, L-BFGS's t)
        if "without overflow" not in str(exc):
            raise
        _diverged(model, last_good, "an update overflowed the float range", epoch, loop.run_dir)
    record = _epoch_record(loop, epoch, sums, count, last_good)
    record["seconds"] = time.perf_counter() - started
    if loop.monitor not in record:
        raise ConfigError(f"monitor {config.monitor!r} is not a logged term of this model; "
                          f"logged: {', '.join(k for k in record if k != 'epoch')}")
    return record, converged


def _epoch_record(loop: _Loop, epoch: int, sums: dict[str, torch.Tensor], count: int,
                  last_good: dict[str, torch.Tensor]) -> dict[str, float]:
    """The epoch's logged losses (training, learning rate, validation) after checking that the
    loss and the state the epoch ended in are finite (else :func:`_diverged`)."""
    model, config = loop.model, loop.config
    train_record = _to_floats(sums, count, "train")
    if not math.isfinite(train_record["train_loss"]):
        _diverged(model, last_good, "the loss became NaN/inf", epoch, loop.run_dir)
    record: dict[str, float] = {"epoch": epoch, **train_record}
    if config.lr_decay != 1.0 and config.optimizer != "lbfgs":
        group = loop.optimizer.param_groups[0]
        record["learning_rate"] = float(group["lr"]) / group.get("lr_scale", 1.0)
    for callback in loop.callbacks:  # e.g. train.schedule's current values
        if hasattr(callback, "logged_values"):
            record.update(callback.logged_values())
    if loop.val_source is not None:
        record.update(evaluate_loss(model, loop.val_source, config.batch_size, config.amp))
    # The state to be saved: the losses above came before each update but L-BFGS's and
    # validation's, so the end state's loss is probed on one batch when neither is known.
    end_loss = record.get("val_loss", record["train_loss"] if config.optimizer == "lbfgs" else None)
    problem = end_state_problem(model, loop.train_source, config.batch_size, config.amp, end_loss)
    if problem is not None:
        _diverged(model, last_good, problem, epoch, loop.run_dir)
    return record


def _end_epoch(loop: _Loop, epoch: int, record: dict[str, float], converged: bool) -> str | None:
    """Log ``record``, follow the best epoch, checkpoint, call ``on_epoch_end``: the stop reason
    when training ends here (early stopping, L-BFGS converged), else None."""
    config, state, monitor = loop.config, loop.state, loop.monitor
    state["history"].append(record)
    state["epoch"] = epoch
    logger.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.5g}" for k, v in record.items() if k != "epoch"))
    if record[monitor] < state["best_loss"] - config.tol:
        state["best_loss"], state["best_epoch"], state["bad_epochs"] = record[monitor], epoch, 0
        if loop.early_stopping:
            loop.best_state = copy.deepcopy(loop.model.state_dict())
    else:
        state["bad_epochs"] += 1
    if loop.write:
        save_checkpoint(loop.run_dir, loop.model, loop.optimizer, state, loop.best_state)
        write_metrics(loop.run_dir, state["history"])
    for callback in loop.callbacks:
        callback.on_epoch_end(epoch, record, loop.model)
    if loop.early_stopping and state["bad_epochs"] >= config.n_iter_no_change:
        return "early_stopping"
    if config.optimizer == "lbfgs" and converged:
        return "converged"
    return None


def _finish(loop: _Loop, result: TrainResult) -> TrainResult:
    """``result`` completed; under early stopping the model takes the best epoch's weights."""
    if loop.early_stopping and loop.best_state is not None:
        loop.model.load_state_dict(loop.best_state)
        result.best_epoch = loop.state["best_epoch"]
    else:
        result.best_epoch = loop.state["epoch"]
    result.history = loop.state["history"]
    return result


@torch.no_grad()
def end_state_problem(model: torch.nn.Module, source: BatchSource, batch_size: int, amp: bool,
                      end_loss: float | None) -> str | None:
    """What is NaN/inf in the state ``model`` holds (None when nothing is): a parameter or buffer,
    or the loss there: ``end_loss`` where the epoch computed it at that state, else the loss of
    the first batch of ``source`` in eval mode. One host sync; every rank gets the same answer."""
    tensors = {name: t for name, t in model.state_dict().items() if t.is_floating_point()}
    flags = [torch.isfinite(t).all() for t in tensors.values()]
    if end_loss is None:
        batches = source.batches(batch_size, shuffle=False)
        try:
            x, y = next(batches)
        finally:
            batches.close()
        with evaluating(model):
            flags.append(torch.isfinite(batch_loss(model, x, y, amp).loss.detach()).all())
    else:
        flags.append(torch.tensor(math.isfinite(end_loss), device=source.device))
    bad = distributed.sum_across_ranks((~torch.stack(flags)).float()).tolist()
    names = [name for name, count in zip(tensors, bad[:-1], strict=True) if count]  # bad[-1]: the loss's flag
    if names:
        return f"the weights ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}) became NaN/inf"
    return "the loss after the epoch's last update became NaN/inf" if bad[-1] else None


def _diverged(model: torch.nn.Module, last_good: dict[str, torch.Tensor], what: str, epoch: int,
              run_dir: Path | None) -> NoReturn:
    """Restore ``last_good`` (the state after epoch ``epoch - 1``) and raise :class:`DivergenceError`."""
    model.load_state_dict(last_good)
    kept = f"its state after epoch {epoch - 1}" if epoch > 1 else "its initial state"
    if run_dir is not None and has_checkpoint(run_dir):
        kept += f", which {checkpoint_path(run_dir)} holds"
    raise DivergenceError(f"{what} in epoch {epoch}; the model was restored to {kept} "
                          "(nothing of this epoch was saved); lower the learning rate or check the data scale")


def training_forward(model: torch.nn.Module, device: torch.device, config: TrainConfig,
                     weights: Bf16Weights | None = None):
    """``forward(x, y) -> (loss, terms)`` of a training step: wrapped in DistributedDataParallel
    under torch.distributed, on the bf16 copies of the weights when ``weights`` is given, through
    ``torch.compile`` when ``config.compile`` asks."""
    amp = config.amp

    def loss_of(x: torch.Tensor, y: torch.Tensor | None):
        out = batch_loss(model, x, y, amp, cache=not config.cuda_graph and weights is None)
        return out.loss, out.terms

    if weights is not None:
        forward = weights.wrap(loss_of)
    else:
        forward = distributed.data_parallel(model, device, loss_of) or loss_of
    if config.compile:
        forward = torch.compile(forward, backend=config.compile_backend)
    return forward


def _backward_step(optimizer, x: torch.Tensor, y: torch.Tensor | None, forward, update) -> dict[str, torch.Tensor]:
    optimizer.zero_grad(set_to_none=True)
    loss, terms = forward(x, y)
    loss.backward()
    update()
    return {"loss": loss.detach(), **terms}


def _minibatch_epoch(model, optimizer, source: BatchSource, config: TrainConfig, generator,
                     state: dict[str, Any], bar, callbacks: Sequence[Callback], forward, update,
                     graphed: GraphedStep | None = None):
    sums: dict[str, torch.Tensor] = {}
    count = 0
    if graphed is not None:
        graphed.reset_sums()
    # The logged terms of up to ``check_every`` steps wait in ``pending`` and are summed in a few
    # ops (on the CPU, six scalar ops per step were a tenth of a small SGD step). Then the
    # finiteness check: on a GPU it syncs. A NaN found late costs nothing but compute: the epoch
    # is then undone (the model restored to its state after the previous epoch).
    check_every = 50
    pending: dict[str, list[torch.Tensor]] = {}
    pending_size = 0  # the batch size of the pending steps (all equal; a smaller last batch flushes)

    def flush() -> None:
        for name, values in pending.items():
            total = torch.stack(values).float().sum() * pending_size
            sums[name] = sums[name] + total if name in sums else total
        pending.clear()

    for i, (x, y) in enumerate(source.batches(config.batch_size, shuffle=config.shuffle, generator=generator)):
        rows = distributed.rows_in_step(x)  # 0 for a rank's stand-in row (see BatchSource.batches)
        if graphed is not None:  # the graph keeps the sums on the device
            graphed(x, y)
            sums = graphed.sums
        else:
            if pending and rows != pending_size:
                flush()
            pending_size = rows
            for name, value in _backward_step(optimizer, x, y, forward, update).items():
                pending.setdefault(name, []).append(value)
        count += rows
        state["step"] += 1
        bar.update(1)
        for callback in callbacks:
            callback.on_step(state["step"], model)
        if (i + 1) % check_every == 0:
            flush()
            if not torch.isfinite(distributed.sum_across_ranks(sums["loss"])):  # all ranks stop together
                break
    flush()
    if graphed is not None:
        sums = {name: value.clone() for name, value in sums.items()}
    return distributed.reduce_sums(sums, count, source.device)


def _lbfgs_epoch(model, optimizer, source: BatchSource, amp: bool, epoch: int, config: TrainConfig):
    """``lbfgs_iter_per_epoch`` L-BFGS iterations on the whole training set: (sums of the loss and
    terms, 1, whether L-BFGS stopped early on its tolerances, so later epochs would change nothing)."""
    x, y = source.full()
    remaining = config.lbfgs_max_iter - (epoch - 1) * config.lbfgs_iter_per_epoch
    optimizer.param_groups[0]["max_iter"] = min(config.lbfgs_iter_per_epoch, remaining)
    optimizer.param_groups[0]["max_eval"] = optimizer.param_groups[0]["max_iter"] * 4

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = batch_loss(model, x, y, amp).loss
        loss.backward()
        return loss

    group = optimizer.param_groups[0]
    lbfgs_state = optimizer.state[group["params"][0]]
    before = (lbfgs_state.get("n_iter", 0), lbfgs_state.get("func_evals", 0))
    optimizer.step(closure)
    model.apply_constraints()
    iterations = lbfgs_state.get("n_iter", 0) - before[0]
    evaluations = lbfgs_state.get("func_evals", 0) - before[1]
    # L-BFGS returns early once its tolerances are met; then further epochs change nothing.
    converged = iterations < group["max_iter"] and evaluations < group["max_eval"]
    with torch.no_grad():
        out = batch_loss(model, x, y, amp)
    return {"loss": out.loss.detach(), **out.terms}, 1, converged

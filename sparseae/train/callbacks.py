"""Trainer callbacks: those that belong to one model family, and the training schedules a run
config sets in ``train.schedule`` (:func:`check_schedule` lists the keys; :func:`training_schedules`
builds them for :func:`~sparseae.train.train`).

Schedules are functions of the optimizer step s (1-based, the step about to be taken, counted
over the whole run), so a resumed run follows them exactly: learning-rate warm-up and decay
(:class:`LearningRateSchedule`), sparsity-weight warm-up (:class:`SparsityWarmup`), k annealing
for TopK encoders (:class:`KAnnealing`) and dead-latent resampling (:class:`DeadLatentResampling`).
"""
from __future__ import annotations

import abc
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models.deep import MLPEncoder
from ..validation import check_number
from .trainer import Callback

logger = logging.getLogger(__name__)


class CodeNoiseSchedule(Callback):
    """Trainer callback: σ of an :class:`MLPEncoder`'s code noise goes linearly from ``start`` to
    ``end`` over the first ``ramp_epochs`` epochs, then stays at ``end``. Set at the start of each
    epoch from the epoch number alone, so a resumed run follows the same schedule (σ itself is
    not saved with the weights: a loaded model has its preset's σ until a schedule sets it)."""

    def __init__(self, start: float, end: float, ramp_epochs: int) -> None:
        check_number(start, "noise schedule start", low=0.0)
        check_number(end, "noise schedule end", low=0.0)
        check_number(ramp_epochs, "ramp_epochs", low=1, integer=True)
        self.start, self.end, self.ramp_epochs = float(start), float(end), int(ramp_epochs)

    def std(self, epoch: int) -> float:
        """σ during ``epoch`` (1-based)."""
        progress = min(max(epoch - 1, 0) / self.ramp_epochs, 1.0)
        return self.start + progress * (self.end - self.start)

    def on_epoch_start(self, epoch: int, model: nn.Module) -> None:
        if not isinstance(model.encoder, MLPEncoder):
            raise ConfigError("a code-noise schedule needs a deep model (an MLPEncoder)")
        model.encoder.code_noise_std = self.std(epoch)


# ------------------------------------------------------------------------------------ schedules

#: ``train.schedule`` sections → {key: default} (None: required, or "unset" where documented).
SCHEDULE_KEYS: dict[str, dict[str, Any]] = {
    "lr": {"warmup_steps": 0, "decay": "none", "min_factor": 0.0, "steps": None, "samples": None},
    "sparsity_warmup": {"steps": None, "start": 0.0, "penalties": None},
    "k_anneal": {"k_start": None, "steps": None},
    "resample": {"every": None, "window": None, "n_inputs": 4096, "scale": 0.2, "until": None},
}
DECAYS = ("none", "linear", "cosine")


def _section(schedule: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    values = schedule.get(name)
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise ConfigError(f"train.schedule.{name} must be a mapping of its options "
                          f"({', '.join(SCHEDULE_KEYS[name])}), got {values!r}")
    known = SCHEDULE_KEYS[name]
    unknown = [key for key in values if key not in known]
    if unknown:
        raise ConfigError(f"unknown key train.schedule.{name}.{unknown[0]}; known: {', '.join(known)}")
    return {**known, **values}


def check_schedule(schedule: Any) -> dict[str, Any]:
    """``train.schedule`` checked (unknown sections or keys, bad values: :class:`ConfigError`);
    returns it as a plain dict. Sections and keys:

    * ``lr``: ``warmup_steps`` (linear from 0), then ``decay`` none | linear | cosine down to
      ``min_factor`` × the rate at the end of the budget: ``steps``, or ``samples`` (rows or
      tokens, ÷ batch_size), default the run's steps;
    * ``sparsity_warmup``: the weights of the sparsity penalties (``penalties``: their names; default
      every L1, L0, KL, group and gate-L1 term) rise linearly from ``start`` × to 1 × over ``steps``;
    * ``k_anneal``: a TopK encoder's k goes linearly from ``k_start`` to the model's k over ``steps``;
    * ``resample``: every ``every`` steps (up to step ``until``), latents that did not fire in the last
      ``window`` steps (default ``every``) are re-initialised towards inputs drawn with probability ∝
      their squared reconstruction error² among ``n_inputs`` training rows, the encoder row at
      ``scale`` × the mean live row norm, and their optimizer state reset (Bricken et al. 2023)."""
    if schedule is None:
        return {}
    if not isinstance(schedule, Mapping):
        raise ConfigError(f"train.schedule must be a mapping of schedules ({', '.join(SCHEDULE_KEYS)}), "
                          f"got {schedule!r}")
    unknown = [key for key in schedule if key not in SCHEDULE_KEYS]
    if unknown:
        raise ConfigError(f"unknown schedule train.schedule.{unknown[0]}; known: {', '.join(SCHEDULE_KEYS)}")
    for name, check in (("lr", _check_lr_schedule), ("sparsity_warmup", _check_sparsity_warmup),
                        ("k_anneal", _check_k_anneal), ("resample", _check_resample)):
        section = _section(schedule, name)
        if section is not None:
            check(section)
    return {key: dict(schedule[key]) for key in schedule if schedule[key] is not None}


def _check_lr_schedule(lr: dict[str, Any]) -> None:
    """``train.schedule.lr`` (defaults filled in): warm-up, decay, floor and a budget in steps or samples."""
    check_number(lr["warmup_steps"], "train.schedule.lr.warmup_steps", low=0, integer=True)
    if lr["decay"] not in DECAYS:
        raise ConfigError(f"train.schedule.lr.decay must be one of {', '.join(DECAYS)}, got {lr['decay']!r}")
    check_number(lr["min_factor"], "train.schedule.lr.min_factor", low=0.0, high=1.0)
    if lr["steps"] is not None and lr["samples"] is not None:
        raise ConfigError("train.schedule.lr takes a budget in steps or in samples, not both")
    for key in ("steps", "samples"):
        if lr[key] is not None:
            check_number(lr[key], f"train.schedule.lr.{key}", low=1, integer=True)
    if lr["steps"] is not None and lr["warmup_steps"] >= lr["steps"] and lr["decay"] != "none":
        raise ConfigError(f"train.schedule.lr.warmup_steps ({lr['warmup_steps']}) leaves no steps of the "
                          f"budget ({lr['steps']}) to decay")


def _check_sparsity_warmup(warmup: dict[str, Any]) -> None:
    """``train.schedule.sparsity_warmup``: its length in steps, start factor and penalty names."""
    if warmup["steps"] is None:
        raise ConfigError("train.schedule.sparsity_warmup needs steps (the length of the warm-up)")
    check_number(warmup["steps"], "train.schedule.sparsity_warmup.steps", low=1, integer=True)
    check_number(warmup["start"], "train.schedule.sparsity_warmup.start", low=0.0, high=1.0)
    names = warmup["penalties"]
    if names is not None and (not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names)):
        raise ConfigError("train.schedule.sparsity_warmup.penalties must be a list of penalty names, "
                          f"got {names!r}")


def _check_k_anneal(anneal: dict[str, Any]) -> None:
    """``train.schedule.k_anneal``: ``k_start`` and ``steps``, both positive integers."""
    for key in ("k_start", "steps"):
        if anneal[key] is None:
            raise ConfigError(f"train.schedule.k_anneal needs {key}")
        check_number(anneal[key], f"train.schedule.k_anneal.{key}", low=1, integer=True)


def _check_resample(resample: dict[str, Any]) -> None:
    """``train.schedule.resample``: ``every`` (required), ``window``, ``n_inputs``, ``until`` and ``scale``."""
    if resample["every"] is None:
        raise ConfigError("train.schedule.resample needs every (resample every this many steps)")
    for key in ("every", "window", "n_inputs", "until"):
        if resample[key] is not None:
            check_number(resample[key], f"train.schedule.resample.{key}", low=1, integer=True)
    check_number(resample["scale"], "train.schedule.resample.scale", low=0.0, low_inclusive=False)


def warmup_decay_factor(step: int, warmup_steps: int, decay: str, total_steps: int, min_factor: float) -> float:
    """The learning-rate factor of step ``step`` (1-based): ``step/warmup_steps`` during the warm-up,
    then 1 decaying (linear or cosine) to ``min_factor`` at ``total_steps``, and ``min_factor`` after."""
    if warmup_steps and step <= warmup_steps:
        return step / warmup_steps
    if decay == "none":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    if decay == "linear":
        return 1.0 - (1.0 - min_factor) * progress
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class StepSchedule(Callback, abc.ABC):
    """A schedule that sets something before every optimizer step from the step number alone.
    :meth:`bind` is called once before training (``step``: the steps already done), :meth:`apply`
    before each step s, :meth:`end` after training (also after an error)."""

    step = 0

    def bind(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, total_steps: int) -> None:
        self.model, self.optimizer, self.step = model, optimizer, step

    @abc.abstractmethod
    def apply(self, step: int) -> None:
        """Set what this schedule sets for optimizer step ``step`` (1-based)."""

    def end(self) -> None:
        """Undo what must not outlive training (by default nothing)."""

    def on_epoch_start(self, epoch: int, model: nn.Module) -> None:
        self.apply(self.step + 1)

    def on_step(self, step: int, model: nn.Module) -> None:
        self.step = step
        self.apply(step + 1)


class LearningRateSchedule(StepSchedule):
    """Each parameter group's rate = its epoch rate (``learning_rate`` · lr_decay^(e−1) · scale) ×
    :func:`warmup_decay_factor` of the step; ``total_steps`` None: the run's steps."""

    def __init__(self, warmup_steps: int = 0, decay: str = "none", min_factor: float = 0.0,
                 total_steps: int | None = None) -> None:
        self.warmup_steps, self.decay, self.min_factor = int(warmup_steps), decay, float(min_factor)
        self.total_steps = total_steps
        self.base: list[float] = []

    def bind(self, model, optimizer, step, total_steps) -> None:
        super().bind(model, optimizer, step, total_steps)
        if self.total_steps is None:
            self.total_steps = total_steps

    def factor(self, step: int) -> float:
        return warmup_decay_factor(step, self.warmup_steps, self.decay, self.total_steps, self.min_factor)

    def on_epoch_start(self, epoch: int, model: nn.Module) -> None:
        self.base = [float(group["lr"]) for group in self.optimizer.param_groups]  # the trainer's epoch rate
        super().on_epoch_start(epoch, model)

    def logged_values(self) -> dict[str, float]:
        """``lr``: the learning rate of the last step taken (of the first parameter group, without
        its ``lr_scale``)."""
        if not self.base or not self.step:
            return {}
        group = self.optimizer.param_groups[0]
        return {"lr": self.base[0] * self.factor(self.step) / group.get("lr_scale", 1.0)}

    def apply(self, step: int) -> None:
        factor = self.factor(step)
        for group, base in zip(self.optimizer.param_groups, self.base, strict=True):
            if isinstance(group["lr"], torch.Tensor):  # a captured CUDA graph reads it in place
                group["lr"].fill_(base * factor)
            else:
                group["lr"] = base * factor


def sparsity_penalty_names(model: nn.Module) -> list[str]:
    """Names of ``model``'s sparsity terms: L1, L0, KL, group and gate-L1 penalties."""
    from ..nn.gated import GatedL1Penalty
    from ..nn.penalties import GroupSparsityPenalty, KLSparsity, L0Penalty, L1Penalty

    kinds = (L1Penalty, L0Penalty, KLSparsity, GroupSparsityPenalty, GatedL1Penalty)
    return [name for name, penalty in model.penalties.items() if isinstance(penalty, kinds)]


class SparsityWarmup(StepSchedule):
    """The weights of the penalties ``names`` (default :func:`sparsity_penalty_names`) times
    ``start + (1 − start)·min(1, s/steps)`` at step s; the full weights are restored after training."""

    def __init__(self, steps: int, start: float = 0.0, names: list[str] | None = None) -> None:
        self.steps, self.start, self.names = int(steps), float(start), names
        self.base: dict[str, float] = {}

    def bind(self, model, optimizer, step, total_steps) -> None:
        super().bind(model, optimizer, step, total_steps)
        names = sparsity_penalty_names(model) if self.names is None else list(self.names)
        unknown = [name for name in names if name not in model.penalties]
        if unknown or not names:
            raise ConfigError(f"train.schedule.sparsity_warmup: the model has no penalty {unknown[0]!r}; its "
                              f"penalties: {', '.join(model.penalties) or 'none'}" if unknown else
                              "train.schedule.sparsity_warmup: the model has no sparsity penalty to warm up")
        self.base = {name: model.penalties[name].weight for name in names}

    def factor(self, step: int) -> float:
        return self.start + (1.0 - self.start) * min(1.0, step / self.steps)

    def apply(self, step: int) -> None:
        factor = self.factor(step)
        for name, weight in self.base.items():
            self.model.penalties[name].weight = weight * factor

    def logged_values(self) -> dict[str, float]:
        """The warmed-up weights at the last step taken: ``sparsity_weight`` (one penalty) or
        ``sparsity_weight.<name>`` (several)."""
        if not self.step:
            return {}
        factor = self.factor(self.step)
        if len(self.base) == 1:
            return {"sparsity_weight": float(next(iter(self.base.values())) * factor)}
        return {f"sparsity_weight.{name}": float(weight * factor) for name, weight in self.base.items()}

    def end(self) -> None:
        for name, weight in self.base.items():
            self.model.penalties[name].weight = weight


class KAnnealing(StepSchedule):
    """A TopK encoder's k at step s: round(k_start + (k − k_start)·min(1, (s − 1)/steps)), k the
    model's own (restored after training)."""

    def __init__(self, k_start: int, steps: int) -> None:
        self.k_start, self.steps = int(k_start), int(steps)
        self.k_end: int | None = None

    def bind(self, model, optimizer, step, total_steps) -> None:
        from ..nn.sparse_encoders import TopKEncoder

        super().bind(model, optimizer, step, total_steps)
        if not isinstance(model.encoder, TopKEncoder):
            raise ConfigError(f"train.schedule.k_anneal needs a TopK encoder (topk_sae, matryoshka_sae), not "
                              f"{type(model.encoder).__name__}")
        check_number(self.k_start, "train.schedule.k_anneal.k_start", low=1, high=model.n_components, integer=True)
        self.k_end = model.encoder.k

    def k_at(self, step: int) -> int:
        progress = min(1.0, max(step - 1, 0) / self.steps)
        return int(round(self.k_start + (self.k_end - self.k_start) * progress))

    def apply(self, step: int) -> None:
        self.model.encoder.k = self.k_at(step)

    def logged_values(self) -> dict[str, float]:
        """``k`` of the last step taken."""
        return {"k": self.k_at(self.step)} if self.step else {}

    def end(self) -> None:
        if self.k_end is not None:
            self.model.encoder.k = self.k_end


class DeadLatentResampling(StepSchedule):
    """Anthropic's resampling (Bricken et al. 2023, "Towards Monosemanticity"): after step s, every
    ``every`` steps up to ``until``, each latent that has not fired (code > 0) in training for
    ``window`` steps gets an input drawn from ``n_inputs`` training rows with probability ∝ (its
    squared reconstruction error)²: with v = (x − b_dec)/‖x − b_dec‖, the decoder column becomes
    v × the mean live column norm, the encoder row v × ``scale`` × the mean live row norm, the
    latent's biases 0 (and the encoder's ``latent_reset_values``); its optimizer state (Adam's
    moments, SGD's momentum) is zeroed. ``history``: (step, number resampled) of each resampling."""

    def __init__(self, every: int, window: int | None = None, n_inputs: int = 4096, scale: float = 0.2,
                 until: int | None = None, source=None, random_state: int = 0) -> None:
        self.every, self.window = int(every), int(window or every)
        self.n_inputs, self.scale, self.until = int(n_inputs), float(scale), until
        self.source, self.random_state = source, int(random_state)
        self.history: list[tuple[int, int]] = []
        self._hook = None

    def bind(self, model, optimizer, step, total_steps) -> None:
        super().bind(model, optimizer, step, total_steps)
        encoder, decoder = model.encoder, model.decoder
        weight = getattr(encoder, "weight", None)
        if not (isinstance(weight, nn.Parameter) and tuple(weight.shape) == (model.n_components, model.n_features)
                and isinstance(getattr(decoder, "weight_", None), nn.Parameter)):
            raise ConfigError("train.schedule.resample needs a linear encoder (weight: n_components × n_features) "
                              f"and an untied linear decoder; {model.spec.get('name', type(model).__name__)} has none")
        if isinstance(optimizer, torch.optim.LBFGS):
            raise ConfigError("train.schedule.resample applies to minibatch optimizers (adam, sgd), not lbfgs")
        if model.needs_targets:  # its inputs' reconstruction error is not what the model is trained on
            raise ConfigError("train.schedule.resample draws inputs by their reconstruction error; "
                              f"{model.spec.get('name', type(model).__name__)} trains on targets (not supported)")
        # both on the model's device: the per-step bookkeeping never waits for the device
        self.last_fired = torch.full((model.n_components,), step, dtype=torch.long, device=weight.device)
        self._fired = torch.zeros(model.n_components, dtype=torch.bool, device=weight.device)

        def record(module, inputs, code) -> None:
            if module.training and torch.is_grad_enabled():
                self._fired |= (code.detach() > 0).any(dim=0)

        self._hook = encoder.register_forward_hook(record)

    def end(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def apply(self, step: int) -> None:
        """Nothing before a step: the work happens after it (:meth:`on_step`)."""

    def on_step(self, step: int, model: nn.Module) -> None:
        self.last_fired.masked_fill_(self._fired, step)
        self._fired.zero_()
        self.step = step
        if step % self.every or (self.until is not None and step > self.until):
            return
        dead = (step - self.last_fired) >= self.window
        indices = dead.nonzero().flatten().cpu()  # the only host sync: once every `every` steps
        if len(indices):
            count = self.resample(indices, step)
            self.history.append((step, count))
            self.last_fired.masked_fill_(dead, step)

    @torch.no_grad()
    def resample(self, dead: torch.Tensor, step: int) -> int:
        """Re-initialise latents ``dead`` (indices); returns how many."""
        from ..inference import evaluating
        from .trainer import epoch_seed

        model = self.model
        generator = torch.Generator().manual_seed(epoch_seed(self.random_state, 1_000_000 + step))
        batches = self.source.batches(self.n_inputs, shuffle=True, generator=generator)
        try:
            x, _ = next(batches)
        finally:
            batches.close()
        with evaluating(model):
            error = (x - model(x)).pow(2).sum(dim=1).double()
        weights = error.pow(2).cpu()
        if not torch.isfinite(weights).all() or float(weights.sum()) <= 0:
            return 0
        n_positive = int((weights > 0).sum())
        chosen = torch.multinomial(weights, len(dead), replacement=len(dead) > n_positive, generator=generator)
        encoder, decoder = model.encoder, model.decoder
        device = encoder.weight.device
        dead_dev = dead.to(device)
        bias = decoder.bias if decoder.bias is not None else torch.zeros_like(x[0])
        directions = x[chosen.to(x.device)].to(device) - bias
        directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
        alive = torch.ones(model.n_components, dtype=torch.bool, device=device)
        alive[dead_dev] = False
        if not alive.any():
            alive[:] = True
        encoder_norm = float(encoder.weight[alive].norm(dim=1).mean())
        decoder_norm = float(decoder.weight_[:, alive].norm(dim=0).mean())
        decoder.weight_[:, dead_dev] = (directions * decoder_norm).t().to(decoder.weight_.dtype)
        encoder.weight[dead_dev] = (directions * encoder_norm * self.scale).to(encoder.weight.dtype)
        touched = [(encoder.weight, 0), (decoder.weight_, 1)]
        if getattr(encoder, "bias", None) is not None:
            encoder.bias[dead_dev] = 0
            touched.append((encoder.bias, 0))
        for name, value in getattr(encoder, "latent_reset_values", {}).items():
            parameter = getattr(encoder, name)
            parameter[dead_dev] = value
            touched.append((parameter, 0))
        for parameter, dim in touched:
            for key, value in self.optimizer.state.get(parameter, {}).items():
                if key != "step" and isinstance(value, torch.Tensor) and value.shape == parameter.shape:
                    value.index_fill_(dim, dead_dev, 0)
        model.apply_constraints()
        logger.info("step %d: resampled %d dead latents", step, len(dead))
        return len(dead)


def training_schedules(config, loop) -> tuple[list[StepSchedule], Callable[[], None]]:
    """The callbacks of ``config.schedule`` bound to a training ``loop`` (the trainer's), and the
    function that ends them (after training, also after an error)."""
    schedule = config.schedule or {}
    if not schedule:
        return [], lambda: None
    if config.optimizer == "lbfgs":
        raise ConfigError("train.schedule applies to minibatch optimizers (adam, sgd), not lbfgs")
    if config.cuda_graph:
        raise ConfigError("train.schedule cannot change a captured CUDA graph's step; train without cuda_graph")
    total = config.n_epochs * loop.train_source.n_batches(config.batch_size)
    callbacks: list[StepSchedule] = []
    if "lr" in schedule:
        lr = {**SCHEDULE_KEYS["lr"], **schedule["lr"]}
        steps = lr["steps"] if lr["samples"] is None else -(-lr["samples"] // config.batch_size)
        callbacks.append(LearningRateSchedule(lr["warmup_steps"], lr["decay"], lr["min_factor"], steps))
    if "sparsity_warmup" in schedule:
        warmup = {**SCHEDULE_KEYS["sparsity_warmup"], **schedule["sparsity_warmup"]}
        callbacks.append(SparsityWarmup(warmup["steps"], warmup["start"], warmup["penalties"]))
    if "k_anneal" in schedule:
        anneal = schedule["k_anneal"]
        callbacks.append(KAnnealing(anneal["k_start"], anneal["steps"]))
    if "resample" in schedule:
        from .. import distributed

        if distributed.is_distributed():  # each rank would draw its own inputs: replicas would differ
            raise ConfigError("train.schedule.resample is not supported under torch.distributed; train without it")
        if config.bf16_weights:  # the bf16 working copies would miss the resampled rows for a step
            raise ConfigError("train.schedule.resample cannot be combined with bf16_weights; train without one")
        resample = {**SCHEDULE_KEYS["resample"], **schedule["resample"]}
        callbacks.append(DeadLatentResampling(resample["every"], resample["window"], resample["n_inputs"],
                                              resample["scale"], resample["until"], source=loop.train_source,
                                              random_state=config.random_state))

    def end() -> None:
        for callback in callbacks:
            callback.end()

    try:
        for callback in callbacks:
            callback.bind(loop.model, loop.optimizer, loop.state["step"], total)
    except Exception:
        end()
        raise
    return callbacks, end

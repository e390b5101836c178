"""How to train: :class:`TrainConfig`, the options of :func:`sparseae.train.train`, checked
before any work starts."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch

from .. import distributed
from ..devices import DEVICE_PATTERN, check_device_name, device_problem  # noqa: F401  (re-exported)
from ..errors import ConfigError
from ..threads import check_threads
from ..validation import check_bool, check_choice, check_number

OPTIMIZERS = ("adam", "sgd", "lbfgs")
#: The largest ``random_state``: torch's generators take seeds below 2**64.
MAX_SEED = 2**64 - 1
#: Training options renamed: old name → new name.
RENAMED_OPTIONS = {"max_iter": "lbfgs_max_iter"}


def check_renamed(values: Any, prefix: str = "") -> None:
    """:class:`ConfigError` naming the new name when ``values`` (a mapping) uses an old one
    (:data:`RENAMED_OPTIONS`); ``prefix`` is the config section, e.g. ``"train."``."""
    for old, new in RENAMED_OPTIONS.items():
        if old in values:
            raise ConfigError(f"training option {prefix}{old} is now {prefix}{new} (the L-BFGS iterations; "
                              "a sparse-coding model's inference iterations are model.inference_max_iter)")


@dataclass
class TrainConfig:
    """How to train. ``max_epochs`` counts passes over the data (minibatch optimizers);
    L-BFGS runs ``lbfgs_max_iter`` iterations on the full batch, checkpointing every
    ``lbfgs_iter_per_epoch`` of them (one "epoch"). ``dtype``: float32, or float64 for
    full-batch L-BFGS on small problems (as MATLAB's minFunc in UFLDL: in float32 its line search
    can stall where the loss changes below float32's resolution). ``amp``: bf16 autocast (CUDA;
    also honoured on the CPU, where it is mostly useful to test the path). ``monitor``: the logged
    term that early stopping and the best epoch follow, on the validation set when there is one
    (``loss``, or e.g. ``error`` for a model with a classifier head). ``lr_decay`` γ: the
    learning rate of epoch e is ``learning_rate · γ^(e−1)`` (times each parameter's scale), a
    function of the epoch alone, so resuming keeps the schedule; 1 keeps it constant. ``compile``:
the training step's forward and backward through ``torch.compile`` (True: the inductor backend,
or a backend's name); minibatch optimizers only. Adam is the fused implementation (CPU and CUDA).
``cuda_graph``: capture the whole step (forward, backward, optimizer, constraints) in one CUDA graph and replay it per
batch (:mod:`sparseae.train.graphs`): CUDA, Adam and a single process only; it removes the
per-kernel launch cost that dominates mid-sized models' steps. ``bf16_weights`` (with ``amp``):
the forward and backward run on bf16 copies of the weight matrices, written by the update, instead
of casting each matrix twice per step (:mod:`sparseae.train.precision`); minibatch optimizers, a
single process. ``threads``: PyTorch's CPU threads while training: a number, ``"auto"``
(:func:`sparseae.threads.auto_threads`: from the step's size and the free cores) or None (leave
PyTorch's setting); the previous setting is restored afterwards. ``loggers``: experiment trackers
(``tensorboard``, ``mlflow``, ``wandb``, :mod:`sparseae.train.loggers`) that log into the run folder.
``schedule``: per-step schedules (``lr`` warm-up and decay, ``sparsity_warmup``, ``k_anneal``,
``resample`` of dead latents; :func:`sparseae.train.callbacks.check_schedule` lists their keys).

    Under torch.distributed (``torchrun``), ``batch_size`` is per rank: N ranks with batch B
    train exactly as one process with batch N·B (same order, gradients averaged by
    DistributedDataParallel, batch statistics such as KL's ρ̂ averaged across ranks); only rank 0
    writes checkpoints, which resume on any number of ranks. L-BFGS runs the full batch on every
    rank."""

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.0
    batch_size: int = 256
    max_epochs: int = 20
    lbfgs_max_iter: int = 400
    lbfgs_iter_per_epoch: int = 50
    validation_fraction: float = 0.0
    n_iter_no_change: int | None = None
    tol: float = 0.0
    random_state: int = 0
    device: str = "auto"
    dtype: str = "float32"
    amp: bool = False
    shuffle: bool = True
    progress: bool = False
    grad_clip: float | None = None
    monitor: str = "loss"
    lr_decay: float = 1.0
    compile: bool | str = False
    cuda_graph: bool = False
    bf16_weights: bool = False
    threads: int | str | None = "auto"
    loggers: list[str] = field(default_factory=list)
    schedule: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_number(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False)
        check_number(self.momentum, "momentum", low=0.0, high=1.0, high_inclusive=False)
        for name in ("batch_size", "max_epochs", "lbfgs_max_iter", "lbfgs_iter_per_epoch"):
            check_number(getattr(self, name), name, low=1, integer=True)
        check_number(self.validation_fraction, "validation_fraction", low=0.0, high=1.0,
                     high_inclusive=False)
        if self.n_iter_no_change is not None:
            check_number(self.n_iter_no_change, "n_iter_no_change", low=1, integer=True)
        check_number(self.tol, "tol", low=0.0)
        check_number(self.random_state, "random_state", low=0, high=MAX_SEED, integer=True)
        for name in ("amp", "shuffle", "progress"):
            check_bool(getattr(self, name), name)
        check_choice(self.dtype, "dtype", ("float32", "float64"))
        check_number(self.lr_decay, "lr_decay", low=0.0, high=1.0, low_inclusive=False)
        if not isinstance(self.compile, (bool, str)) or self.compile == "":
            raise ConfigError(f"compile must be true, false or a torch.compile backend name, got {self.compile!r}")
        if self.compile and self.optimizer == "lbfgs":
            raise ConfigError("compile applies to minibatch optimizers (adam, sgd), not lbfgs")
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ConfigError(f"monitor must be the name of a logged term, got {self.monitor!r}")
        if not isinstance(self.cuda_graph, bool):
            raise ConfigError(f"cuda_graph must be true or false, got {self.cuda_graph!r}")
        if self.cuda_graph and self.optimizer != "adam":
            raise ConfigError(f"cuda_graph needs optimizer adam, not {self.optimizer!r}")
        if not isinstance(self.bf16_weights, bool):
            raise ConfigError(f"bf16_weights must be true or false, got {self.bf16_weights!r}")
        if self.bf16_weights and not self.amp:
            raise ConfigError("bf16_weights needs amp (bf16 autocast) on")
        if self.bf16_weights and self.optimizer == "lbfgs":
            raise ConfigError("bf16_weights applies to minibatch optimizers (adam, sgd), not lbfgs")
        if self.amp and self.dtype == "float64":
            raise ConfigError("amp (bf16 autocast) needs dtype float32")
        if self.grad_clip is not None:
            check_number(self.grad_clip, "grad_clip", low=0.0, low_inclusive=False)
        check_device_name(self.device, "device")
        self.threads = check_threads(self.threads)
        from .loggers import check_logger_names  # imports the trainer, which imports this module

        self.loggers = check_logger_names(self.loggers)
        from .callbacks import check_schedule  # imports the trainer, which imports this module

        self.schedule = check_schedule(self.schedule)
        return self

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        check_renamed(values)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training option {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(sorted(known))}")
        return cls(**values).validate()

    def resolved_device(self) -> torch.device:
        """``auto``: this rank's GPU when CUDA is available (GPU ``LOCAL_RANK`` under torchrun),
        else the CPU."""
        if self.device == "auto":
            return distributed.local_device()
        return torch.device(self.device)

    def training_device(self) -> torch.device:
        """:meth:`resolved_device`, once this machine is checked to train there as asked (the
        device exists; ``cuda_graph`` has CUDA; ``amp`` has bf16): :class:`ConfigError` otherwise.
        Called when training starts; :meth:`validate` checks no fact of the machine, so a config
        written on a GPU machine reads anywhere."""
        device = self.resolved_device()
        problem = device_problem(device)
        if problem is not None:
            raise ConfigError(f"train.device is {self.device!r}, but {problem}: train with device cpu "
                              "or auto (sparseae train --device cpu)")
        if self.cuda_graph and device.type != "cuda":
            raise ConfigError(f"cuda_graph needs a CUDA device, and training runs on {device}")
        if self.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"amp (bf16 autocast) needs bf16 support, which {device} lacks: train without amp")
        if isinstance(self.compile, str):  # a backend's name; torch would fail only at the first step
            from torch._dynamo import list_backends

            backends = list_backends(exclude_tags=())
            if self.compile not in backends:
                raise ConfigError(f"compile names no torch.compile backend: {self.compile!r}; known: "
                                  f"{', '.join(backends)} (or true: inductor)")
        return device

    @property
    def compile_backend(self) -> str:
        """The torch.compile backend ``compile`` names (True: inductor)."""
        return "inductor" if self.compile is True else str(self.compile)

    @property
    def n_epochs(self) -> int:
        if self.optimizer == "lbfgs":
            return -(-self.lbfgs_max_iter // self.lbfgs_iter_per_epoch)
        return self.max_epochs

"""The optimizer and the update after each backward pass: per-parameter learning-rate groups,
the per-epoch schedule, Adam / SGD / L-BFGS as :class:`~sparseae.train.TrainConfig` asks, the
graph-safe form of Adam, and ``update()`` (gradient projection, clipping, step, constraints)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .precision import Bf16Weights
    from .config import TrainConfig


def parameter_groups(model: torch.nn.Module, learning_rate: float) -> list[dict[str, Any]]:
    """Optimizer groups. A model may define ``learning_rate_scales() -> {parameter name: scale}``
    (e.g. DrSAE divides a shared matrix's rate by the number of times it is unrolled);
    parameters it does not name get scale 1."""
    scales = model.learning_rate_scales() if hasattr(model, "learning_rate_scales") else {}
    named = dict(model.named_parameters())
    unknown = sorted(set(scales) - set(named))
    if unknown:
        raise ConfigError(f"learning-rate scales name unknown parameters: {', '.join(unknown)}")
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, parameter in named.items():
        if parameter.requires_grad:
            groups.setdefault(float(scales.get(name, 1.0)), []).append(parameter)
    return [{"params": params, "lr": learning_rate * scale, "lr_scale": scale}
            for scale, params in groups.items()]


def set_epoch_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig, epoch: int) -> None:
    """``learning_rate · lr_decay^(epoch−1) · scale`` in every group (see :class:`TrainConfig`)."""
    if config.optimizer == "lbfgs":  # no decay; set, as a resume restores the saved rate
        optimizer.param_groups[0]["lr"] = config.learning_rate
        return
    rate = config.learning_rate * config.lr_decay ** (epoch - 1)
    for group in optimizer.param_groups:
        value = rate * group.get("lr_scale", 1.0)
        if isinstance(group["lr"], torch.Tensor):  # a captured CUDA graph reads it in place
            group["lr"].fill_(value)
        else:
            group["lr"] = value


# With ``compile`` and ``cuda_graph`` the update (gradient projection, Adam, constraints) is
# compiled too: inductor fuses the constraints' per-column reductions with Adam's element-wise
# math, where the eager path makes a separate pass over the weights for each. Measured on an
# H200 (benchmarks/bench_sae_throughput.py --eager-update), L1 SAE 768-16384, batch 4096: 1.309
# vs 1.356 ms per graphed step, TopK 2.354 vs 2.530 ms. Without the graph the compiled update's
# host-side cost outweighs it (L1: 2.318 vs 1.945 ms), so the eager fused Adam stays there.
COMPILE_UPDATE_ON_CUDA = True


def compiles_update(config: TrainConfig, device: torch.device) -> bool:
    return (bool(config.compile) and config.cuda_graph and config.optimizer == "adam"
            and device.type == "cuda" and COMPILE_UPDATE_ON_CUDA)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.learning_rate)
    if config.optimizer == "adam":
        devices = {p.device.type for group in groups for p in group["params"]}
        on_cuda = devices == {"cuda"}
        if on_cuda and compiles_update(config, torch.device("cuda")):  # inductor sees Adam's math
            return torch.optim.Adam(groups, lr=config.learning_rate, foreach=True, capturable=True)
        # The fused kernel makes one pass over each tensor. On the CPU PyTorch's default is the
        # per-tensor loop of ~10 element-wise ops: 337 vs 812 µs per step for an L1 SAE 784-256,
        # 1 thread (benchmarks/bench_cpu_step_parts.py; BENCHMARKS.md).
        # PyTorch < 2.4 has no fused CPU kernel (its constructor refuses): the default there.
        capturable = config.cuda_graph and on_cuda
        if on_cuda or devices == {"cpu"}:
            try:
                return torch.optim.Adam(groups, lr=config.learning_rate, fused=True, capturable=capturable)
            except RuntimeError:
                if on_cuda:
                    raise
        return torch.optim.Adam(groups, lr=config.learning_rate, capturable=capturable)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.momentum)
    parameters = [p for group in groups for p in group["params"]]
    return torch.optim.LBFGS(parameters, lr=config.learning_rate, max_iter=config.lbfgs_iter_per_epoch,
                             history_size=100, line_search_fn="strong_wolfe",
                             tolerance_grad=1e-9, tolerance_change=1e-12)


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Adam in graph-safe form: ``capturable`` groups, learning rates as float32 tensors on
    ``device`` (updated in place by the schedule), step counters on the device."""
    if not isinstance(optimizer, torch.optim.Adam):
        raise ConfigError(f"cuda_graph needs the adam optimizer, not {type(optimizer).__name__}")
    for group in optimizer.param_groups:
        group["capturable"] = True
        group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
    for state in optimizer.state.values():
        step = state.get("step")
        if isinstance(step, torch.Tensor) and step.device != device:
            state["step"] = step.to(device=device, dtype=torch.float32)
    # Warm-up and odd-sized batches run uncaptured on purpose; PyTorch's warning about it is noise.
    optimizer._warned_capturable_if_run_uncaptured = True


def training_update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig,
                    device: torch.device, weights: Bf16Weights | None = None):
    """``update()`` after the backward pass: gradient projection, clipping, the optimizer's step
    and the constraints; through ``torch.compile`` when :func:`compiles_update` (``compile`` and
    ``cuda_graph`` on CUDA; Adam is then the foreach implementation, which inductor fuses). With
    bf16 working ``weights``, their gradients come to the float32 masters first and the copies
    are rewritten last."""

    def update() -> None:
        if weights is not None:
            weights.grads_to_masters()
        model.project_gradients()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        model.apply_constraints()
        if weights is not None:
            weights.refresh()

    if compiles_update(config, device):
        return torch.compile(update, backend=config.compile_backend)
    return update

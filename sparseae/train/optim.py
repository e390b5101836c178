"""The optimizer and the update after each backward pass: per-parameter learning-rate groups,
the per-epoch schedule, Adam / SGD / L-BFGS as :class:`~sparseae.train.TrainConfig` asks, the
graph-safe form of Adam, and ``update()`` (gradient projection, clipping, step, constraints)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..models.base import Autoencoder
    from .config import TrainConfig
    from .precision import Bf16Weights


def parameter_groups(model: Autoencoder, learning_rate: float) -> list[dict[str, Any]]:
    """Optimizer groups, by the model's ``learning_rate_scales() -> {parameter name: scale}``
    (e.g. DrSAE divides a shared matrix's rate by the number of times it is unrolled);
    parameters it does not name get scale 1."""
    scales = model.learning_rate_scales()
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


def compiles_update(config: TrainConfig, device: torch.device) -> bool:
    """Whether the update (gradient projection, Adam, constraints) is compiled too: with
    ``compile`` and ``cuda_graph`` on CUDA, where inductor fuses the constraints' reductions with
    Adam's element-wise math; without the graph the compiled update's host-side cost outweighs
    that (figures: BENCHMARKS.md, ``benchmarks/bench_sae_throughput.py --eager-update``)."""
    return (bool(config.compile) and config.cuda_graph and config.optimizer == "adam"
            and device.type == "cuda")


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.learning_rate)
    if config.optimizer == "adam":
        devices = {p.device.type for group in groups for p in group["params"]}
        on_cuda = devices == {"cuda"}
        if on_cuda and compiles_update(config, torch.device("cuda")):  # inductor sees Adam's math
            return torch.optim.Adam(groups, lr=config.learning_rate, foreach=True, capturable=True)
        # The fused kernel makes one pass over each tensor, where PyTorch's CPU default loops over
        # ~10 element-wise ops per tensor (2.4x slower: BENCHMARKS.md, bench_cpu_step_parts.py).
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

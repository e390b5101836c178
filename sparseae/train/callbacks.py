"""Trainer callbacks that belong to one model family."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..models.deep import MLPEncoder
from ..validation import check_number
from .trainer import Callback


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
        if not isinstance(getattr(model, "encoder", None), MLPEncoder):
            raise ConfigError("a code-noise schedule needs a deep model (an MLPEncoder)")
        model.encoder.code_noise_std = self.std(epoch)

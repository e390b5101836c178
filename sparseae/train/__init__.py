"""Training: one loop (:func:`train`), atomic checkpoints, distributed helpers."""
from .. import distributed  # noqa: F401  (sparseae.train.distributed, its former home)
from .config import TrainConfig
from .trainer import Callback, TrainResult, evaluate_loss, train

__all__ = ["Callback", "TrainConfig", "TrainResult", "evaluate_loss", "train"]

"""Training: one loop (:func:`train`), atomic checkpoints, distributed helpers."""
from .config import TrainConfig
from .trainer import Callback, TrainResult, evaluate_loss, train

__all__ = ["Callback", "TrainConfig", "TrainResult", "evaluate_loss", "train"]

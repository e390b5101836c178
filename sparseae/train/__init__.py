"""Training: one loop (:func:`train`), atomic checkpoints, distributed helpers."""
from .trainer import Callback, TrainConfig, TrainResult, evaluate_loss, train

__all__ = ["Callback", "TrainConfig", "TrainResult", "evaluate_loss", "train"]

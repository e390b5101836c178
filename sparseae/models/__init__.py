"""Models: one file per family, each registering presets in :data:`MODELS`."""
from . import autoencoders  # noqa: F401  (registers the presets)
from .base import MODELS, Autoencoder, LossOutput, create_model

__all__ = ["MODELS", "Autoencoder", "LossOutput", "create_model"]

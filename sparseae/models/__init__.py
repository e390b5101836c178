"""Models: one file per family, each registering presets in :data:`MODELS`."""
from . import autoencoders  # noqa: F401  (registers the presets)
from . import lista, psd, sparse_coding  # noqa: F401  (registers sparse_coding, psd, lista)
from . import drsae  # noqa: F401
from .base import MODELS, Autoencoder, LossOutput, create_model
from .supervised import SupervisedAutoencoder

__all__ = ["MODELS", "Autoencoder", "LossOutput", "SupervisedAutoencoder", "create_model"]

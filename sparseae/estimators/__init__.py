"""scikit-learn estimators over the sparseae models: fit / transform / inverse_transform / score.

Each estimator is a thin, scikit-learn-conformant wrapper: ``__init__`` only stores its keyword
arguments, ``fit`` validates them and the data, builds the model with
:func:`~sparseae.models.create_model` and trains it with :func:`sparseae.train.train` (the one
training loop of the library). The machinery lives in :mod:`.base`; a concrete estimator only
says which registered model it builds.
"""
from .autoencoders import (
                           AutoencoderEstimator,
                           ContractiveAutoencoder,
                           DenoisingAutoencoder,
                           LinearAutoencoder,
                           SparseAutoencoder,
)
from .base import BaseAutoencoderEstimator
from .classifiers import DrSAEClassifier
from .convolutional import ConvSparseAutoencoder, LocalSparseAutoencoder
from .dictionary import DictionaryLearning, MiniBatchDictionaryLearning, SparseCoder
from .inhibition import LateralInhibitionCoder
from .stacked import StackedAutoencoder, StackedClassifier

__all__ = ["AutoencoderEstimator", "BaseAutoencoderEstimator", "ContractiveAutoencoder",
           "DenoisingAutoencoder", "DrSAEClassifier", "LateralInhibitionCoder", "LinearAutoencoder",
           "SparseAutoencoder", "StackedAutoencoder", "StackedClassifier"]
__all__ += ["ConvSparseAutoencoder", "LocalSparseAutoencoder"]
__all__ += ["DictionaryLearning", "MiniBatchDictionaryLearning", "SparseCoder"]

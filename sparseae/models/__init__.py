"""Models: one file per family, each registering presets in :data:`MODELS`.

* :mod:`.autoencoders`: ``autoencoder``, ``linear_ae``, ``sparse_ae_kl``, ``sparse_ae_l1``,
  ``denoising_ae``, ``contractive_ae``
* :mod:`.deep`: ``deep_autoencoder``, ``mlp_classifier``, ``semantic_hashing``, the layers of greedy
  layer-wise pre-training
* :mod:`.sae`: ``topk_sae`` (TopK, BatchTopK, AuxK), ``jumprelu_sae``, ``matryoshka_sae``, ``gated_sae``,
  ``matching_pursuit_sae``
* :mod:`.transcoder`: ``transcoder`` (predicts a layer's MLP output from its input)
* :mod:`.binary`: ``binary_autoencoder`` (hashing; MAC-trained, :mod:`sparseae.retrieval`)
* :mod:`.sparse_coding`: ``sparse_coding`` (FISTA inference, dictionary learning)
* :mod:`.psd`: ``psd``; :mod:`.lista`: ``lista``
* :mod:`.lateral_inhibition`: ``lateral_inhibition`` (structured sparse coding, learned inhibition S)
* :mod:`.supervised` and :mod:`.drsae`: autoencoders with a classifier head, ``drsae``
* :mod:`.convolutional`: ``conv_sae`` (L2 pooling over pools of maps); :mod:`.local`: ``local_sae``
  (locally connected, topographic); :mod:`.conv_stack`: ``conv_stack``, stacked conv layers → a
  pre-trained convnet

Models know nothing of training: each declares its procedure by name (``training_procedure``),
which :mod:`sparseae.train.procedures` runs (``fit_stacked``, ``fit_supervised``, ``fit_conv_stack``...).
"""
from . import autoencoders, binary, sae, transcoder  # noqa: F401  (register the presets)
from .base import MODELS, Autoencoder, LossOutput, create_model, encode_dataset
from .conv_stack import ConvFeatureExtractor, ConvStack, build_conv_stack
from .convolutional import ConvAutoencoder
from .deep import DeepAutoencoder, MLPClassifier, load_layer_weights
from .drsae import DrSAE, encoder_decoder_angles
from .lateral_inhibition import LateralInhibition
from .lista import LISTA, lista_from_dictionary
from .local import LocalAutoencoder
from .pruning import TreeModelPruning, prune_tree_model
from .psd import PSD, psd_code_quality
from .sparse_coding import SparseCoding
from .supervised import SupervisedAutoencoder, error_rate
from .transcoder import Transcoder

__all__ = ["MODELS", "Autoencoder", "DeepAutoencoder", "DrSAE", "LISTA", "LateralInhibition", "LossOutput",
           "MLPClassifier", "PSD", "SparseCoding", "SupervisedAutoencoder", "create_model", "encode_dataset",
           "load_layer_weights", "encoder_decoder_angles", "error_rate", "lista_from_dictionary", "psd_code_quality"]
__all__ += ["ConvAutoencoder", "ConvFeatureExtractor", "ConvStack", "LocalAutoencoder", "build_conv_stack"]
__all__ += ["TreeModelPruning", "prune_tree_model", "Transcoder"]

"""Models: one file per family, each registering presets in :data:`MODELS`.

* :mod:`.autoencoders`: ``autoencoder``, ``linear_ae``, ``sparse_ae_kl``, ``sparse_ae_l1``,
  ``denoising_ae``, ``contractive_ae``
* :mod:`.deep`: ``deep_autoencoder``, ``mlp_classifier``, ``semantic_hashing``, greedy layer-wise
  pre-training
* :mod:`.sae`: ``topk_sae`` (TopK, BatchTopK, AuxK), ``jumprelu_sae``
* :mod:`.sparse_coding`: ``sparse_coding`` (FISTA inference, dictionary learning)
* :mod:`.psd`: ``psd``; :mod:`.lista`: ``lista``
* :mod:`.lateral_inhibition`: ``lateral_inhibition`` (structured sparse coding, learned inhibition S)
* :mod:`.supervised` and :mod:`.drsae`: autoencoders with a classifier head, ``drsae``
* :mod:`.convolutional`: ``conv_sae`` (L2 pooling over pools of maps); :mod:`.local`: ``local_sae``
  (locally connected, topographic); :mod:`.conv_stack`: ``conv_stack``, stacked conv layers → a
  pre-trained convnet
"""
from . import autoencoders, sae  # noqa: F401  (register the presets)
from .base import MODELS, Autoencoder, LossOutput, create_model, encode_dataset
from .deep import StackedResult, fit_stacked, load_layer_weights, pretrain_layers
from .conv_stack import ConvFeatureExtractor, ConvStack, ConvStackResult, build_conv_stack, fit_conv_stack, load_conv_stack
from .convolutional import ConvAutoencoder
from .local import LocalAutoencoder
from .drsae import DrSAE, encoder_decoder_angles, fit_drsae
from .lateral_inhibition import LateralInhibition
from .lista import LISTA, lista_from_dictionary
from .psd import PSD, psd_code_quality
from .pruning import TreeModelPruning, prune_tree_model
from .sparse_coding import SparseCoding
from .supervised import SupervisedAutoencoder, error_rate, fit_supervised

__all__ = ["MODELS", "Autoencoder", "DrSAE", "LISTA", "LateralInhibition", "LossOutput", "PSD", "SparseCoding",
           "StackedResult", "SupervisedAutoencoder", "create_model", "encode_dataset", "fit_stacked",
           "load_layer_weights", "pretrain_layers", "encoder_decoder_angles", "error_rate",
           "fit_drsae", "fit_supervised", "lista_from_dictionary", "psd_code_quality"]
__all__ += ["ConvAutoencoder", "ConvFeatureExtractor", "ConvStack", "ConvStackResult", "LocalAutoencoder",
            "build_conv_stack", "fit_conv_stack", "load_conv_stack"]
__all__ += ["TreeModelPruning", "prune_tree_model"]

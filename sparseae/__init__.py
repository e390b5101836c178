"""sparseae: sparse and regularized autoencoders on PyTorch.

The training procedures are importable from here too (loaded on first use, so ``import sparseae``
stays light): ``sparseae.fit_stacked`` is :func:`sparseae.train.procedures.fit_stacked`.
"""
from ._version import __version__

_PROCEDURES = ("ConvStackResult", "StackedResult", "fit_conv_stack", "fit_conv_stack_layers", "fit_drsae",
               "fit_stacked", "fit_supervised", "learn_dictionary", "load_conv_stack", "pretrain_conv_layers",
               "pretrain_deep_model", "pretrain_layers")

_ESTIMATORS = ("DictionaryLearning", "MiniBatchDictionaryLearning", "SparseCoder")  # scikit-learn drop-ins

__all__ = ["__version__", *_PROCEDURES]
__all__ += list(_ESTIMATORS)


def __getattr__(name: str):
    if name in _PROCEDURES:  # a lazy re-export (torch and the models load only when asked for)
        from .train import procedures

        return getattr(procedures, name)
    if name in _ESTIMATORS:
        from .estimators import dictionary

        return getattr(dictionary, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

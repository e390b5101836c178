"""Which of our models have a SAELens form, and what it is: :func:`saelens_form` gives the SAELens
config fields and tensors of a model taking our inputs as they are, or refuses it in one line."""
from __future__ import annotations

from typing import Any

import torch

from ...errors import ConfigError


def no_form(model_name: str, why: str) -> ConfigError:
    return ConfigError(f"model {model_name!r} has no SAELens form: {why} (SAELens runs ReLU, TopK, BatchTopK "
                       "and JumpReLU SAEs)")


def saelens_form(model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config fields, tensors) of ``model`` as a SAELens SAE taking our inputs as they are."""
    from ...models.base import Autoencoder
    from ...models.sae import MatryoshkaSAE
    from ...models.transcoder import Transcoder
    from ...nn.decoders import LinearDecoder
    from ...nn.encoders import LinearEncoder
    from ...nn.gated import GatedEncoder
    from ...nn.likelihoods import GaussianLikelihood, LearnedVarianceGaussian
    from ...nn.matching_pursuit import MatchingPursuitEncoder
    from ...nn.sparse_encoders import JumpReLUEncoder, TopKEncoder

    if not isinstance(model, Autoencoder):
        raise no_form(type(model).__name__, "it is not a sparseae model")
    name = model.spec.get("name", type(model).__name__)
    encoder, decoder = model.encoder, model.decoder
    if type(model) not in (Autoencoder, MatryoshkaSAE, Transcoder) or \
            not isinstance(encoder, (LinearEncoder, TopKEncoder, JumpReLUEncoder, GatedEncoder,
                                     MatchingPursuitEncoder)):
        raise no_form(name, f"its encoder ({type(encoder).__name__}) is none of them (e.g. inference by optimisation)")
    if isinstance(encoder, LinearEncoder) and (encoder.activation != "relu" or encoder.bias is None):
        raise no_form(name, f"its units are {encoder.activation}, not ReLU")
    if not isinstance(decoder, LinearDecoder) or decoder.bias is None:
        raise no_form(name, "its decoder is not affine")
    likelihood = model.likelihood
    if not (isinstance(likelihood, LearnedVarianceGaussian)
            or (isinstance(likelihood, GaussianLikelihood) and likelihood.link == "identity")):
        link = getattr(likelihood, "link", None)
        raise no_form(name, f"its output has a non-linearity ({type(likelihood).__name__}"
                             f"{f' with link {link}' if link else ''})")
    if isinstance(model, Transcoder):
        return _transcoder_form(model, name)
    if isinstance(encoder, MatchingPursuitEncoder):  # k steps: no residual threshold, no early stop
        fields = {"architecture": "matching_pursuit", "apply_b_dec_to_input": True, "residual_threshold": 0.0,
                  "max_iterations": encoder.k, "stop_on_duplicate_support": False}
        return fields, {"W_dec": decoder.weight.detach().t().to("cpu").clone().contiguous(),
                        "b_dec": decoder.bias.detach().to("cpu").clone().contiguous()}
    with torch.no_grad():
        tensors = {"W_enc": encoder.weight.t(), "b_enc": encoder.bias, "W_dec": decoder.weight.t(),
                   "b_dec": decoder.bias}
        fields: dict[str, Any] = {}
        if isinstance(encoder, TopKEncoder):
            if encoder.batch_topk and float(encoder.threshold) >= 0:
                fields["architecture"] = "jumprelu"
                tensors["threshold"] = encoder.threshold.to(encoder.weight.dtype).expand(encoder.n_components)
            else:
                fields.update(architecture="topk", k=encoder.k, rescale_acts_by_decoder_norm=False)
            fields["apply_b_dec_to_input"] = True
        elif isinstance(encoder, JumpReLUEncoder):
            fields.update(architecture="jumprelu", apply_b_dec_to_input=True)
            tensors["threshold"] = encoder.threshold
        elif isinstance(encoder, GatedEncoder):  # b_enc is the gate's bias, b_gate
            fields.update(architecture="gated", apply_b_dec_to_input=True)
            tensors = {"W_enc": tensors["W_enc"], "b_gate": encoder.bias, "b_mag": encoder.b_mag,
                       "r_mag": encoder.r_mag, "W_dec": tensors["W_dec"], "b_dec": tensors["b_dec"]}
        else:
            fields.update(architecture="standard", apply_b_dec_to_input=False)
        tensors = {key: value.detach().to("cpu").clone().contiguous() for key, value in tensors.items()}
    return fields, tensors


def _transcoder_form(model: torch.nn.Module, name: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config fields, tensors) of a ``transcoder``: SAELens's ``transcoder`` (ReLU) or, trained
    BatchTopK, ``jumprelu_transcoder`` with its threshold θ on every latent."""
    from ...nn.sparse_encoders import TopKEncoder

    encoder, decoder = model.encoder, model.decoder
    fields: dict[str, Any] = {"architecture": "transcoder", "apply_b_dec_to_input": False,
                              "d_out": int(decoder.n_features)}
    with torch.no_grad():
        tensors = {"W_enc": encoder.weight.t(), "b_enc": encoder.bias, "W_dec": decoder.weight.t(),
                   "b_dec": decoder.bias}
        if isinstance(encoder, TopKEncoder):
            if not (encoder.batch_topk and float(encoder.threshold) >= 0):
                raise no_form(name, "SAELens has no TopK transcoder (a trained BatchTopK one exports as "
                                     "jumprelu_transcoder)")
            fields["architecture"] = "jumprelu_transcoder"
            tensors["threshold"] = encoder.threshold.to(encoder.weight.dtype).expand(encoder.n_components)
        tensors = {key: value.detach().to("cpu").clone().contiguous() for key, value in tensors.items()}
    return fields, tensors

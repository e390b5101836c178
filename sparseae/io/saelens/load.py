"""SAELens → ours: :func:`import_saelens` reads a SAELens SAE folder as a sparseae model.
The conventions: :mod:`sparseae.io.saelens`."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ...digests import tensors_sha256
from ...errors import CheckpointError, ConfigError
from .form import saelens_form
from .format import (
    ARCHITECTURES,
    CFG_FILE,
    DTYPES,
    SPARSITY_EPS,
    SPARSITY_FILE,
    STATE_FILE,
    TRANSCODERS,
    WEIGHTS_FILE,
)


def _bad(folder: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{folder / CFG_FILE}: {why}")


def _read_cfg(folder: Path) -> dict[str, Any]:
    """``cfg.json`` checked and completed as SAELens reads it (configs older than SAELens 6 included)."""
    cfg = _load_cfg_json(folder)
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    _upgrade_pre_v6_cfg(folder, cfg, meta)
    cfg["metadata"] = meta
    for key in ("d_in", "d_sae"):
        if type(cfg.get(key)) is not int or cfg[key] < 1:
            raise _bad(folder, f"{key} must be a positive integer, got {cfg.get(key)!r}")
    _check_architecture(folder, cfg)
    dtype = str(cfg.get("dtype", "float32")).removeprefix("torch.")
    if dtype not in DTYPES:
        raise _bad(folder, f"dtype {cfg.get('dtype')!r} is not one of {', '.join(DTYPES)}")
    cfg["dtype"] = dtype
    if not isinstance(cfg.get("apply_b_dec_to_input", True), bool):
        raise _bad(folder, f"apply_b_dec_to_input must be true or false, got {cfg['apply_b_dec_to_input']!r}")
    cfg.setdefault("apply_b_dec_to_input", True)
    normalization = cfg.get("normalize_activations") or "none"
    ours = meta.get("sparseae") if isinstance(meta.get("sparseae"), dict) else {}
    if normalization == "constant_norm_rescale" and ours.get("input_normalization") != "l2":
        raise _bad(folder, "normalize_activations 'constant_norm_rescale' rescales each input inside the SAE, "
                           "which a sparseae model does not (only sparseae's own l2 exports are read back)")
    if normalization not in ("none", "expected_average_only_in", "constant_norm_rescale"):
        raise _bad(folder, f"normalize_activations {normalization!r} has no sparseae form")
    cfg["normalize_activations"] = normalization
    if cfg["architecture"] == "topk":
        if type(cfg.get("k")) is not int or not 1 <= cfg["k"] <= cfg["d_sae"]:
            raise _bad(folder, f"k must be an integer from 1 to d_sae={cfg['d_sae']}, got {cfg.get('k')!r}")
        if not isinstance(cfg.get("rescale_acts_by_decoder_norm", False), bool):
            raise _bad(folder, "rescale_acts_by_decoder_norm must be true or false")
    return cfg


def _load_cfg_json(folder: Path) -> dict[str, Any]:
    """The JSON object of ``folder/cfg.json``; :class:`CheckpointError` when missing, corrupt or not an object."""
    try:
        cfg = json.loads((folder / CFG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder} is not a SAELens folder: {CFG_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder / CFG_FILE} is corrupt: {' '.join(str(exc).split())}") from None
    if not isinstance(cfg, dict):
        raise _bad(folder, "not a JSON object")
    return cfg


def _upgrade_pre_v6_cfg(folder: Path, cfg: dict[str, Any], meta: dict[str, Any]) -> None:
    """Fill in, in place, the keys and defaults that SAELens < 6 wrote differently."""
    version = cfg.get("sae_lens_version") or meta.get("sae_lens_version")
    major = str(version).split(".")[0] if version else ""
    if major.isdigit() and int(major) >= 6:
        return
    cfg.setdefault("apply_b_dec_to_input", True)
    cfg.setdefault("architecture", "topk" if cfg.get("activation_fn") == "topk" else "standard")
    if cfg["architecture"] == "topk" and "k" not in cfg:
        cfg["k"] = (cfg.get("activation_fn_kwargs") or {}).get("k")
    if isinstance(cfg.get("normalize_activations"), bool):
        cfg["normalize_activations"] = "expected_average_only_in" if cfg["normalize_activations"] else "none"
    if cfg.get("finetuning_scaling_factor"):
        raise _bad(folder, "finetuning_scaling_factor has no sparseae form")
    if cfg.get("activation_fn", "relu") not in ("relu", "topk"):
        raise _bad(folder, f"activation_fn {cfg['activation_fn']!r} has no sparseae form")


def _check_architecture(folder: Path, cfg: dict[str, Any]) -> None:
    """``cfg['architecture']`` (default ``standard``) is one we read, with its own keys valid."""
    architecture = cfg.get("architecture", "standard")
    if architecture not in ARCHITECTURES:
        raise _bad(folder, f"architecture {architecture!r} has no sparseae model (supported: "
                           f"{', '.join(ARCHITECTURES)})")
    cfg["architecture"] = architecture
    if architecture in TRANSCODERS:
        if type(cfg.get("d_out")) is not int or cfg["d_out"] < 1:
            raise _bad(folder, f"d_out must be a positive integer, got {cfg.get('d_out')!r}")
        if cfg.get("apply_b_dec_to_input", False) is not False:
            raise _bad(folder, "a transcoder cannot apply b_dec to its input (apply_b_dec_to_input must be false)")
        cfg["apply_b_dec_to_input"] = False
    if architecture == "matching_pursuit":
        iterations = cfg.get("max_iterations")
        if cfg.get("residual_threshold", 1e-2) != 0 or cfg.get("stop_on_duplicate_support", True) \
                or type(iterations) is not int or iterations < 1:
            raise _bad(folder, "a matching_pursuit SAE reads back only with residual_threshold 0, "
                               "stop_on_duplicate_support false and max_iterations k (a fixed number of steps)")


def _read_tensors(folder: Path, cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    from .. import read_safetensors_header

    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    d_out = cfg["d_out"] if cfg["architecture"] in TRANSCODERS else d_in
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_out), "b_dec": (d_out,)}
    if cfg["architecture"] in ("jumprelu", "jumprelu_transcoder"):
        expected["threshold"] = (d_sae,)
    if cfg["architecture"] == "matching_pursuit":
        expected = {"W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if cfg["architecture"] == "gated":
        del expected["b_enc"]
        expected.update(b_gate=(d_sae,), b_mag=(d_sae,), r_mag=(d_sae,))
    found = read_safetensors_header(folder / WEIGHTS_FILE)
    if set(found) != set(expected):
        raise CheckpointError(f"{folder / WEIGHTS_FILE} does not fit a {cfg['architecture']} SAE (missing: "
                              f"{sorted(set(expected) - set(found)) or 'none'}; unexpected: "
                              f"{sorted(set(found) - set(expected)) or 'none'})")
    for key, shape in expected.items():
        if found[key][1] != shape:
            raise CheckpointError(f"{folder / WEIGHTS_FILE}: {key} has shape {found[key][1]}, but {CFG_FILE} "
                                  f"(d_in={d_in}, d_sae={d_sae}{f', d_out={d_out}' if d_out != d_in else ''}) "
                                  f"needs {shape}")
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{folder / WEIGHTS_FILE} is corrupt: {exc}") from None
    dtype = DTYPES[cfg["dtype"]]
    return {key: value.to(dtype) for key, value in tensors.items()}


def _model_for(cfg: dict[str, Any], tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Our model for a SAELens config: the exported spec when it fits, else the usual counterpart."""
    from ...models import create_model

    architecture, d_in, d_sae = cfg["architecture"], cfg["d_in"], cfg["d_sae"]
    ours = cfg["metadata"].get("sparseae")
    ours = ours if isinstance(ours, dict) else {}
    name, params = ours.get("model"), ours.get("params")
    if isinstance(name, str) and isinstance(params, dict) and params.get("n_features") == d_in \
            and params.get("n_components") == d_sae and \
            (architecture not in TRANSCODERS or params.get("n_outputs") in (cfg["d_out"], None)):
        params = {k: v for k, v in params.items() if k not in ("n_features", "n_components")}
        try:
            model = create_model(name, d_in, d_sae, **params)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{CFG_FILE}: metadata.sparseae does not describe a model this sparseae "
                                  f"can build: {exc}") from None
        if _fits(model, cfg, tensors):
            return model
    if architecture in TRANSCODERS:
        return _transcoder_for(cfg, tensors)
    if architecture == "standard":
        return create_model("sparse_ae_l1", d_in, d_sae)
    if architecture == "topk":
        return create_model("topk_sae", d_in, d_sae, k=cfg["k"])
    if architecture == "gated":
        return create_model("gated_sae", d_in, d_sae)
    if architecture == "matching_pursuit":
        return create_model("matching_pursuit_sae", d_in, d_sae, k=cfg["max_iterations"])
    return create_model("jumprelu_sae", d_in, d_sae)


def _transcoder_for(cfg: dict[str, Any], tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A ``transcoder`` for SAELens's ``transcoder`` (ReLU) or ``jumprelu_transcoder`` with one
    threshold on every latent (our trained BatchTopK); other thresholds have no sparseae form."""
    from ...models import create_model

    d_in, d_sae, d_out = cfg["d_in"], cfg["d_sae"], cfg["d_out"]
    if cfg["architecture"] == "transcoder":
        return create_model("transcoder", d_in, d_sae, n_outputs=d_out)
    threshold = tensors["threshold"]
    if not bool((threshold == threshold[0]).all()) or float(threshold[0]) < 0:
        raise CheckpointError(f"{CFG_FILE}: a jumprelu_transcoder with a threshold per latent has no sparseae "
                              "form (only one shared threshold: a BatchTopK transcoder)")
    return create_model("transcoder", d_in, d_sae, n_outputs=d_out, activation="batch_topk")


def _fits(model: torch.nn.Module, cfg: dict[str, Any], tensors: dict[str, torch.Tensor]) -> bool:
    """Whether ``model`` (built from the exported spec) computes the SAE ``cfg`` describes."""
    from ...models.transcoder import Transcoder
    from ...nn.gated import GatedEncoder
    from ...nn.matching_pursuit import MatchingPursuitEncoder
    from ...nn.sparse_encoders import JumpReLUEncoder, TopKEncoder

    encoder, architecture = model.encoder, cfg["architecture"]
    if isinstance(model, Transcoder) != (architecture in TRANSCODERS):
        return False
    if architecture == "jumprelu_transcoder":  # built untrained (θ unset): no SAELens form yet
        threshold = tensors["threshold"]
        return isinstance(encoder, TopKEncoder) and encoder.batch_topk and model.n_outputs == cfg["d_out"] \
            and bool((threshold == threshold[0]).all())
    try:
        saelens_form(model)  # e.g. sigmoid units named by hand: not this SAE
    except ConfigError:
        return False
    if architecture == "transcoder":
        return not isinstance(encoder, TopKEncoder) and model.n_outputs == cfg["d_out"]
    if model.decoder.tied and not torch.equal(tensors["W_dec"], tensors["W_enc"].t()):
        return False
    if architecture == "topk":
        return isinstance(encoder, TopKEncoder) and encoder.k == cfg["k"]
    if architecture == "jumprelu" and isinstance(encoder, TopKEncoder):
        threshold = tensors["threshold"]
        return encoder.batch_topk and bool((threshold == threshold[0]).all())
    if architecture == "jumprelu":
        return isinstance(encoder, JumpReLUEncoder)
    if architecture == "gated":
        return isinstance(encoder, GatedEncoder)
    if architecture == "matching_pursuit":
        return isinstance(encoder, MatchingPursuitEncoder) and encoder.k == cfg["max_iterations"]
    return not isinstance(encoder, (TopKEncoder, JumpReLUEncoder, GatedEncoder))


def rebuild_state(cfg: dict[str, Any], tensors: dict[str, torch.Tensor], use_state: Path | None
             ) -> dict[str, torch.Tensor]:
    """Our state dict for a SAELens config and weights; with ``use_state`` (a folder), the exported
    ``sparseae_state.safetensors`` replaces what the weights give back only approximately."""
    return _state_and_model(cfg, tensors, use_state)[0]


def _state_and_model(cfg: dict[str, Any], tensors: dict[str, torch.Tensor], use_state: Path | None
                     ) -> tuple[dict[str, torch.Tensor], torch.nn.Module]:
    """Our model for a SAELens ``cfg`` and its ``tensors``, and the state dict that makes it compute
    the same function (with ``use_state``: the exported model's own state where its hash matches)."""
    from ...models.transcoder import Transcoder
    from ...nn.gated import GatedEncoder
    from ...nn.sparse_encoders import JumpReLUEncoder, TopKEncoder

    dtype = DTYPES[cfg["dtype"]]
    model = _model_for(cfg, tensors).to(dtype)
    w_enc, b_enc, w_dec, b_dec = _saelens_weights(cfg, tensors)
    encoder = model.encoder
    subtracts = isinstance(encoder, (TopKEncoder, JumpReLUEncoder, GatedEncoder)) and not isinstance(model, Transcoder)
    shift = _b_dec_shift(cfg, subtracts, w_enc, b_dec)
    if shift is not None:
        b_enc = b_enc + shift

    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    encoder_weight = w_enc.to(dtype).t().contiguous()  # float64 holds any of DTYPES exactly
    if "encoder.weight" in state:
        state["encoder.weight"] = encoder_weight
    elif "encoder.parametrizations.weight.original" in state:
        state["encoder.parametrizations.weight.original"] = encoder_weight
    if "encoder.bias" in state or cfg["architecture"] != "matching_pursuit":
        state["encoder.bias"] = b_enc.to(dtype)
    if "decoder.weight_" in state:
        state["decoder.weight_"] = w_dec.to(dtype).t().contiguous()
    state["decoder.bias"] = b_dec.to(dtype)
    if isinstance(encoder, GatedEncoder):  # the magnitude path's shift is scaled by exp(r_mag)
        r_mag, b_mag = tensors["r_mag"].double(), tensors["b_mag"].double()
        state["encoder.r_mag"] = r_mag.to(dtype)
        state["encoder.b_mag"] = (b_mag if shift is None else b_mag + shift * r_mag.exp()).to(dtype)
        for key, value in (("frozen_weight", w_dec.t()), ("frozen_bias", b_dec)):  # the frozen decoder copy
            if f"penalties.gate_aux.{key}" in state:
                state[f"penalties.gate_aux.{key}"] = value.to(dtype).contiguous()
    if isinstance(encoder, JumpReLUEncoder):
        state["encoder.log_threshold"] = tensors["threshold"].double().clamp_min(0).log().to(dtype)
    elif isinstance(encoder, TopKEncoder) and cfg["architecture"] in ("jumprelu", "jumprelu_transcoder"):
        state["encoder.threshold"] = tensors["threshold"][0].to(state["encoder.threshold"].dtype).clone()
    if use_state is not None and (use_state / STATE_FILE).is_file():
        _overlay_exported_state(state, cfg, tensors, use_state / STATE_FILE)
    return state, model


def _saelens_weights(cfg: dict[str, Any], tensors: dict[str, torch.Tensor]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """SAELens' ``W_enc`` (d_in, d_sae), encoder bias (d_sae,), ``W_dec`` (d_sae, d_in), ``b_dec`` (d_in,)
    in float64, with the decoder-norm rescaling and ``constant_norm_rescale`` folded into them."""
    gated = cfg["architecture"] == "gated"  # its b_enc is the gate's bias, b_gate
    if cfg["architecture"] == "matching_pursuit":  # tied: no encoder tensors (W_enc = W_decᵀ, no bias)
        b_dec = tensors["b_dec"] if cfg["apply_b_dec_to_input"] else torch.zeros_like(tensors["b_dec"])
        tensors = {**tensors, "W_enc": tensors["W_dec"].t(),
                   "b_enc": torch.zeros(cfg["d_sae"], dtype=b_dec.dtype), "b_dec": b_dec}
    w_enc, b_enc, w_dec, b_dec = (tensors[k].double()
                                  for k in ("W_enc", "b_gate" if gated else "b_enc", "W_dec", "b_dec"))
    if cfg["architecture"] == "topk" and cfg.get("rescale_acts_by_decoder_norm"):
        norms = w_dec.norm(dim=1)
        w_enc, b_enc, w_dec = w_enc * norms, b_enc * norms, w_dec / norms[:, None]
    if cfg["normalize_activations"] == "constant_norm_rescale":
        root = math.sqrt(cfg["d_in"])
        if cfg["architecture"] in TRANSCODERS:  # SAELens does not rescale a transcoder's output
            w_enc = w_enc * root
        else:
            w_enc, w_dec, b_dec = w_enc * root, w_dec / root, b_dec / root
    return w_enc, b_enc, w_dec, b_dec


def _b_dec_shift(cfg: dict[str, Any], subtracts: bool, w_enc: torch.Tensor, b_dec: torch.Tensor
                 ) -> torch.Tensor | None:
    """The change (d_sae,) of the encoder bias when our encoder does (``subtracts``) or does not
    subtract ``b_dec`` from its input and SAELens' ``apply_b_dec_to_input`` says otherwise; None if equal."""
    if subtracts and not cfg["apply_b_dec_to_input"]:
        return b_dec @ w_enc
    if not subtracts and cfg["apply_b_dec_to_input"]:
        return -(b_dec @ w_enc)
    return None


def _overlay_exported_state(state: dict[str, torch.Tensor], cfg: dict[str, Any],
                            exported: dict[str, torch.Tensor], file: Path) -> None:
    """Overwrite ``state`` in place with the tensors of our own exported ``file`` (same key and shape)
    when the SAE's weights as read are those the export hashed (``metadata.sparseae.weights_sha256``)."""
    ours = cfg["metadata"].get("sparseae") or {}
    if ours.get("weights_sha256") != tensors_sha256(exported):
        return
    try:
        saved = load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{file} is corrupt: {exc}") from None
    for key, value in saved.items():
        if key in state and value.shape == state[key].shape:
            state[key] = value.to(state[key].dtype)


def import_saelens(path: str | os.PathLike) -> torch.nn.Module:
    """Our model from a SAELens SAE folder (``cfg.json`` + ``sae_weights.safetensors``): ``standard`` →
    ``sparse_ae_l1``, ``topk`` → ``topk_sae``, ``jumprelu`` → ``jumprelu_sae``, ``transcoder`` →
    ``transcoder`` (or the exported model).
    Raises :class:`CheckpointError` for a folder that is not SAELens's or has no sparseae form."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"no SAELens folder at {folder}: " +
                              ("it is a file" if folder.exists() else "it does not exist"))
    cfg = _read_cfg(folder)
    tensors = _read_tensors(folder, cfg)
    state, model = _state_and_model(cfg, tensors, folder)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        why = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{folder}: the weights do not fit the model: {why}") from None
    return model.eval()


def saelens_firing_rates(path: str | os.PathLike) -> torch.Tensor | None:
    """Firing rates (d_sae,) from a SAELens folder's ``sparsity.safetensors`` (10**sparsity − 1e-10,
    at least 0), or None when it has none."""
    file = Path(path) / SPARSITY_FILE
    if not file.is_file():
        return None
    try:
        log_rates = load_file(str(file))["sparsity"]
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{file} is corrupt or has no 'sparsity' tensor: {exc}") from None
    return (10.0 ** log_rates.double() - SPARSITY_EPS).clamp_min(0)

"""SAELens SAE folders, both ways: ``cfg.json`` + ``sae_weights.safetensors`` (+ ``sparsity.safetensors``),
the layout SAELens's ``SAE.load_from_disk`` reads and ``SAE.save_model`` writes (SAELens ≥ 6).

How each convention maps (SAELens ⇔ sparseae):

* weights: ``W_enc`` (d_in, d_sae) = ``encoder.weight`` (d_sae, d_in) transposed; ``b_enc`` (d_sae,) =
  ``encoder.bias``; ``W_dec`` (d_sae, d_in) = ``decoder.weight`` (d_in, d_sae) transposed; ``b_dec``
  (d_in,) = ``decoder.bias``.
* ``architecture``: ``standard`` ⇔ ``sparse_ae_l1`` / ``autoencoder(activation="relu")``; ``topk`` ⇔
  ``topk_sae``; ``jumprelu`` ⇔ ``jumprelu_sae`` (``threshold`` = exp(log_threshold)) and a trained
  BatchTopK ``topk_sae`` (its inference threshold θ on every latent, as SAELens saves its own
  BatchTopK SAEs); a BatchTopK SAE never trained (θ unset) runs per-sample TopK, so it is ``topk``.
* ``apply_b_dec_to_input``: our TopK/BatchTopK/JumpReLU SAEs subtract b_dec before encoding (true),
  the ReLU autoencoders do not (false); imported the other way, ``b_enc`` absorbs ∓ ``b_dec·W_enc``
  (in float64): the same function up to rounding.
* ``rescale_acts_by_decoder_norm`` (topk): folded on import (W_enc·‖W_dec‖, b_enc·‖W_dec‖, W_dec/‖W_dec‖).
  Our decoders are not rescaled: a SAELens decoder's norms are kept as they are (codes stay equal).
* ``normalize_activations``: a run trained with ``data.normalize: l2`` exports as
  ``constant_norm_rescale`` (SAELens scales each input to norm √d_in, ours to 1: the √d_in goes into
  W_enc, W_dec and b_dec; SAELens then returns the reconstruction in the input's own scale, ‖x‖ times
  ours); ``center_l2`` (a training mean subtracted first) has no SAELens form and is refused unless
  ``input_normalization="none"`` says the caller normalizes. On import, ``none`` and
  ``expected_average_only_in`` (which SAELens's SAE applies nowhere at run time) load as they run in
  SAELens; ``constant_norm_rescale`` only from our own export; ``layer_norm`` and
  ``covariance_whitening`` are refused.
* transcoders (``transcoder``: its encoder reads d_in features, its decoder writes ``d_out``): ReLU ⇔
  SAELens ``transcoder``, a trained BatchTopK one ⇔ ``jumprelu_transcoder`` (θ on every latent);
  ``apply_b_dec_to_input`` is false (b_dec lives in the output space); ``constant_norm_rescale``
  folds √d_in into W_enc only (SAELens does not rescale a transcoder's output). Per-sample TopK
  transcoders have no SAELens form.
* penalties (L1, L0, AuxK, groups, inhibition), corruption and code noise act in training only: they
  are dropped. Non-ReLU units, an output non-linearity and inference by optimisation (FISTA sparse
  coding, LISTA, DrSAE...) have no SAELens form: refused with a :class:`~sparseae.errors.ConfigError`.

Round trip: ``cfg.json``'s ``metadata.sparseae`` keeps our model spec and ``sparseae_state.safetensors``
the tensors of our state the SAELens weights do not give back bit for bit (log_threshold, AuxK
counters, folded normalization...). They are used only while the SAELens weights are still the
exported ones (their hash is in the metadata), so ours → SAELens → ours is exact.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .._version import __version__
from ..data.datasets import NORMALIZATIONS
from ..digests import tensors_sha256
from ..errors import CheckpointError, ConfigError, DataError, OutputExistsError

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SPARSITY_FILE = "sparsity.safetensors"
STATE_FILE = "sparseae_state.safetensors"
#: The SAELens config format written (``metadata.sae_lens_version``): older ones are read by
#: SAELens through a converter that keeps only its own metadata keys.
FORMAT_VERSION = "6.0.0"
#: SAELens's ``sparsity`` tensor is log10(firing frequency + this).
SPARSITY_EPS = 1e-10
ARCHITECTURES = ("standard", "topk", "jumprelu", "gated", "matching_pursuit", "transcoder", "jumprelu_transcoder")
#: SAELens architectures whose decoder writes ``d_out`` features (sparseae's ``transcoder``).
TRANSCODERS = ("transcoder", "jumprelu_transcoder")
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16}
_DIRECT = ("encoder.weight", "encoder.bias", "decoder.weight_", "decoder.bias")


def is_saelens_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding SAELens's ``cfg.json`` and ``sae_weights.safetensors``."""
    path = Path(path)
    return (path / CFG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


# ------------------------------------------------------------------------------------------- export

def _no_form(model_name: str, why: str) -> ConfigError:
    return ConfigError(f"model {model_name!r} has no SAELens form: {why} (SAELens runs ReLU, TopK, BatchTopK "
                       "and JumpReLU SAEs)")


def _saelens_form(model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config fields, tensors) of ``model`` as a SAELens SAE taking our inputs as they are."""
    from ..models.base import Autoencoder
    from ..models.sae import MatryoshkaSAE
    from ..models.transcoder import Transcoder
    from ..nn.decoders import LinearDecoder
    from ..nn.encoders import LinearEncoder
    from ..nn.gated import GatedEncoder
    from ..nn.likelihoods import GaussianLikelihood, LearnedVarianceGaussian
    from ..nn.matching_pursuit import MatchingPursuitEncoder
    from ..nn.sparse_encoders import JumpReLUEncoder, TopKEncoder

    if not isinstance(model, Autoencoder):
        raise _no_form(type(model).__name__, "it is not a sparseae model")
    name = model.spec.get("name", type(model).__name__)
    encoder, decoder = model.encoder, model.decoder
    if type(model) not in (Autoencoder, MatryoshkaSAE, Transcoder) or \
            not isinstance(encoder, (LinearEncoder, TopKEncoder, JumpReLUEncoder, GatedEncoder,
                                     MatchingPursuitEncoder)):
        raise _no_form(name, f"its encoder ({type(encoder).__name__}) is none of them (e.g. inference by optimisation)")
    if isinstance(encoder, LinearEncoder) and (encoder.activation != "relu" or encoder.bias is None):
        raise _no_form(name, f"its units are {encoder.activation}, not ReLU")
    if not isinstance(decoder, LinearDecoder) or decoder.bias is None:
        raise _no_form(name, "its decoder is not affine")
    likelihood = model.likelihood
    if not (isinstance(likelihood, LearnedVarianceGaussian)
            or (isinstance(likelihood, GaussianLikelihood) and likelihood.link == "identity")):
        link = getattr(likelihood, "link", None)
        raise _no_form(name, f"its output has a non-linearity ({type(likelihood).__name__}"
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
    from ..nn.sparse_encoders import TopKEncoder

    encoder, decoder = model.encoder, model.decoder
    fields: dict[str, Any] = {"architecture": "transcoder", "apply_b_dec_to_input": False,
                              "d_out": int(decoder.n_features)}
    with torch.no_grad():
        tensors = {"W_enc": encoder.weight.t(), "b_enc": encoder.bias, "W_dec": decoder.weight.t(),
                   "b_dec": decoder.bias}
        if isinstance(encoder, TopKEncoder):
            if not (encoder.batch_topk and float(encoder.threshold) >= 0):
                raise _no_form(name, "SAELens has no TopK transcoder (a trained BatchTopK one exports as "
                                     "jumprelu_transcoder)")
            fields["architecture"] = "jumprelu_transcoder"
            tensors["threshold"] = encoder.threshold.to(encoder.weight.dtype).expand(encoder.n_components)
        tensors = {key: value.detach().to("cpu").clone().contiguous() for key, value in tensors.items()}
    return fields, tensors


def _fold_l2(tensors: dict[str, torch.Tensor], d_in: int, transcoder: bool = False) -> dict[str, torch.Tensor]:
    """Our SAE on unit-norm inputs as SAELens's ``constant_norm_rescale`` (inputs at norm √d_in;
    a transcoder's output is not rescaled, so only its W_enc changes)."""
    root = math.sqrt(d_in)
    folded = dict(tensors)
    factors = (("W_enc", 1 / root),) if transcoder else (("W_enc", 1 / root), ("W_dec", root), ("b_dec", root))
    for key, factor in factors:
        folded[key] = (tensors[key].double() * factor).to(tensors[key].dtype)
    return folded


def _firing_rates(sparsity: Any, n_components: int) -> torch.Tensor:
    rates = torch.as_tensor(np.asarray(sparsity, dtype=np.float64))
    if rates.shape != (n_components,):
        raise DataError(f"sparsity must hold one firing rate per latent, shape ({n_components},), got "
                        f"{tuple(rates.shape)}")
    if not torch.isfinite(rates).all() or (rates < 0).any() or (rates > 1).any():
        raise DataError("sparsity must hold firing rates in [0, 1] (the share of inputs a latent fires on)")
    return torch.log10(rates + SPARSITY_EPS).float()


def export_saelens(model: torch.nn.Module, out_dir: str | os.PathLike, *, sparsity: Any = None,
                   input_normalization: str | None = None, metadata: dict[str, Any] | None = None,
                   overwrite: bool = False, trained_on: str | None = None, source: str | None = None) -> Path:
    """Write a model as a SAELens SAE folder ``out_dir`` (a run's model: :func:`sparseae.interop.export_saelens`).

    ``sparsity``: firing rates (n_components,) in [0, 1], written as SAELens's
    ``sparsity.safetensors`` (log10(rate + 1e-10)). ``input_normalization``: none | l2 | center_l2,
    the normalization the model's inputs had (default: the run's ``data.normalize``, none for a bare
    model); ``"none"`` also exports a ``center_l2`` run's SAE as one for inputs the caller normalizes.
    ``metadata``: SAELens metadata to record (``hook_name``, ``model_name``...). ``overwrite``:
    replace an existing SAELens folder. Raises :class:`ConfigError` for a model with no SAELens form.
    """
    from ..files import staged_folder, write_json_atomic

    trained_on, source = trained_on or "none", source or type(model).__name__
    normalization = _export_normalization(trained_on if input_normalization is None else input_normalization,
                                          source)
    fields, tensors = _saelens_form(model)
    spec = dict(model.spec)  # _saelens_form above: an Autoencoder
    d_sae, d_in = tensors["W_dec"].shape
    transcoder = "d_out" in fields
    if transcoder:  # the decoder writes d_out features, the encoder reads d_in
        d_in = tensors["W_enc"].shape[0]
    if normalization == "l2" and "W_enc" not in tensors:
        raise ConfigError(f"{source} was trained on unit-norm inputs (l2), which SAELens's matching-pursuit SAE "
                          "cannot rescale (its atoms must keep unit norm); export with input_normalization 'none'")
    if normalization == "l2":
        tensors = _fold_l2(tensors, d_in, transcoder)
    dtype = tensors["W_dec"].dtype
    if dtype not in _DTYPES.values():
        raise ConfigError(f"SAELens stores float32, float64, float16 or bfloat16 weights, not {dtype}")
    ours = {"model": spec.get("name"), "params": spec.get("params"), "input_normalization": normalization,
            "sparseae_version": __version__, "weights_sha256": tensors_sha256(tensors)}
    if normalization != trained_on:
        ours["trained_on"] = trained_on
    meta = {"sae_lens_version": FORMAT_VERSION, "sae_lens_training_version": None, **(metadata or {}),
            "sparseae": ours}
    cfg = {"architecture": fields.pop("architecture"), "d_in": int(d_in), "d_sae": int(d_sae),
           "dtype": str(dtype).removeprefix("torch."), "device": "cpu",
           "normalize_activations": "constant_norm_rescale" if normalization == "l2" else "none",
           "reshape_activations": "none", **fields, "metadata": meta}
    rates = None if sparsity is None else _firing_rates(sparsity, int(d_sae))
    # what an import would rebuild from these files alone, and what of our state it would miss
    rebuilt = _rebuild(cfg, tensors, use_state=None)
    state = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    missed = {key: value for key, value in state.items()
              if key not in rebuilt or rebuilt[key].dtype != value.dtype or not torch.equal(rebuilt[key], value)}

    out = _export_target(Path(out_dir), overwrite)
    with staged_folder(out) as staging:
        save_file(tensors, str(staging / WEIGHTS_FILE))
        write_json_atomic(staging / CFG_FILE, cfg)
        if rates is not None:
            save_file({"sparsity": rates}, str(staging / SPARSITY_FILE))
        if missed:
            save_file(missed, str(staging / STATE_FILE), metadata={"format": "sparseae-saelens-state"})
    return out


def _export_normalization(normalization: str, source: str) -> str:
    """``normalization`` checked: one SAELens can express (:class:`ConfigError` naming ``source``)."""
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"input_normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    if normalization == "center_l2":
        raise ConfigError(f"{source} was trained on inputs normalized with center_l2 (training mean subtracted, "
                          "then unit norm), which SAELens cannot express; export with input_normalization "
                          "'none' (CLI: --input-normalization none) if the caller normalizes the inputs")
    return normalization


def _export_target(out: Path, overwrite: bool) -> Path:
    """``out`` once it may be written: absent, or a SAELens folder to be replaced with ``overwrite``
    (else :class:`OutputExistsError`); its parent folder is created."""
    if out.exists():
        if not overwrite:
            raise OutputExistsError(f"{out} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
        if not is_saelens_folder(out):
            raise OutputExistsError(f"{out} exists and is not a SAELens folder; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


# ------------------------------------------------------------------------------------------- import

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
    if dtype not in _DTYPES:
        raise _bad(folder, f"dtype {cfg.get('dtype')!r} is not one of {', '.join(_DTYPES)}")
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
    from . import read_safetensors_header

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
    dtype = _DTYPES[cfg["dtype"]]
    return {key: value.to(dtype) for key, value in tensors.items()}


def _model_for(cfg: dict[str, Any], tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Our model for a SAELens config: the exported spec when it fits, else the usual counterpart."""
    from ..models import create_model

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
    from ..models import create_model

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
    from ..models.transcoder import Transcoder
    from ..nn.gated import GatedEncoder
    from ..nn.matching_pursuit import MatchingPursuitEncoder
    from ..nn.sparse_encoders import JumpReLUEncoder, TopKEncoder

    encoder, architecture = model.encoder, cfg["architecture"]
    if isinstance(model, Transcoder) != (architecture in TRANSCODERS):
        return False
    if architecture == "jumprelu_transcoder":  # built untrained (θ unset): no SAELens form yet
        threshold = tensors["threshold"]
        return isinstance(encoder, TopKEncoder) and encoder.batch_topk and model.n_outputs == cfg["d_out"] \
            and bool((threshold == threshold[0]).all())
    try:
        _saelens_form(model)  # e.g. sigmoid units named by hand: not this SAE
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


def _rebuild(cfg: dict[str, Any], tensors: dict[str, torch.Tensor], use_state: Path | None
             ) -> dict[str, torch.Tensor]:
    """Our state dict for a SAELens config and weights; with ``use_state`` (a folder), the exported
    ``sparseae_state.safetensors`` replaces what the weights give back only approximately."""
    return _state_and_model(cfg, tensors, use_state)[0]


def _state_and_model(cfg: dict[str, Any], tensors: dict[str, torch.Tensor], use_state: Path | None
                     ) -> tuple[dict[str, torch.Tensor], torch.nn.Module]:
    """Our model for a SAELens ``cfg`` and its ``tensors``, and the state dict that makes it compute
    the same function (with ``use_state``: the exported model's own state where its hash matches)."""
    from ..models.transcoder import Transcoder
    from ..nn.gated import GatedEncoder
    from ..nn.sparse_encoders import JumpReLUEncoder, TopKEncoder

    dtype = _DTYPES[cfg["dtype"]]
    model = _model_for(cfg, tensors).to(dtype)
    w_enc, b_enc, w_dec, b_dec = _saelens_weights(cfg, tensors)
    encoder = model.encoder
    subtracts = isinstance(encoder, (TopKEncoder, JumpReLUEncoder, GatedEncoder)) and not isinstance(model, Transcoder)
    shift = _b_dec_shift(cfg, subtracts, w_enc, b_dec)
    if shift is not None:
        b_enc = b_enc + shift

    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    encoder_weight = w_enc.to(dtype).t().contiguous()  # float64 holds any of _DTYPES exactly
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

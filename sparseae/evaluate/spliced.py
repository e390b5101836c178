"""Spliced-model fidelity: how much of a transformer's behaviour survives when an SAE's
reconstruction replaces the activations it was trained on, and SAEBench's core statistics.

:func:`spliced_metrics` runs the model over texts four ways (clean; the layer's output replaced
by the SAE's reconstruction; by zeros; by the mean activation) through a forward hook at the
harvest's hook point (:func:`sparseae.data.harvest.hook_point`). Causal LMs: next-token
cross-entropy of each, loss recovered ``(CE_abl − CE_spliced) / (CE_abl − CE_clean)`` against both
ablations, and KL(clean ‖ spliced). Encoders: cosine of the mean-pooled final embeddings, clean vs
spliced (and vs zero-ablated), and the fraction of each text's top-k neighbours kept.
:func:`core_stats`: shrinkage ‖x̂‖/‖x‖, firing-frequency histogram (log10 rates), and the cosine of
each latent's encoder row with its decoder column.

A transcoder (trained on ``mlp_in`` → ``mlp_out`` pairs) is spliced with ``input_position``: a
hook keeps the MLP's input of each forward pass and the MLP's output is replaced by the
transcoder's prediction from it (the ablations replace the MLP's output too).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..data.datasets import NORMALIZATIONS
from ..data.harvest import attach, hook_point, run_model, tokenize
from ..errors import ConfigError, DataError
from ..validation import check_choice, check_number

#: Firing rates below this count as "never" in the log10 histogram (SAEBench adds 1e-10 too).
RATE_FLOOR = 1e-10


def sae_reconstruction(sae: Any, normalize: str = "none", mean: Any = None, *,
                       raw_output: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """x (..., d) → x̂ (..., d) through ``sae`` (``decode(encode(x))``, or ``sae(x)`` for a plain
    callable), with the run's input normalization applied before and undone after: ``l2`` scales
    each row to unit norm, ``center_l2`` subtracts the training ``mean`` (d,) first.
    ``raw_output``: the output is already in its own raw scale (a transcoder's prediction of
    unnormalized targets, (..., d_out)): the normalization is not undone on it."""
    check_choice(normalize, "normalize", NORMALIZATIONS)
    if normalize == "center_l2" and mean is None:
        raise ConfigError("normalize 'center_l2' needs the training mean of the activations")
    center = None if mean is None or normalize != "center_l2" else torch.as_tensor(np.asarray(mean))

    def reconstruct(x: torch.Tensor) -> torch.Tensor:
        shape, rows = x.shape, x.reshape(-1, x.shape[-1])
        if isinstance(sae, torch.nn.Module):
            param = next(sae.parameters(), None)
            dtype, device = (param.dtype, param.device) if param is not None else (rows.dtype, rows.device)
        else:
            dtype, device = rows.dtype, rows.device
        h = rows.to(device=device, dtype=dtype)
        offset = center.to(device=device, dtype=dtype) if center is not None else None
        if offset is not None:
            h = h - offset
        norm = h.norm(dim=1, keepdim=True).clamp_min(1e-8) if normalize != "none" else None
        if norm is not None:
            h = h / norm
        out = sae.decode(sae.encode(h)) if hasattr(sae, "encode") and hasattr(sae, "decode") else sae(h)
        if norm is not None and not raw_output:
            out = out * norm
        if offset is not None and not raw_output:
            out = out + offset
        return out.to(device=x.device, dtype=x.dtype).reshape(*shape[:-1], out.shape[-1])
    return reconstruct


def _batches(texts: Sequence[str], size: int):
    for first in range(0, len(texts), size):
        yield texts[first:first + size]


def _mean_activation(model, tokenizer, module, where, texts, batch_size, context_length) -> torch.Tensor:
    total, count = None, 0
    captured: list[torch.Tensor] = []
    handle = attach(module, where, lambda h: captured.append(h.detach()))
    try:
        for batch in _batches(texts, batch_size):
            ids, mask, keep = tokenize(tokenizer, batch, context_length, skip_special=False)
            captured.clear()
            run_model(model, ids, mask)
            rows = captured[-1][mask.bool().to(captured[-1].device)].double()
            total = rows.sum(0) if total is None else total + rows.sum(0)
            count += len(rows)
    finally:
        handle.remove()
    return total / count


def _forward(model, module, where, ids, mask, replace: Callable[[torch.Tensor], torch.Tensor] | None):
    handle = attach(module, where, replace) if replace is not None else None
    try:
        return run_model(model, ids, mask)
    finally:
        if handle is not None:
            handle.remove()


@torch.no_grad()
def spliced_metrics(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], reconstruct: Callable, *,
                    layer: str, position: str = "resid", kind: str = "causal", mean: Any = None,
                    batch_size: int = 8, context_length: int = 128, k: int = 5,
                    input_position: str | None = None) -> dict[str, Any]:
    """The spliced-model metrics of ``reconstruct`` (x (..., d) → x̂, e.g. :func:`sae_reconstruction`)
    at ``position`` of module ``layer`` of ``model`` (``kind`` ``"causal"`` or ``"encoder"``) over
    ``texts``. ``mean`` (d,): the activation used by mean-ablation (default: the mean over these
    texts' real tokens). ``input_position`` (a transcoder's, e.g. ``mlp_in`` with ``position``
    ``mlp_out``): ``reconstruct`` reads the activations there, earlier in the same forward pass,
    and its output replaces those at ``position``. Returns a flat dict of floats (see the module
    docstring) plus counts."""
    check_choice(kind, "kind", ("causal", "encoder"))
    check_number(batch_size, "batch_size", low=1, integer=True)
    check_number(k, "k", low=1, integer=True)
    texts = list(texts)
    if not texts:
        raise DataError("spliced metrics need at least one text")
    model.eval()
    name, module, where = hook_point(model, layer, position)
    if mean is None:
        mean = _mean_activation(model, tokenizer, module, where, texts, batch_size, context_length)
    mean = torch.as_tensor(np.asarray(mean, dtype=np.float64))
    zero_fn = torch.zeros_like

    def mean_fn(h: torch.Tensor) -> torch.Tensor:
        return mean.to(device=h.device, dtype=h.dtype).expand_as(h).clone()

    spliced, handles = reconstruct, []
    if input_position is not None:  # a transcoder: predict `position` from `input_position`
        in_name, in_module, in_where = hook_point(model, layer, input_position)
        seen: list[torch.Tensor] = []  # the latest forward pass's input (one tensor at most)

        def keep(h: torch.Tensor) -> None:
            seen[:] = [h.detach()]

        handles.append(attach(in_module, in_where, keep))

        def spliced(h: torch.Tensor) -> torch.Tensor:
            if not seen or seen[-1].shape[:-1] != h.shape[:-1]:
                raise DataError(f"{in_name} ({input_position}) did not run before {name} ({position}) in the "
                                "forward pass: the transcoder cannot be spliced there")
            return reconstruct(seen.pop())

    variants = {"clean": None, "spliced": spliced, "zero_ablated": zero_fn, "mean_ablated": mean_fn}
    try:
        if kind == "causal":
            result = _causal(model, tokenizer, texts, module, where, variants, batch_size, context_length)
        else:
            result = _encoder(model, tokenizer, texts, module, where, variants, batch_size, context_length, k)
    finally:
        for handle in handles:
            handle.remove()
    return result | {"hook": name} | ({"input_hook": in_name} if input_position is not None else {})


def _causal(model, tokenizer, texts, module, where, variants, batch_size, context_length) -> dict[str, Any]:
    ce = {key: 0.0 for key in variants}
    kl, n_predicted = 0.0, 0
    for batch in _batches(texts, batch_size):
        ids, mask, _ = tokenize(tokenizer, batch, context_length, skip_special=False)
        scored = (mask[:, :-1] * mask[:, 1:]).bool()  # predict token t+1 from the tokens up to t
        targets = ids[:, 1:][scored]
        if not len(targets):
            continue
        logprobs = {}
        for key, replace in variants.items():
            logits = _forward(model, module, where, ids, mask, replace).logits[:, :-1]
            logprobs[key] = torch.log_softmax(logits[scored.to(logits.device)].double().cpu(), dim=-1)
            ce[key] += float(-logprobs[key].gather(1, targets[:, None]).sum())
        clean = logprobs["clean"]
        kl += float((clean.exp() * (clean - logprobs["spliced"])).sum())
        n_predicted += len(targets)
    if not n_predicted:
        raise DataError("no text has two tokens: the causal metrics predict each next token")
    ce = {key: value / n_predicted for key, value in ce.items()}
    result: dict[str, Any] = {"kind": "causal", "n_texts": len(texts), "n_predicted_tokens": n_predicted,
                              "ce_clean": ce["clean"], "ce_spliced": ce["spliced"],
                              "ce_zero_ablated": ce["zero_ablated"], "ce_mean_ablated": ce["mean_ablated"],
                              "kl_clean_spliced": kl / n_predicted}
    for ablation in ("zero", "mean"):
        gap = ce[f"{ablation}_ablated"] - ce["clean"]
        result[f"loss_recovered_{ablation}"] = ((ce[f"{ablation}_ablated"] - ce["spliced"]) / gap
                                                if abs(gap) > 1e-12 else float("nan"))
    return result


def _pooled(output: Any, mask: torch.Tensor) -> torch.Tensor:
    hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
    weights = mask.to(hidden.device, hidden.dtype)[..., None]
    return ((hidden * weights).sum(1) / weights.sum(1).clamp_min(1)).double().cpu()


def _encoder(model, tokenizer, texts, module, where, variants, batch_size, context_length, k) -> dict[str, Any]:
    embedded: dict[str, list[torch.Tensor]] = {key: [] for key in variants}
    for batch in _batches(texts, batch_size):
        ids, mask, _ = tokenize(tokenizer, batch, context_length, skip_special=False)
        for key, replace in variants.items():
            embedded[key].append(_pooled(_forward(model, module, where, ids, mask, replace), mask))
    E = {key: torch.nn.functional.normalize(torch.cat(parts), dim=1) for key, parts in embedded.items()}
    result: dict[str, Any] = {"kind": "encoder", "n_texts": len(texts)}
    for key in ("spliced", "zero_ablated", "mean_ablated"):
        result[f"cosine_clean_{key}"] = float((E["clean"] * E[key]).sum(1).mean())
    n = len(texts)
    if n >= 2:
        k = min(k, n - 1)
        result["k"] = k
        clean_top = _top_neighbours(E["clean"], k)
        for key in ("spliced", "zero_ablated"):
            kept = [len(set(a) & set(b)) / k for a, b in zip(clean_top, _top_neighbours(E[key], k), strict=True)]
            result[f"neighbours_kept_{key}"] = float(np.mean(kept))
    return result


def _top_neighbours(E: torch.Tensor, k: int) -> list[list[int]]:
    """The k most cosine-similar other rows of each row of unit-norm E (n, d)."""
    similarity = E @ E.T
    similarity.fill_diagonal_(-float("inf"))
    return similarity.topk(k, dim=1).indices.tolist()


@torch.no_grad()
def core_stats(sae: torch.nn.Module, X: Any, *, max_rows: int = 20000, batch_size: int = 4096,
               bins: int = 20, targets: Any = None) -> dict[str, Any]:
    """SAEBench's core statistics of ``sae`` on activations X (n, d) as it was trained on them
    (normalized): mean shrinkage ‖x̂‖/‖x‖ (rows with x ≠ 0), per-latent firing rates and their
    log10 histogram (``edges`` (bins+1,), ``counts`` (bins,), ``dead`` = latents never firing), and
    the cosine of encoder row i with decoder column i per latent (None when the encoder is not one
    linear map). Reads the first ``max_rows`` rows. ``targets`` (n, d_out): a transcoder's target
    rows: shrinkage is then ‖ŷ‖/‖y‖ and the cosine None (encoder and decoder live in two spaces)."""
    check_number(max_rows, "max_rows", low=1, integer=True)
    n = min(len(X), max_rows)
    if n == 0:
        raise DataError("core statistics need at least one row")
    param = next(sae.parameters())
    fired = torch.zeros(sae.n_components, dtype=torch.float64)
    ratios: list[torch.Tensor] = []
    for first in range(0, n, batch_size):
        x = torch.as_tensor(np.asarray(X[first:min(n, first + batch_size)]), dtype=param.dtype, device=param.device)
        code = sae.encode(x)
        x_hat = sae.decode(code)
        fired += (code != 0).sum(0).double().cpu()
        if targets is not None:
            x = torch.as_tensor(np.asarray(targets[first:min(n, first + batch_size)]), dtype=param.dtype,
                                device=param.device)
        norm = x.norm(dim=1)
        ratios.append((x_hat.norm(dim=1)[norm > 0] / norm[norm > 0]).double().cpu())
    rates = (fired / n).numpy()
    log_rates = np.log10(rates + RATE_FLOOR)
    counts, edges = np.histogram(log_rates, bins=bins, range=(np.log10(RATE_FLOOR), 0.0))
    shrinkage = torch.cat(ratios)
    result = {"n_rows": int(n), "shrinkage": float(shrinkage.mean()) if len(shrinkage) else float("nan"),
              "firing_rates": rates.tolist(), "log10_rate_edges": edges.tolist(), "log10_rate_counts": counts.tolist(),
              "dead_fraction": float((rates == 0).mean()), "dense_fraction": float((rates > 0.1).mean()),
              "mean_firing_rate": float(rates.mean())}
    cosines = encoder_decoder_cosine(sae) if targets is None else None
    result["encoder_decoder_cosine"] = None if cosines is None else cosines.tolist()
    result["mean_encoder_decoder_cosine"] = None if cosines is None else float(cosines.mean())
    return result


def encoder_decoder_cosine(sae: torch.nn.Module) -> np.ndarray | None:
    """cos(E_i, D_i) (n_components,) of encoder row i and decoder column i, None when the encoder
    has no (n_components, n_features) weight."""
    weight = getattr(getattr(sae, "encoder", None), "weight", None)
    decoder = getattr(getattr(sae, "decoder", None), "weight", None)
    if not (isinstance(weight, torch.Tensor) and isinstance(decoder, torch.Tensor)
            and tuple(weight.shape) == tuple(decoder.T.shape)):
        return None
    E, D = weight.detach().double().cpu(), decoder.detach().double().cpu().T
    return torch.nn.functional.cosine_similarity(E, D, dim=1, eps=1e-300).numpy()


__all__ = ["NORMALIZATIONS", "core_stats", "encoder_decoder_cosine", "sae_reconstruction", "spliced_metrics"]

"""Feature dashboards of a text SAE: one anchored section per latent (``features.html#latent-J``)
for the most often firing latents, each with its top activating contexts (tokens shaded by the
latent's activation, inline styles, no script), the histogram of its nonzero activations (inline
SVG) and, where an unembedding is known, the output tokens its decoder direction promotes most.

A run is a text run when its evaluation data are activation shards whose folder holds a token
table (``tokens.json``, :mod:`sparseae.data.text`): :func:`write_feature_page` then writes the
page; ``sparseae report RUN`` links it from the run page.
"""
from __future__ import annotations

import datetime
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..errors import DataError, SparseAEError
from ..evaluate.features import top_activations
from ..files import write_text_atomic
from ..inference import evaluating, placement, row_batches
from ..nn.decoders import LinearDecoder
from ..validation import check_number

#: The page written beside ``report.html``.
FEATURES_NAME = "features.html"
#: The shading colour of an activation: ``rgba(255, 140, 0, a)``, ``a`` = activation / latent's max.
SHADE_RGB = (255, 140, 0)


@dataclass
class LatentDashboard:
    """What the page shows of latent ``latent``. ``contexts``: per top activation (descending), the
    tokens around it as ``(text, activation of this latent, is the top token)``; ``values``: those
    top activations; ``counts``/``edges``: the histogram of its nonzero activations over the data
    ((bins,), (bins + 1,)); ``output_tokens``: (token, logit) the decoder direction promotes most,
    or None without an unembedding."""

    latent: int
    frequency: float
    max_activation: float
    values: list[float]
    contexts: list[list[tuple[str, float, bool]]]
    counts: np.ndarray
    edges: np.ndarray
    output_tokens: list[tuple[str, float]] | None = None


def context_rows(table: Sequence[Sequence[Any]], row: int, window: int) -> list[int]:
    """The rows of ``table`` ((sentence, position, token) per activation row, a sentence's tokens
    consecutive) of the same sentence within ``window`` positions of ``row``, in order."""
    sentence, position = table[row][0], table[row][1]
    lo = hi = row
    while lo > 0 and table[lo - 1][0] == sentence and position - table[lo - 1][1] <= window:
        lo -= 1
    while hi + 1 < len(table) and table[hi + 1][0] == sentence and table[hi + 1][1] - position <= window:
        hi += 1
    return list(range(lo, hi + 1))


def decoder_directions(model: torch.nn.Module) -> torch.Tensor:
    """The decoder's atoms (n_components, n_features): row j is what latent j adds to the
    reconstruction. :class:`DataError` for a model whose decoder has no weight matrix."""
    weight = model.decoder.weight if isinstance(model.decoder, LinearDecoder) else None
    if weight is None or weight.ndim != 2:
        raise DataError(f"{type(model).__name__} has no linear decoder to read directions from")
    return weight.detach().t()


@torch.no_grad()
def latent_dashboards(model: torch.nn.Module, X: Any, table: Sequence[Sequence[Any]], *, n_latents: int = 20,
                      k: int = 8, window: int = 8, bins: int = 24, batch_size: int = 4096,
                      unembedding: tuple[Any, Sequence[str]] | None = None, n_output_tokens: int = 10,
                      latents: Sequence[int] | None = None) -> list[LatentDashboard]:
    """The dashboards of the ``n_latents`` latents that fire most often (or of ``latents``), in that
    order. ``X`` (n_tokens, n_features): the activations, row i the token ``table[i]``.
    ``unembedding``: (W_U (vocab, n_features), the vocabulary's token strings), for the decoder
    direction's top ``n_output_tokens`` logits. Two passes over ``X`` (top activations, then the
    histograms) plus the rows of the shown contexts."""
    for value, name in ((n_latents, "n_latents"), (k, "k"), (bins, "bins")):
        check_number(value, name, low=1, integer=True)
    check_number(window, "window", low=0, integer=True)
    if len(table) != len(X):
        raise DataError(f"the token table has {len(table)} rows, the activations {len(X)}")
    top = top_activations(model, X, k=k, batch_size=batch_size)
    if latents is None:
        order = np.argsort(-top.frequency, kind="stable")
        chosen = [int(j) for j in order[:n_latents] if top.frequency[j] > 0]
    else:
        chosen = [int(j) for j in latents]
    if not chosen:
        return []
    device, dtype = placement(model)
    maxima = np.maximum(top.values[0, chosen], np.finfo(np.float32).tiny)
    edges = [np.linspace(0.0, float(m), bins + 1) for m in maxima]
    counts = np.zeros((len(chosen), bins), dtype=np.int64)
    columns = torch.tensor(chosen, device=device)
    with evaluating(model):
        for _, batch in row_batches(X, batch_size, device=device, dtype=dtype):
            codes = model.encode(batch)[:, columns].float().cpu().numpy()
            for i in range(len(chosen)):
                fired = codes[:, i][codes[:, i] > 0]
                counts[i] += np.histogram(np.minimum(fired, edges[i][-1]), bins=edges[i])[0]
        windows = {j: [context_rows(table, int(r), window) for r in top.rows[:, j] if r >= 0] for j in chosen}
        needed = sorted({r for rows in windows.values() for group in rows for r in group})
        index = {r: i for i, r in enumerate(needed)}
        context_codes = model.encode(torch.as_tensor(np.asarray(X[np.array(needed)]), device=device,
                                                     dtype=dtype))[:, columns].float().cpu().numpy()
    outputs = None
    if unembedding is not None:
        W_U, vocabulary = unembedding
        W_U = torch.as_tensor(np.asarray(W_U), dtype=torch.float32)
        directions = decoder_directions(model).float().cpu()[chosen]                 # (m, d)
        logits = directions @ W_U.T                                                   # (m, vocab)
        best = logits.topk(min(n_output_tokens, logits.shape[1]), dim=1)
        outputs = [[(str(vocabulary[t]), float(v)) for v, t in zip(vals.tolist(), ids.tolist(), strict=True)]
                   for vals, ids in zip(best.values, best.indices, strict=True)]
    dashboards = []
    for i, j in enumerate(chosen):
        tops = [int(r) for r in top.rows[:, j] if r >= 0]
        contexts = [[(str(table[r][2]), float(context_codes[index[r], i]), r == centre) for r in group]
                    for centre, group in zip(tops, windows[j], strict=True)]
        dashboards.append(LatentDashboard(j, float(top.frequency[j]), float(top.values[0, j]),
                                          [float(v) for v in top.values[:len(tops), j]], contexts, counts[i],
                                          edges[i], outputs[i] if outputs is not None else None))
    return dashboards


# ------------------------------------------------------------------------------------ rendering

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def shade(activation: float, maximum: float) -> float:
    """The opacity of a token's shading: ``activation / maximum`` clipped to [0, 1]."""
    if maximum <= 0:
        return 0.0
    return float(min(max(activation / maximum, 0.0), 1.0))


def _token_html(text: str, activation: float, maximum: float, is_top: bool, first: bool) -> str:
    """One token as a shaded span; ``##x`` (WordPiece) joins the previous token, ``Ġx`` (byte BPE)
    starts a word."""
    space = "" if first else " "
    if text.startswith("##"):
        text, space = text[2:], ""
    elif text.startswith("Ġ"):
        text = text[1:]
    elif text.startswith("▁"):
        text = text[1:]
    alpha = shade(activation, maximum)
    r, g, b = SHADE_RGB
    border = "border-bottom:2px solid #333;" if is_top else ""
    return (f'{space}<span class="tok" data-act="{activation:.6g}" title="{activation:.4g}" '
            f'style="background:rgba({r},{g},{b},{alpha:.3f});{border}">{_e(text)}</span>')


def histogram_svg(counts: np.ndarray, edges: np.ndarray, *, width: int = 260, height: int = 70) -> str:
    """Bars of ``counts`` (bins,) over ``edges`` (bins + 1,) as an inline SVG (linear heights)."""
    n = len(counts)
    top = max(int(counts.max()), 1) if n else 1
    bar = width / max(n, 1)
    rects = []
    for i, count in enumerate(counts):
        h = (height - 14) * int(count) / top
        rects.append(f'<rect x="{i * bar:.1f}" y="{height - 14 - h:.1f}" width="{max(bar - 1, 0.5):.1f}" '
                     f'height="{h:.1f}" fill="#d97706"><title>{edges[i]:.3g}–{edges[i + 1]:.3g}: '
                     f'{int(count)}</title></rect>')
    labels = (f'<text x="0" y="{height - 2}" font-size="10">0</text>'
              f'<text x="{width}" y="{height - 2}" font-size="10" text-anchor="end">{edges[-1]:.3g}</text>')
    return (f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="histogram of nonzero activations">{"".join(rects)}{labels}</svg>')


def _latent_section(d: LatentDashboard, output_note: str) -> str:
    rows = []
    for value, context in zip(d.values, d.contexts, strict=True):
        tokens = "".join(_token_html(text, act, d.max_activation, is_top, i == 0)
                         for i, (text, act, is_top) in enumerate(context))
        rows.append(f'<tr><td class="num">{value:.4g}</td><td class="ctx">{tokens}</td></tr>')
    if d.output_tokens is not None:
        outputs = ("<ol class=\"out\">" + "".join(f"<li><code>{_e(token)}</code> {logit:+.3g}</li>"
                                                  for token, logit in d.output_tokens) + "</ol>")
    else:
        outputs = f'<p class="note">{_e(output_note)}</p>'
    return (f'<section id="latent-{d.latent}" class="latent"><h2>Latent {d.latent}</h2>'
            f'<p>fires on {100 * d.frequency:.3g}% of tokens · largest activation {d.max_activation:.4g} · '
            f'<a href="#top">index</a></p>'
            f'<h3>Top activating contexts</h3><table class="contexts"><tr><th>activation</th><th>context '
            f'(shaded by this latent\'s activation; the top token underlined)</th></tr>{"".join(rows)}</table>'
            f'<h3>Activation histogram (nonzero, {int(d.counts.sum())} tokens)</h3>'
            f'{histogram_svg(d.counts, d.edges)}<h3>Top output tokens of the decoder direction</h3>{outputs}'
            "</section>")


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:70em;color:#222;padding:0 1em}
table{border-collapse:collapse}td,th{padding:.2em .5em;border-bottom:1px solid #eee;text-align:left}
td.num{font-variant-numeric:tabular-nums;text-align:right;white-space:nowrap}
td.ctx{font-family:ui-monospace,monospace;line-height:1.7}
.tok{border-radius:2px;padding:0 1px}.note{color:#666}.latent{margin-top:2em;border-top:2px solid #ddd}
ol.out{columns:2}
"""


def render_features_html(dashboards: Sequence[LatentDashboard], *, title: str, notes: Sequence[str] = (),
                         output_note: str = "No unembedding is available for this run's activations, so "
                                            "the decoder directions' output tokens are not shown.") -> str:
    """The page: an index of the latents, then one anchored section per latent."""
    index = "".join(f'<tr><td><a href="#latent-{d.latent}">latent {d.latent}</a></td>'
                    f'<td class="num">{100 * d.frequency:.3g}%</td><td class="num">{d.max_activation:.4g}</td></tr>'
                    for d in dashboards)
    notes_html = "".join(f"<li>{_e(note)}</li>" for note in notes)
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="generator" content="sparseae {_e(__version__)}">\n<link rel="icon" href="data:,">\n'
            f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f'<h1 id="top">{_e(title)}</h1>'
            + (f"<ul class=\"note\">{notes_html}</ul>" if notes_html else "")
            + f'<table class="index"><tr><th>latent</th><th>fires on</th><th>largest activation</th></tr>{index}'
            "</table>\n" + "\n".join(_latent_section(d, output_note) for d in dashboards)
            + f"\n<footer><p class=\"note\">Made by sparseae {_e(__version__)} on {_e(when)}</p></footer>\n"
            "</body>\n</html>\n")


# ------------------------------------------------------------------------------- the run's page

def token_folder(config: Any) -> Path | None:
    """The folder of the token table of a run's evaluation data (a :class:`~sparseae.config.RunConfig`),
    or None when they are not activation shards with ``tokens.json`` beside them."""
    from ..data.text import TOKENS_FILE

    spec = config.test_data_spec() or (config.data_name, config.data_options)
    name, options = spec
    if name != "shards" or not isinstance(options.get("path"), str):
        return None
    path = Path(options["path"])
    folder = path if path.is_dir() else path.parent
    return folder if (folder / TOKENS_FILE).is_file() else None


def load_unembedding(folder: Path) -> tuple[tuple[np.ndarray, list[str]] | None, str]:
    """(W_U (vocab, d) and its tokens, or None; why not) from the activations' provenance
    (``harvest.json``): a causal LM's output embedding when the activations are its residual stream
    and its weights are on this machine (never downloaded)."""
    from ..data.harvest import read_provenance

    provenance = read_provenance(folder) or {}
    model_name, kind, position = provenance.get("model"), provenance.get("kind"), provenance.get("position")
    if not model_name:
        return None, "The activations have no provenance (harvest.json) naming their model, so no unembedding " \
                     "is known: the decoder directions' output tokens are not shown."
    if kind != "causal" or position not in ("resid", "resid_pre"):
        return None, (f"The activations come from {model_name} ({kind or 'unknown kind'}, position "
                      f"{position or 'unknown'}): only a causal LM's residual stream has an unembedding to "
                      "read the decoder directions through, so their output tokens are not shown.")
    try:
        from ..data.harvest import load_hf_model

        local = provenance.get("model_path")
        source = str(local) if isinstance(local, str) and Path(local).is_dir() else str(model_name)
        model, tokenizer = load_hf_model(source, kind="causal", allow_download=False)[:2]
        W_U = model.get_output_embeddings().weight.detach().float().cpu().numpy()
        vocabulary = tokenizer.convert_ids_to_tokens(list(range(W_U.shape[0])))
    except (SparseAEError, OSError, ValueError, AttributeError, TypeError) as exc:
        return None, f"The unembedding of {model_name} could not be loaded here ({exc}): no output tokens."
    return (W_U, [str(t) for t in vocabulary]), ("Output tokens: the decoder direction times the unembedding "
                                                 "(direct logit effect, without the final layer norm).")


def write_feature_page(run_dir: str | os.PathLike, target: str | os.PathLike, *, device: str | None = None,
                       n_latents: int = 20, k: int = 8) -> tuple[Path | None, str | None]:
    """Write the dashboards of a text run to ``target``: (its path, None), or (None, why not) when
    the run is not a text run or has no model or data to show."""
    from ..config import load_config, read_run_config
    from ..data.text import load_token_table
    from ..io import load_model
    from ..runs.data import load_datasets
    from ..runs.folder import CONFIG_NAME, locate_model
    from .run import _device

    run_dir = Path(run_dir)
    try:
        config = load_config(base=read_run_config(run_dir / CONFIG_NAME))
    except (SparseAEError, OSError) as exc:
        return None, f"no feature dashboards: {exc}"
    folder = token_folder(config)
    if folder is None:
        return None, None  # not text activations: nothing to say
    try:
        model = load_model(locate_model(run_dir)[0]).to(_device(device))
        _, eval_set = load_datasets(config)
        _, table = load_token_table(folder)
        unembedding, output_note = load_unembedding(folder)
        dashboards = latent_dashboards(model, eval_set.X, table, n_latents=n_latents, k=k, unembedding=unembedding)
    except SparseAEError as exc:
        return None, f"The feature dashboards could not be made: {exc}"
    notes = [f"The {len(dashboards)} latents that fire most often on {len(table):,} tokens of {folder}.",
             output_note]
    page = render_features_html(dashboards, title=f"{run_dir.resolve().name} — feature dashboards", notes=notes,
                                output_note=output_note)
    return write_text_atomic(Path(target), page), None


__all__ = ["FEATURES_NAME", "LatentDashboard", "context_rows", "decoder_directions", "histogram_svg",
           "latent_dashboards", "load_unembedding", "render_features_html", "shade", "token_folder",
           "write_feature_page"]

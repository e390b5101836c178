"""Text for training SAEs on a language model's activations, offline.

:func:`pydoc_sentences` splits the documentation topics that CPython ships in ``pydoc_data``
into prose sentences (a corpus present on every Python install). :func:`store_token_activations`
runs a Hugging Face-style encoder over sentences and writes one activation row per real token to
shards, with a token table (sentence, position, token) that says where every row came from, so
a feature report can show the texts that activate each latent.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from ..validation import check_number
from .shards import ShardedArray, store_activations

TOKENS_FILE = "tokens.json"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_HEADING_RULE = re.compile(r"^\s*([*=\-~^#])\1{2,}\s*$")


def _is_prose(lines: list[str]) -> bool:
    """A paragraph of prose, not code or grammar: no prompts or productions, mostly letters."""
    text = " ".join(lines)
    if "::=" in text or ">>>" in text:
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    return letters >= 0.85 * len(text)


def split_sentences(text: str, *, min_words: int = 5, max_words: int = 60) -> list[str]:
    """Prose sentences of ``text``: paragraphs are split on blank lines; code and grammar
    paragraphs, headings and their rules are dropped; lines are joined and split after ``.!?``."""
    check_number(min_words, "min_words", low=1, integer=True)
    check_number(max_words, "max_words", low=min_words, integer=True)
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip() and not _HEADING_RULE.match(line)]
        if not lines or not _is_prose(lines):
            continue
        for sentence in _SENTENCE_END.split(" ".join(lines)):
            n_words = len(sentence.split())
            if min_words <= n_words <= max_words and sentence[-1:] in ".!?":
                sentences.append(sentence)
    return sentences


def pydoc_sentences(*, min_words: int = 5, max_words: int = 60, limit: int | None = None) -> list[str]:
    """Prose sentences of CPython's bundled documentation topics (``pydoc_data.topics``), in a
    fixed order, without duplicates; the first ``limit`` if given."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - stripped Python builds
        raise DataError("this Python has no pydoc_data package; pass your own sentences") from None
    seen: dict[str, None] = {}
    for name in sorted(topics):
        for sentence in split_sentences(topics[name], min_words=min_words, max_words=max_words):
            seen.setdefault(sentence, None)
    sentences = list(seen)
    return sentences if limit is None else sentences[:limit]


def _batches(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.no_grad()
def store_token_activations(model: torch.nn.Module, layer: torch.nn.Module, tokenizer: Callable[..., Any],
                            sentences: Sequence[str], folder: str | os.PathLike, *, batch_size: int = 64,
                            max_length: int = 128, rows_per_shard: int = 100_000,
                            skip_special: bool = True) -> ShardedArray:
    """Activations (n_tokens, d) of ``layer`` for every real token of ``sentences``, in shards under
    ``folder``, and ``folder/tokens.json``: for row i, its sentence index, position and token.

    ``tokenizer(batch, padding=True, truncation=True, max_length=…, return_tensors="pt")`` must
    return ``input_ids`` and ``attention_mask`` (b, t) and offer ``convert_ids_to_tokens`` and
    ``all_special_ids``, as Hugging Face tokenizers do; ``model(**encoded)`` is called. Padding
    (and, with ``skip_special``, [CLS]/[SEP]) rows are left out.
    """
    check_number(batch_size, "batch_size", low=1, integer=True)
    if len(sentences) == 0:
        raise DataError("no sentences to encode")
    special = set(getattr(tokenizer, "all_special_ids", [])) if skip_special else set()
    table: list[tuple[int, int, str]] = []
    keep: list[torch.Tensor] = []

    def encoded_batches() -> Iterable[dict]:
        first = 0
        for batch in _batches(sentences, batch_size):
            encoded = tokenizer(list(batch), padding=True, truncation=True, max_length=max_length,
                                return_tensors="pt")
            ids, mask = encoded["input_ids"], encoded["attention_mask"].bool()
            if special:
                mask &= ~torch.isin(ids, torch.tensor(sorted(special), dtype=ids.dtype))
            keep.append(mask)
            for row, col in mask.nonzero().tolist():
                table.append((first + row, col, tokenizer.convert_ids_to_tokens(int(ids[row, col]))))
            first += len(batch)
            yield dict(encoded)

    def real_tokens(output: Any) -> torch.Tensor:
        hidden = output[0] if isinstance(output, tuple) else output
        return hidden[keep[-1]]

    store = store_activations(model, layer, encoded_batches(), folder, rows_per_shard=rows_per_shard,
                              reduce=real_tokens)
    if len(store) != len(table):
        raise DataError(f"{len(store)} activation rows but {len(table)} tokens: does the layer keep the token axis?")
    with open(Path(folder) / TOKENS_FILE, "w", encoding="utf-8") as handle:
        json.dump({"sentences": list(sentences), "tokens": table}, handle)
    return store


def load_token_table(folder: str | os.PathLike) -> tuple[list[str], list[tuple[int, int, str]]]:
    """(sentences, [(sentence index, position, token) per activation row]) written by
    :func:`store_token_activations`."""
    path = Path(folder) / TOKENS_FILE
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data["sentences"], [tuple(row) for row in data["tokens"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a token table: {exc}") from None


def token_in_context(sentences: Sequence[str], table: Sequence[tuple[int, int, str]], row: int, *,
                     window: int = 6) -> str:
    """The token of activation ``row`` in brackets among its neighbouring tokens: ``… the «for» loop …``."""
    sentence, position, _ = table[row]
    lo, hi = row, row
    while lo > 0 and table[lo - 1][0] == sentence and position - table[lo - 1][1] <= window:
        lo -= 1
    while hi + 1 < len(table) and table[hi + 1][0] == sentence and table[hi + 1][1] - position <= window:
        hi += 1
    words = []
    for i in range(lo, hi + 1):
        token = table[i][2]
        text = f"«{token.removeprefix('##')}»" if i == row else token
        if token.startswith("##") and words:
            words[-1] += text.removeprefix("##")
        else:
            words.append(text)
    return " ".join(words)


__all__ = ["load_token_table", "pydoc_sentences", "split_sentences", "store_token_activations", "token_in_context"]

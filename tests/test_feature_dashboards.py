"""Feature dashboards of a text SAE (sparseae.report.features) on a synthetic token table: the top
context, the shading, the histogram and the output tokens checked against the codes themselves."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from sparseae.config import load_config
from sparseae.data.shards import write_shards
from sparseae.models import create_model
from sparseae.report import write_report
from sparseae.report.features import (
    context_rows,
    decoder_directions,
    latent_dashboards,
    render_features_html,
    shade,
    write_feature_page,
)
from sparseae.runs import execute_run

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "##s", "far", "away"]


def synthetic(n_sentences: int = 12, length: int = 9, d: int = 10, seed: int = 0):
    """(sentences, token table [(sentence, position, token)], activations (n_tokens, d) float32)."""
    rng = np.random.default_rng(seed)
    table, sentences = [], []
    for s in range(n_sentences):
        tokens = [WORDS[int(i)] for i in rng.integers(0, len(WORDS), size=length)]
        sentences.append(" ".join(tokens))
        table += [(s, p, tok) for p, tok in enumerate(tokens)]
    X = rng.normal(size=(len(table), d)).astype(np.float32)
    return sentences, table, X


@pytest.fixture(scope="module")
def sae_and_data():
    torch.manual_seed(0)
    sentences, table, X = synthetic()
    model = create_model("topk_sae", X.shape[1], 6, k=3)
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(X)).numpy()
    return model, table, X, codes


def _sections(page: str) -> dict[int, str]:
    parts = re.split(r'<section id="latent-(\d+)"', page)[1:]
    return {int(parts[i]): parts[i + 1] for i in range(0, len(parts), 2)}


def test_context_rows_stay_in_the_sentence():
    table = [(0, 0, "a"), (0, 1, "b"), (0, 2, "c"), (1, 0, "d"), (1, 1, "e")]
    assert context_rows(table, 1, 1) == [0, 1, 2]
    assert context_rows(table, 2, 5) == [0, 1, 2]
    assert context_rows(table, 3, 5) == [3, 4]
    assert context_rows(table, 4, 0) == [4]


def test_dashboards_match_the_codes(sae_and_data):
    model, table, X, codes = sae_and_data
    dashboards = latent_dashboards(model, X, table, n_latents=4, k=5, window=3, bins=7, batch_size=17)
    frequency = (codes > 0).mean(0)
    assert [d.latent for d in dashboards] == list(np.argsort(-frequency, kind="stable")[:4])
    for d in dashboards:
        column = codes[:, d.latent]
        assert d.frequency == pytest.approx(frequency[d.latent])
        assert d.max_activation == pytest.approx(column.max(), rel=1e-6)
        expected = np.sort(column[column > 0])[::-1][:5]
        np.testing.assert_allclose(d.values, expected, rtol=1e-6)
        # the first context is centred on the row with the largest activation of all rows
        centre = [i for i, (_, _, is_top) in enumerate(d.contexts[0]) if is_top]
        assert len(centre) == 1
        best = int(column.argmax())
        rows = context_rows(table, best, 3)
        assert [tok for tok, _, _ in d.contexts[0]] == [table[r][2] for r in rows]
        np.testing.assert_allclose([act for _, act, _ in d.contexts[0]], column[rows], rtol=1e-5, atol=1e-6)
        assert d.contexts[0][centre[0]][1] == pytest.approx(column.max(), rel=1e-6)
        # histogram of the nonzero activations, every one counted once
        assert d.counts.sum() == int((column > 0).sum()) and len(d.counts) == 7
        assert d.edges[0] == 0 and d.edges[-1] == pytest.approx(column.max(), rel=1e-6)
        fired = np.minimum(column[column > 0], d.edges[-1])  # the batched max may differ in the last bit
        np.testing.assert_array_equal(d.counts, np.histogram(fired, bins=d.edges)[0])


def test_page_shading_is_monotone_and_top_context_first(sae_and_data):
    model, table, X, codes = sae_and_data
    dashboards = latent_dashboards(model, X, table, n_latents=3, k=4, window=2)
    page = render_features_html(dashboards, title="t <synthetic>")
    assert "<script" not in page and "t &lt;synthetic&gt;" in page
    sections = _sections(page)
    assert list(sections) == [d.latent for d in dashboards]
    for d in dashboards:
        section = sections[d.latent]
        spans = re.findall(r'data-act="([^"]+)" title="[^"]+" style="background:rgba\(255,140,0,([0-9.]+)\)', section)
        acts = np.array([float(a) for a, _ in spans])
        alphas = np.array([float(b) for _, b in spans])
        assert len(spans) == sum(len(c) for c in d.contexts) > 0
        order = np.argsort(acts, kind="stable")
        assert np.all(np.diff(alphas[order]) >= 0)  # shading monotone in the activation
        np.testing.assert_allclose(alphas, np.clip(acts / d.max_activation, 0, 1), atol=6e-4)
        assert alphas.max() == 1.0 and alphas.min() == 0.0  # the top token, and a token where it is off
        first_value = float(re.search(r'<td class="num">([^<]+)</td>', section).group(1))
        assert first_value == pytest.approx(d.max_activation, rel=1e-3)
        assert section.count("<rect ") == 24 and "<svg" in section
        assert "No unembedding is available" in section
    assert shade(2.0, 1.0) == 1.0 and shade(-1.0, 1.0) == 0.0 and shade(0.25, 0.5) == 0.5


def test_output_tokens_read_the_decoder_through_the_unembedding(sae_and_data):
    model, table, X, codes = sae_and_data
    vocabulary = [f"v{i}" for i in range(7)]
    W_U = np.random.default_rng(1).normal(size=(7, X.shape[1])).astype(np.float32)
    dashboards = latent_dashboards(model, X, table, n_latents=2, k=2, unembedding=(W_U, vocabulary), n_output_tokens=3)
    directions = decoder_directions(model).numpy()
    for d in dashboards:
        logits = W_U @ directions[d.latent]
        expected = np.argsort(-logits)[:3]
        assert [t for t, _ in d.output_tokens] == [vocabulary[i] for i in expected]
        np.testing.assert_allclose([v for _, v in d.output_tokens], logits[expected], rtol=1e-5)
    page = render_features_html(dashboards, title="x")
    assert f"<code>{dashboards[0].output_tokens[0][0]}</code>" in _sections(page)[dashboards[0].latent]


def test_report_of_a_text_run_links_its_dashboards(tmp_path):
    sentences, table, X = synthetic(n_sentences=10, length=8, d=8, seed=3)
    folder = tmp_path / "acts"
    write_shards([X[:40], X[40:]], folder, rows_per_shard=50)
    (folder / "tokens.json").write_text(json.dumps({"sentences": sentences, "tokens": table}))
    run_dir = tmp_path / "run"
    execute_run(load_config(base={"model": {"name": "topk_sae", "n_components": 6, "k": 2},
                                  "data": {"name": "shards", "path": str(folder)},
                                  "train": {"max_epochs": 1, "batch_size": 32},
                                  "output": {"dir": str(run_dir), "plots": False}}))
    page_path = write_report(run_dir)
    features = page_path.with_name("report-features.html")
    assert features.is_file()
    assert 'href="report-features.html"' in page_path.read_text()
    text = features.read_text()
    assert "no provenance (harvest.json)" in text  # no unembedding: the page says why
    sections = _sections(text)
    assert 1 <= len(sections) <= 6
    # a run on activations without a token table has no dashboards, and says nothing about them
    (folder / "tokens.json").unlink()
    assert write_feature_page(run_dir, tmp_path / "f.html") == (None, None)
    assert not (tmp_path / "f.html").exists()

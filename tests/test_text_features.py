"""The offline text corpus, the token activation store and the per-latent top-activation report."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sparseae.data import ShardedArray
from sparseae.data.text import (
    load_token_table,
    pydoc_sentences,
    split_sentences,
    store_token_activations,
    token_in_context,
)
from sparseae.errors import DataError, SparseAEError
from sparseae.evaluate import top_activations


def test_split_sentences_keeps_prose_and_drops_code_and_headings():
    text = ("The \"for\" statement\n********************\n\nThe for statement is used to iterate over\n"
            "the elements of a sequence. It runs the suite once per item! Short one.\n\n"
            "   for_stmt ::= \"for\" target_list \"in\" expression_list\n\n"
            "Names in the target list are not deleted when the loop is finished.")
    assert split_sentences(text) == [
        "The for statement is used to iterate over the elements of a sequence.",
        "It runs the suite once per item!",
        "Names in the target list are not deleted when the loop is finished.",
    ]


def test_pydoc_sentences_are_a_real_corpus():
    sentences = pydoc_sentences()
    assert len(sentences) > 1500
    assert len(set(sentences)) == len(sentences)
    assert all(5 <= len(s.split()) <= 60 for s in sentences)
    assert pydoc_sentences(limit=7) == sentences[:7]


class WordTokenizer:
    """A Hugging Face-like tokenizer: [CLS] words [SEP], padded; ids from a growing vocabulary."""
    all_special_ids = [0, 1, 2]

    def __init__(self):
        self.vocab = {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2}

    def __call__(self, batch, padding, truncation, max_length, return_tensors):
        rows = [[1] + [self.vocab.setdefault(w, len(self.vocab)) for w in s.split()][:max_length - 2] + [2]
                for s in batch]
        width = max(map(len, rows))
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}

    def convert_ids_to_tokens(self, i):
        return {v: k for k, v in self.vocab.items()}[i]


class TinyEncoder(torch.nn.Module):
    """Embedding then a layer whose output keeps the token axis: (b, t) → (b, t, 6)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(100, 6)
        self.block = torch.nn.Linear(6, 6)

    def forward(self, input_ids, attention_mask):
        return self.block(self.embed(input_ids))


def test_store_token_activations_writes_one_row_per_real_token(tmp_path):
    torch.manual_seed(0)
    model, tokenizer = TinyEncoder(), WordTokenizer()
    sentences = ["a b c", "d e", "a f g h", "b"]
    store = store_token_activations(model, model.block, tokenizer, sentences, tmp_path / "acts", batch_size=3,
                                    rows_per_shard=4)
    assert isinstance(store, ShardedArray) and store.shape == (10, 6) and len(store.files) == 3
    saved, table = load_token_table(tmp_path / "acts")
    assert saved == sentences
    assert [t[2] for t in table] == "a b c d e a f g h b".split()
    assert table[5] == (2, 1, "a")                                  # sentence 2, position 1 (after [CLS])
    with torch.no_grad():                                           # the row of "a" equals the layer's output
        expected = model.block(model.embed(torch.tensor([tokenizer.vocab["a"]])))[0]
    np.testing.assert_allclose(store[5], expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(store[0], store[5], rtol=1e-6)       # same token, same (context-free) row
    assert token_in_context(sentences, table, 6, window=1) == "a «f» g"
    with pytest.raises(DataError, match="no sentences"):
        store_token_activations(model, model.block, tokenizer, [], tmp_path / "none")
    with pytest.raises(DataError, match="not a token table"):
        load_token_table(tmp_path)


def test_token_in_context_joins_word_pieces():
    table = [(0, 1, "the"), (0, 2, "tok"), (0, 3, "##en"), (0, 4, "##izer"), (1, 1, "next")]
    assert token_in_context(["", ""], table, 2) == "the tok«en»izer"
    assert token_in_context(["", ""], table, 4) == "«next»"


class Codes(torch.nn.Module):
    """encode(x) = ReLU(x): the codes are the data, so the top rows are known."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x):
        return torch.relu(x)


def test_top_activations_equal_a_full_sort_and_stream_in_batches():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(103, 5)).astype(np.float32)
    X[:, 4] = -1.0                                                  # a latent that never fires
    top = top_activations(Codes(), X, k=4, batch_size=10)
    codes = np.maximum(X, 0)
    for j in range(4):
        expected = np.argsort(-codes[:, j], kind="stable")[:4]
        np.testing.assert_array_equal(top.rows[:, j], expected)
        np.testing.assert_allclose(top.values[:, j], codes[expected, j])
        assert top.frequency[j] == pytest.approx((codes[:, j] > 0).mean())
        assert top.mean[j] == pytest.approx(codes[:, j].mean(), rel=1e-6)
    assert (top.rows[:, 4] == -1).all() and top.frequency[4] == 0
    few = top_activations(Codes(), X[:2], k=4)                      # fewer rows than k
    assert few.values.shape == (4, 5) and (few.rows[2:] == -1).all()
    with pytest.raises(SparseAEError, match="k"):
        top_activations(Codes(), X, k=0)
    with pytest.raises(DataError, match="no rows"):
        top_activations(Codes(), X[:0])

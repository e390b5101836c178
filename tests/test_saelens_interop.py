"""SAELens folders both ways, checked against SAELens itself (``sae-lens``, the ``test`` extra)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sparseae.errors import CheckpointError, ConfigError
from sparseae.interop import export_saelens, import_saelens, saelens_firing_rates
from sparseae.io import load_model, save_model
from sparseae.models import create_model

from cli_checks import assert_one_line_error, run_cli

try:
    with warnings.catch_warnings():  # its transformer_lens import warns of a deprecation there
        warnings.simplefilter("ignore", DeprecationWarning)
        import sae_lens
        from sae_lens import SAE, JumpReLUSAEConfig, StandardSAEConfig, TopKSAEConfig
except ImportError as exc:  # the test extra installs it; without it these tests cannot run
    sae_lens = None
    SKIP = f"sae-lens is not importable ({exc}); pip install -e '.[test]'"
needs_saelens = pytest.mark.skipif(sae_lens is None, reason=SKIP if sae_lens is None else "")

D_IN, D_SAE = 12, 40


def _data(n: int = 64, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, D_IN, generator=generator) + 0.3).to(dtype)


def _trained(name: str, dtype=torch.float32, steps: int = 20, **params) -> torch.nn.Module:
    """A small model after a few Adam steps on random data (thresholds, biases all moved)."""
    torch.manual_seed(1)
    model = create_model(name, D_IN, D_SAE, **params).to(dtype)
    x = _data(256, seed=2, dtype=dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model.loss(x).loss.backward()
        model.project_gradients()
        optimizer.step()
        model.apply_constraints()
    return model.eval()


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


CASES = {  # name: (model name, params, SAELens architecture)
    "relu_l1": ("sparse_ae_l1", {"sparsity_weight": 0.05}, "standard"),
    "topk": ("topk_sae", {"k": 5}, "topk"),
    "batchtopk": ("topk_sae", {"k": 5, "batch_topk": True}, "jumprelu"),
    "jumprelu": ("jumprelu_sae", {"initial_threshold": 0.05, "l0_weight": 1e-2, "bandwidth": 0.05}, "jumprelu"),
    "denoising_relu": ("denoising_ae", {"activation": "relu", "likelihood": "gaussian", "tied": False}, "standard"),
}


@needs_saelens
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_saelens_runs_our_export_and_round_trip_is_exact(tmp_path, case, dtype):
    name, params, architecture = CASES[case]
    ours = _trained(name, dtype, **params)
    folder = export_saelens(ours, tmp_path / "sae")
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == architecture and (cfg["d_in"], cfg["d_sae"]) == (D_IN, D_SAE)
    assert cfg["apply_b_dec_to_input"] is (architecture != "standard")
    theirs = SAE.load_from_disk(folder)
    classes = {"standard": "StandardSAE", "topk": "TopKSAE", "jumprelu": "JumpReLUSAE"}
    assert type(theirs).__name__ == classes[architecture]
    x = _data(100, seed=3, dtype=dtype)
    with torch.no_grad():
        z_ours, z_theirs = ours.encode(x), theirs.encode(x)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        assert torch.equal(z_ours > 0, z_theirs > 0)
        assert torch.allclose(z_ours, z_theirs, atol=tol, rtol=tol)
        assert torch.allclose(ours(x), theirs(x), atol=tol, rtol=tol)
        assert torch.allclose(ours.decode(z_ours), theirs.decode(z_ours), atol=tol, rtol=tol)
        active = (z_ours > 0).sum(1).float()
        assert 0 < active.mean() < D_SAE  # sparse codes, not all zero
        if case == "topk":
            assert (active <= 5).all()
    back = load_model(folder)  # ours → SAELens → ours
    assert back.spec == ours.spec
    _same_state(ours, back)
    with torch.no_grad():
        assert torch.equal(back(x), ours(x)) and torch.equal(back.encode(x), ours.encode(x))


@needs_saelens
def test_untrained_batchtopk_is_per_sample_topk(tmp_path):
    ours = create_model("topk_sae", D_IN, D_SAE, k=4, batch_topk=True).eval()  # θ never estimated
    folder = export_saelens(ours, tmp_path / "sae")
    theirs = SAE.load_from_disk(folder)
    assert theirs.cfg.architecture() == "topk" and theirs.cfg.k == 4
    x = _data()
    with torch.no_grad():
        assert torch.allclose(ours.encode(x), theirs.encode(x), atol=1e-5)
    _same_state(ours, load_model(folder))


@needs_saelens
def test_l2_normalized_inputs_map_to_constant_norm_rescale(tmp_path):
    ours = _trained("topk_sae", k=5)
    folder = export_saelens(ours, tmp_path / "sae", input_normalization="l2")
    theirs = SAE.load_from_disk(folder)
    assert theirs.cfg.normalize_activations == "constant_norm_rescale"
    x = _data(80, seed=4) * 7.0
    norms = x.norm(dim=1, keepdim=True)
    with torch.no_grad():
        z_ours = ours.encode(x / norms)
        assert torch.allclose(theirs.encode(x), z_ours, atol=1e-5)
        # SAELens gives the reconstruction back in the input's own scale
        assert torch.allclose(theirs(x), norms * ours(x / norms), atol=1e-4)
    back = load_model(folder)  # the √d_in folds are undone exactly (sparseae_state.safetensors)
    assert (folder / "sparseae_state.safetensors").exists()
    _same_state(ours, back)
    with pytest.raises(ConfigError, match="center_l2"):
        export_saelens(ours, tmp_path / "c", input_normalization="center_l2")


@needs_saelens
def test_edited_weights_win_over_the_saved_state(tmp_path):
    """After the SAELens weights change (fine-tuned there), the side file no longer applies."""
    ours = _trained("topk_sae", k=5)
    folder = export_saelens(ours, tmp_path / "sae", input_normalization="l2")
    tensors = load_file(str(folder / "sae_weights.safetensors"))
    tensors["b_enc"] = tensors["b_enc"] + 0.25
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    theirs, back = SAE.load_from_disk(folder), load_model(folder)
    x = _data(50, seed=5)
    norms = x.norm(dim=1, keepdim=True)
    with torch.no_grad():
        assert torch.allclose(back.encode(x / norms), theirs.encode(x), atol=1e-5)
        assert not torch.allclose(back.encode(x / norms), ours.encode(x / norms), atol=1e-3)


def _random(sae) -> None:
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, parameter in sae.named_parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * (0.3 if name != "threshold" else 0.1))
        if hasattr(sae, "threshold"):
            sae.threshold.abs_()


SAELENS_CASES = {
    "standard_b_dec_in": lambda: sae_lens.StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE)),
    "standard_no_b_dec": lambda: sae_lens.StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE,
                                                                      apply_b_dec_to_input=False)),
    "topk_rescaled": lambda: sae_lens.TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=6,
                                                            rescale_acts_by_decoder_norm=True)),
    "topk_no_b_dec": lambda: sae_lens.TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=6, apply_b_dec_to_input=False)),
    "jumprelu": lambda: sae_lens.JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=False)),
    "jumprelu_f64": lambda: sae_lens.JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE, dtype="float64")),
}


@needs_saelens
@pytest.mark.parametrize("case", list(SAELENS_CASES))
def test_load_model_reads_a_saelens_folder(tmp_path, case):
    theirs = SAELENS_CASES[case]()
    _random(theirs)
    theirs.save_model(tmp_path / "sae")
    ours = load_model(tmp_path / "sae")
    expected = {"standard": "sparse_ae_l1", "topk": "topk_sae", "jumprelu": "jumprelu_sae"}
    assert ours.spec["name"] == expected[theirs.cfg.architecture()]
    x = _data(100, seed=6, dtype=theirs.dtype)
    tol = 1e-5 if theirs.dtype == torch.float32 else 1e-12
    with torch.no_grad():
        z_theirs, z_ours = theirs.encode(x), ours.encode(x)
        assert 0 < (z_theirs > 0).float().mean() < 1
        assert torch.allclose(z_ours, z_theirs, atol=tol, rtol=tol)
        assert torch.allclose(ours(x), theirs(x), atol=tol, rtol=tol)
    # and back to SAELens: the same function again
    again = SAE.load_from_disk(export_saelens(ours, tmp_path / "again"))
    with torch.no_grad():
        assert torch.allclose(again(x), theirs(x), atol=tol, rtol=tol)


@needs_saelens
def test_sparsity_file(tmp_path):
    ours = _trained("topk_sae", k=5)
    with torch.no_grad():
        rates = (ours.encode(_data(500)) > 0).double().mean(0).numpy()
    folder = export_saelens(ours, tmp_path / "sae", sparsity=rates, metadata={"hook_name": "blocks.0.hook_resid_pre"})
    stored = load_file(str(folder / "sparsity.safetensors"))["sparsity"]
    assert stored.shape == (D_SAE,)
    assert torch.allclose(stored.double(), torch.log10(torch.from_numpy(rates) + 1e-10), atol=1e-5)
    assert np.allclose(saelens_firing_rates(folder).numpy(), rates, atol=1e-6)
    assert SAE.load_from_disk(folder).cfg.metadata.hook_name == "blocks.0.hook_resid_pre"
    with pytest.raises(Exception, match="firing rate"):
        export_saelens(ours, tmp_path / "bad", sparsity=np.ones(3))


@pytest.mark.parametrize("name,params,word", [
    ("sparse_ae_kl", {}, "sigmoid"),
    ("sparse_coding", {}, "no SAELens form"),
    ("autoencoder", {"activation": "tanh", "likelihood": "gaussian"}, "tanh"),
    ("sparse_ae_l1", {"likelihood": "bernoulli"}, "non-linearity"),
])
def test_models_without_a_saelens_form_are_refused(tmp_path, name, params, word):
    model = create_model(name, D_IN, 8, **params)
    with pytest.raises(ConfigError, match=word) as info:
        export_saelens(model, tmp_path / "sae")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "sae").exists()


def _write_cfg(folder, cfg, tensors=None):
    folder.mkdir(exist_ok=True)
    (folder / "cfg.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    tensors = tensors or {"W_enc": torch.zeros(D_IN, 4), "b_enc": torch.zeros(4), "W_dec": torch.zeros(4, D_IN),
                          "b_dec": torch.zeros(D_IN)}
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    return folder


@pytest.mark.parametrize("cfg,word", [
    ("{not json", "corrupt"),
    ("[1, 2]", "not a JSON object"),
    ({"architecture": "gated", "d_in": D_IN, "d_sae": 4, "metadata": {"sae_lens_version": "6.1.0"}}, "gated"),
    ({"architecture": "standard", "d_in": D_IN, "d_sae": 5, "metadata": {"sae_lens_version": "6.1.0"}}, "shape"),
    ({"architecture": "standard", "d_in": "12", "d_sae": 4, "metadata": {"sae_lens_version": "6.1.0"}}, "d_in"),
    ({"architecture": "topk", "k": 9, "d_in": D_IN, "d_sae": 4, "metadata": {"sae_lens_version": "6.1.0"}}, "k must"),
    ({"architecture": "standard", "d_in": D_IN, "d_sae": 4, "normalize_activations": "layer_norm",
      "metadata": {"sae_lens_version": "6.1.0"}}, "layer_norm"),
    ({"architecture": "standard", "d_in": D_IN, "d_sae": 4, "normalize_activations": "constant_norm_rescale",
      "metadata": {"sae_lens_version": "6.1.0"}}, "constant_norm_rescale"),
    ({"architecture": "jumprelu", "d_in": D_IN, "d_sae": 4, "metadata": {"sae_lens_version": "6.1.0"}}, "threshold"),
    ({"architecture": "standard", "d_in": D_IN, "d_sae": 4, "dtype": "int8", "metadata": {}}, "dtype"),
])
def test_foreign_or_corrupt_cfg_is_one_line_checkpoint_error(tmp_path, cfg, word):
    folder = _write_cfg(tmp_path / "sae", cfg)
    with pytest.raises(CheckpointError, match=word) as info:
        load_model(folder)
    assert "\n" not in str(info.value)


def test_pre_6_config_defaults_apply_b_dec(tmp_path):
    """A SAELens < 6 cfg.json (no version, no apply_b_dec_to_input) subtracts b_dec, as SAELens reads it."""
    generator = torch.Generator().manual_seed(3)
    tensors = {"W_enc": torch.randn(D_IN, 4, generator=generator), "b_enc": torch.randn(4, generator=generator),
               "W_dec": torch.randn(4, D_IN, generator=generator), "b_dec": torch.randn(D_IN, generator=generator)}
    folder = _write_cfg(tmp_path / "old", {"d_in": D_IN, "d_sae": 4, "dtype": "torch.float32",
                                           "hook_point": "blocks.0.hook_resid_pre"}, tensors)
    ours = import_saelens(folder)
    x = _data(20)
    expected = torch.relu((x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"])
    with torch.no_grad():
        assert torch.allclose(ours.encode(x), expected, atol=1e-5)
        assert torch.allclose(ours(x), expected @ tensors["W_dec"] + tensors["b_dec"], atol=1e-5)


def test_export_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "sae").mkdir()
    (tmp_path / "sae" / "notes.txt").write_text("mine")
    model = create_model("topk_sae", D_IN, 8, k=2)
    with pytest.raises(Exception, match="already exists"):
        export_saelens(model, tmp_path / "sae")
    with pytest.raises(Exception, match="not a SAELens folder"):
        export_saelens(model, tmp_path / "sae", overwrite=True)
    assert (tmp_path / "sae" / "notes.txt").read_text() == "mine"
    export_saelens(model, tmp_path / "ok")
    export_saelens(model, tmp_path / "ok", overwrite=True)


def test_cli_export(tmp_path, capsys):
    model = _trained("jumprelu_sae", initial_threshold=0.05, bandwidth=0.05)
    save_model(model, tmp_path / "model")
    np.save(tmp_path / "rates.npy", np.full(D_SAE, 0.1))
    status, err = run_cli(capsys, "export", tmp_path / "model", "--format", "saelens", "--out", tmp_path / "sae",
                          "--firing-rates", tmp_path / "rates.npy")
    assert status == 0, err
    assert {p.name for p in (tmp_path / "sae").iterdir()} >= {"cfg.json", "sae_weights.safetensors",
                                                             "sparsity.safetensors"}
    _same_state(model, load_model(tmp_path / "sae"))
    save_model(create_model("sparse_ae_kl", D_IN, 8), tmp_path / "kl")
    status, err = run_cli(capsys, "export", tmp_path / "kl", "--format", "saelens", "--out", tmp_path / "kl_sae")
    assert_one_line_error(status, err, "no SAELens form", "sparse_ae_kl")
    status, err = run_cli(capsys, "export", tmp_path / "missing", "--format", "saelens", "--out", tmp_path / "x")
    assert_one_line_error(status, err, "missing")
    status, err = run_cli(capsys, "export", tmp_path / "model", "--format", "saelens", "--out", tmp_path / "sae")
    assert_one_line_error(status, err, "already exists")


def test_cli_export_of_a_run_follows_its_input_normalization(tmp_path, capsys):
    run = tmp_path / "run"
    status, err = run_cli(capsys, "train", "--model", "topk_sae", "--data", "digits", "--set", "model.n_components=16",
                          "--set", "model.k=3", "--set", "train.max_epochs=1", "--set", "data.normalize=center_l2",
                          "--set", "output.plots=false", "--out", run, "--quiet")
    assert status == 0, err
    status, err = run_cli(capsys, "export", run, "--format", "saelens", "--out", tmp_path / "sae")
    assert_one_line_error(status, err, "center_l2", "--input-normalization none")
    assert not (tmp_path / "sae").exists()
    status, err = run_cli(capsys, "export", run, "--format", "saelens", "--out", tmp_path / "sae",
                          "--input-normalization", "none", "--json")
    assert status == 0, err
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["normalize_activations"] == "none" and cfg["metadata"]["sparseae"]["trained_on"] == "center_l2"
    _same_state(load_model(run / "model"), load_model(tmp_path / "sae"))

"""The `sparseae` command and run configs: runs, resume, evaluate, plots, gradcheck, demo, errors.

Most tests call ``main([...])`` in-process; one runs the real console script in a subprocess.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from sparseae import __version__
from sparseae.cli import main
from sparseae.config import DEMO_CONFIG, RunConfig, load_config, parse_scalar, read_config_file
from sparseae.errors import ConfigError
from sparseae.models import MODELS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("filters.png", "curves.png", "reconstructions.png", "activity.png")

TINY = {
    "model": {"name": "sparse_ae_kl", "n_components": 16, "sparsity_target": 0.05},
    "data": {"name": "digits"},
    "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 256, "max_epochs": 2,
              "random_state": 0, "device": "cpu"},
    "output": {"plots": True},
}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``main(argv)``."""
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status: int, err: str, *words: str) -> None:
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sparseae: error: ")
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


def epochs_of(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def losses_of(run: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished 2-epoch run on digits (shared: tests that change it work on a copy)."""
    root = tmp_path_factory.mktemp("cli")
    config = write_config(root / "tiny.yaml", TINY)
    status = main(["train", str(config), "--out", str(root / "run"), "--quiet"])
    assert status == 0
    return root / "run"


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(trained_run, target)
    return target


# ------------------------------------------------------------------------------------- train

def test_train_writes_a_complete_run_folder(trained_run):
    run = trained_run
    assert (run / "model" / "model.safetensors").is_file() and (run / "model" / "config.json").is_file()
    assert (run / "checkpoint" / "config.json").is_file()
    assert epochs_of(run) == [1, 2]
    for name in PLOTS:
        data = (run / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, name
    import matplotlib.image

    assert matplotlib.image.imread(run / "filters.png").ndim == 3

    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "sparse_ae_kl" and summary["n_features"] == 64
    assert summary["epochs"] == 2 and summary["n_components"] == 16
    metrics = summary["metrics"]
    for key in ("reconstruction_error", "explained_variance", "mean_l0", "dead_units",
                "rho_hat_mean", "sparsity_target", "probe_accuracy"):
        assert np.isfinite(metrics[key]), key
    assert "rho_hat" not in metrics and "activation_frequency" not in metrics  # no big arrays
    assert 0.5 < metrics["probe_accuracy"] <= 1.0  # digits are linearly decodable from codes
    assert summary["train_seconds"] > 0

    # config.yaml is the resolved config: every default written out, and it loads back
    saved = read_config_file(run / "config.yaml")
    assert saved["train"]["batch_size"] == 256 and saved["train"]["lbfgs_max_iter"] == 400
    assert saved["model"]["weight_decay"] == pytest.approx(1e-4) and saved["model"]["sparsity_target"] == 0.05
    assert load_config(run / "config.yaml").n_components == 16


def test_resume_continues_without_duplicating_epochs(run_copy, tmp_path, capsys):
    status, _, err = run_cli(capsys, "train", "--out", run_copy, "--resume", "--set", "train.max_epochs=4",
                             "--quiet")
    assert status == 0, err
    assert epochs_of(run_copy) == [1, 2, 3, 4]
    assert json.loads((run_copy / "summary.json").read_text())["epochs"] == 4
    # resuming replays exactly what an uninterrupted 4-epoch run does
    straight = write_config(tmp_path / "four.yaml", {**TINY, "train": {**TINY["train"], "max_epochs": 4}})
    assert main(["train", str(straight), "--out", str(tmp_path / "straight"), "--quiet"]) == 0
    assert losses_of(run_copy) == pytest.approx(losses_of(tmp_path / "straight"), rel=1e-5)


def test_refuses_to_replace_a_finished_run(trained_run, tmp_path, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir()}
    config = write_config(tmp_path / "tiny.yaml", TINY)
    status, _, err = run_cli(capsys, "train", config, "--out", trained_run)
    assert_one_line_error(status, err, "finished", "--resume", "--overwrite")
    assert {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir()} == before  # nothing lost


def test_overwrite_replaces_the_run(run_copy, tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", TINY)
    status, out, err = run_cli(capsys, "train", config, "--out", run_copy, "--overwrite",
                               "--set", "train.max_epochs=1", "--json")
    assert status == 0, err
    summary = json.loads(out)  # --json: exactly one JSON object on stdout
    assert summary["epochs"] == 1 and epochs_of(run_copy) == [1]
    assert "%" not in err  # no progress bar in --json mode


def test_train_from_flags_and_human_output(tmp_path, capsys):
    status, out, err = run_cli(capsys, "train", "--model", "sparse_ae_l1", "--data", "digits",
                               "--set", "model.n_components=8", "--set", "train.max_epochs=1",
                               "--set", "output.plots=false", "--out", tmp_path / "flags")
    assert status == 0, err
    assert "reconstruction error" in out and "linear probe accuracy" in out
    assert not list((tmp_path / "flags").glob("*.png"))
    assert read_config_file(tmp_path / "flags" / "config.yaml")["model"]["name"] == "sparse_ae_l1"


# ---------------------------------------------------------------------------- evaluate / plot

def test_evaluate_agrees_with_the_summary(trained_run, capsys):
    summary = json.loads((trained_run / "summary.json").read_text())
    status, out, err = run_cli(capsys, "evaluate", trained_run, "--json")
    assert status == 0, err
    result = json.loads(out)
    for key, value in summary["metrics"].items():
        assert result["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
    # the model folder alone works too (its run's config supplies the data); human table
    status, out, err = run_cli(capsys, "evaluate", trained_run / "model")
    assert status == 0, err
    assert "reconstruction error" in out
    assert f"{summary['metrics']['reconstruction_error']:.6g}" in out


def test_contractive_and_sigmoid_models_report_rifai_et_als_figures(tmp_path, capsys):
    """Mean ‖J_f(x)‖_F, its mean squared entry and the saturated units (Rifai et al. 2011, Table 1)
    in the summary and ``evaluate`` of a CAE; none for a ReLU L1 SAE (no contraction, no sigmoid)."""
    from sparseae.data import load_dataset
    from sparseae.evaluate import contraction_stats
    from sparseae.io import load_model

    cae = {**TINY, "model": {"name": "contractive_ae", "n_components": 16, "contraction_weight": 0.5},
           "output": {"plots": False}}
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "cae.yaml", cae), "--out", tmp_path / "cae",
                             "--quiet")
    assert status == 0, err
    status, out, err = run_cli(capsys, "evaluate", tmp_path / "cae", "--json")
    assert status == 0, err
    metrics = json.loads(out)["metrics"]
    expected = contraction_stats(load_model(tmp_path / "cae" / "model"), load_dataset("digits").X)
    assert metrics["jacobian_norm"] == pytest.approx(expected["jacobian_norm"], rel=1e-5)
    assert metrics["jacobian_sq_per_entry"] == pytest.approx(expected["jacobian_sq_per_entry"], rel=1e-5)
    assert metrics["saturated_fraction"] == pytest.approx(expected["saturated"])
    assert 0 < metrics["jacobian_norm"] and 0 <= metrics["saturated_fraction"] <= 1
    summary = json.loads((tmp_path / "cae" / "summary.json").read_text())["metrics"]
    assert summary["jacobian_norm"] == pytest.approx(metrics["jacobian_norm"], rel=1e-5)
    status, out, err = run_cli(capsys, "evaluate", tmp_path / "cae")
    assert "mean ‖J_f(x)‖_F" in out and "saturated units" in out

    l1 = {**TINY, "model": {"name": "sparse_ae_l1", "n_components": 16}, "output": {"plots": False}}
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "l1.yaml", l1), "--out", tmp_path / "l1",
                             "--quiet")
    assert status == 0, err
    status, out, err = run_cli(capsys, "evaluate", tmp_path / "l1", "--json")
    assert status == 0 and "jacobian_norm" not in json.loads(out)["metrics"]


def test_a_pretrained_stack_reports_its_first_layer_before_fine_tuning(tmp_path, capsys):
    """Rifai et al. report the CAE's Jacobian and saturation before fine-tuning: the summary and
    ``evaluate`` of an MLP pre-trained as a CAE give them for ``pretrain/layer1``, unchanged by the
    fine-tuning that follows."""
    from sparseae.data import load_dataset
    from sparseae.evaluate import contraction_stats
    from sparseae.io import load_model

    config = {"model": {"name": "mlp_classifier", "n_components": 24, "hidden": [], "activation": "sigmoid"},
              "data": {"name": "digits"},
              "pretrain": {"layer_model": "contractive_ae", "layer_params": {"contraction_weight": 0.5},
                           "max_epochs": 2},
              "train": {"optimizer": "sgd", "learning_rate": 0.5, "batch_size": 32, "max_epochs": 2,
                        "random_state": 0, "device": "cpu"},
              "output": {"plots": False}}
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "cae.yaml", config), "--out", tmp_path / "run",
                             "--quiet")
    assert status == 0, err
    layer = load_model(tmp_path / "run" / "pretrain" / "layer1" / "checkpoint")
    expected = contraction_stats(layer, load_dataset("digits").X)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"]
    assert summary["pretrained_jacobian_norm"] == pytest.approx(expected["jacobian_norm"], rel=1e-5)
    assert summary["pretrained_saturated_fraction"] == pytest.approx(expected["saturated"])
    fine_tuned = contraction_stats(load_model(tmp_path / "run" / "model"), load_dataset("digits").X)
    assert abs(fine_tuned["jacobian_norm"] - expected["jacobian_norm"]) > 1e-3   # the MLP moved on
    assert "jacobian_norm" not in summary                        # the MLP's encoder is not one sigmoid layer
    status, out, err = run_cli(capsys, "evaluate", tmp_path / "run", "--json")
    assert status == 0, err
    metrics = json.loads(out)["metrics"]
    assert metrics["pretrained_jacobian_sq_per_entry"] == pytest.approx(summary["pretrained_jacobian_sq_per_entry"])


def test_evaluate_a_bare_model_folder_needs_data(trained_run, tmp_path, capsys):
    shutil.copytree(trained_run / "model", tmp_path / "alone")
    status, _, err = run_cli(capsys, "evaluate", tmp_path / "alone")
    assert_one_line_error(status, err, "data.name", "--data")
    status, out, err = run_cli(capsys, "evaluate", tmp_path / "alone", "--data", "digits", "--json")
    assert status == 0, err
    assert json.loads(out)["metrics"]["reconstruction_error"] > 0


def test_resume_refuses_a_different_model(run_copy, tmp_path, capsys):
    before = (run_copy / "config.yaml").read_text()
    config = write_config(tmp_path / "c.yaml", {**TINY, "model": {**TINY["model"], "n_components": 8}})
    status, _, err = run_cli(capsys, "train", config, "--out", run_copy, "--resume")
    assert_one_line_error(status, err, "cannot resume", "n_components")
    assert (run_copy / "config.yaml").read_text() == before


def test_plot_writes_the_pictures(trained_run, tmp_path, capsys):
    status, out, err = run_cli(capsys, "plot", trained_run, "--out", tmp_path / "pictures")
    assert status == 0, err
    for name in PLOTS:
        assert (tmp_path / "pictures" / name).read_bytes().startswith(PNG_MAGIC)


# ------------------------------------------------------------------------- gradcheck / demo

@pytest.mark.parametrize("name", MODELS.names())
def test_gradcheck_passes_for_every_registered_model(name, capsys):
    # The verb on every model with a sample of 16 coordinates per parameter (4 for lateral
    # inhibition: a tree-group solve per evaluation); tests/test_models.py checks every coordinate.
    fewer = ["--max-checks", "4" if name == "lateral_inhibition" else "16"]
    if name in ("deep_autoencoder", "semantic_hashing"):  # small instances of paper-sized presets
        fewer += ["--set", "model.hidden=[20,10]"]
    if name == "topk_sae":  # k = 32 by default, more than the 8 latents here
        fewer += ["--set", "model.k=3"]
    if name in ("conv_sae", "local_sae"):  # 5×5 kernels by default, larger than the 4×4 image here
        fewer += ["--set", "model.kernel_size=3"]
    if name == "conv_stack":  # 4 maps 3×3 → one pool (1, 2, 2); 8 maps 1×1 on it
        fewer += ["--set", "model.layers=[{n_components: 4, kernel_size: 3}, {kernel_size: 1}]"]
    status, out, err = run_cli(capsys, "gradcheck", "--model", name, "--json", *fewer)
    result = json.loads(out)
    assert status == 0, (result, err)
    assert result["passed"] and result["relative_error"] < 1e-9


def test_gradcheck_reports_pass_and_fail(capsys):
    status, out, _ = run_cli(capsys, "gradcheck", "--model", "sparse_ae_kl", "--set", "model.sparsity_target=0.1")
    assert status == 0 and "PASS" in out and "‖g_num − g‖/‖g_num + g‖" in out
    status, out, _ = run_cli(capsys, "gradcheck", "--tolerance", "1e-30")
    assert status == 1 and "FAIL" in out


def test_demo_quick_runs_the_exercise(tmp_path, capsys):
    status, out, err = run_cli(capsys, "demo", "--quick", "--out", tmp_path / "demo")
    assert status == 0, err
    assert "PASS" in out and "Mean activation ρ̂" in out and "filters.png" in out
    assert (tmp_path / "demo" / "filters.png").read_bytes().startswith(PNG_MAGIC)
    saved = read_config_file(tmp_path / "demo" / "config.yaml")
    assert saved["model"]["name"] == "sparse_ae_kl" and saved["train"]["optimizer"] == "lbfgs"


def test_the_full_demo_learns_edge_filters_with_every_unit_alive(tmp_path, capsys):
    """UFLDL's exercise as `sparseae demo` runs it (8 s): on the photos reduced 3x, 0-2 of the 25
    units end switched off (constant output ρ); at full size it was 7-9."""
    status, out, err = run_cli(capsys, "demo", "--quiet", "--out", tmp_path / "demo")
    assert status == 0, err
    metrics = json.loads((tmp_path / "demo" / "summary.json").read_text())["metrics"]
    assert metrics["dead_units"] <= 2  # 1 at the default seeds
    assert metrics["orientation_selectivity"] > 0.55  # 0.65; white-noise filters 0.13
    assert abs(metrics["rho_hat_mean"] - 0.01) < 0.002


def test_demo_config_is_the_shipped_example():
    assert read_config_file(EXAMPLES / "ufldl_patches.yaml") == DEMO_CONFIG
    config = load_config(EXAMPLES / "ufldl_patches.yaml")
    assert config.model_params == {"sparsity_target": 0.01, "sparsity_weight": 3.0, "weight_decay": 1e-4,
                                   "activation": "sigmoid", "decoder": "sigmoid"}
    assert config.train_config().lbfgs_max_iter == 400 and config.data_options["n_patches"] == 10000


def test_mnist_example_config_is_valid():
    config = load_config(EXAMPLES / "mnist_sparse_l1.toml")
    assert config.model_name == "sparse_ae_l1" and config.data_name == "mnist"
    assert config.test_data_spec() == ("mnist", {"split": "test", "download": False})


# ----------------------------------------------------------------------- listings / version

def test_models_and_datasets_listings(capsys):
    status, out, _ = run_cli(capsys, "models", "--json")
    models = json.loads(out)["models"]
    assert status == 0 and set(models) == set(MODELS.names())
    assert models["sparse_ae_kl"]["parameters"]["sparsity_target"] == 0.01
    status, out, _ = run_cli(capsys, "datasets")
    assert status == 0 and "patches" in out and "n_patches = 10000" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and __version__ in capsys.readouterr().out


# ------------------------------------------------------------------------------------ errors

def test_bad_flag_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--no-such-flag"])
    assert exit_info.value.code == 2


def test_unknown_model(capsys):
    status, _, err = run_cli(capsys, "train", "--model", "nope", "--data", "digits")
    assert_one_line_error(status, err, "unknown model", "nope", "sparse_ae_kl")


@pytest.mark.parametrize("section, key, words", [
    ("train", "learning_rat", ("train.learning_rat", "learning_rate")),
    ("output", "plot", ("output.plot", "plots")),
])
def test_unknown_config_key_is_named(tmp_path, capsys, section, key, words):
    config = {**TINY, section: {**TINY[section], key: 1}}
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "c.yaml", config), "--out", tmp_path / "r")
    assert_one_line_error(status, err, *words)
    assert not (tmp_path / "r").exists()


def test_unknown_section_and_unknown_model_parameter(tmp_path, capsys):
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "c.yaml", {**TINY, "optimiser": {}}))
    assert_one_line_error(status, err, "optimiser", "model, data, pretrain, train, output")
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "c.yaml", TINY),
                             "--set", "model.sparsity_targt=0.1", "--out", tmp_path / "r")
    assert_one_line_error(status, err, "sparsity_targt", "sparsity_target")


@pytest.mark.parametrize("rho", ["1.5", "0", "-0.1"])
def test_rho_outside_the_unit_interval(tmp_path, capsys, rho):
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "c.yaml", TINY),
                             "--set", f"model.sparsity_target={rho}", "--out", tmp_path / "r")
    assert_one_line_error(status, err, "sparsity_target")
    assert not (tmp_path / "r").exists()


def test_nan_in_a_user_array(tmp_path, capsys):
    X = np.random.default_rng(0).uniform(size=(50, 16)).astype(np.float32)
    X[7, 3] = np.nan
    np.save(tmp_path / "bad.npy", X)
    status, _, err = run_cli(capsys, "train", "--model", "sparse_ae_kl", "--data", "array",
                             "--set", f"data.path={tmp_path / 'bad.npy'}", "--out", tmp_path / "r")
    assert_one_line_error(status, err, "NaN", "bad.npy", "row 7")


def test_missing_checkpoint_folder(tmp_path, capsys):
    status, _, err = run_cli(capsys, "train", "--out", tmp_path / "nowhere", "--resume")
    assert_one_line_error(status, err, "nothing to resume", "does not exist")
    status, _, err = run_cli(capsys, "evaluate", tmp_path / "nowhere")
    assert_one_line_error(status, err, "nowhere", "does not exist")


def test_corrupt_safetensors(run_copy, capsys):
    (run_copy / "model" / "model.safetensors").write_bytes(b"\x00garbage, not a safetensors file")
    status, _, err = run_cli(capsys, "evaluate", run_copy)
    assert_one_line_error(status, err, "model.safetensors", "corrupt")


def test_folder_of_another_program(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    (other / "notes.txt").write_text("keep me")
    status, _, err = run_cli(capsys, "evaluate", other)
    assert_one_line_error(status, err, "not a sparseae model")
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "c.yaml", TINY), "--out", other,
                             "--overwrite")
    assert_one_line_error(status, err, "not a sparseae run folder", "notes.txt")
    assert (other / "notes.txt").read_text() == "keep me"
    status, _, err = run_cli(capsys, "evaluate", tmp_path / "c.yaml")
    assert_one_line_error(status, err, "not a sparseae model")


def test_keyboard_interrupt_is_one_line_and_130(tmp_path, capsys, monkeypatch):
    from sparseae.runs import procedures

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(procedures, "train", interrupted)  # a plain model: one call of the trainer
    status = main(["train", str(write_config(tmp_path / "c.yaml", TINY)), "--out", str(tmp_path / "r"),
                   "--quiet"])
    err = capsys.readouterr().err
    assert status == 130
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err


def test_debug_reraises(capsys):
    with pytest.raises(ConfigError):
        main(["train", "--model", "nope", "--data", "digits", "--debug"])


# ------------------------------------------------------------------------------------ config

def test_scalars_parse_as_yaml_with_exponents():
    assert parse_scalar("1e-4") == pytest.approx(1e-4) and parse_scalar("3") == 3
    assert parse_scalar("true") is True and parse_scalar("") is None and parse_scalar("1/f") == "1/f"
    assert parse_scalar("[8, 8]") == [8, 8]


def test_set_overrides_and_nested_test_split():
    config = load_config(base=TINY, assignments=["train.max_epochs=7", "data.test.name=digits"])
    assert config.train_config().max_epochs == 7
    assert config.test_data_spec() == ("digits", {})
    with pytest.raises(ConfigError, match="unknown section 'trian'"):
        config.override(["trian.max_epochs=1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        config.override(["max_epochs"])
    with pytest.raises(ConfigError, match="model.name is missing"):
        load_config(base={"data": {"name": "digits"}})


def test_changing_the_model_drops_the_old_model_parameters():
    config = load_config(base=TINY, model="linear_ae")
    assert config.model == {"name": "linear_ae", "n_components": 16}
    assert isinstance(config, RunConfig) and load_config(base=TINY, data="digits").data == {"name": "digits"}


def test_toml_and_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname = 1")
    with pytest.raises(ConfigError, match="bad.toml"):
        read_config_file(bad)
    with pytest.raises(ConfigError, match="extension"):
        read_config_file(tmp_path / "config.ini")


# ---------------------------------------------------------------------------------- subprocess

def test_console_script_in_a_subprocess(tmp_path):
    """The installed entry point: exit status 2 and exactly one stderr line, no traceback."""
    script = shutil.which("sparseae")
    command = [script] if script else [sys.executable, "-m", "sparseae"]
    completed = subprocess.run([*command, "train", "--model", "nope", "--data", "digits"],
                               capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [completed.stderr.strip()]
    assert completed.stderr.startswith("sparseae: error: unknown model 'nope'")
    assert "Traceback" not in completed.stderr and completed.stdout == ""


def test_a_torchrun_worker_leaves_without_interpreter_finalization(monkeypatch, capsys):
    """Under torchrun (WORLD_SIZE > 1) the program ends with os._exit(status) after flushing, so
    gloo's threads cannot abort a finalizing interpreter; one process exits normally."""
    import sparseae.cli as cli

    class Exited(Exception):
        pass

    def fake_exit(status):
        raise Exited(status)

    from sparseae import distributed

    monkeypatch.setattr(cli, "main", lambda: (print("done"), 3)[1])
    monkeypatch.setattr(distributed.os, "_exit", fake_exit)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(Exited) as exited:
        cli.run()
    assert exited.value.args == (3,) and capsys.readouterr().out == "done\n"
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(SystemExit) as normal:
        cli.run()
    assert normal.value.code == 3


def test_drsae_trains_on_labels_with_a_pretrain_phase_and_resumes(tmp_path, capsys):
    """A model with a classifier head: pretrain/ phase without labels, then labels; the summary
    reports the classifier's error and the unit-angle split; --resume continues."""
    config = {
        "model": {"name": "drsae", "n_components": 32, "n_steps": 3},
        "data": {"name": "digits", "normalize": "l2"},
        "pretrain": {"max_epochs": 1},
        "train": {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 10, "max_epochs": 3,
                  "validation_fraction": 0.2, "monitor": "error", "random_state": 0, "device": "cpu"},
        "output": {"dir": str(tmp_path / "run"), "plots": True},
    }
    path = write_config(tmp_path / "drsae.yaml", config)
    status, out, err = run_cli(capsys, "train", path)
    assert status == 0, err
    run = tmp_path / "run"
    assert (run / "pretrain" / "metrics.jsonl").exists() and epochs_of(run) == [1, 2, 3]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["classifier_error"] < 0.5          # chance 0.9 (measured ≈ 0.2)
    metrics = summary["metrics"]
    assert "units_n_units" not in metrics  # the code units are among the facts
    assert metrics["units_n_part_units"] + metrics["units_n_categorical_units"] <= 32
    assert (run / "angles.png").read_bytes().startswith(PNG_MAGIC)
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["pretrain"] == {"max_epochs": 1} and resolved["data"]["normalize"] == "l2"
    status, out, err = run_cli(capsys, "train", path, "--resume", "--set", "train.max_epochs=4")
    assert status == 0, err
    assert epochs_of(run) == [1, 2, 3, 4]
    status, out, err = run_cli(capsys, "train", path, "--overwrite", "--set", "data.name=patches")
    assert_one_line_error(status, err, "labels")
    status, out, err = run_cli(capsys, "train", path, "--overwrite", "--set", "data.normalize=l3")
    assert_one_line_error(status, err, "data.normalize")


def test_drsae_example_config_is_valid():
    config = load_config(EXAMPLES / "drsae_mnist.yaml")
    assert config.model_name == "drsae" and config.normalize == "l2"
    assert config.pretrain_config().max_epochs == 100 and config.train_config().monitor == "error"


def test_deep_models_pretrain_layer_by_layer_then_finetune(tmp_path, capsys):
    """A deep model with a ``pretrain`` section: greedy layer-wise pre-training into
    pretrain/layer<k>, then fine-tuning (on labels for an MLP classifier); --resume continues."""
    config = {
        "model": {"name": "mlp_classifier", "n_components": 24, "hidden": [32]},
        "data": {"name": "digits"},
        "pretrain": {"layer_model": "denoising_ae", "layer_params": {"corruption": "masking:0.2"},
                     "max_epochs": 2},
        "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 32, "max_epochs": 3,
                  "validation_fraction": 0.2, "monitor": "error", "random_state": 0, "device": "cpu"},
        "output": {"dir": str(tmp_path / "run"), "plots": True},
    }
    path = write_config(tmp_path / "sda.yaml", config)
    status, out, err = run_cli(capsys, "train", path)
    assert status == 0, err
    run = tmp_path / "run"
    for layer in ("layer1", "layer2"):
        lines = (run / "pretrain" / layer / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert epochs_of(run) == [1, 2, 3]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["classifier_error"] < 0.3          # chance 0.9
    status, out, err = run_cli(capsys, "train", path, "--resume", "--set", "train.max_epochs=4")
    assert status == 0, err
    assert epochs_of(run) == [1, 2, 3, 4]
    status, out, err = run_cli(capsys, "train", path, "--overwrite", "--set", "pretrain.layer_params.activation=tanh")
    assert_one_line_error(status, err, "layer_params cannot set")
    status, out, err = run_cli(capsys, "train", path, "--overwrite", "--set", "pretrain.layer_size=3")
    assert_one_line_error(status, err, "layer_size")


@pytest.mark.parametrize("name", ["stacked_dae_mnist.yaml", "deep_autoencoder_mnist.yaml", "cae_mnist.yaml"])
def test_deep_example_configs_are_valid(name):
    config = load_config(EXAMPLES / name)
    assert config.pretrain_config().max_epochs in (10, 15, 20)
    assert config.layer_spec[0] in ("denoising_ae", "autoencoder", "contractive_ae")


def test_probe_reports_accuracy_on_codes_and_raw_inputs(trained_run, capsys):
    """Self-taught learning: ``sparseae probe`` on labelled data of classes the model never saw."""
    status, out, err = run_cli(capsys, "probe", trained_run, "--data", "digits", "--set", "data.classes=[0,1,2]",
                               "--compare-raw", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["n_train"] + result["n_test"] == 537 and abs(result["n_test"] - 268) <= 1
    assert 0.8 < result["accuracy"] <= 1.0 and 0.8 < result["raw_accuracy"] <= 1.0
    status, out, err = run_cli(capsys, "probe", trained_run, "--data", "digits", "--set", "data.classes=[0,11]")
    assert_one_line_error(status, err, "no class 11")
    status, out, err = run_cli(capsys, "probe", trained_run, "--data", "patches")
    assert_one_line_error(status, err, "no labels")


def test_index_and_query_a_semantic_hashing_model(tmp_path, capsys):
    """``sparseae index`` saves the codes of a dataset with its model; ``sparseae query`` finds the
    items near given inputs, and refuses inputs of the wrong width or another model."""
    config = {"model": {"name": "semantic_hashing", "n_components": 12, "hidden": [40], "code_noise_std": 0.0},
              "data": {"name": "digits"},
              "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 32, "max_epochs": 10,
                        "random_state": 0, "device": "cpu"},
              "output": {"dir": str(tmp_path / "run"), "plots": False}}
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "hash.yaml", config))
    assert status == 0, err
    status, out, err = run_cli(capsys, "index", tmp_path / "run", "--out", tmp_path / "idx", "--json")
    assert status == 0, err
    built = json.loads(out)
    assert built["n_items"] == 1797 and built["n_bits"] == 12 and built["n_buckets"] > 50
    status, out, err = run_cli(capsys, "query", tmp_path / "idx", "--data", "digits", "--rows", "0:4",
                               "--radius", "0", "--json")
    assert status == 0, err
    results = json.loads(out)["results"]
    assert len(results) == 4
    for q, result in enumerate(results):  # each digit finds itself at distance 0
        assert q in result["ids"] and set(result["distances"]) == {0}
    status, out, err = run_cli(capsys, "query", tmp_path / "idx", "--data", "digits", "--rows", "7", "--k", "5",
                               "--json")
    result = json.loads(out)["results"][0]
    assert status == 0 and result["ids"][0] == 7 and result["distances"] == sorted(result["distances"])
    np.save(tmp_path / "wrong.npy", np.zeros((2, 10)))
    status, _, err = run_cli(capsys, "query", tmp_path / "idx", "--input", tmp_path / "wrong.npy")
    assert_one_line_error(status, err, "10 features")
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "hash.yaml", config), "--out",
                             tmp_path / "other", "--set", "train.random_state=1")
    status, _, err = run_cli(capsys, "query", tmp_path / "idx", "--data", "digits", "--rows", "0",
                             "--model", tmp_path / "other")
    assert_one_line_error(status, err, "built by another model")
    status, _, err = run_cli(capsys, "index", tmp_path / "run", "--out", tmp_path / "idx")
    assert_one_line_error(status, err, "--overwrite")
    status, _, err = run_cli(capsys, "query", tmp_path / "run")
    assert_one_line_error(status, err, "not a sparseae index")


def test_center_l2_normalization_uses_the_training_mean():
    from sparseae.data import load_dataset
    from sparseae.runs import load_datasets

    config = load_config(base={"model": {"name": "topk_sae", "n_components": 16, "k": 2},
                               "data": {"name": "digits", "classes": [0, 1, 2], "normalize": "center_l2",
                                        "test": {"classes": [3]}}})
    train_set, test_set = load_datasets(config)
    raw_train = load_dataset("digits", classes=[0, 1, 2]).X
    raw_test = load_dataset("digits", classes=[3]).X
    mean = raw_train.mean(axis=0)
    expected = (raw_test - mean) / np.linalg.norm(raw_test - mean, axis=1, keepdims=True)
    np.testing.assert_allclose(test_set.X, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(train_set.X, axis=1), 1.0, rtol=1e-5)

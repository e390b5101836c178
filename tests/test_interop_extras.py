"""Issue 24's small open points: schedule values in metrics.jsonl and the loggers, per-latent firing
rates in a run's summary.json (and SAELens's sparsity.safetensors from a run folder), ``evaluate``
of a SAELens folder, and resumed runs that continue their tracking runs."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from sparseae.train import TrainConfig, train
from sparseae.train.loggers import LOGGER_PACKAGES, Logger


def _installed(name: str) -> bool:
    return importlib.util.find_spec(LOGGER_PACKAGES[name][0]) is not None


def needs_logger(name: str) -> None:
    if not _installed(name):
        pytest.skip(f"{name} is not installed (pip install \"sparseae[{name}]\")")


def zipf_data(n: int = 256, d: int = 16, n_true: int = 32, seed: int = 0) -> np.ndarray:
    """Sparse sums of ``n_true`` unit directions in ``d`` dimensions (n, d) float32."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(n_true, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    active = rng.random((n, n_true)) < 0.5 / np.arange(1, n_true + 1) ** 0.8
    return ((active * rng.uniform(0.5, 1.5, size=(n, n_true))) @ atoms).astype(np.float32)


class Memory(Logger):
    """A logger that keeps what it was sent: [(step, metrics)]."""

    name = "memory"

    def __init__(self) -> None:
        self.logged: list[tuple[int, dict[str, float]]] = []

    def log_params(self, params):
        pass  # only the metrics are checked here

    def log_metrics(self, metrics, step):
        self.logged.append((step, dict(metrics)))


# ------------------------------------------------------------------- schedule values in the records

def test_schedule_values_are_in_metrics_jsonl_and_reach_the_loggers(tmp_path):
    from sparseae.models import create_model

    X = zipf_data(n=256)  # batch 64: 4 steps an epoch, steps 4, 8, 12 end the epochs
    groups = {"kind": "disjoint", "n_components": 24, "group_size": 4}
    model = create_model("topk_sae", 16, 24, k=2, aux_weight=0.0, groups=groups, group_weight=0.5)
    loggers = ["tensorboard"] if _installed("tensorboard") else []
    config = TrainConfig(max_epochs=3, batch_size=64, threads=1, learning_rate=0.01, loggers=loggers,
                         schedule={"lr": {"warmup_steps": 2, "decay": "linear", "min_factor": 0.1, "steps": 12},
                                   "k_anneal": {"k_start": 10, "steps": 6},
                                   "sparsity_warmup": {"steps": 10, "start": 0.2}})
    memory = Memory()
    result = train(model, X, config, run_dir=tmp_path, callbacks=[memory])
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # at the epoch's last step s: lr 0.01·(1 − 0.9·(s − 2)/10), k round(10 − 8·min(1, (s − 1)/6)),
    # the group weight 0.5·(0.2 + 0.8·min(1, s/10))
    assert [row["lr"] for row in rows] == pytest.approx([0.01 * 0.82, 0.01 * 0.46, 0.01 * 0.1], abs=1e-15)
    assert [row["k"] for row in rows] == [6, 2, 2]
    assert [row["sparsity_weight"] for row in rows] == pytest.approx([0.26, 0.42, 0.5], abs=1e-15)
    assert rows == result.history
    sent = {step: values for step, values in memory.logged}
    for epoch, row in enumerate(rows, start=1):
        assert {key: sent[epoch][key] for key in ("lr", "k", "sparsity_weight")} == \
            {key: row[key] for key in ("lr", "k", "sparsity_weight")}
    if loggers:
        from tensorboard.backend.event_processing import event_accumulator

        events = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
        events.Reload()
        assert [(e.step, e.value) for e in events.Scalars("k")] == [(1, 6.0), (2, 2.0), (3, 2.0)]
        assert [e.value for e in events.Scalars("lr")] == pytest.approx([row["lr"] for row in rows], rel=1e-6)


def test_a_run_without_schedule_logs_no_schedule_values(tmp_path):
    from sparseae.models import create_model

    model = create_model("topk_sae", 16, 24, k=2)
    result = train(model, zipf_data(n=128), TrainConfig(max_epochs=1, batch_size=64, threads=1))
    assert not {"lr", "k", "sparsity_weight"} & set(result.history[0])


# ------------------------------------------------------- firing rates: summary.json → sparsity.safetensors

def _train_cli(capsys, run, *extra):
    """`sparseae train` of a one-epoch TopK SAE (digits unless `extra` names other data) into `run`."""
    from cli_checks import run_cli

    status, err = run_cli(capsys, "train", "--model", "topk_sae", "--data", "digits", "--set", "model.n_components=16",
                          "--set", "model.k=3", "--set", "train.max_epochs=1", "--set", "output.plots=false",
                          "--out", run, "--quiet", *extra)
    assert status == 0, err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A one-epoch TopK run on digits (evaluated on its training set: digits has no test split)."""
    from sparseae.config import load_config
    from sparseae.runs import execute_run

    run = tmp_path_factory.mktemp("rates") / "run"
    execute_run(load_config(base={"model": {"name": "topk_sae", "n_components": 16, "k": 3},
                                  "data": {"name": "digits"}, "train": {"max_epochs": 1},
                                  "output": {"dir": str(run), "plots": False}}))
    return run


def _eval_codes(run):
    """The codes of the run's evaluation set under its final model, computed here directly."""
    import torch

    from sparseae.config import load_config, read_run_config
    from sparseae.io import load_model
    from sparseae.runs import load_datasets

    config = load_config(base=read_run_config(run / "config.yaml"))
    _, eval_set = load_datasets(config)
    model = load_model(run / "model")
    with torch.no_grad():
        return model.encode(torch.as_tensor(np.asarray(eval_set.X), dtype=torch.float32)).numpy()


def test_summary_records_each_latents_firing_rate_on_the_evaluation_set(digits_run):
    summary = json.loads((digits_run / "summary.json").read_text())
    codes = _eval_codes(digits_run)
    assert len(codes) == summary["n_eval"]
    direct = (codes != 0).mean(axis=0)
    assert summary["firing_rates"] == pytest.approx(direct.tolist(), abs=1e-15)
    assert len(summary["firing_rates"]) == 16 and "firing_rates" not in summary["metrics"]
    # a TopK SAE fires k latents per row: the rates add up to k (= mean L0)
    assert sum(summary["firing_rates"]) == pytest.approx(3.0, abs=1e-12) == summary["metrics"]["mean_l0"]


def test_dense_codes_record_no_firing_rates(tmp_path):
    from sparseae.config import load_config
    from sparseae.runs import execute_run

    summary = execute_run(load_config(base={"model": {"name": "sparse_ae_kl", "n_components": 8},
                                            "data": {"name": "digits"}, "train": {"max_epochs": 1},
                                            "output": {"dir": str(tmp_path / "kl"), "plots": False}}))
    assert "firing_rates" not in summary


def test_export_of_a_run_writes_its_firing_rates_as_saelens_sparsity(digits_run, tmp_path, capsys, monkeypatch):
    pytest.importorskip("sae_lens", reason="sae-lens is not importable; pip install -e '.[test]'")
    import torch
    from safetensors import safe_open

    from sparseae.interop import saelens_firing_rates

    from cli_checks import run_cli

    rates = np.array(json.loads((digits_run / "summary.json").read_text())["firing_rates"])
    status, err = run_cli(capsys, "export", digits_run, "--format", "saelens", "--out", tmp_path / "sae")
    assert status == 0, err
    with safe_open(str(tmp_path / "sae" / "sparsity.safetensors"), framework="pt") as f:  # as SAELens reads it
        stored = f.get_tensor("sparsity")
    from sae_lens.training.sae_trainer import _log_feature_sparsity  # SAELens's own transform

    assert stored.dtype == torch.float32 and stored.shape == (16,)
    assert torch.allclose(stored, _log_feature_sparsity(torch.tensor(rates, dtype=torch.float32)), rtol=0, atol=1e-6)
    assert np.allclose(saelens_firing_rates(tmp_path / "sae").numpy(), rates, rtol=1e-6, atol=1e-12)
    direct = (_eval_codes(digits_run) != 0).mean(axis=0)
    assert np.allclose(10.0 ** stored.double().numpy() - 1e-10, direct, rtol=1e-6, atol=1e-12)
    _saelens_loads_sparsity(monkeypatch, tmp_path / "sae", stored)
    # the same model through its checkpoint has no recorded rates: no sparsity file
    status, err = run_cli(capsys, "export", digits_run / "checkpoint", "--format", "saelens", "--out", tmp_path / "ck")
    assert status == 0, err
    assert not (tmp_path / "ck" / "sparsity.safetensors").exists()


def _saelens_loads_sparsity(monkeypatch, folder, stored):
    """SAELens's pretrained-SAE loader (the one that reads sparsity.safetensors) on ``folder``,
    its Hub download replaced by the local files: the sparsity tensor it returns is ours."""
    import torch
    from sae_lens import SAE
    from sae_lens.loading import pretrained_sae_loaders as loaders

    def local(repo_id, filename, **_):
        return str(folder.parent / filename)

    monkeypatch.setattr(loaders, "hf_hub_download", local)
    sae, _, log_sparsity = SAE.from_pretrained_with_cfg_and_sparsity(
        "local/sparseae", folder.name, converter=loaders.sae_lens_huggingface_loader)
    assert log_sparsity is not None and torch.equal(log_sparsity, stored)
    assert sae.cfg.d_sae == stored.shape[0]


# ---------------------------------------------------------------------- evaluate SAELENS_DIR

def _evaluate_json(capsys, *argv):
    from sparseae.cli import main

    capsys.readouterr()
    status = main(["evaluate", *[str(a) for a in argv], "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def test_evaluate_reads_a_saelens_folder_with_its_runs_data(digits_run, tmp_path, capsys):
    pytest.importorskip("sae_lens", reason="sae-lens is not importable; pip install -e '.[test]'")
    from cli_checks import run_cli

    status, err = run_cli(capsys, "export", digits_run, "--format", "saelens", "--out", tmp_path / "sae")
    assert status == 0, err
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["metadata"]["sparseae_data"]["name"] == "digits"
    of_run = _evaluate_json(capsys, digits_run)
    of_folder = _evaluate_json(capsys, tmp_path / "sae")  # no --data: the exporting run's data
    assert of_folder["model"] == "topk_sae" and of_folder["eval_data"] == of_run["eval_data"]
    assert of_folder["n_eval"] == of_run["n_eval"] > 0
    assert of_folder["metrics"] == of_run["metrics"]  # bit-exact round trip: the same numbers
    from sparseae.cli import main

    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "sae")]) == 0  # the table, as for a run
    table = capsys.readouterr().out
    assert f"topk_sae ({tmp_path / 'sae'}) on digits" in table and "mean active units (L0)" in table


def test_evaluate_of_a_saelens_built_sae_needs_data(tmp_path, capsys):
    sae_lens = pytest.importorskip("sae_lens", reason="sae-lens is not importable; pip install -e '.[test]'")
    import torch

    from cli_checks import assert_one_line_error, run_cli

    torch.manual_seed(0)
    sae = sae_lens.SAE.from_dict({"architecture": "topk", "d_in": 64, "d_sae": 32, "k": 4, "dtype": "float32",
                                  "device": "cpu", "apply_b_dec_to_input": True})
    with torch.no_grad():
        for parameter in sae.parameters():
            parameter.normal_(0, 0.1)
    sae.save_model(tmp_path / "theirs")
    status, err = run_cli(capsys, "evaluate", tmp_path / "theirs")
    assert_one_line_error(status, err, "SAELens folder", "no record of the data", "--data")
    result = _evaluate_json(capsys, tmp_path / "theirs", "--data", "digits")
    assert result["model"] == "topk_sae" and result["n_features"] == 64 and result["n_components"] == 32
    # the metrics are those of SAELens's own SAE on the same rows
    from sparseae.config import load_config
    from sparseae.runs import load_datasets

    _, eval_set = load_datasets(load_config(base={"model": {"name": "topk_sae", "n_components": 32},
                                                  "data": {"name": "digits"}}))
    X = torch.as_tensor(np.asarray(eval_set.X), dtype=torch.float32)
    with torch.no_grad():
        codes = sae.encode(X)
        error = (X - sae.decode(codes)).pow(2).sum(1).mean()
    assert result["n_eval"] == len(X)
    assert result["metrics"]["mean_l0"] == pytest.approx(float((codes != 0).sum(1).double().mean()), abs=1e-12)
    assert result["metrics"]["reconstruction_error"] == pytest.approx(float(error), rel=1e-5)
    status, err = run_cli(capsys, "evaluate", tmp_path / "theirs", "--data", "no_such_data")
    assert_one_line_error(status, err, "unknown dataset 'no_such_data'")


# ------------------------------------------------------------- resumed runs continue their tracking runs

@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """A 4-epoch TopK run on digits with every installed logger, interrupted as epoch 3 starts
    and resumed: (run folder, tracking.json after the first part, after the resume, metrics.jsonl)."""
    from sparseae.config import load_config
    from sparseae.runs import execute_run
    from sparseae.train import trainer

    installed = [name for name in LOGGER_PACKAGES if _installed(name)]
    if not installed:
        pytest.skip("none of tensorboard, mlflow, wandb is installed")
    run = tmp_path_factory.mktemp("resumed") / "run"
    config = load_config(base={"model": {"name": "topk_sae", "n_components": 12, "k": 3}, "data": {"name": "digits"},
                               "train": {"max_epochs": 4, "batch_size": 512, "loggers": installed},
                               "output": {"dir": str(run), "plots": False}})
    original = trainer._run_epoch

    def interrupted(loop, epoch, bar):
        if epoch == 3:
            raise KeyboardInterrupt  # as Ctrl-C would, once epochs 1-2 are checkpointed and logged
        return original(loop, epoch, bar)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "_run_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt, match="continue with --resume"):
            execute_run(config)
    first = json.loads((run / "tracking.json").read_text())
    execute_run(config, resume=True)
    second = json.loads((run / "tracking.json").read_text())
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    return run, first, second, history


def test_resume_keeps_the_tracking_ids(resumed_run):
    _, first, second, _ = resumed_run
    assert first == second
    assert set(first) == {name for name in ("mlflow", "wandb") if _installed(name)}


def test_resumed_mlflow_run_is_one_run_with_both_parts(resumed_run):
    needs_logger("mlflow")
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    run, first, _, history = resumed_run
    client = MlflowClient(tracking_uri=f"file:{(run / 'mlruns').resolve()}")
    [tracked] = client.search_runs([client.get_experiment_by_name("sparseae").experiment_id])
    assert tracked.info.run_id == first["mlflow"] and tracked.info.status == "FINISHED"
    logged = sorted((m.step, m.value) for m in client.get_metric_history(tracked.info.run_id, "train_loss"))
    assert logged == [(row["epoch"], row["train_loss"]) for row in history]


def test_resumed_wandb_run_continues_the_same_id_offline(resumed_run):
    needs_logger("wandb")
    from test_loggers import _wandb_records

    run, first, _, history = resumed_run
    files = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2 and all(path.name == f"run-{first['wandb']}.wandb" for path in files)
    steps: list[list[int]] = []
    values: dict[int, float] = {}
    for path in files:  # in time order: the first part, then the resumed one
        part = []
        for record in _wandb_records(path):
            if record.WhichOneof("record_type") == "history":
                row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
                if "train_loss" in row:
                    part.append(int(row["_step"]))
                    values[int(row["_step"])] = row["train_loss"]
            elif record.WhichOneof("record_type") == "run":
                assert record.run.run_id == first["wandb"]
        steps.append(part)
    assert steps == [[1, 2], [3, 4]]
    assert values == {row["epoch"]: row["train_loss"] for row in history}


def test_resumed_tensorboard_appends_to_the_same_folder(resumed_run):
    needs_logger("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator

    run, _, _, history = resumed_run
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    events = event_accumulator.EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train_loss")]
    assert logged == [(row["epoch"], pytest.approx(row["train_loss"], rel=1e-6)) for row in history]


def test_evaluate_of_a_harvested_center_l2_sae_folder_splices_with_the_raw_training_mean(tmp_path, capsys):
    """A SAELens folder exported from a harvested ``center_l2`` run evaluates without --data (the run's
    data and provenance), with the spliced metrics of the run itself; the SAE is spliced with the
    raw training mean subtracted (the mean the run's data loader subtracted), checked directly."""
    pytest.importorskip("sae_lens", reason="sae-lens is not importable; pip install -e '.[test]'")
    pytest.importorskip("transformers", reason="harvesting needs transformers")
    from hf_tiny import TEXTS, tiny_gpt2, write_texts

    from sparseae.cli import main
    from sparseae.data import ShardedArray
    from sparseae.data.harvest import load_hf_model
    from sparseae.evaluate.spliced import sae_reconstruction, spliced_metrics
    from sparseae.io import load_model

    from cli_checks import run_cli

    model_dir, texts = tiny_gpt2(tmp_path / "gpt2"), write_texts(tmp_path / "texts.txt")
    acts, run = tmp_path / "acts", tmp_path / "run"
    assert main(["harvest", "--hf-model", str(model_dir), "--layer", "transformer.h.0", "--text", str(texts),
                 "--out", str(acts), "--max-tokens", "60", "-q"]) == 0
    _train_cli(capsys, run, "--data", "shards", "--set", f"data.path={acts}", "--set", "data.normalize=center_l2",
               "--set", "model.n_components=48", "--set", "model.k=4", "--set", "train.batch_size=20")
    status, err = run_cli(capsys, "export", run, "--format", "saelens", "--out", tmp_path / "sae",
                          "--input-normalization", "none")
    assert status == 0, err
    of_run = _evaluate_json(capsys, run)
    of_folder = _evaluate_json(capsys, tmp_path / "sae")
    assert of_folder["provenance"] == of_run["provenance"] and of_folder["metrics"] == of_run["metrics"]
    assert of_folder["spliced"] == of_run["spliced"] and of_folder["core"] == of_run["core"]
    hf_model, tokenizer, kind = load_hf_model(str(model_dir))
    raw = np.asarray(ShardedArray(acts), dtype=np.float64)
    direct = spliced_metrics(hf_model, tokenizer, TEXTS, sae_reconstruction(load_model(run / "model"), "center_l2",
                                                                            raw.mean(axis=0)),
                             layer="transformer.h.0", kind=kind, mean=raw.mean(axis=0))
    assert of_run["spliced"]["ce_spliced"] == pytest.approx(direct["ce_spliced"], rel=1e-6)
    assert of_run["spliced"]["kl_clean_spliced"] == pytest.approx(direct["kl_clean_spliced"], rel=1e-5)


def test_a_logged_run_is_still_a_run_folder_overwrite_replaces(tmp_path):
    """The loggers' folders and tracking.json belong to the run: --overwrite replaces them (a new
    tracking run), where before they made the folder foreign."""
    from sparseae.config import load_config
    from sparseae.runs import execute_run
    from sparseae.runs.folder import run_dir_state

    needs_logger("mlflow")
    run = tmp_path / "run"
    config = load_config(base={"model": {"name": "topk_sae", "n_components": 8, "k": 2}, "data": {"name": "digits"},
                               "train": {"max_epochs": 1, "batch_size": 512, "loggers": ["mlflow"]},
                               "output": {"dir": str(run), "plots": False}})
    execute_run(config)
    first = json.loads((run / "tracking.json").read_text())["mlflow"]
    assert run_dir_state(run) == "run"
    execute_run(config, overwrite=True)
    assert json.loads((run / "tracking.json").read_text())["mlflow"] != first

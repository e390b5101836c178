"""Issue 24's leftovers: the report draws the firing rates a run recorded (histogram and counts),
``evaluate`` counts dead/rare/dense latents, and a SAELens folder exported from a run on a file
finds that file from any working directory (or beside the folder once both moved)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sparseae.cli import main
from sparseae.errors import DataError
from sparseae.report import collect_run, render_html
from sparseae.runs.metrics import DENSE_FIRING_RATE, RARE_FIRING_RATE, describe_firing, firing_counts

from cli_checks import assert_one_line_error


def _run_cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _rows(n: int = 300, d: int = 12, seed: int = 0) -> np.ndarray:
    """Sparse non-negative sums of 24 unit directions in ``d`` dimensions (n, d) float32."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(24, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    active = rng.random((n, 24)) < 0.1
    return ((active * rng.uniform(0.5, 1.5, size=(n, 24))) @ atoms).astype(np.float32)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder: ``data/rows.npy`` and ``runs/topk``, a one-epoch TopK SAE trained through the
    CLI from inside the folder on the relative path ``data/rows.npy`` (32 latents, most of them dead)."""
    import os

    root = tmp_path_factory.mktemp("project")
    (root / "data").mkdir()
    np.save(root / "data" / "rows.npy", _rows())
    here = os.getcwd()
    os.chdir(root)
    try:
        status = main(["train", "--model", "topk_sae", "--data", "array", "--set", "data.path=data/rows.npy",
                       "--set", "model.n_components=32", "--set", "model.k=2", "--set", "train.max_epochs=1",
                       "--set", "train.device=cpu", "--set", "output.plots=false", "--out", "runs/topk", "--quiet"])
    finally:
        os.chdir(here)
    assert status == 0
    return root


def _recorded(run: Path) -> list[float]:
    return json.loads((run / "summary.json").read_text())["firing_rates"]


# ----------------------------------------------------------------------------------- counts

def test_firing_counts_of_known_rates():
    rates = [0.0, 0.0, 0.5 * RARE_FIRING_RATE, RARE_FIRING_RATE, 0.05, DENSE_FIRING_RATE, 0.3, 1.0]
    counts = firing_counts(rates)
    assert counts == {"n_latents": 8, "dead": 2, "rare": 1, "dense": 2,
                      "median_rate": pytest.approx((RARE_FIRING_RATE + 0.05) / 2, abs=1e-15),
                      "mean_rate": pytest.approx(sum(rates) / 8, abs=1e-15)}
    line = describe_firing(counts)
    assert "2 of 8 latents dead" in line and "1 rare" in line and "2 dense" in line
    for bad, words in (([], "non-empty"), ([0.1, 1.5], r"\[0, 1\]"), ([0.1, float("nan")], "finite"),
                       ([[0.1]], "one per latent"), (["x"], "numbers")):
        with pytest.raises(DataError, match=words):
            firing_counts(bad)


# ----------------------------------------------------------------------------------- the report

def test_report_draws_the_recorded_firing_rates(project, monkeypatch):
    import sparseae.viz as viz

    run = project / "runs" / "topk"
    rates = np.asarray(_recorded(run))
    assert rates.shape == (32,) and (rates == 0).sum() > 0  # this run has dead latents to count
    drawn = []
    real = viz.save_activity_histogram

    def spy(values, path, **kwargs):
        if Path(path).name == "firing.png":
            drawn.append((np.asarray(values), kwargs))
        return real(values, path, **kwargs)

    monkeypatch.setattr(viz, "save_activity_histogram", spy)
    content = collect_run(run)
    assert content.firing == firing_counts(rates)
    assert content.firing["dead"] == int((rates == 0).sum())
    assert content.firing["dense"] == int((rates > DENSE_FIRING_RATE).sum())
    assert content.figures["firing"].startswith(b"\x89PNG\r\n\x1a\n") and "firing" not in content.stale
    (values, kwargs), = drawn  # one histogram: of the recorded rates, not recomputed ones
    dead = values <= kwargs["dead_threshold"]
    assert dead.sum() == content.firing["dead"]
    np.testing.assert_allclose(values[~dead], np.log10(rates[rates > 0]), rtol=0, atol=1e-12)
    page = render_html([content])
    section = page[page.index('<section id="firing"'):]
    section = section[:section.index("</section>")]
    assert "<img" in section and "dead (never fire)" in section
    cells = dict(re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", section))
    assert cells["latents"] == "32" and cells["dead (never fire)"] == str(content.firing["dead"])
    assert cells[f"dense (fire on over {100 * DENSE_FIRING_RATE:g}% of rows)"] == str(content.firing["dense"])


def test_firing_needs_no_model_and_bad_rates_are_a_note(project, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(project / "runs" / "topk", run)
    shutil.rmtree(run / "model")
    content = collect_run(run)  # no model: the curves, and the histogram of what summary.json recorded
    assert set(content.figures) == {"curves", "firing"} and content.firing["n_latents"] == 32
    summary = json.loads((run / "summary.json").read_text())
    summary["firing_rates"] = [0.0, 0.25, 0.0, 1.0]  # edited: the page shows exactly these
    (run / "summary.json").write_text(json.dumps(summary))
    content = collect_run(run)
    assert content.firing["dead"] == 2 and content.firing["dense"] == 2 and content.firing["n_latents"] == 4
    summary["firing_rates"] = [0.5, 2.0]
    (run / "summary.json").write_text(json.dumps(summary))
    content = collect_run(run)
    assert content.firing is None and "firing" not in content.figures
    assert any("firing rates in summary.json are not drawn" in note and "[0, 1]" in note for note in content.notes)
    assert 'id="firing"' not in render_html([content])


def test_comparison_tables_both_runs_firing(project, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(project / "runs" / "topk", other)
    shutil.rmtree(other / "model")
    summary = json.loads((other / "summary.json").read_text())
    summary["firing_rates"] = [0.0] * 30 + [0.5, 0.5]
    (other / "summary.json").write_text(json.dumps(summary))
    page = render_html([collect_run(other), collect_run(project / "runs" / "topk")])
    section = page[page.index('<section id="firing"'):]
    row = section[section.index("<td>dead (never fire)</td>"):]
    row = row[:row.index("</tr>")]
    dead = int((np.asarray(_recorded(project / "runs" / "topk")) == 0).sum())
    assert row == f"<td>dead (never fire)</td><td>30</td><td>{dead}</td>"


# ----------------------------------------------------------------------------------- evaluate

def test_evaluate_counts_dead_and_rare_latents(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    status, out, err = _run_cli(capsys, "evaluate", "runs/topk", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["firing_rates"] == _recorded(project / "runs" / "topk")  # the same rows, the same model
    assert result["firing"] == firing_counts(result["firing_rates"]) and "firing_rates" not in result["metrics"]
    status, out, err = _run_cli(capsys, "evaluate", "runs/topk")
    assert status == 0, err
    assert describe_firing(result["firing"]) in out
    assert f"{result['firing']['dead']} of 32 latents dead (never fire)" in out and "rare" in out


# ----------------------------------------------------------------------------------- SAELens folders

def _evaluate(capsys, *argv) -> dict:
    status, out, err = _run_cli(capsys, "evaluate", *argv, "--json")
    assert status == 0, err
    return json.loads(out)


def test_saelens_folder_finds_its_data_from_anywhere(project, tmp_path, capsys, monkeypatch):
    pytest.importorskip("sae_lens", reason="sae-lens is not importable; pip install -e '.[test]'")
    monkeypatch.chdir(project)
    status, out, err = _run_cli(capsys, "export", "runs/topk", "--format", "saelens", "--out", "export/sae")
    assert status == 0, err
    assert "Warning" not in out
    metadata = json.loads((project / "export" / "sae" / "cfg.json").read_text())["metadata"]
    assert metadata["sparseae_data"]["path"] == str(project / "data" / "rows.npy")  # absolute
    assert metadata["sparseae_data_relative_paths"] == {"path": "../../data/rows.npy"}
    of_run = _evaluate(capsys, "runs/topk")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # another working directory: the absolute path
    of_folder = _evaluate(capsys, project / "export" / "sae")
    assert of_folder["metrics"] == of_run["metrics"] and of_folder["n_eval"] == of_run["n_eval"] == 300

    moved = tmp_path / "moved"  # the folder and its data moved together (another machine)
    shutil.copytree(project / "export", moved / "export")
    shutil.copytree(project / "data", moved / "data")
    (project / "data" / "rows.npy").rename(project / "data" / "away.npy")
    try:
        assert _evaluate(capsys, moved / "export" / "sae")["metrics"] == of_run["metrics"]
        (moved / "data" / "rows.npy").unlink()  # now in neither place: one line naming it, exit 2
        status, out, err = _run_cli(capsys, "evaluate", moved / "export" / "sae")
        assert_one_line_error(status, err, f"data.path={project / 'data' / 'rows.npy'}", "not here",
                              str(moved / "data" / "rows.npy"), "--set data.path=")
        given = _evaluate(capsys, moved / "export" / "sae", "--set", f"data.path={project / 'data' / 'away.npy'}")
        assert given["metrics"] == of_run["metrics"]
    finally:
        (project / "data" / "away.npy").rename(project / "data" / "rows.npy")


def test_an_older_export_with_a_relative_path_names_it(project, tmp_path, capsys, monkeypatch):
    pytest.importorskip("sae_lens", reason="sae-lens is not importable; pip install -e '.[test]'")
    monkeypatch.chdir(project)
    status, _, err = _run_cli(capsys, "export", "runs/topk", "--format", "saelens", "--out", tmp_path / "old")
    assert status == 0, err
    cfg_path = tmp_path / "old" / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["metadata"]["sparseae_data"]["path"] = "data/rows.npy"  # as this session's first exports wrote it
    del cfg["metadata"]["sparseae_data_relative_paths"]
    cfg_path.write_text(json.dumps(cfg))
    assert _evaluate(capsys, tmp_path / "old")["n_eval"] == 300  # from the exporting directory: found
    monkeypatch.chdir(tmp_path)
    status, _, err = _run_cli(capsys, "evaluate", tmp_path / "old")
    assert_one_line_error(status, err, "data.path=data/rows.npy", "not here")


def test_export_warns_when_the_runs_data_is_not_found_from_here(project, tmp_path, capsys, monkeypatch):
    pytest.importorskip("sae_lens", reason="sae-lens is not importable; pip install -e '.[test]'")
    monkeypatch.chdir(tmp_path)  # the run read data/rows.npy from the project folder, not from here
    status, out, err = _run_cli(capsys, "export", project / "runs" / "topk", "--format", "saelens",
                                "--out", tmp_path / "sae")
    assert status == 0, err
    assert f"Warning: the run's data.path={tmp_path / 'data' / 'rows.npy'} is not found from here" in out

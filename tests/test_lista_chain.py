"""LISTA's depth chain as library code (sparseae.evaluate.lista, issue 23): the solver curve, the exact
targets, the warm-started chain, and the ``lista_depth`` recipe evaluation on a small run."""
from __future__ import annotations

import json

import pytest
import torch

from sparseae.coding import fista, ista
from sparseae.config import RunConfig
from sparseae.errors import ConfigError, DataError
from sparseae.evaluate.lista import (
    LISTATraining,
    exact_codes,
    iterations_to_match,
    lista_depth_chain,
    relative_error,
    solver_curve,
)
from sparseae.models import create_model, lista_from_dictionary
from sparseae.runs.evaluations import EVALUATIONS, FinishedRun


def problem(n: int = 300, seed: int = 0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """A unit-norm dictionary (12, 24) and n samples (n, 12) with 3-sparse codes plus noise."""
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(12, 24, generator=g, dtype=torch.float64)
    D /= D.norm(dim=0)
    Z = torch.zeros(n, 24, dtype=torch.float64)
    rows = torch.arange(n).repeat_interleave(3)
    Z[rows, torch.randint(0, 24, (3 * n,), generator=g)] = torch.randn(3 * n, generator=g, dtype=torch.float64)
    X = Z @ D.t() + 0.01 * torch.randn(n, 12, generator=g, dtype=torch.float64)
    return D.to(dtype), X.to(dtype)


@pytest.mark.parametrize("solver", [ista, fista])
def test_the_solver_curve_is_the_error_of_each_iterate(solver):
    D, X = problem(40)
    L = lista_from_dictionary(D, 0.1, 1).lipschitz
    Z = exact_codes(X, D, 0.1)
    curve = solver_curve(solver, X, D, 0.1, L, Z, 30)
    assert curve.shape == (30,)
    for k in (1, 7, 30):
        codes = solver(X, D, 0.1, L=L, max_iter=k, stop="none").codes
        assert curve[k - 1] == pytest.approx(relative_error(codes, Z), rel=1e-10)
    assert curve[-1] < 0.5 * curve[0]
    assert iterations_to_match(curve, curve[6]) <= 7


def test_exact_targets_by_lars_and_by_long_fista_agree():
    D, X = problem(30)
    L = lista_from_dictionary(D, 0.1, 1).lipschitz
    lars = exact_codes(X, D, 0.1)
    assert lars.dtype == X.dtype and lars.shape == (30, 24)
    long = exact_codes(X, D, 0.1, targets="fista", L=L, zstar_iter=3000)
    assert relative_error(long, lars) < 1e-10
    with pytest.raises(ConfigError, match="targets"):
        exact_codes(X, D, 0.1, targets="omp")


def test_the_chain_warm_starts_each_depth_and_the_error_falls():
    D, X = problem(700, dtype=torch.float32)
    Z = exact_codes(X, D, 0.1)
    parts = [(X[a:b], Z[a:b]) for a, b in ((0, 500), (500, 600), (600, 700))]
    seen = []
    settings = LISTATraining(epochs=8, batch_size=50)
    results, deepest = lista_depth_chain(D, 0.1, [3, 1, 2], *parts, settings=settings, report=seen.append)
    assert [r.T for r in results] == [1, 2, 3] and seen == results and deepest.encoder.n_steps == 3
    first = results[0]
    assert first.initial == first.untrained  # T = 1 starts as ISTA (2 iterations)
    ista2 = ista(parts[2][0], D, 0.1, L=lista_from_dictionary(D, 0.1, 1).lipschitz, max_iter=2, stop="none").codes
    assert first.untrained == pytest.approx(relative_error(ista2, parts[2][1]), rel=1e-4)
    for shallow, deep in zip(results, results[1:], strict=False):
        assert deep.initial != deep.untrained  # started from the trained shallower net, not ISTA
        assert deep.trained < shallow.trained
    assert results[0].trained < 0.8 * results[0].untrained
    with torch.no_grad():
        assert relative_error(deepest.encode(parts[2][0]), parts[2][1]) == pytest.approx(results[-1].trained)
    cold, _ = lista_depth_chain(D, 0.1, [1, 2], *parts, settings=LISTATraining(epochs=1), warm_start=False)
    assert cold[1].initial == pytest.approx(cold[1].untrained)
    with pytest.raises(ConfigError, match="depths"):
        lista_depth_chain(D, 0.1, [0, 1], *parts)
    with pytest.raises(ConfigError, match="optimizer"):
        lista_depth_chain(D, 0.1, [1], *parts, settings=LISTATraining(optimizer="lbfgs"))


def _digits_run(tmp_path, model_name="sparse_coding"):
    config = RunConfig.from_dict({"model": {"name": model_name, "n_components": 20, "sparsity_weight": 0.1},
                                  "data": {"name": "digits", "normalize": "l2"}}).validate()
    torch.manual_seed(0)
    model = create_model(model_name, 64, 20, sparsity_weight=0.1).eval()
    return FinishedRun(tmp_path, model, config)


def test_the_lista_depth_evaluation_reports_every_depth(tmp_path):
    evaluation = EVALUATIONS["lista_depth"]
    metrics = evaluation.function(_digits_run(tmp_path), depths=[1, 3], skip=100, n_train=400, n_val=100,
                                  n_test=100, epochs=3, batch_size=50, max_iter=200)
    assert set(evaluation.metrics) <= set(metrics)
    assert {"lista_error_T1", "lista_error_T3", "fista_equivalent_T1", "fista_equivalent_T3"} <= set(metrics)
    assert metrics["lista_error_deepest"] == metrics["lista_error_T3"] < metrics["lista_error_T1"]
    assert metrics["lista_error_shallowest"] == metrics["lista_error_T1"] and metrics["lista_error_falls"] == 1.0
    assert metrics["lista_depth_deepest"] == 3.0
    assert 1 <= metrics["fista_equivalent_T1"] <= metrics["fista_equivalent_T3"] <= 201
    assert all(isinstance(value, float) for value in metrics.values())
    curve = json.loads((tmp_path / "lista_depth.json").read_text(encoding="utf-8"))
    assert curve["depths"] == [1, 3] and curve["errors"] == [metrics["lista_error_T1"], metrics["lista_error_T3"]]
    assert len(curve["ISTA"]) == len(curve["FISTA"]) == 200
    assert curve["FISTA"][-1] < curve["ISTA"][-1] < curve["ISTA"][0]  # FISTA is ahead of ISTA at 200 iterations
    fista_hits = [k + 1 for k, e in enumerate(curve["FISTA"]) if e <= metrics["lista_error_T3"]]
    assert metrics["fista_equivalent_T3"] == float(fista_hits[0] if fista_hits else 201)
    assert (tmp_path / "lista_depth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_lista_depth_evaluation_names_bad_input(tmp_path):
    function = EVALUATIONS["lista_depth"].function
    with pytest.raises(DataError, match="needs 3100 training rows after skipping 0, the data has 1797"):
        function(_digits_run(tmp_path), n_train=2000, n_val=100)
    with pytest.raises(ConfigError, match="depths"):
        function(_digits_run(tmp_path), depths=[])
    with pytest.raises(ConfigError, match="sparse_coding"):
        function(_digits_run(tmp_path, "autoencoder"))
    with pytest.raises(ConfigError, match="evaluate.stability_bound"):
        function(_digits_run(tmp_path), stability_bound=-1.0)


def test_the_table_script_reads_the_saved_depths_of_a_run(tmp_path, capsys, monkeypatch):
    """benchmarks/lista_depth_table.py prints BENCHMARKS.md's per-depth rows from a run's files alone."""
    import shutil
    import sys

    from sparseae.io import save_model

    run = _digits_run(tmp_path)
    save_model(run.model, tmp_path / "model")  # a run folder the script can load
    run.config.write(tmp_path / "config.yaml", run.model.spec)
    metrics = EVALUATIONS["lista_depth"].function(
        run, depths=[1, 2], skip=100, n_train=400, n_val=100, n_test=100, epochs=3,
        batch_size=50, max_iter=200, optimizer="adam", lr=0.01, schedule="plateau", untied=True)
    script = _script("lista_depth_table")
    monkeypatch.setattr(sys, "argv", ["lista_depth_table.py", str(tmp_path)])
    script.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert len(rows) == 2
    for T, row in zip((1, 2), rows, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert float(cells[1]) == pytest.approx(metrics[f"lista_error_T{T}"], abs=5e-5)
        assert cells[2].startswith(f"{int(metrics[f'fista_equivalent_T{T}'])} (")
        assert cells[3] == f"{int(metrics[f'lista_epochs_T{T}'])} ({int(metrics[f'lista_best_epoch_T{T}'])})"
        assert (cells[4] == "epochs") == (metrics[f"lista_converged_T{T}"] == 0.0)
        assert cells[4] in ("converged", "patience", "epochs")
    # a run still training has no lista_depth.json yet: FISTA's curve is recomputed on its test rows
    (tmp_path / "lista_depth.json").rename(tmp_path / "curve.json")
    monkeypatch.setattr(sys, "argv", ["lista_depth_table.py", str(tmp_path), "--set", "data=null", "--set", "skip=100",
                                      "--set", "n_train=400", "--set", "n_val=100", "--set", "n_test=100",
                                      "--set", "max_iter=200", "--set", "shifted_copies=0"])
    script.main()
    again = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| 1 ", "| 2 "))]
    assert [row.split("|")[3] for row in again] == [row.split("|")[3] for row in rows]  # the same FISTA its
    assert rows[0].rstrip(" |").endswith("| –")  # T = 1 has no warm start
    assert [script._warm_start_cell(r) for r in ({"repeated_step": 3, "rejected_steps": [0, 1, 2]},
                                                 {"repeated_step": None, "rejected_steps": [0, 1]},
                                                 {"repeated_step": 0})] == ["3 (0, 1, 2)", "identity (0, 1)", "0"]
    # the screen script rebuilds T = 2's warm-start candidates and picks what the chain recorded
    screen = _script("lista_warm_start_screen")
    monkeypatch.setattr(sys, "argv", ["lista_warm_start_screen.py", str(tmp_path), "--set", "data=null", "--set",
                                      "skip=100", "--set", "n_train=400", "--set", "n_val=100", "--set", "n_test=100",
                                      "--set", "shifted_copies=0"])
    screen.main()
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 2 ")][0]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    recorded = json.loads((tmp_path / "lista_depth_chain" / "T2" / "config.json").read_text())["extra"][
        "lista_depth_chain"]["result"]["repeated_step"]
    assert cells[1] == str(recorded) and cells[2] == ("identity" if recorded is None else str(recorded))
    assert cells[3].startswith("0: ") and "(" in cells[3]
    budget = LISTATraining(epochs=60, patience=12)  # results saved before 'stopped': told from the epochs
    assert [script._why_it_stopped(epochs, best, budget) for epochs, best in ((60, 58), (37, 25), (32, 26))] == \
        ["epochs", "patience", "converged"]
    with pytest.raises(SystemExit, match="no saved depth"):
        monkeypatch.setattr(sys, "argv", ["lista_depth_table.py", str(tmp_path), "--fista-json",
                                          str(tmp_path / "curve.json")])
        shutil.rmtree(tmp_path / "lista_depth_chain")
        (tmp_path / "lista_depth_chain").mkdir()
        script.main()


def _script(name: str):
    """A benchmarks/ script as a module (its main() reads sys.argv)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The evaluation settings of the small digits run below, as ``--set`` changes of lista_depth_mnist's.
SMALL_RUN_SETS = [item for change in ("data=null", "skip=100", "n_train=400", "n_val=100", "n_test=100",
                                      "max_iter=200", "shifted_copies=0", "layer_thresholds=false",
                                      "batch_size=50") for item in ("--set", change)]


def test_the_scripts_that_study_a_runs_saved_depths_rebuild_its_rows(tmp_path, capsys, monkeypatch):
    """benchmarks/lista_row_errors.py, lista_continue.py, lista_depth_rerun.py and plot_lista_depth.py all start
    from sparseae.runs.evaluations.lista.run_rows: the run's dictionary and rows, as its evaluation built them."""
    import sys

    from sparseae.io import save_model
    from sparseae.recipes import get_recipe
    from sparseae.runs.evaluations.lista import run_rows

    run = _digits_run(tmp_path)
    save_model(run.model, tmp_path / "model")
    run.config.write(tmp_path / "config.yaml", run.model.spec)
    metrics = EVALUATIONS["lista_depth"].function(
        run, depths=[1, 2], skip=100, n_train=400, n_val=100, n_test=100, epochs=2, batch_size=50, max_iter=200,
        optimizer="adam", lr=0.01, schedule="plateau", untied=True, safeguard=True)
    for T in (1, 2):  # scored safeguarded, beside LISTA alone: no row of these healthy nets fell back
        assert metrics[f"lista_flagged_T{T}"] == 0.0
        assert metrics[f"lista_error_T{T}"] == pytest.approx(metrics[f"lista_raw_error_T{T}"], rel=1e-6)
    (tmp_path / "summary.json").write_text(json.dumps({"metrics": metrics}), encoding="utf-8")
    rows = run_rows(tmp_path, get_recipe("lista_depth_mnist").evaluation(assignments=SMALL_RUN_SETS[1::2]))
    assert (len(rows.train), len(rows.val), len(rows.test)) == (400, 100, 100) and rows.lam == 0.1
    assert rows.params["stability_bound"] == 4.0 and rows.params["untied"] is True
    with torch.no_grad():
        from sparseae.io import load_model
        deepest = load_model(tmp_path / "lista_depth_chain" / "T2")
        error = relative_error(deepest.encode(rows.test), exact_codes(rows.test, rows.D, rows.lam))
    assert error == pytest.approx(metrics["lista_error_T2"], rel=1e-5)  # the same test rows, the same error

    def run_script(name, *args):
        monkeypatch.setattr(sys, "argv", [f"{name}.py", str(tmp_path), *args, *SMALL_RUN_SETS])
        _script(name).main()
        return capsys.readouterr().out

    out = run_script("lista_row_errors", "--depths", "2")
    assert f"test T = 2: mean {metrics['lista_error_T2']:.4f}" in out
    out = run_script("lista_continue", "--depths", "1", "--set", "epochs=1", "--set", "untied=true")
    row = [line for line in out.splitlines() if line.startswith("| 1 ")][0]
    assert row.split("|")[2].strip().startswith(f"{metrics['lista_error_T1']:.4f} (")
    out = run_script("lista_depth_rerun", "--set", "depths=[1]", "--set", "epochs=1")
    assert "T = 1: 1 epochs" in out
    out = run_script("lista_depth_table")  # the safeguarded scores come from summary.json
    rows = [line for line in out.splitlines() if line.startswith(("| 1 ", "| 2 "))]
    assert [row.rstrip(" |").rsplit("|", 1)[1].strip() for row in rows] == [
        f"0 ({metrics[f'lista_raw_error_T{T}']:.4f})" for T in (1, 2)]
    out = run_script("plot_lista_depth")
    assert "wrote" in out and (tmp_path / "lista_depth.png").is_file()

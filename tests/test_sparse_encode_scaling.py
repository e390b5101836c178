"""Issue 26: the cost-growth benchmark's quick run, and the GPU command's clean failure."""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sparseae.coding.encode import _auto

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _run(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_quick_scaling_table_has_every_cell_and_autos_choice_follows_the_rule(tmp_path):
    out = tmp_path / "rows.json"
    proc = _run("bench_sparse_encode_scaling.py", "--quick", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    # 2 dictionaries (dct, random 64x256) x 2 sparsities (5, 15) x 2 batches (100, 300), 1 thread
    assert len(rows) == 8
    assert {(r["dictionary"], r["target_nnz"], r["batch"]) for r in rows} == {
        (d, t, n) for d in ("dct 64x256", "random 64x256") for t in (5, 15) for n in (100, 300)}
    spams_present = importlib.util.find_spec("spams") is not None
    for r in rows:
        assert r["threads"] == 1 and r["atoms"] == 256 and r["n_features"] == 64
        # the bisection on λ hit the sparsity it aimed at (on its 128 samples; here the cell's)
        assert abs(r["nnz"] - r["target_nnz"]) <= 0.35 * r["target_nnz"], r
        # the exact solvers agree with the best objective of the cell to 1e-9
        for name in ("lasso_lars", "lasso_cd"):
            assert r["seconds"][name] > 0 and 0 <= r["gap"][name] <= 1e-9, (name, r)
        assert r["seconds"]["omp"] > 0 and abs(r["omp_atoms"] - r["target_nnz"]) <= 0.35 * r["target_nnz"]
        if spams_present:
            assert r["gap"]["SPAMS lasso"] <= 1e-9 and r["seconds"]["SPAMS omp"] > 0
        # auto's column is the rule of sparse_encode, and the fastest exact solver is one of ours
        assert r["auto"] == _auto(torch.device("cpu"), None, r["lambda"], None) == "lasso_lars"
        assert r["fastest_exact"] in ("lasso_lars", "lasso_cd", "fista")
        expected_ratio = r["seconds"][r["auto"]] / r["seconds"][r["fastest_exact"]]
        assert r["auto_over_fastest"] == pytest.approx(expected_ratio) and expected_ratio >= 1.0
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 8  # header and one line per cell
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[5:11] == ["lasso_lars", "lasso_cd", "fista", "SPAMS lasso", "omp", "SPAMS omp"]
    assert header[-3:] == ["auto picks", "fastest exact", "auto / fastest"]
    assert all(len(line.strip("|").split("|")) == len(header) for line in table)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_gpu_command_fails_with_one_line_without_cuda():
    proc = _run("bench_sparse_encode.py", "--device", "cuda", timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines == ["bench_sparse_encode.py: error: --device cuda: CUDA is not available on this machine"]


def test_gpu_comparison_path_reaches_the_certificate_on_the_cpu():
    """The --device cuda code path, run on the CPU at a small size: FISTA to the duality gap
    reaches lasso_lars's objective within 1e-9 and SPAMS (when present) too."""
    spec = importlib.util.spec_from_file_location("bench_sparse_encode", BENCH / "bench_sparse_encode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = argparse.Namespace(mnist=None, n_samples=[40], problems=["dct"], seed=0, repeats=1,
                              gpu_tol=1e-10, gpu_max_iter=100000, cache=None)
    rows = module.gpu_compare(args, torch.device("cpu"))
    names = [name for name, _, _ in rows]
    assert names[0] == "sparseae fista on cpu" and names[1].startswith("sparseae lasso_lars")
    best = min(F for _, _, F in rows)
    assert best > 0
    for name, seconds, F in rows:
        assert seconds > 0 and (F - best) / best <= 1e-9, name

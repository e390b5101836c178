"""The locally connected topographic recipe: ZCA-whitened crops, the non-wrapping topographic map
figures, and the ``local_topographic_map`` evaluation of a ``local_sae`` run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sparseae.cli import main
from sparseae.config import RunConfig
from sparseae.data.datasets import load_dataset, zca_whitened_crops
from sparseae.errors import ConfigError
from sparseae.evaluate.filters import (
    energy_concentration,
    orientation_singularities,
    preferred_orientation,
    topographic_map,
    topographic_smoothness,
)
from sparseae.io import load_model
from sparseae.models import create_model
from sparseae.runs.evaluations import EVALUATIONS, FinishedRun


def _gratings(angles: np.ndarray, size: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    return np.stack([np.cos(1.5 * (np.cos(a) * xx + np.sin(a) * yy)).ravel() for a in angles])


def test_a_sheet_that_does_not_wrap_leaves_out_the_seam():
    side = 8
    # orientation turns by π/2 across the columns: on a torus the last column meets the first (a seam)
    W = _gratings(np.pi / 2 * (np.arange(side * side) % side) / (side - 1))
    theta = preferred_orientation(W, (8, 8))
    flat = topographic_map(W, (8, 8), side, side, n_permutations=50, toroidal=False)
    torus = topographic_map(W, (8, 8), side, side, n_permutations=50)
    assert flat["ratio"] == topographic_smoothness(theta, side, side, toroidal=False, n_permutations=50)["ratio"]
    assert flat["pinwheels"] == np.count_nonzero(orientation_singularities(theta, side, side)[:-1, :-1])
    assert flat["ratio"] < 0.3 < torus["ratio"]          # the seam's π/2 jumps count only on the torus
    assert flat["selective_units"] == side * side


def test_no_selective_neighbours_give_a_nan_selective_ratio():
    yy, xx = np.mgrid[0:8, 0:8] - 3.5
    blobs = np.stack([np.exp(-(xx ** 2 + yy ** 2) / (2 * s ** 2)).ravel() for s in np.linspace(1, 2, 16)])
    result = topographic_map(blobs, (8, 8), 4, 4, n_permutations=5, toroidal=False)
    assert result["selective_units"] == 0 and np.isnan(result["ratio_selective"])


def test_whitened_crops_are_white_in_their_kept_directions():
    X = zca_whitened_crops(600, 8, keep=0.25, epsilon=0.0, random_state=0)
    assert X.shape == (600, 64) and X.dtype == np.float32
    assert float(X.std()) == pytest.approx(1.0, rel=1e-5)
    eigenvalues = np.linalg.eigvalsh(np.cov(X.astype(np.float64), rowvar=False, bias=True))[::-1]
    kept = eigenvalues[:16]
    assert kept.max() / kept.min() == pytest.approx(1.0, abs=1e-3)   # white in the 16 kept directions
    assert eigenvalues[16:].max() < 1e-8 * kept.max()                # nothing outside them
    data = load_dataset("whitened_crops", n_crops=50, crop_size=8, keep=0.25)
    assert data.image_shape == (8, 8) and data.X.shape == (50, 64)
    with pytest.raises(ConfigError, match="keep"):
        zca_whitened_crops(50, 8, keep=0.0)


def test_the_evaluation_measures_the_interior_of_the_trained_sheet(tmp_path, capsys):
    status = main(["train", "--recipe", "local_topographic_crops", "--quick", "--out", str(tmp_path / "run"),
                   "--set", "train.threads=1"])
    assert status == 0, capsys.readouterr().err[-2000:]
    metrics = json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"]
    model = load_model(tmp_path / "run" / "model")
    atoms = model.sheet_atoms().double().numpy()
    assert model.sheet_shape == (26, 26) and atoms.shape == (676, 64)
    inner = atoms.reshape(26, 26, 64)[2:24, 2:24].reshape(-1, 64)
    expected = topographic_map(inner, (8, 8), 22, 22, n_permutations=5, toroidal=False)
    assert metrics["local_ratio"] == pytest.approx(expected["ratio"])
    assert metrics["local_pinwheels"] == expected["pinwheels"]
    assert metrics["local_pinwheels_permuted"] == pytest.approx(expected["pinwheels_permuted"])
    whole = topographic_map(atoms, (8, 8), 26, 26, n_permutations=5, toroidal=False)
    assert metrics["local_ratio_whole"] == pytest.approx(whole["ratio"])
    assert metrics["local_energy_concentration"] == pytest.approx(energy_concentration(atoms, (8, 8)).mean())
    evaluation = EVALUATIONS["local_topographic_map"].function
    config = RunConfig.from_dict({"model": {"name": "autoencoder"}, "data": {"name": "digits"}})
    with pytest.raises(ConfigError, match="needs a local_sae model"):
        evaluation(FinishedRun(tmp_path, create_model("autoencoder", 64, 4), config))
    run = FinishedRun(tmp_path / "run", model, config)
    with pytest.raises(ConfigError, match="evaluate.margin 13 leaves less than 2×2"):
        evaluation(run, margin=13)

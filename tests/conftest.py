"""Shared fixtures: small deterministic data, and the offline MNIST file when it is present."""
from __future__ import annotations

import os
from pathlib import Path

# The test models are tiny: one thread beats two (no synchronisation per op) and keeps timings
# steady when the 2-core machine is shared. OMP_NUM_THREADS (unless the caller set it) carries
# that to the CLI's `--threads auto` (sparseae.threads.available_cores honours it, so no 0.1 s
# sample of the other processes' load per command: ~0.11 s × hundreds of in-process commands)
# and to the subprocesses the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"


torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits scaled to [0, 1]: X (1797, 64) float32, y (1797,)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    """../shared/data/mnist.npz, or a skip saying it is absent."""
    if not SHARED_MNIST.exists():
        pytest.skip(f"MNIST not present at {SHARED_MNIST} (the shared data folder ships it offline)")
    return SHARED_MNIST


@pytest.fixture()
def synthetic_mnist(tmp_path, monkeypatch):
    """Run in ``tmp_path`` with a small synthetic ``mnist.npz`` (300 train / 100 test) as
    ``SPARSEAE_MNIST`` and one BLAS thread (the recipes' probes: 6x faster on 2 busy cores)."""
    from threadpoolctl import threadpool_limits

    from test_docs import write_synthetic_mnist

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SPARSEAE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SPARSEAE_MNIST", str(write_synthetic_mnist(tmp_path / "mnist.npz", 300, 100)))
    with threadpool_limits(limits=1):
        yield tmp_path

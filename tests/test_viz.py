"""Tests of sparseae.viz: filter grids and the PNG writers."""
import sys

import matplotlib
import matplotlib.image
import numpy as np
import pytest
import torch

from sparseae.errors import ConfigError, DataError
from sparseae.viz import (
    filter_grid,
    grid_layout,
    save_activity_histogram,
    save_curves,
    save_filters,
    save_reconstructions,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path, min_side=50):
    """The file is a PNG that decodes to a non-blank image of plausible size."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert min_side <= min(image.shape[:2]) and max(image.shape[:2]) <= 5000
    assert image[..., :3].std() > 0
    assert not list(path.parent.glob(".*.tmp"))  # no temporary file left behind


# ---------------------------------------------------------------- filter_grid

def test_filter_grid_geometry_and_placement():
    W = np.arange(6 * 6, dtype=float).reshape(6, 6)  # 6 filters of 2×3
    grid = filter_grid(W, (2, 3), layout=(2, 3), pad=1)
    # rows*h + (rows+1)*pad, cols*w + (cols+1)*pad
    assert grid.shape == (2 * 2 + 3, 3 * 3 + 4)
    # filter k sits at row k // 3, column k % 3; each is an increasing ramp 0 .. 1
    ramp = np.linspace(0, 1, 6).reshape(2, 3)
    for k in range(6):
        top, left = 1 + (k // 3) * 3, 1 + (k % 3) * 4
        np.testing.assert_allclose(grid[top:top + 2, left:left + 3], ramp)
    # the border lines hold the background
    assert (grid[[0, 3, 6], :] == 0).all() and (grid[:, [0, 4, 8, 12]] == 0).all()


def test_filter_grid_each_filter_spans_zero_to_one():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 16)) * rng.uniform(0.1, 10, size=(5, 1)) + rng.normal(size=(5, 1))
    grid = filter_grid(W, (4, 4), layout=(1, 5), pad=0)
    tiles = grid.reshape(4, 5, 4).transpose(1, 0, 2)  # (filter, 4, 4)
    np.testing.assert_allclose(tiles.min(axis=(1, 2)), 0.0)
    np.testing.assert_allclose(tiles.max(axis=(1, 2)), 1.0)


def test_filter_grid_all_scale_keeps_zero_mid_grey():
    W = np.array([[-2.0, 0.0, 1.0, 2.0], [0.0, 0.0, 0.5, -1.0]])
    grid = filter_grid(W, (2, 2), layout=(1, 2), pad=0, normalize="all")
    np.testing.assert_allclose(grid, [[0.0, 0.5, 0.5, 0.5], [0.75, 1.0, 0.625, 0.25]])


def test_filter_grid_constant_filter_and_empty_cells():
    W = np.vstack([np.full(4, 3.0), np.arange(4.0), np.zeros(4)])
    grid = filter_grid(W, (2, 2), pad=2, background=1.0)
    assert grid_layout(3) == (2, 2)
    assert grid.shape == (2 * 2 + 3 * 2, 2 * 2 + 3 * 2)
    np.testing.assert_allclose(grid[2:4, 2:4], 0.5)  # constant filter → mid grey
    np.testing.assert_allclose(grid[6:8, 6:8], 1.0)  # 4th cell is empty → background


def test_filter_grid_accepts_tensors_with_grad():
    W = torch.randn(10, 9, requires_grad=True)
    assert filter_grid(W, (3, 3)).shape == (3 * 3 + 4, 4 * 3 + 5)  # default layout 3 rows × 4 cols


def test_grid_layout_default_is_near_square():
    assert grid_layout(1) == (1, 1)
    assert grid_layout(100) == (10, 10)
    assert grid_layout(101) == (10, 11)


def test_filter_grid_rejects_bad_input():
    with pytest.raises(DataError, match="features"):
        filter_grid(np.zeros((4, 10)), (3, 3))
    with pytest.raises(DataError):
        filter_grid(np.zeros(9), (3, 3))
    with pytest.raises(DataError, match="NaN"):
        filter_grid(np.full((2, 4), np.nan), (2, 2))
    with pytest.raises(ConfigError, match="too few"):
        filter_grid(np.zeros((7, 4)), (2, 2), layout=(2, 3))
    with pytest.raises(ConfigError):
        filter_grid(np.zeros((2, 4)), (2, 2), normalize="global")
    with pytest.raises(ConfigError):
        filter_grid(np.zeros((2, 4)), (2, 2, 1))
    with pytest.raises(ConfigError):
        filter_grid(np.zeros((2, 4)), (2, 2), pad=-1)


# ---------------------------------------------------------------- PNG writers

def test_save_filters_writes_png_and_creates_folders(tmp_path):
    W = np.random.default_rng(0).normal(size=(20, 64))
    path = save_filters(W, tmp_path / "new" / "dir" / "filters.png", (8, 8), title="encoder filters")
    assert path == tmp_path / "new" / "dir" / "filters.png"
    assert_valid_png(path)


def test_save_filters_overwrites_and_rejects_bad_shape(tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    save_filters(np.random.default_rng(1).normal(size=(4, 9)), str(path), (3, 3), layout=(1, 4))
    assert_valid_png(path, min_side=20)
    with pytest.raises(DataError):
        save_filters(np.zeros((4, 10)), tmp_path / "bad.png", (3, 3))
    assert not (tmp_path / "bad.png").exists()


def test_save_curves(tmp_path):
    records = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "mean_l0": 3.0 * e,
                "lr": 0.1, "note": "text"} for e in range(1, 6)]
    records[2]["val_loss"] = float("nan")  # skipped, not fatal
    assert_valid_png(save_curves(records, tmp_path / "curves.png"))
    assert_valid_png(save_curves(records, tmp_path / "loss.png", keys=["val_loss"]))
    # negative values: linear scale; records without "epoch" count from 1
    assert_valid_png(save_curves([{"score": -1.0}, {"score": 2.0}], tmp_path / "neg.png"))


@pytest.mark.parametrize("records, keys, error", [
    ([], None, DataError),
    ([{"epoch": 1, "note": "x"}], None, DataError),
    ([{"epoch": 1, "train_loss": 1.0}], ["val_loss"], ConfigError),
    (["train_loss"], None, DataError),
])
def test_save_curves_rejects_bad_records(tmp_path, records, keys, error):
    with pytest.raises(error):
        save_curves(records, tmp_path / "c.png", keys=keys)


def test_save_reconstructions(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.uniform(size=(30, 49))
    path = save_reconstructions(torch.tensor(X), X + rng.normal(scale=0.1, size=X.shape),
                                tmp_path / "recon.png", (7, 7), n=6)
    assert_valid_png(path)
    few = save_reconstructions(X[:3], X[:3], tmp_path / "few.png", (7, 7))  # n > samples is fine
    assert_valid_png(few, min_side=20)
    with pytest.raises(DataError, match="shape"):
        save_reconstructions(X, X[:5], tmp_path / "r.png", (7, 7))
    with pytest.raises(DataError):
        save_reconstructions(X, X, tmp_path / "r.png", (8, 8))


def test_save_activity_histogram(tmp_path):
    rng = np.random.default_rng(3)
    frequency = np.concatenate([np.zeros(12), rng.uniform(0.0, 0.3, size=88)])
    assert_valid_png(save_activity_histogram(frequency, tmp_path / "hist.png", bins=20))
    assert_valid_png(save_activity_histogram(torch.zeros(5), tmp_path / "all_dead.png"))
    assert_valid_png(save_activity_histogram(frequency, tmp_path / "t.png", dead_threshold=0.01))
    with pytest.raises(DataError):
        save_activity_histogram(np.zeros((3, 3)), tmp_path / "bad.png")
    with pytest.raises(ConfigError):
        save_activity_histogram(frequency, tmp_path / "bad.png", bins=0)


def test_no_pyplot_and_backend_untouched(tmp_path):
    backend = matplotlib.get_backend()
    save_filters(np.eye(4), tmp_path / "eye.png", (2, 2))
    assert matplotlib.get_backend() == backend
    if "matplotlib.pyplot" in sys.modules:  # another test may have imported it; then no figure leaked
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_save_unit_angles(tmp_path):
    from sparseae.viz import save_unit_angles

    angles = np.concatenate([np.full(30, 0.2), np.full(10, 1.0), np.full(5, 0.6)])
    path = save_unit_angles(angles, tmp_path / "angles.png", classifier_norms=np.linspace(0, 5, 45))
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and path.stat().st_size > 5000
    with pytest.raises(DataError, match="classifier_norms has 3 values for 45"):
        save_unit_angles(angles, tmp_path / "x.png", classifier_norms=[1, 2, 3])
    with pytest.raises(DataError, match="NaN"):
        save_unit_angles([0.1, np.nan], tmp_path / "y.png")


def test_embeddings_picture(tmp_path):
    from sparseae.viz import save_embeddings

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=300)
    path = save_embeddings([("deep AE", rng.normal(size=(300, 2))), ("PCA", rng.normal(size=(300, 2)))],
                           labels, tmp_path / "map.png", title="MNIST")
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 5000
    with pytest.raises(DataError, match="expected \\(300, 2\\)"):
        save_embeddings([("bad", np.zeros((300, 3)))], labels, tmp_path / "bad.png")


def test_depth_curve_draws_and_names_bad_input(tmp_path):
    from sparseae.viz import save_depth_curve

    curves = {"ISTA": np.geomspace(1.0, 0.1, 50), "FISTA": np.geomspace(1.0, 0.01, 50)}
    path = save_depth_curve(curves, [1, 2, 3], [0.3, 0.2, 0.1], tmp_path / "sub" / "depth.png", title="t")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(DataError, match="as long as each other"):
        save_depth_curve(curves, [1, 2], [0.3], tmp_path / "bad.png")
    with pytest.raises(DataError, match="solver_curves"):
        save_depth_curve({}, [1], [0.3], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()

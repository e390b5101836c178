"""Tests of sparseae.data: MNIST (npz, IDX, env var, cache, download), digits, natural image patches,
whitening, user arrays and the dataset registry. Nothing here touches the network."""
from __future__ import annotations

import gzip
import hashlib
import io
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from sparseae.data import (
    DATASETS,
    Dataset,
    ZCAWhitening,
    block_average,
    extract_patches,
    load_array,
    load_dataset,
    load_digits_data,
    load_labeled_array,
    load_mnist,
    load_natural_images,
    natural_image_patches,
    read_idx,
    ufldl_normalize_patches,
    whiten_images_1_over_f,
)
from sparseae.data import mnist as mnist_module
from sparseae.errors import ConfigError, DataError, DataNotFoundError, NotFittedError

REAL_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist.npz"
# Published class counts of the MNIST train and test sets (digits 0..9).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def _no_mnist_environment(monkeypatch, tmp_path):
    """Tests see no MNIST from the machine's environment, and any download attempt fails loudly."""
    monkeypatch.delenv("SPARSEAE_MNIST", raising=False)
    monkeypatch.setenv("SPARSEAE_DATA_DIR", str(tmp_path / "empty-default-cache"))

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(mnist_module.urllib.request, "urlopen", refuse)


# ------------------------------------------------------------------------------------------- helpers

def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise ``array`` as IDX: 00 00 <type> <ndim>, big-endian uint32 sizes, big-endian data."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def synthetic_mnist(n_train: int = 12, n_test: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
            "y_train": (np.arange(n_train) % 10).astype(np.uint8),
            "x_test": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
            "y_test": (np.arange(n_test)[::-1] % 10).astype(np.uint8)}


def write_mnist_npz(path: Path, arrays: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def write_mnist_idx(directory: Path, arrays: dict, *, gz: bool, parts=("train", "test")) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "x_train", "y_train"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "x_test", "y_test")}
    for part in parts:
        images_name, labels_name, x_key, y_key = names[part]
        for name, key in ((images_name, x_key), (labels_name, y_key)):
            payload = idx_bytes(arrays[key])
            if gz:
                (directory / (name + ".gz")).write_bytes(gzip.compress(payload))
            else:
                (directory / name).write_bytes(payload)
    return directory


# ---------------------------------------------------------------------------------------- real MNIST

@pytest.fixture(scope="module")
def real_mnist_path() -> Path:
    if not REAL_MNIST.is_file():
        pytest.skip(f"real MNIST not present at {REAL_MNIST.resolve()} (put the Keras mnist.npz there)")
    return REAL_MNIST


def test_real_mnist_train_and_test_splits(real_mnist_path):
    X_train, y_train = load_mnist(real_mnist_path, split="train")
    X_test, y_test = load_mnist(real_mnist_path, split="test")
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    assert X_test.min() == 0.0 and X_test.max() == 1.0
    assert np.bincount(y_train, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == MNIST_TEST_COUNTS
    # The well-known normalisation constants of MNIST train: mean 0.1307, std 0.3081.
    assert abs(float(X_train.mean(dtype=np.float64)) - 0.1307) < 5e-4
    assert abs(float(X_train.std(dtype=np.float64)) - 0.3081) < 5e-4
    # Values are exactly k/255.
    assert np.array_equal(np.round(X_test * 255) / np.float32(255), X_test)


def test_real_mnist_all_is_train_then_test(real_mnist_path):
    X_all, y_all = load_mnist(real_mnist_path, split="all")
    X_test, y_test = load_mnist(real_mnist_path, split="test")
    assert X_all.shape == (70000, 784) and y_all.shape == (70000,)
    expected_counts = [a + b for a, b in zip(MNIST_TRAIN_COUNTS, MNIST_TEST_COUNTS, strict=True)]
    assert np.bincount(y_all, minlength=10).tolist() == expected_counts
    assert np.array_equal(X_all[60000:], X_test) and np.array_equal(y_all[60000:], y_test)


# ------------------------------------------------------------------------------- MNIST file sources

def test_npz_path_gives_pixels_over_255(tmp_path):
    arrays = synthetic_mnist()
    path = write_mnist_npz(tmp_path / "m.npz", arrays)
    X, y = load_mnist(path, split="train")
    assert X.shape == (12, 784) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, arrays["x_train"].reshape(12, 784) / np.float32(255))
    np.testing.assert_array_equal(y, arrays["y_train"])
    X_all, y_all = load_mnist(path, split="all")
    assert X_all.shape == (17, 784)
    np.testing.assert_array_equal(y_all, np.concatenate([arrays["y_train"], arrays["y_test"]]))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_directory_matches_npz(tmp_path, gz):
    arrays = synthetic_mnist(seed=3)
    directory = write_mnist_idx(tmp_path / "idx", arrays, gz=gz)
    for split, x_key, y_key in (("train", "x_train", "y_train"), ("test", "x_test", "y_test")):
        X, y = load_mnist(directory, split=split)
        np.testing.assert_array_equal(X, arrays[x_key].reshape(-1, 784) / np.float32(255))
        np.testing.assert_array_equal(y, arrays[y_key])
    assert load_mnist(directory, split="all")[0].shape == (17, 784)


def test_idx_directory_with_only_train_files(tmp_path):
    directory = write_mnist_idx(tmp_path / "idx", synthetic_mnist(), gz=False, parts=("train",))
    assert load_mnist(directory, split="train")[0].shape == (12, 784)
    with pytest.raises(DataNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(directory, split="test")


@pytest.mark.parametrize("array", [
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    np.array([-5, 7, 300000], dtype=np.int32),
    np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
    np.array([[1.5, -2.25]], dtype=np.float64),
    np.array([-3, 4], dtype=np.int16),
])
def test_read_idx_round_trips_every_type(tmp_path, array):
    (tmp_path / "a-idx").write_bytes(idx_bytes(array))
    (tmp_path / "a-idx.gz").write_bytes(gzip.compress(idx_bytes(array)))
    for name in ("a-idx", "a-idx.gz"):
        result = read_idx(tmp_path / name)
        assert result.shape == array.shape and result.dtype == array.dtype
        assert result.dtype.byteorder in ("=", "|")
        np.testing.assert_array_equal(result, array)


@pytest.mark.parametrize("payload, message", [
    (b"\x00\x00", "truncated IDX file"),
    (b"\x1f\x8b\x08\x03" + bytes(8), "bad magic number 0x1f8b0803"),
    (bytes([0, 0, 0x07, 1]) + bytes(8), "unknown IDX data type code 0x07"),
    (bytes([0, 0, 0x08, 3]) + np.array([2, 28], dtype=">u4").tobytes(), "header needs 16 bytes"),
    (bytes([0, 0, 0x08, 1]) + np.array([10], dtype=">u4").tobytes() + bytes(7), "needs 10 data bytes, found 7"),
    (bytes([0, 0, 0x08, 1]) + np.array([2], dtype=">u4").tobytes() + bytes(5), "3 bytes after"),
    (bytes([0, 0, 0x08, 0]), "0 dimensions"),
])
def test_read_idx_rejects_corrupt_files(tmp_path, payload, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_gzip_and_missing_file(tmp_path):
    compressed = gzip.compress(idx_bytes(np.zeros((50, 28, 28), dtype=np.uint8)))
    (tmp_path / "cut.gz").write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "notgz.gz").write_bytes(b"plain bytes")
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path / "notgz.gz")
    with pytest.raises(DataNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


def test_mnist_from_truncated_idx_directory_is_data_error(tmp_path):
    directory = write_mnist_idx(tmp_path / "idx", synthetic_mnist(), gz=False, parts=("train",))
    images = directory / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated IDX file"):
        load_mnist(directory)


def test_source_order_path_then_env_then_cache(tmp_path, monkeypatch):
    explicit = write_mnist_npz(tmp_path / "explicit.npz", synthetic_mnist(n_train=3))
    from_env = write_mnist_npz(tmp_path / "env" / "mnist.npz", synthetic_mnist(n_train=4))
    cache = tmp_path / "cache"
    write_mnist_npz(cache / "mnist.npz", synthetic_mnist(n_train=5))

    assert load_mnist(cache_dir=cache)[0].shape[0] == 5
    monkeypatch.setenv("SPARSEAE_DATA_DIR", str(cache))
    assert load_mnist()[0].shape[0] == 5
    monkeypatch.setenv("SPARSEAE_MNIST", str(from_env))         # a file
    assert load_mnist(cache_dir=cache)[0].shape[0] == 4
    monkeypatch.setenv("SPARSEAE_MNIST", str(from_env.parent))  # a directory holding mnist.npz
    assert load_mnist(cache_dir=cache)[0].shape[0] == 4
    assert load_mnist(explicit, cache_dir=cache)[0].shape[0] == 3
    # $SPARSEAE_MNIST pointing at nothing falls through to the cache.
    monkeypatch.setenv("SPARSEAE_MNIST", str(tmp_path / "missing"))
    assert load_mnist(cache_dir=cache)[0].shape[0] == 5


def test_cache_dir_with_idx_files(tmp_path):
    cache = write_mnist_idx(tmp_path / "cache", synthetic_mnist(), gz=True)
    assert load_mnist(cache_dir=cache, split="test")[0].shape == (5, 784)


def test_mnist_not_found_message_lists_places_and_fixes(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(cache_dir=cache)  # the autouse fixture makes urlopen fail: nothing is downloaded
    message = str(info.value)
    assert "\n" not in message
    for expected in ("$SPARSEAE_MNIST (not set)", str(cache), "path=", "download=True", "--download"):
        assert expected in message
    assert isinstance(info.value, FileNotFoundError)
    assert not cache.exists()


def test_explicit_path_that_is_missing_does_not_fall_back(tmp_path):
    cache = tmp_path / "cache"
    write_mnist_npz(cache / "mnist.npz", synthetic_mnist())
    with pytest.raises(DataNotFoundError, match="MNIST not found at path=.*missing.npz"):
        load_mnist(tmp_path / "missing.npz", cache_dir=cache)


def test_mnist_bad_arguments_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="split must be one of 'train', 'test', 'all'; got 'valid'"):
        load_mnist(tmp_path, split="valid")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="cannot read as an .npz archive"):
        load_mnist(tmp_path / "garbage.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(DataError, match="missing x_train, y_train; it holds a"):
        load_mnist(tmp_path / "other.npz")
    arrays = synthetic_mnist()
    bad_shape = dict(arrays, x_train=np.zeros((12, 20, 20), dtype=np.uint8))
    with pytest.raises(DataError, match=r"shape \(n, 28, 28\) or \(n, 784\), got \(12, 20, 20\)"):
        load_mnist(write_mnist_npz(tmp_path / "shape.npz", bad_shape))
    bad_dtype = dict(arrays, x_train=arrays["x_train"].astype(np.float32))
    with pytest.raises(DataError, match="must be uint8"):
        load_mnist(write_mnist_npz(tmp_path / "dtype.npz", bad_dtype))
    bad_labels = dict(arrays, y_train=np.full(12, 10, dtype=np.uint8))
    with pytest.raises(DataError, match="labels must be integers 0..9"):
        load_mnist(write_mnist_npz(tmp_path / "labels.npz", bad_labels))
    short_labels = dict(arrays, y_train=np.zeros(11, dtype=np.uint8))
    with pytest.raises(DataError, match=r"12 images but labels of shape \(11,\)"):
        load_mnist(write_mnist_npz(tmp_path / "short.npz", short_labels))


# --------------------------------------------------------------------------------- MNIST download

def _serve(monkeypatch, payload: bytes, calls: list):
    def fake_urlopen(url, timeout=None):
        calls.append((url, timeout))
        return io.BytesIO(payload)

    monkeypatch.setattr(mnist_module.urllib.request, "urlopen", fake_urlopen)


def test_download_with_matching_checksum(tmp_path, monkeypatch):
    arrays = synthetic_mnist(n_train=7)
    payload = write_mnist_npz(tmp_path / "served.npz", arrays).read_bytes()
    monkeypatch.setattr(mnist_module, "MNIST_SHA256", hashlib.sha256(payload).hexdigest())
    calls = []
    _serve(monkeypatch, payload, calls)
    cache = tmp_path / "cache" / "nested"
    X, y = load_mnist(cache_dir=cache, download=True)
    assert calls == [(mnist_module.MNIST_URL, 60)]
    assert X.shape == (7, 784)
    np.testing.assert_array_equal(y, arrays["y_train"])
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz"]  # no temp file left
    assert (cache / "mnist.npz").read_bytes() == payload
    # Once cached, no second download.
    assert load_mnist(cache_dir=cache, download=True)[0].shape == (7, 784)
    assert len(calls) == 1


def test_download_with_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    payload = write_mnist_npz(tmp_path / "served.npz", synthetic_mnist()).read_bytes()
    calls = []
    _serve(monkeypatch, payload, calls)  # MNIST_SHA256 stays the Keras hash, so it mismatches
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=f"has SHA-256 {hashlib.sha256(payload).hexdigest()}, "
                                        f"expected {mnist_module.MNIST_SHA256}"):
        load_mnist(cache_dir=cache, download=True)
    assert len(calls) == 1
    assert list(cache.iterdir()) == []


def test_download_network_error_is_data_error(tmp_path, monkeypatch):
    def unreachable(url, timeout=None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(mnist_module.urllib.request, "urlopen", unreachable)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="downloading MNIST from .* failed: .*no route to host"):
        load_mnist(cache_dir=cache, download=True)
    assert list(cache.iterdir()) == []


# -------------------------------------------------------------------------------------------- digits

def test_digits():
    X, y = load_digits_data()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # pixels are k/16
    np.testing.assert_allclose(X * 16, np.round(X * 16), atol=1e-5)


# ------------------------------------------------------------------------------------------ whitening

def _correlated_data(n=4000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) * np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    return rng.normal(size=(n, d)) @ mixing.T + np.arange(d)


def test_zca_whitens_to_identity_covariance():
    X = _correlated_data()
    zca = ZCAWhitening(epsilon=1e-10).fit(X)
    Z = zca.transform(X)
    assert Z.dtype == np.float64
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(np.cov(Z, rowvar=False, bias=True), np.eye(6), atol=1e-6)
    np.testing.assert_array_equal(zca.components_, zca.components_.T)
    np.testing.assert_allclose(zca.components_ @ zca.inverse_components_, np.eye(6), atol=1e-8)
    np.testing.assert_allclose(zca.inverse_transform(Z), X, atol=1e-8)
    np.testing.assert_allclose(zca.mean_, X.mean(axis=0))
    assert np.all(np.diff(zca.explained_variance_) <= 0)
    np.testing.assert_allclose(zca.explained_variance_.sum(), np.trace(np.cov(X, rowvar=False, bias=True)))


def test_zca_epsilon_damps_small_variances_and_keeps_float32():
    X = _correlated_data().astype(np.float32)
    Z = ZCAWhitening(epsilon=1.0).fit_transform(X)
    assert Z.dtype == np.float32
    variances = np.linalg.eigvalsh(np.cov(Z.astype(np.float64), rowvar=False, bias=True))
    # Each whitened variance is λ / (λ + ε) < 1, and tiny for the smallest λ.
    assert variances.max() < 0.99 and variances.min() < 0.2
    zca = ZCAWhitening(epsilon=1.0).fit(X)
    np.testing.assert_allclose(zca.inverse_transform(zca.transform(X)), X, atol=1e-4)
    assert zca.transform(torch.from_numpy(X)).dtype == np.float32


def test_zca_errors():
    X = _correlated_data()
    with pytest.raises(NotFittedError, match="call fit"):
        ZCAWhitening().transform(X)
    with pytest.raises(ConfigError, match="epsilon must be >= 0.0"):
        ZCAWhitening(epsilon=-1).fit(X)
    with pytest.raises(DataError, match="has 5 features, but the model expects 6"):
        ZCAWhitening().fit(X).transform(X[:, :5])
    with pytest.raises(DataError, match="singular"):
        ZCAWhitening(epsilon=0).fit(np.column_stack([X, X[:, 0]]))
    with pytest.raises(DataError, match="at least 2 samples"):
        ZCAWhitening().fit(X[:1])
    with pytest.raises(DataError, match="NaN"):
        ZCAWhitening().fit(np.where(np.eye(6, dtype=bool), np.nan, 1.0))
    assert ZCAWhitening(epsilon=0.5).get_params() == {"epsilon": 0.5, "n_components": None, "rotate_back": True}


def _power_spectrum_slope(image: np.ndarray, low: float = 0.02, high: float = 0.15) -> float:
    """Slope of log radial power vs log frequency (cycles/pixel) over [low, high]; Hann-windowed."""
    height, width = image.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.fft2((image - image.mean()) * window)) ** 2
    radius = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :]).ravel()
    edges = np.geomspace(low, high, 12)
    bins = np.digitize(radius, edges)
    centres = [radius[bins == b].mean() for b in range(1, len(edges))]
    powers = [power.ravel()[bins == b].mean() for b in range(1, len(edges))]
    return float(np.polyfit(np.log(centres), np.log(powers), 1)[0])


def test_one_over_f_whitening_flattens_the_spectrum():
    images = load_natural_images()
    assert [image.shape for image in images] == [(427, 640), (427, 640)]
    assert all(0 <= image.min() and image.max() <= 1 for image in images)
    whitened = whiten_images_1_over_f(images)
    assert isinstance(whitened, list) and whitened[0].shape == (427, 640)
    for raw, white in zip(images, whitened, strict=True):
        raw_slope, white_slope = _power_spectrum_slope(raw), _power_spectrum_slope(white)
        assert raw_slope < -1.8            # natural images: power ~ 1/f², measured about -2.05
        assert abs(white_slope) < 0.35     # whitened: nearly flat, measured about -0.2..-0.24
        assert abs(white.mean()) < 1e-10 and abs(white.std() - 1) < 1e-10
    # A stack and a single image give the same result as the list.
    stack = whiten_images_1_over_f(np.stack(images))
    np.testing.assert_allclose(stack[1], whitened[1], atol=1e-10)
    np.testing.assert_allclose(whiten_images_1_over_f(images[0]), whitened[0], atol=1e-10)


def test_one_over_f_whitening_errors():
    with pytest.raises(DataError, match="constant image"):
        whiten_images_1_over_f(np.ones((16, 16)))
    with pytest.raises(DataError, match=r"must be \(H, W\) or \(n, H, W\)"):
        whiten_images_1_over_f(np.ones(16))
    with pytest.raises(DataError, match="NaN"):
        whiten_images_1_over_f(np.full((8, 8), np.nan))
    with pytest.raises(ConfigError, match="cutoff must be > 0.0"):
        whiten_images_1_over_f(np.eye(8), cutoff=0)


# ------------------------------------------------------------------------------------------- patches

def test_extract_patches_positions_are_exact():
    rows, cols = np.mgrid[0:30, 0:50]
    coded = [rows * 1000 + cols, 10**6 + rows[:20, :25] * 1000 + cols[:20, :25]]  # position in the value
    patches = extract_patches(coded, 500, 5, np.random.default_rng(1)).reshape(500, 5, 5)
    top_left = patches[:, 0, 0]
    image = top_left // 10**6
    top, left = (top_left % 10**6) // 1000, top_left % 1000
    expected = image[:, None, None] * 10**6 + (top[:, None, None] + np.arange(5)[None, :, None]) * 1000 \
        + left[:, None, None] + np.arange(5)[None, None, :]
    np.testing.assert_array_equal(patches, expected)
    assert set(image.tolist()) == {0, 1}
    assert top[image == 1].max() <= 15 and left[image == 1].max() <= 20  # inside the smaller image
    assert top[image == 0].max() == 25 and left[image == 0].max() == 45  # corners reach the far edge


def test_natural_image_patches_ufldl_normalized():
    X = natural_image_patches(3000, 8)
    assert X.shape == (3000, 64) and X.dtype == np.float32
    assert X.min() >= np.float32(0.1) and X.max() <= np.float32(0.9)
    centred = (X.astype(np.float64) - 0.5) / 0.4   # undo the rescale to [-1, 1]
    assert np.abs(centred.mean(axis=1)).mean() < 0.02   # each patch was mean-subtracted (clip shifts it a little)
    assert 0.001 < np.mean(np.abs(centred) >= 1 - 1e-6) < 0.05  # a few values were clipped at ±3σ
    np.testing.assert_array_equal(X, natural_image_patches(3000, 8, random_state=0))
    assert not np.array_equal(X, natural_image_patches(3000, 8, random_state=1))


def _mean_abs_pixel_correlation(patches: np.ndarray) -> float:
    correlation = np.corrcoef(patches, rowvar=False)
    return float(np.abs(correlation[~np.eye(len(correlation), dtype=bool)]).mean())


def test_natural_image_patches_variants():
    raw = natural_image_patches(2000, 6, whitening="none", ufldl_normalize=False, random_state=2)
    assert raw.shape == (2000, 36) and 0 <= raw.min() and raw.max() <= 1
    white = natural_image_patches(2000, 6, whitening="1/f", ufldl_normalize=False, random_state=2)
    assert 0.7 < white.std() < 1.3  # from unit-variance whitened images
    # Whitening decorrelates pixels: mean |correlation| between the 36 pixels of a patch drops from
    # about 0.93 (raw) to about 0.34 (1/f with f0 = 0.4 Nyquist) and 0.07 (ZCA).
    assert _mean_abs_pixel_correlation(raw) > 0.9
    assert _mean_abs_pixel_correlation(white) < 0.45
    zca = natural_image_patches(2000, 6, whitening="zca", ufldl_normalize=False, random_state=2)
    assert _mean_abs_pixel_correlation(zca) < 0.15
    zca_normalized = natural_image_patches(500, 6, whitening="zca", random_state=2)
    assert zca_normalized.min() >= np.float32(0.1) and zca_normalized.max() <= np.float32(0.9)


def test_ufldl_normalize_matches_the_matlab_formula():
    patches = np.random.default_rng(0).normal(size=(200, 16)) * 2 + 5
    centred = patches - patches.mean(axis=1, keepdims=True)
    limit = 3 * centred.std()
    expected = (np.clip(centred, -limit, limit) / limit + 1) * 0.4 + 0.1
    np.testing.assert_allclose(ufldl_normalize_patches(patches), expected, rtol=1e-6)
    np.testing.assert_array_equal(ufldl_normalize_patches(np.ones((3, 4))), np.full((3, 4), 0.5, np.float32))


def test_downsampled_patches_come_from_block_averaged_images():
    image = np.arange(35, dtype=np.float64).reshape(5, 7)
    reduced = block_average(image, 2)  # the last row and column fill no block
    np.testing.assert_array_equal(reduced, [[4.0, 6.0, 8.0], [18.0, 20.0, 22.0]])
    assert block_average(image, 1) is image
    photo = np.random.default_rng(0).random((60, 90))
    for whitening in ("none", "1/f"):
        ours = natural_image_patches(300, 6, images=[photo], whitening=whitening, ufldl_normalize=False,
                                     downsample=3, random_state=4)
        by_hand = natural_image_patches(300, 6, images=[block_average(photo, 3)], whitening=whitening,
                                        ufldl_normalize=False, random_state=4)
        np.testing.assert_array_equal(ours, by_hand)
    sample = natural_image_patches(200, 8, downsample=3)  # the photos, 142 x 213 after reduction
    assert sample.shape == (200, 64) and sample.min() >= np.float32(0.1) and sample.max() <= np.float32(0.9)
    with pytest.raises(ConfigError, match="downsample must be >= 1"):
        natural_image_patches(10, downsample=0)
    with pytest.raises(DataError, match="cannot be reduced 100x"):
        block_average(photo, 100)
    with pytest.raises(ConfigError, match="patch_size must be <= 142"):
        natural_image_patches(10, 143, downsample=3)


def test_natural_image_patches_errors():
    with pytest.raises(ConfigError, match="patch_size must be <= 427"):
        natural_image_patches(10, 428)
    with pytest.raises(ConfigError, match="n_patches must be >= 1"):
        natural_image_patches(0)
    with pytest.raises(ConfigError, match="whitening must be one of '1/f', 'zca', 'none'; got 'pca'"):
        natural_image_patches(10, whitening="pca")
    with pytest.raises(ConfigError, match="patch_size must be an integer"):
        natural_image_patches(10, 7.5)


# --------------------------------------------------------------------------------------- user arrays

def test_load_npy_is_memory_mapped(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "a.npy", array)
    mapped = load_array(tmp_path / "a.npy")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, array)
    loaded = load_array(str(tmp_path / "a.npy"), mmap=False)
    assert not isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, array)
    # The "array" dataset keeps a float32 memmap as it is (no copy into memory).
    assert isinstance(load_dataset("array", path=tmp_path / "a.npy").X, np.memmap)


def test_load_npz_members(tmp_path):
    np.savez(tmp_path / "one.npz", features=np.ones((2, 3)))
    np.testing.assert_array_equal(load_array(tmp_path / "one.npz"), np.ones((2, 3)))
    np.savez(tmp_path / "two.npz", X=np.ones((2, 3)), y=np.array([0, 1]))
    np.testing.assert_array_equal(load_array(tmp_path / "two.npz", key="y"), [0, 1])
    with pytest.raises(DataError, match=r"holds 2 arrays \(X, y\); pass key= to choose one"):
        load_array(tmp_path / "two.npz")
    with pytest.raises(DataError, match="no array named 'Z'; it holds X, y"):
        load_array(tmp_path / "two.npz", key="Z")
    X, y = load_labeled_array(tmp_path / "two.npz")
    assert X.shape == (2, 3) and y.tolist() == [0, 1]
    np.savez(tmp_path / "mismatch.npz", X=np.ones((2, 3)), y=np.array([0, 1, 2]))
    with pytest.raises(DataError, match="need one label per row"):
        load_labeled_array(tmp_path / "mismatch.npz")


def test_load_csv(tmp_path):
    (tmp_path / "header.csv").write_text("a,b,c\n1,2,3\n4.5,-5,6e1\n")
    np.testing.assert_array_equal(load_array(tmp_path / "header.csv"), [[1, 2, 3], [4.5, -5, 60]])
    (tmp_path / "plain.csv").write_text("1,2\n3,4\n")
    np.testing.assert_array_equal(load_array(tmp_path / "plain.csv"), [[1, 2], [3, 4]])
    (tmp_path / "column.csv").write_text("7\n8\n9\n")
    assert load_array(tmp_path / "column.csv").shape == (3, 1)
    (tmp_path / "text.csv").write_text("x,y\n1,2\n3,abc\n")
    with pytest.raises(DataError, match=r"text\.csv: not a numeric CSV .*abc"):
        load_array(tmp_path / "text.csv")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(DataError, match="ragged.csv"):
        load_array(tmp_path / "ragged.csv")
    (tmp_path / "only_header.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        load_array(tmp_path / "only_header.csv")
    (tmp_path / "nan.csv").write_text("1,2\nnan,4\n")
    assert np.isnan(load_array(tmp_path / "nan.csv")[1, 0])  # read as stored...
    with pytest.raises(DataError, match=r"nan\.csv contains NaN or inf \(first at row 1\)"):
        load_dataset("array", path=tmp_path / "nan.csv")  # ...and refused when used as data


def test_load_array_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="data file not found: .*absent.npy"):
        load_array(tmp_path / "absent.npy")
    (tmp_path / "data.txt").write_text("1 2\n")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'; use one of \.npy, \.npz, \.csv"):
        load_array(tmp_path / "data.txt")
    with pytest.raises(DataError, match="is not a file"):
        load_array(tmp_path)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="objects.npy: cannot read as a .npy array"):
        load_array(tmp_path / "objects.npy")
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="broken.npy"):
        load_array(tmp_path / "broken.npy")
    (tmp_path / "broken.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="broken.npz: cannot read as an .npz archive"):
        load_array(tmp_path / "broken.npz")
    np.save(tmp_path / "a.npy", np.ones((2, 2)))
    with pytest.raises(ConfigError, match="key='X' only applies to .npz files"):
        load_array(tmp_path / "a.npy", key="X")


# ------------------------------------------------------------------------------------------ registry

def test_registry_names_and_builders(tmp_path):
    assert DATASETS.names() == ["array", "digits", "mnist", "patches", "shards", "spiral", "synthetic",
                               "whitened_crops", "whitened_patches"]
    digits = load_dataset("digits")
    assert isinstance(digits, Dataset) and digits.image_shape == (8, 8) and digits.name == "digits"
    assert (digits.n_samples, digits.n_features) == (1797, 64)
    patches = load_dataset("patches", n_patches=200, patch_size=6, whitening="none", random_state=4)
    assert patches.X.shape == (200, 36) and patches.y is None and patches.image_shape == (6, 6)
    mnist = load_dataset("mnist", path=write_mnist_npz(tmp_path / "m.npz", synthetic_mnist()), split="test")
    assert mnist.X.shape == (5, 784) and mnist.image_shape == (28, 28) and mnist.y.tolist() == [4, 3, 2, 1, 0]


def test_array_dataset_with_labels(tmp_path):
    np.savez(tmp_path / "lab.npz", features=np.ones((4, 3), dtype=np.float64), labels=np.arange(4))
    dataset = load_dataset("array", path=tmp_path / "lab.npz", labels_key="labels")
    assert dataset.X.dtype == np.float32 and dataset.X.shape == (4, 3) and dataset.image_shape is None
    assert dataset.y.tolist() == [0, 1, 2, 3] and dataset.name == "lab"
    np.savez(tmp_path / "three.npz", a=np.ones((4, 3)), b=np.ones((4, 3)), labels=np.arange(4))
    with pytest.raises(DataError, match="cannot tell which array holds the features"):
        load_dataset("array", path=tmp_path / "three.npz", labels_key="labels")
    assert load_dataset("array", path=tmp_path / "three.npz", key="b", labels_key="labels").X.shape == (4, 3)
    np.save(tmp_path / "vector.npy", np.ones(5, dtype=np.float32))
    with pytest.raises(DataError, match="must be 2-D"):
        load_dataset("array", path=tmp_path / "vector.npy")


def test_load_dataset_errors():
    with pytest.raises(ConfigError, match="dataset 'digits' got unknown option 'n_patches'; "
                                          "its options are: classes"):
        load_dataset("digits", n_patches=3)
    with pytest.raises(ConfigError, match="dataset 'mnist' got unknown option 'spilt'; "
                                          "its options are: path, split, download, cache_dir, classes"):
        load_dataset("mnist", spilt="test")
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'; known: array, digits, mnist, patches"):
        load_dataset("cifar")
    with pytest.raises(ConfigError, match="dataset 'array' needs option 'path'"):
        load_dataset("array")
    with pytest.raises(DataError, match="does not match 10 features"):
        Dataset(np.zeros((2, 10)), None, (3, 3), "bad")
    with pytest.raises(ConfigError, match="classes must be a non-empty list"):
        load_dataset("digits", classes=[])


def test_classes_option_keeps_only_those_labels():
    subset = load_dataset("digits", classes=[3, 7])
    assert set(np.unique(subset.y)) == {3, 7} and subset.n_samples == 183 + 179
    assert subset.image_shape == (8, 8)
    with pytest.raises(DataError, match="2 samples but 3 labels"):
        Dataset(np.zeros((2, 4)), np.zeros(3), None, "bad")

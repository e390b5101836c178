"""MNIST: the IDX file format, the Keras ``mnist.npz``, where to find them, and the checked download.

``load_mnist`` looks in a path, then ``$SPARSEAE_MNIST``, then the cache folder
(``$SPARSEAE_DATA_DIR``, default ``~/.cache/sparseae``); it downloads (with a SHA-256 check) only
when asked. Images come back as float32 in [0, 1], ``(n_samples, 784)``, labels as int64.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, DataNotFoundError
from ..files import atomic_file
from ..validation import check_bool, check_choice, check_path

logger = logging.getLogger(__name__)

__all__ = ["load_mnist", "download_mnist", "read_idx", "default_cache_dir",
           "MNIST_URL", "MNIST_SHA256", "MNIST_ENV_VAR", "DATA_DIR_ENV_VAR"]

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"  # the Keras file
MNIST_ENV_VAR = "SPARSEAE_MNIST"
DATA_DIR_ENV_VAR = "SPARSEAE_DATA_DIR"
MNIST_SPLITS = ("train", "test", "all")
_MNIST_NPZ_NAME = "mnist.npz"
_MNIST_IDX_NAMES = {  # split -> (images, labels) base names; each may end in .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
_DOWNLOAD_TIMEOUT_S = 60
_DOWNLOAD_CHUNK_BYTES = 1 << 20

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# ----------------------------------------------------------------------------------------------- IDX

def _parse_idx(data: bytes, source: str) -> np.ndarray:
    """Parse IDX bytes: magic ``00 00 <type> <ndim>``, then ndim big-endian uint32 sizes, then data."""
    if len(data) < 4:
        raise DataError(f"{source}: truncated IDX file ({len(data)} bytes, the header alone needs 4)")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{source}: not an IDX file (bad magic number 0x{data[:4].hex()}; "
                        "expected 0x0000 then a type code and a dimension count)")
    type_code, n_dims = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise DataError(f"{source}: unknown IDX data type code 0x{type_code:02x} "
                        f"(known: {', '.join(f'0x{code:02x}' for code in _IDX_DTYPES)})")
    if n_dims == 0:
        raise DataError(f"{source}: IDX file declares 0 dimensions")
    header_bytes = 4 + 4 * n_dims
    if len(data) < header_bytes:
        raise DataError(f"{source}: truncated IDX file (header needs {header_bytes} bytes, file has {len(data)})")
    shape = tuple(int(size) for size in np.frombuffer(data, dtype=">u4", count=n_dims, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    available = len(data) - header_bytes
    if available < expected:
        raise DataError(f"{source}: truncated IDX file (shape {shape} needs {expected} data bytes, "
                        f"found {available})")
    if available > expected:
        raise DataError(f"{source}: corrupt IDX file ({available - expected} bytes after the "
                        f"{expected} that shape {shape} needs)")
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_bytes)
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` compressed or not) into an array of the shape its header declares.

    Raises :class:`DataNotFoundError` for a missing file and :class:`DataError` for a corrupt one.
    """
    file = Path(path)
    if not file.is_file():
        raise DataNotFoundError(f"IDX file not found: {file}")
    try:
        if file.suffix == ".gz":
            with gzip.open(file, "rb") as handle:
                data = handle.read()
        else:
            data = file.read_bytes()
    except (OSError, EOFError) as exc:  # BadGzipFile is an OSError; a cut gzip stream is an EOFError
        raise DataError(f"{file}: cannot read IDX file: {exc}") from None
    return _parse_idx(data, str(file))


# --------------------------------------------------------------------------------------------- MNIST

def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$SPARSEAE_DATA_DIR``, else ``~/.cache/sparseae``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    return Path.home() / ".cache" / "sparseae"


def _idx_file_in(directory: Path, base_name: str) -> Path | None:
    """``directory/base_name`` or its ``.gz``; also accepts the ``train-images.idx3-ubyte`` spelling."""
    dotted = base_name.replace("-idx", ".idx")
    for name in (base_name, base_name + ".gz", dotted, dotted + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _mnist_source_at(location: Path, split: str) -> tuple[str, Any] | None:
    """What MNIST data ``location`` holds for ``split``: ``("npz", file)``, ``("idx", {part: (images,
    labels)})``, or None. A file is taken as a Keras npz; a directory may hold ``mnist.npz`` or IDX files."""
    if location.is_file():
        return "npz", location
    if not location.is_dir():
        return None
    if (location / _MNIST_NPZ_NAME).is_file():
        return "npz", location / _MNIST_NPZ_NAME
    parts = ("train", "test") if split == "all" else (split,)
    files = {}
    for part in parts:
        images, labels = (_idx_file_in(location, name) for name in _MNIST_IDX_NAMES[part])
        if images is None or labels is None:
            return None
        files[part] = (images, labels)
    return "idx", files


def _read_mnist_npz(file: Path, parts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        with np.load(file, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(f"{file}: expected a Keras-layout mnist.npz archive, found a single array")
            missing = [key for part in parts for key in _MNIST_NPZ_KEYS[part] if key not in archive.files]
            if missing:
                raise DataError(f"{file}: not a Keras-layout mnist.npz (missing {', '.join(missing)}; "
                                f"it holds {', '.join(archive.files) or 'nothing'})")
            return [(archive[_MNIST_NPZ_KEYS[part][0]], archive[_MNIST_NPZ_KEYS[part][1]]) for part in parts]
    except MemoryError:  # a header announcing more than the archive holds (or than memory)
        raise DataError(f"{file}: an array of it is corrupt or too large to load into memory") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{file}: cannot read as an .npz archive: {exc}") from None


def _mnist_to_float(pairs: Sequence[tuple[np.ndarray, np.ndarray]], source: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Check uint8 images ``(n, 28, 28)`` or ``(n, 784)`` and labels 0..9; return X/255 float32, y int64."""
    for images, labels in pairs:
        if images.dtype != np.uint8:
            raise DataError(f"{source}: MNIST images must be uint8 pixels 0..255, got dtype {images.dtype}")
        if images.ndim not in (2, 3) or images.shape[0] == 0 or int(np.prod(images.shape[1:])) != 784:
            raise DataError(f"{source}: MNIST images must have shape (n, 28, 28) or (n, 784), got {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(f"{source}: {images.shape[0]} images but labels of shape {labels.shape}")
        if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9:
            raise DataError(f"{source}: MNIST labels must be integers 0..9")
    n_total = sum(images.shape[0] for images, _ in pairs)
    X = np.empty((n_total, 784), dtype=np.float32)
    start = 0
    for images, _ in pairs:
        stop = start + images.shape[0]
        np.divide(images.reshape(images.shape[0], 784), np.float32(255), out=X[start:stop])
        start = stop
    y = np.concatenate([labels.astype(np.int64) for _, labels in pairs])
    return X, y


def _read_mnist_source(source: tuple[str, Any], split: str) -> tuple[np.ndarray, np.ndarray]:
    kind, where = source
    parts = ("train", "test") if split == "all" else (split,)
    if kind == "npz":
        pairs = _read_mnist_npz(where, parts)
        origin = str(where)
    else:
        pairs = [(read_idx(where[part][0]), read_idx(where[part][1])) for part in parts]
        origin = str(where[parts[0]][0].parent)
    X, y = _mnist_to_float(pairs, origin)
    logger.info("loaded MNIST %s split from %s: %d samples", split, origin, X.shape[0])
    return X, y


def load_mnist(path: str | os.PathLike | None = None, *, split: str = "train", download: bool = False,
               cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits: ``X`` float32 ``(n, 784)`` in [0, 1] (pixels / 255), ``y`` int64 ``(n,)`` in 0..9.

    ``split``: ``"train"`` (60,000), ``"test"`` (10,000) or ``"all"`` (train then test, 70,000).
    Looked for, in order: ``path`` (a Keras-layout ``mnist.npz`` with x_train/y_train/x_test/y_test, or
    a directory with ``mnist.npz`` or the IDX files ``train-images-idx3-ubyte``... each optionally
    ``.gz``); ``$SPARSEAE_MNIST`` (file or directory); the cache dir (``cache_dir``, else
    ``$SPARSEAE_DATA_DIR``, else ``~/.cache/sparseae``). An explicit ``path`` that holds no MNIST is an
    error, not a fall-through. Only with ``download=True`` is the Keras file fetched into the cache dir.
    """
    check_choice(split, "split", MNIST_SPLITS)
    check_bool(download, "download")
    for option, value in (("path", path), ("cache_dir", cache_dir)):
        if value is not None:
            check_path(value, option)
    if path is not None:
        location = Path(path).expanduser()
        source = _mnist_source_at(location, split)
        if source is None:
            wanted = " and ".join(
                ", ".join(_MNIST_IDX_NAMES[part]) for part in (("train", "test") if split == "all" else (split,)))
            raise DataNotFoundError(
                f"MNIST not found at path={str(location)!r}: expected a Keras-layout mnist.npz file or a "
                f"directory holding mnist.npz or the IDX files {wanted} (optionally .gz)")
        return _read_mnist_source(source, split)

    looked = []
    from_env = os.environ.get(MNIST_ENV_VAR)
    if from_env:
        source = _mnist_source_at(Path(from_env).expanduser(), split)
        if source is not None:
            return _read_mnist_source(source, split)
        logger.warning("$%s=%s holds no MNIST data for split %r; trying the cache dir",
                       MNIST_ENV_VAR, from_env, split)
        looked.append(f"${MNIST_ENV_VAR}={from_env} (no usable mnist.npz or IDX files)")
    else:
        looked.append(f"${MNIST_ENV_VAR} (not set)")

    cache = default_cache_dir(cache_dir)
    source = _mnist_source_at(cache, split)
    if source is not None:
        return _read_mnist_source(source, split)
    looked.append(f"cache dir {cache} (no {_MNIST_NPZ_NAME} or IDX files)")

    if not download:
        raise DataNotFoundError(
            f"MNIST not found; looked in: {'; '.join(looked)}. To fix: pass path='.../mnist.npz' (or a "
            f"directory of IDX files), set ${MNIST_ENV_VAR} to one, or pass download=True "
            f"(CLI: --download) to fetch it into {cache}")
    return _read_mnist_source(("npz", download_mnist(cache)), split)


def download_mnist(cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch the Keras ``mnist.npz`` (``MNIST_URL``) into the cache dir; returns its path.

    The bytes go to a temporary file in the cache dir, which is renamed to ``mnist.npz`` (atomically)
    only once its SHA-256 equals ``MNIST_SHA256``; on a mismatch or a network error the temporary file
    is removed and :class:`DataError` raised.
    """
    directory = default_cache_dir(cache_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write to the cache dir {directory}: {exc}") from None
    target = directory / _MNIST_NPZ_NAME
    expected = MNIST_SHA256
    logger.info("downloading MNIST from %s to %s", MNIST_URL, target)
    try:
        digest = hashlib.sha256()
        n_bytes = 0
        with atomic_file(target, "wb", wrap=False) as out, \
                urllib.request.urlopen(MNIST_URL, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(_DOWNLOAD_CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
                n_bytes += len(chunk)
            actual = digest.hexdigest()
            if actual != expected:  # raised inside: the temporary file is removed, not renamed
                raise DataError(f"downloaded MNIST ({n_bytes} bytes from {MNIST_URL}) has SHA-256 {actual}, "
                                f"expected {expected}; the file was discarded")
    except (OSError, http.client.HTTPException, urllib.error.URLError) as exc:
        raise DataError(f"downloading MNIST from {MNIST_URL} failed: {exc}") from None
    logger.info("saved MNIST (%d bytes, SHA-256 verified) to %s", n_bytes, target)
    return target

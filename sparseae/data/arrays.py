"""User arrays: ``.npy``, ``.npz`` and ``.csv`` files, checked before they are trusted (a missing file
is a :class:`~sparseae.errors.DataNotFoundError`, a bad one a :class:`~sparseae.errors.DataError`
naming it).
"""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, DataNotFoundError
from ..validation import check_path, numpy_file_error

__all__ = ["load_array", "load_labeled_array", "existing_file", "open_npz"]


_ARRAY_SUFFIXES = (".npy", ".npz", ".csv")


def existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`~pathlib.Path` (``~`` expanded) when it names a file, else
    :class:`DataNotFoundError` (missing) or :class:`DataError` (a directory)."""
    check_path(path, "path")
    file = Path(path).expanduser()
    if not file.exists():
        raise DataNotFoundError(f"data file not found: {file}")
    if not file.is_file():
        raise DataError(f"{file} is not a file (a directory?); expected a {', '.join(_ARRAY_SUFFIXES)} file")
    return file


def open_npz(file: Path) -> Any:
    """The ``.npz`` archive ``file`` opened without pickles (use it as a context manager), or
    :class:`DataError` when it is not one."""
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{file}: cannot read as an .npz archive: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{file}: has the .npz extension but holds a single .npy array")
    return archive


def _check_npy_size(handle: Any, size: int, where: str) -> None:
    """Raise :class:`DataError` when the ``.npy`` header at the start of ``handle`` announces more
    data than the ``size`` bytes hold (a truncated or forged file), before NumPy allocates for it;
    a header NumPy cannot parse is left for ``np.load`` to report."""
    try:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(handle)
        start = handle.tell()
    except Exception:  # noqa: BLE001 — np.load says what is wrong with the header
        return
    if dtype.hasobject:
        return  # refused without unpickling by np.load(allow_pickle=False)
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if needed > size - start:
        raise DataError(f"{where} is truncated or corrupt: its header announces an array of shape "
                        f"{tuple(shape)} ({needed:,} bytes of data), but it holds {max(size - start, 0):,}")


def _npz_member(archive: Any, key: str, file: Path) -> np.ndarray:
    if key not in archive.files:
        raise DataError(f"{file}: no array named {key!r}; it holds {', '.join(archive.files) or 'nothing'}")
    try:
        member = f"{key}.npy" if f"{key}.npy" in archive.zip.namelist() else key
        with archive.zip.open(member) as handle:
            _check_npy_size(handle, archive.zip.getinfo(member).file_size, f"{file}: array {key!r}")
        return archive[key]
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{file}: array {key!r} is too large to load into memory") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise numpy_file_error(exc, f"{file}: cannot read array {key!r}") from None


def _is_header(line: str) -> bool:
    """True when no cell of the comma-separated ``line`` reads as a number."""
    for cell in line.split(","):
        try:
            float(cell)
            return False
        except ValueError:
            continue
    return True


def _load_csv(file: Path) -> np.ndarray:
    try:
        with open(file, encoding="utf-8-sig") as handle:
            first_line = handle.readline()
        skip = 1 if first_line.strip() and _is_header(first_line) else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data" → checked below
            data = np.loadtxt(file, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64,
                              encoding="utf-8-sig")
    except ValueError as exc:  # includes UnicodeDecodeError
        raise DataError(f"{file}: not a numeric CSV ({exc})") from None
    if data.size == 0:
        raise DataError(f"{file}: CSV has no data rows")
    return data


def load_array(path: str | os.PathLike, *, key: str | None = None, mmap: bool = True) -> np.ndarray:
    """Load a user array from ``.npy``, ``.npz`` or ``.csv``, as stored (no dtype or shape change).

    * ``.npy``: memory-mapped read-only (``np.memmap``) when ``mmap``, so it need not fit in memory.
    * ``.npz``: the array named ``key``, or the only array (read into memory: npz members are zipped).
    * ``.csv``: comma-separated numbers as float64 ``(rows, columns)``; a first line with no numeric
      cell is taken as a header and skipped.

    Raises :class:`DataNotFoundError` for a missing file, :class:`DataError` for an unknown extension,
    unreadable content, or an ambiguous npz; :class:`ConfigError` for ``key`` on a non-npz file.
    """
    file = existing_file(path)
    suffix = file.suffix.lower()
    if suffix not in _ARRAY_SUFFIXES:
        raise DataError(f"{file}: unsupported file type {suffix or '(no extension)'!r}; "
                        f"use one of {', '.join(_ARRAY_SUFFIXES)}")
    if key is not None and suffix != ".npz":
        raise ConfigError(f"key={key!r} only applies to .npz files, not {file.name}")
    if suffix == ".npy":
        try:
            if not mmap:  # a memory map checks the size itself; a read would allocate first
                with open(file, "rb") as handle:
                    _check_npy_size(handle, os.fstat(handle.fileno()).st_size, str(file))
            return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except DataError:
            raise
        except MemoryError:
            raise DataError(f"{file} is too large to load into memory") from None
        except (OSError, ValueError, EOFError) as exc:
            raise numpy_file_error(exc, f"{file}: cannot read as a .npy array") from None
    if suffix == ".csv":
        return _load_csv(file)
    with open_npz(file) as archive:
        if key is None:
            if len(archive.files) != 1:
                raise DataError(f"{file}: holds {len(archive.files)} arrays "
                                f"({', '.join(archive.files) or 'none'}); pass key= to choose one")
            key = archive.files[0]
        return _npz_member(archive, key, file)


def load_labeled_array(path: str | os.PathLike, *, x_key: str = "X", y_key: str = "y"
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels from one ``.npz``: ``(archive[x_key], archive[y_key])``; ``y`` must be 1-D
    with one label per row of ``X``."""
    file = existing_file(path)
    if file.suffix.lower() != ".npz":
        raise DataError(f"{file}: labelled arrays are read from .npz files only")
    with open_npz(file) as archive:
        X = _npz_member(archive, x_key, file)
        y = _npz_member(archive, y_key, file)
    if y.ndim != 1 or X.ndim == 0 or y.shape[0] != X.shape[0]:
        raise DataError(f"{file}: labels {y_key!r} of shape {y.shape} do not match features {x_key!r} "
                        f"of shape {X.shape} (need one label per row)")
    return X, y

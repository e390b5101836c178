"""Atomic writes, written once: a file or a folder is built beside its target and renamed onto it,
so a crash leaves the old one or the new one, never half of either.

:func:`atomic_file` (a file through a temporary sibling), :func:`write_text_atomic`,
:func:`write_json_atomic`, :func:`staged_folder` (a folder through a temporary sibling folder) and
:func:`writing` (disk full, a file-size limit, no permission: one ``OSError`` naming the target).
Temporary siblings are hidden ``.NAME.<random>.tmp`` entries; the results get the modes the umask
allows, as ``open``/``mkdir`` would give them.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from safetensors import SafetensorError

from .errors import SparseAEError

__all__ = ["atomic_file", "current_umask", "replace_directory", "share_as_umask_allows", "staged_folder",
           "write_json_atomic", "write_text_atomic", "writing"]

_UMASK_LOCK = threading.Lock()


class _WriteFailed(OSError):
    """A failed write, as one OSError naming what was written; ``reason`` is the system's why."""

    reason = ""


def _why(exc: BaseException) -> tuple[int | None, str]:
    """(errno, reason) of a failed write: torch.save hides the OSError in ``__context__``,
    safetensors in its message (``os error N``)."""
    if isinstance(exc, _WriteFailed):
        return exc.errno, exc.reason
    for error in (exc, exc.__context__):
        if isinstance(error, OSError) and error.errno:
            return error.errno, error.strerror or os.strerror(error.errno)
    match = re.search(r"os error (\d+)", str(exc))
    if match:
        return int(match.group(1)), os.strerror(int(match.group(1)))
    lines = str(exc).strip().splitlines()
    return None, lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def writing(target: str | os.PathLike) -> Iterator[None]:
    """Raise any failure of the writes inside (disk full, a file-size limit, no permission) as one
    OSError ``cannot write TARGET: reason``, whatever the writer raised (torch.save and safetensors
    raise RuntimeError/SafetensorError). The outermost ``writing`` names the target."""
    try:
        yield
    except SparseAEError:
        raise
    except (OSError, SafetensorError, RuntimeError) as exc:
        errno, reason = _why(exc)
        message = f"cannot write {target}: {reason}"
        failure = _WriteFailed(errno, message) if errno else _WriteFailed(message)
        failure.reason = reason
        raise failure from None


def current_umask() -> int:
    """The process's umask: read from ``/proc`` where Linux shows it (changing nothing), else set to
    0o077 for an instant and restored, under a lock."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def share_as_umask_allows(path: Path) -> None:
    """Give ``path`` (a file, or a folder and all in it) the modes ``open``/``mkdir`` would: 0o666 /
    0o777 less the umask (``tempfile`` makes 0o600 / 0o700 whatever the umask)."""
    mask = current_umask()
    if not path.is_dir():
        os.chmod(path, 0o666 & ~mask)
        return
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), 0o666 & ~mask)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = None,
                sync: bool = True, wrap: bool = True) -> Iterator[IO[Any]]:
    """Open a hidden temporary sibling of ``path`` for writing (``mode`` ``"w"`` or ``"wb"``) and yield
    its handle; on a clean exit it is flushed (and fsynced when ``sync``), given the umask's modes
    and renamed onto ``path`` (replacing a file there); on an exception it is removed and nothing
    at ``path`` changes. Parent folders are created. ``wrap``: failures are raised as
    :func:`writing` raises them (one ``OSError`` naming ``path``); without it, as they came."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes with mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    with writing(path) if wrap else contextlib.nullcontext():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        temporary = Path(name)
        try:
            with os.fdopen(fd, mode, encoding=encoding if mode == "w" else None) as handle:
                yield handle
                handle.flush()
                if sync:
                    os.fsync(handle.fileno())
            share_as_umask_allows(temporary)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def write_text_atomic(path: str | os.PathLike, text: str, *, sync: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_file`; returns ``Path(path)``."""
    with atomic_file(path, "w", encoding="utf-8", sync=sync) as handle:
        handle.write(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON (indented, keys sorted) to ``path`` through :func:`atomic_file`."""
    with atomic_file(path, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)


def replace_directory(staging: Path, target: Path) -> None:
    """Move the finished folder ``staging`` to ``target``, replacing an old ``target``; its files and
    folders get the modes the umask allows (:func:`share_as_umask_allows`).

    The old folder is renamed aside first (``TARGET.old``) and removed last, so a reader can fall
    back to it if a crash falls between the two renames.
    """
    share_as_umask_allows(staging)
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    if old.exists():
        shutil.rmtree(old)


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike, *, wrap: bool = True) -> Iterator[Path]:
    """Yield a new hidden temporary sibling folder of ``target``; on a clean exit it replaces
    ``target`` (:func:`replace_directory`), on an exception it is removed and ``target`` is left as
    it was. The parent folder must exist. ``wrap``: as for :func:`atomic_file`."""
    target = Path(target)
    with writing(target) if wrap else contextlib.nullcontext():
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        try:
            yield staging
            replace_directory(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

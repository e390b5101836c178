"""One writer per folder: a lock file held for the life of a run or an index build.

A writer creates ``FOLDER/.sparseae.lock`` atomically (``O_CREAT | O_EXCL``) holding JSON
``{"pid", "host", "started", "purpose", "command"}`` and deletes it when done, on every exit
path. Who writes what:

* ``sparseae train`` and ``demo`` (:func:`~sparseae.runs.execute_run`) hold the run folder's
  lock from before the folder is inspected or cleared until ``summary.json`` is written; under
  ``torchrun`` only rank 0 takes it and every rank stops when it could not
  (:func:`hold_on_primary`).
* ``sparseae index`` holds the index folder's lock while it builds and swaps in the new index
  (the staged folder carries a copy of the lock, :meth:`FolderLock.copy_into`), as does
  :meth:`~sparseae.retrieval.HammingIndex.save`.
* ``sparseae plot`` and ``report`` hold the lock of a run folder they write into for as long as
  they read it and write their files: they refuse while a training holds it (``--out``
  elsewhere draws a run still training) and a training refuses while they write.
* ``evaluate``, ``probe`` and ``query`` only read (models are saved atomically): no lock.

A second writer gets :class:`~sparseae.errors.OutputExistsError` naming the holder's pid and
host, and changes nothing. A lock whose pid is no longer alive on this host is stale: it is taken
over, with a warning. A lock from another host cannot be checked from here and is refused, with
the command that removes it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import distributed
from .errors import OutputExistsError, SparseAEError

__all__ = ["LOCK_NAME", "FolderLock", "acquire", "contents", "hold_on_primary"]

LOCK_NAME = ".sparseae.lock"
#: An empty or unreadable lock younger than this is still being written by its owner.
WRITE_GRACE_SECONDS = 5.0
logger = logging.getLogger(__name__)
_HELD: set[str] = set()  # lock files held by this process


def contents(folder: Path) -> list[Path]:
    """The entries of ``folder`` other than its lock file."""
    return [entry for entry in Path(folder).iterdir() if entry.name != LOCK_NAME]


class FolderLock:
    """The lock of ``folder``, held by this process until :meth:`release` (or the ``with`` exit)."""

    def __init__(self, folder: Path, text: str, created: list[Path]) -> None:
        self.folder, self.path, self.text, self.created = folder, folder / LOCK_NAME, text, created
        self._key = str(self.path.absolute())
        _HELD.add(self._key)

    def copy_into(self, staging: Path) -> None:
        """Put this lock into ``staging``, a folder about to replace :attr:`folder` in one rename."""
        (staging / LOCK_NAME).write_text(self.text)

    def release(self) -> None:
        """Delete the lock file if it is still ours, then the folders made to hold it if empty."""
        if self._key not in _HELD:
            return
        _HELD.discard(self._key)
        with contextlib.suppress(OSError):  # a lock left behind is stale once we exit
            if self.path.read_text() == self.text:
                self.path.unlink()
        _remove_empty(self.created)

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones made, outermost first."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_empty(created: list[Path]) -> None:
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:
            return


def _alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # no signal-0 probe on Windows: never judge a lock stale there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _describe(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid')} on host {holder.get('host')} "
            f"({holder.get('purpose', 'sparseae')}, since {holder.get('started', '?')})")


def _read(path: Path) -> tuple[bytes, os.stat_result] | None:
    """The lock file's bytes and status, or None when it is gone."""
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.fstat(handle.fileno())
    except FileNotFoundError:
        return None


def _judge(folder: Path, raw: bytes, stat: os.stat_result) -> None:
    """Raise unless the lock whose content is ``raw`` is stale; warn when it is."""
    lock = folder / LOCK_NAME
    try:
        holder = json.loads(raw)
        pid, host = int(holder["pid"]), str(holder["host"])
        if pid <= 0:
            raise ValueError(pid)
    except (ValueError, TypeError, KeyError):
        if time.time() - stat.st_mtime < WRITE_GRACE_SECONDS:
            raise OutputExistsError(f"{folder} is being locked by another process right now ({lock} is "
                                    "not written yet); nothing was changed") from None
        logger.warning("sparseae: taking over the unreadable lock file %s (left by a crashed process)", lock)
        return
    if host != socket.gethostname():
        raise OutputExistsError(f"{folder} is locked by {_describe(holder)}, which this host cannot check; "
                                f"if that process has ended, remove the lock (rm {shlex.quote(str(lock))}) "
                                "and retry; nothing was changed")
    ours = str(lock.absolute()) in _HELD
    if (pid == os.getpid() and ours) or (pid != os.getpid() and _alive(pid)):
        raise OutputExistsError(f"{folder} is in use by another sparseae writer: {_describe(holder)}; "
                                "wait for it to end or choose another folder; nothing was changed")
    logger.warning("sparseae: taking over the stale lock of %s: %s is no longer running", folder,
                   _describe(holder))


def _remove_stale(lock: Path, raw: bytes, stat: os.stat_result) -> None:
    """Delete the lock file judged stale, unless another process replaced it meanwhile."""
    aside = lock.with_name(f"{LOCK_NAME}.{uuid.uuid4().hex}.tmp")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    moved = _read(aside)
    if moved is not None and (moved[0], moved[1].st_ino, moved[1].st_mtime_ns) != \
            (raw, stat.st_ino, stat.st_mtime_ns):
        with contextlib.suppress(FileExistsError):  # a fresh lock: put it back
            os.link(aside, lock)
    aside.unlink(missing_ok=True)


def _create(lock: Path, text: str) -> None:
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        lock.unlink(missing_ok=True)
        raise


def acquire(folder: str | os.PathLike, purpose: str) -> FolderLock:
    """Lock ``folder`` (created if missing) for this process; ``purpose`` names the writer
    (``"sparseae train"``). Raises :class:`OutputExistsError` while another live writer holds it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder} is a file, not a folder; choose another output folder")
    lock = folder / LOCK_NAME
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                       "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "started_unix": time.time(),
                       "command": shlex.join(sys.argv)})
    created: list[Path] = []
    try:
        for _ in range(5):
            created += _make_folder(folder)
            try:
                _create(lock, text)
                return FolderLock(folder, text, created)
            except FileNotFoundError:
                continue  # the folder was removed meanwhile (a writer released it): make it again
            except FileExistsError:
                pass
            seen = _read(lock)
            if seen is not None:
                _judge(folder, *seen)
                _remove_stale(lock, *seen)
        raise OutputExistsError(f"{folder}: could not take its lock {lock}: other processes keep taking it")
    except BaseException:
        _remove_empty(created)
        raise


@contextlib.contextmanager
def hold_on_primary(folder: str | os.PathLike, purpose: str) -> Iterator[FolderLock | None]:
    """:func:`acquire` on rank 0 only (no-op lock on the other ranks); when rank 0 cannot take
    the lock, every rank raises (rank 0 its own error), so none waits for the others."""
    lock, error = None, None
    if distributed.is_primary():
        try:
            lock = acquire(folder, purpose)
        except (SparseAEError, OSError) as exc:
            error = exc
    if distributed.is_distributed():
        import torch

        failed = torch.tensor([float(error is not None)], device=distributed.local_device())
        if distributed.sum_across_ranks(failed).item() and error is None:
            raise OutputExistsError(f"{folder}: rank 0 could not lock the run folder (see its error)")
    if error is not None:
        raise error
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()

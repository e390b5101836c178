"""How many CPU threads PyTorch uses: by default, as many as the problem's size pays for and the
machine really has free.

PyTorch starts one thread per core it sees. On small problems (a batch of 10, a gradient check)
every operation then pays the threads' synchronisation, and when another process holds one of
the cores a step waits for that core's time slice: on a shared 2-core machine 2 threads ran a
batch-10 training step 2.4–22× slower than 1 thread (``BENCHMARKS.md``, "CPU threads").
``"auto"`` (:func:`auto_threads`) therefore takes

* the cores this process may use (:func:`available_cores`: the CPU affinity mask, capped by the
  cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us / cpu.cfs_period_us`` quota of a container, and
  by ``OMP_NUM_THREADS`` when it is set),
* minus the cores that other processes keep busy when the count is chosen (:func:`busy_cores`,
  sampled over 0.1 s from ``/proc/stat``; only looked at when more than one thread is in
  question),
* and no more than one thread per :data:`WORK_PER_THREAD` multiply-adds of a step
  (:func:`step_work`: batch × the model's parameters).
"""
from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError

__all__ = ["WORK_PER_THREAD", "auto_threads", "available_cores", "busy_cores", "cgroup_cpu_limit",
           "check_threads", "resolve_threads", "set_threads", "step_work", "using_threads"]

logger = logging.getLogger(__name__)

#: Multiply-adds per training step (forward, one sample ≈ one per parameter) that each thread
#: past the first needs to pay for its synchronisation. From idle 2-core measurements
#: (``BENCHMARKS.md``, "CPU threads"): the MLP 784-1000-10 at batch 10 (8 M) and the L1 SAE
#: 784-256 at batch 10 (4 M) both ran faster on 2 threads than on 1 (571 against 446 steps/s for
#: the SAE); a gradient check (a few k) is fastest on 1. ``benchmarks/bench_threads.py
#: --calibrate`` measures it again on a machine.
WORK_PER_THREAD = 2_000_000
#: How long :func:`busy_cores` watches the CPUs (seconds).
BUSY_INTERVAL = 0.1
#: A core counts as busy when other processes use at least this share of it.
BUSY_SHARE = 0.5

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
PROC_STAT = Path("/proc/stat")


def check_threads(value: Any, setting: str = "threads") -> int | str | None:
    """``value`` when it is a thread count (an integer ≥ 1), ``"auto"`` or None (leave PyTorch's
    setting); a string of digits becomes an int. Else :class:`ConfigError` naming ``setting``."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value is None or value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{setting} must be 'auto' or a number of threads >= 1, got {value!r}")
    return int(value)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _quota_v2(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")
    if text is None:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(folder: Path) -> float | None:
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    try:
        quota_us, period_us = float(quota), float(period)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _folders(mount: Path, path: str) -> Iterable[Path]:
    """The cgroup folder of ``path`` under ``mount`` and each of its ancestors (a quota anywhere
    above applies too); the mount itself when the path is not there (a container's own view)."""
    relative = Path(path.strip().lstrip("/"))
    folder = mount / relative
    if not folder.is_dir():
        yield mount
        return
    while True:
        yield folder
        if folder == mount:
            return
        folder = folder.parent


def cgroup_cpu_limit(root: str | Path = CGROUP_ROOT, proc_cgroup: str | Path = PROC_CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in cores (e.g. 1.5), the smallest along its path;
    None when there is none (or no cgroup file system). Reads cgroup v2 ``cpu.max`` and v1
    ``cpu.cfs_quota_us``/``cpu.cfs_period_us``; ``root`` and ``proc_cgroup`` say where they are."""
    root, text = Path(root), _read(Path(proc_cgroup))
    if text is None:
        return None
    limits: list[float] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: the unified hierarchy (under unified/ on a hybrid system)
            hybrid = not (root / "cgroup.controllers").exists()
            mounts, read = ([root / "unified", root] if hybrid else [root]), _quota_v2
        elif "cpu" in controllers.split(","):
            mounts, read = [root / controllers, root / "cpu", root / "cpu,cpuacct"], _quota_v1
        else:
            continue
        for mount in dict.fromkeys(mounts):
            if mount.is_dir():
                limits += [limit for folder in _folders(mount, path) if (limit := read(folder)) is not None]
                break
    return min(limits) if limits else None


def _affinity() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _omp_limit() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def available_cores(*, affinity: Iterable[int] | None = None, root: str | Path = CGROUP_ROOT,
                    proc_cgroup: str | Path = PROC_CGROUP) -> int:
    """The cores this process may use: its CPU affinity (``affinity``: the CPU ids, default
    ``os.sched_getaffinity(0)``) capped by the cgroup quota (:func:`cgroup_cpu_limit`, rounded
    down) and by ``OMP_NUM_THREADS`` when set; at least 1."""
    cpus = set(_affinity() if affinity is None else affinity)
    cores = max(1, len(cpus))
    limit = cgroup_cpu_limit(root, proc_cgroup)
    if limit is not None:
        cores = min(cores, max(1, math.floor(limit)))
    omp = _omp_limit()
    if omp is not None:
        cores = min(cores, omp)
    return cores


def _cpu_times(proc_stat: Path) -> dict[int, tuple[float, float]]:
    """``{cpu id: (busy jiffies, total jiffies)}`` from ``/proc/stat``."""
    times: dict[int, tuple[float, float]] = {}
    for line in (_read(proc_stat) or "").splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or not name[3:].isdigit():
            continue
        ticks = [float(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)
        times[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return times


def busy_cores(cpus: Iterable[int] | None = None, *, interval: float = BUSY_INTERVAL,
               proc_stat: str | Path = PROC_STAT) -> int:
    """How many of ``cpus`` (default: this process's affinity) other processes keep busy: their
    use of those CPUs over ``interval`` seconds, less this process's own, in cores, counting a
    core from :data:`BUSY_SHARE` of one. 0 where ``/proc/stat`` cannot be read."""
    cpus = set(_affinity() if cpus is None else cpus)
    proc_stat = Path(proc_stat)
    before, own_before, started = _cpu_times(proc_stat), time.process_time(), time.perf_counter()
    if not before:
        return 0
    time.sleep(interval)
    after, own, elapsed = _cpu_times(proc_stat), time.process_time() - own_before, time.perf_counter() - started
    used = 0.0
    for cpu in cpus & before.keys() & after.keys():
        total = after[cpu][1] - before[cpu][1]
        if total > 0:
            used += (after[cpu][0] - before[cpu][0]) / total
    others = used - own / max(elapsed, 1e-9)
    return max(0, min(len(cpus), math.floor(others + 1.0 - BUSY_SHARE)))


def step_work(model: torch.nn.Module | None, rows: int) -> int:
    """The multiply-adds of one step, as :func:`auto_threads` weighs them: ``rows`` × the
    model's parameters (a dense network's forward pass)."""
    n_parameters = sum(p.numel() for p in model.parameters()) if model is not None else 0
    return int(rows) * int(n_parameters)


def auto_threads(work: int | None = None, *, cores: int | None = None, busy: int | None = None) -> int:
    """The thread count ``"auto"`` chooses for steps of ``work`` multiply-adds (None: unknown, so
    taken as large): one per :data:`WORK_PER_THREAD` of it, at most ``cores`` (default
    :func:`available_cores`) less ``busy`` (default :func:`busy_cores`, measured only when more
    than one thread is in question); never below 1."""
    cores = available_cores() if cores is None else max(1, int(cores))
    wanted = cores if work is None else max(1, min(cores, int(work) // WORK_PER_THREAD))
    if wanted > 1:
        if busy is None:
            busy = busy_cores()
        wanted = max(1, min(wanted, cores - busy))
    return wanted


def resolve_threads(threads: int | str | None, work: int | None = None) -> int:
    """The thread count ``threads`` asks for: itself when a number, :func:`auto_threads` of
    ``work`` when ``"auto"``, PyTorch's current setting when None."""
    threads = check_threads(threads)
    if threads is None:
        return torch.get_num_threads()
    if threads == "auto":
        return auto_threads(work)
    return int(threads)


_interop_set = False


def set_threads(threads: int | str | None, work: int | None = None, *, interop: bool = False) -> int:
    """Set PyTorch's intra-op thread count to ``threads`` (a number, ``"auto"`` for
    :func:`auto_threads` of ``work``, None to leave it) and return it. ``interop``: also set the
    inter-op pool to that size, which PyTorch allows once, before any parallel work (later calls
    leave it as it is)."""
    global _interop_set
    n = resolve_threads(threads, work)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    if interop and not _interop_set:
        _interop_set = True
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # parallel work has started (or it was set before): keep PyTorch's
            pass
    logger.debug("torch threads: %d (asked %r, work %s)", n, threads, work)
    return n


@contextlib.contextmanager
def using_threads(threads: int | str | None, work: int | None = None) -> Iterator[int]:
    """Within the block, PyTorch runs on :func:`set_threads` ``(threads, work)`` threads (the
    count is yielded); afterwards on as many as before."""
    previous = torch.get_num_threads()
    try:
        yield set_threads(threads, work)
    finally:
        torch.set_num_threads(previous)

"""The C library's allocator, set for training: large freed blocks are kept for reuse.

PyTorch's CPU tensors come from ``malloc``. glibc serves a block above its mmap threshold (32 MiB
at most, by default) with a fresh ``mmap`` and gives it back to the kernel on ``free``, so a
full-batch step that allocates the same 150 MB activations at every evaluation pays a page fault
per 4 KiB page of them, every time. A short full-batch L-BFGS run of the UFLDL stacked recipe
spent 82 s of its 204 s in the kernel (34 M minor page faults); with the thresholds raised it
spent 9.5 s there and took 133 s (``BENCHMARKS.md``, "Scale and speed"). The ``sparseae``
program sets this at start (:func:`keep_freed_memory`); a Python user may call it too.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory", "DEFAULT_LIMIT"]

#: Blocks up to this size (bytes) come from the heap and stay there when freed.
DEFAULT_LIMIT = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
#: Set to 0 to leave the allocator as it is.
ENV_SWITCH = "SPARSEAE_KEEP_FREED_MEMORY"
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory(limit: int = DEFAULT_LIMIT) -> bool:
    """Raise glibc's mmap and trim thresholds to ``limit`` bytes, so freed blocks up to that size
    are reused instead of unmapped (the process keeps its peak heap). Returns whether it did:
    ``False`` off Linux/glibc, when ``SPARSEAE_KEEP_FREED_MEMORY=0``, or when the user set glibc's
    own ``MALLOC_*_`` variables (theirs win)."""
    if not sys.platform.startswith("linux") or os.environ.get(ENV_SWITCH, "1") == "0" \
            or any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    limit = int(min(max(limit, 1 << 20), (1 << 31) - 1))
    return bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, limit))

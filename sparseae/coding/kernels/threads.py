"""The thread driver: :func:`run_parallel` runs a solver's batch kernel on numba threads, or its block
function in this thread when one thread is asked for."""
from __future__ import annotations

import threading

import numba

from .cd import _cd_block, cd_batch
from .lars import _lars_block, lars_batch
from .omp import _omp_block, omp_batch

__all__ = ["run_parallel"]

_LOCK = threading.Lock()  # numba's "workqueue" threading layer is not re-entrant


def _serial(kernel, *args) -> None:
    """What ``kernel(*args, 1)`` computes (one block: every row of ``C``, each kernel's second
    argument), by the block function called in this thread: no parallel region, so none of the
    threading layer's start-up and hand-over (numba's OpenMP layer added 25–35 ms a call on a
    loaded 2-core machine, 30× a small batch's solve), and the ``parallel=True`` wrapper is not
    compiled when only one thread is used."""
    n = args[1].shape[0]
    if kernel is lars_batch:
        _lars_block(*args, 0, n)
    elif kernel is omp_batch:
        _omp_block(*args, 0, n)
    elif kernel is cd_batch:  # its block takes ``cap`` last
        G, C, xx, alpha, positive, tol, max_iter, cap, Z, sweeps = args
        _cd_block(G, C, xx, alpha, positive, tol, max_iter, Z, sweeps, 0, n, cap)
    else:
        kernel(*args, 1)


def run_parallel(kernel, n_threads: int, n_samples: int, *args) -> None:
    """Call ``kernel(*args, n_blocks)`` on ``n_threads`` numba threads; the batch is cut into
    blocks handed out one at a time, so uneven samples balance across threads. One thread runs
    the single block in this thread (:func:`_serial`: the same codes)."""
    n_threads = max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    if n_threads == 1:
        _serial(kernel, *args)
        return
    n_blocks = max(1, min(n_samples, 16 * n_threads))
    with _LOCK:
        previous = numba.get_num_threads()
        numba.set_num_threads(n_threads)
        chunk = numba.set_parallel_chunksize(1)
        try:
            kernel(*args, n_blocks)
        finally:
            numba.set_parallel_chunksize(chunk)
            numba.set_num_threads(previous)

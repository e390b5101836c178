"""Compiled per-sample sparse-coding kernels (numba), used by :func:`sparseae.coding.sparse_encode`.

Every kernel works on the Gram form of the problem: ``G = DᵀD`` ``(k, k)`` and the correlations
``C = XD`` ``(n_samples, k)`` (``D`` ``(n_features, k)``, columns are atoms), all float64 and
C-contiguous. Codes are written into ``Z`` ``(n_samples, k)``. Samples are independent: the batch
is cut into blocks, ``prange`` spreads the blocks over numba's threads, and each block allocates
its workspace once.

Where things live: :mod:`.common` the ``_jit`` decorator and the shared row and Cholesky helpers;
:mod:`.lars` (:func:`lars_batch`), :mod:`.omp` (:func:`omp_batch`) and :mod:`.cd`
(:func:`cd_batch`) one solver each; :mod:`.threads` the thread driver :func:`run_parallel`.

This package imports numba; :mod:`sparseae.coding.encode` imports it on the first call that needs
it, so the rest of the library works without numba. Functions compile on their first call and
are cached on disk (``cache=True``, in ``kernels/__pycache__``) where the package folder is
writable. numba checks a cached function against its own file only, while the solvers inline
``common.py``'s helpers: :func:`forget_stale_compilations` drops the cached compilations when
``common.py`` changed since they were written, so an edit there recompiles the solvers too.
"""
from __future__ import annotations

import hashlib
from pathlib import Path


def forget_stale_compilations(folder: Path = Path(__file__).parent) -> bool:
    """Delete ``folder/__pycache__``'s numba compilations (``*.nbi``, ``*.nbc``) when ``folder/common.py``
    is not the one they were compiled with (a ``common-<sha1>.stamp`` file there records it); write
    the stamp. True when something was deleted. Without a writable cache folder (numba then caches
    elsewhere, or not at all) it does nothing."""
    cache = folder / "__pycache__"
    try:
        digest = hashlib.sha1((folder / "common.py").read_bytes()).hexdigest()[:16]
        stamp = cache / f"common-{digest}.stamp"
        if stamp.is_file():
            return False
        cache.mkdir(exist_ok=True)
        stale = [*cache.glob("*.nbi"), *cache.glob("*.nbc"), *cache.glob("common-*.stamp")]
        for path in stale:
            path.unlink(missing_ok=True)
        stamp.touch()
    except OSError:
        return False
    return any(path.suffix in (".nbi", ".nbc") for path in stale)


forget_stale_compilations()

from .cd import cd_batch  # noqa: E402
from .common import _jit as _jit  # noqa: E402
from .lars import lars_batch  # noqa: E402
from .omp import omp_batch  # noqa: E402
from .threads import run_parallel  # noqa: E402

__all__ = ["lars_batch", "omp_batch", "cd_batch", "run_parallel"]

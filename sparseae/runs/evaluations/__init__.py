"""Evaluations after training: what a paper recipe measures beyond :func:`~sparseae.runs.metrics.compute_metrics`.

A recipe names one with ``evaluate: {name: NAME, <params>}`` (see :mod:`sparseae.recipes`). After
its run, :func:`run_evaluation` loads the finished run (model, config, folder) and calls the
registered function, whose metrics are merged into the run's ``summary.json`` ``metrics``. Register
one with::

    @register_evaluation("name", metrics=("metric_a", "metric_b"))
    def _name(run: FinishedRun, *, param: int = 3) -> dict[str, float]: ...

``metrics`` are the keys it returns (a recipe's ``metric.name`` is checked against them); every
keyword of the function is a parameter a recipe may set, those without a default must be set.

Where things live: ``registry.py`` the registry (these names); one module per model family holds
its evaluations: ``features.py`` (``probe``), ``filters.py`` (``tree_branches``,
``topographic_map``, ``local_topographic_map``, ``tree_pruning``), ``manifold.py``
(``cae_tangents``, ``dae_score_field``), ``lista.py`` (``lista_depth``) and ``hashing.py``
(``hashing_vs_itq``). Importing this package registers them all; a new family module imports from
``.registry`` and is imported here, in ``__init__.py``.
"""
from __future__ import annotations

from . import features, filters, hashing, lista, manifold  # noqa: F401  (each registers its evaluations)
from .registry import EVALUATIONS, Evaluation, FinishedRun, check_evaluation, register_evaluation, run_evaluation

__all__ = ["EVALUATIONS", "Evaluation", "FinishedRun", "register_evaluation", "check_evaluation",
           "run_evaluation"]

"""Is a tree of units organized? Similarity of pairs on one branch against pairs across branches.

Tree-form lateral inhibition (and tree-structured group sparsity) should make the units of one branch
alike — "the same feature with different levels of selectivity" — and the branches unlike each other.
:func:`branch_similarity` measures it on any per-unit vectors: decoder filters (|cosine|) or the
units' activity over a data set (correlation of |z|), against the same vectors randomly re-assigned
to the nodes of the tree.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..coding.inhibition_matrix import parse_tree, tree_relatives
from ..errors import ConfigError, DataError
from ..groups import depth_of_groups, tree_groups
from ..validation import as_float_array, check_choice, check_number

__all__ = ["SIMILARITIES", "tree_depths", "branch_labels", "unit_similarity", "branch_similarity",
           "tree_filter_ratios"]

SIMILARITIES = ("abs_cosine", "activity_correlation")


def tree_depths(parent: Any) -> np.ndarray:
    """Depth of every node (roots 0): (k,). The parent array is checked as in :mod:`sparseae.groups`."""
    return np.asarray(depth_of_groups(tree_groups(parse_tree(parent))), dtype=np.int64)


def branch_labels(parent: Any, level: int = 1) -> np.ndarray:
    """For every node at depth ≥ ``level``, its ancestor at depth ``level`` (the root of its branch);
    −1 for the nodes above: (k,)."""
    check_number(level, "level", low=0, integer=True)
    parent = parse_tree(parent)
    depth = tree_depths(parent)
    if level > depth.max():
        raise ConfigError(f"level {level} is below the deepest node of the tree (depth {int(depth.max())})")
    labels = np.full(len(parent), -1, dtype=np.int64)
    for node in range(len(parent)):
        current = node
        while depth[current] > level:
            current = parent[current]
        if depth[current] == level:
            labels[node] = current
    return labels


def unit_similarity(vectors: Any, similarity: str = "abs_cosine") -> np.ndarray:
    """``(k, k)`` similarity of the rows of ``vectors`` ``(k, d)``: ``"abs_cosine"`` |cos| between rows
    (decoder filters as rows); ``"activity_correlation"`` the Pearson correlation of |rows| (each row a
    unit's code over d samples; a unit that never varies correlates 0 with everything)."""
    check_choice(similarity, "similarity", SIMILARITIES)
    V = as_float_array(vectors, "vectors", dtype=np.float64)
    if similarity == "activity_correlation":
        V = np.abs(V)
        V = V - V.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    unit = np.divide(V, norms, out=np.zeros_like(V), where=norms > 0)
    M = unit @ unit.T
    return np.abs(M) if similarity == "abs_cosine" else M


def branch_similarity(vectors: Any, parent: Any, *, level: int = 1, pairs: str = "branch",
                      similarity: str = "abs_cosine", n_permutations: int = 200,
                      random_state: int = 0) -> dict[str, float]:
    """Mean similarity of pairs of units on one branch against pairs across branches.

    ``vectors`` ``(k, d)``: one row per tree node (see :func:`unit_similarity`); ``parent`` the tree
    (a parent list or spec, :func:`~sparseae.coding.inhibition_matrix.parse_tree`). ``pairs``:

    * ``"branch"``: the units at depth ≥ ``level`` split into branches (the sub-trees rooted at depth
      ``level``; level 1: the root's children); *within* = pairs in one branch, *across* = pairs in two.
    * ``"relatives"``: over all units, *within* = a unit and one of its ancestors (the pairs tree-form
      inhibition leaves free), *across* = every other pair.

    Baseline: the same vectors randomly re-assigned to the nodes considered (``n_permutations`` draws).
    Returns ``within``, ``across``, ``ratio`` (within / across), ``permuted_within``,
    ``permuted_ratio`` (means over the draws), ``p_value`` (fraction of draws, counting the observed
    one, whose within-mean reaches the observed one) and the pair counts.
    """
    check_choice(pairs, "pairs", ("branch", "relatives"))
    check_number(n_permutations, "n_permutations", low=1, integer=True)
    parent = parse_tree(parent)
    k = len(parent)
    M = unit_similarity(vectors, similarity)
    if M.shape[0] != k:
        raise DataError(f"{M.shape[0]} vectors for a tree of {k} nodes: one row per node")
    if pairs == "branch":
        labels = branch_labels(parent, level)
        units = np.flatnonzero(labels >= 0)
        same = labels[units][:, None] == labels[units][None, :]
    else:
        units = np.arange(k)
        same = tree_relatives(parent).numpy()
    upper = np.triu(np.ones((len(units), len(units)), dtype=bool), 1)
    within_pairs, across_pairs = upper & same, upper & ~same
    if not within_pairs.any() or not across_pairs.any():
        raise ConfigError(f"the tree has no pairs {'within' if not within_pairs.any() else 'across'} "
                          f"{'branches' if pairs == 'branch' else 'relatives'} at this level")
    sub = M[np.ix_(units, units)]
    within, across = float(sub[within_pairs].mean()), float(sub[across_pairs].mean())
    rng = np.random.default_rng(random_state)
    draws = np.empty((n_permutations, 2))
    for d in range(n_permutations):
        order = rng.permutation(len(units))
        shuffled = sub[np.ix_(order, order)]
        draws[d] = shuffled[within_pairs].mean(), shuffled[across_pairs].mean()
    return {"within": within, "across": across, "ratio": within / across if across else float("inf"),
            "permuted_within": float(draws[:, 0].mean()),
            "permuted_ratio": float(np.mean(draws[:, 0] / np.maximum(draws[:, 1], 1e-300))),
            "p_value": float((1 + np.sum(draws[:, 0] >= within)) / (1 + n_permutations)),
            "n_within_pairs": int(within_pairs.sum()), "n_across_pairs": int(across_pairs.sum())}


def tree_filter_ratios(filters: Any, parent: Any, *, levels: tuple[int, ...] = (1, 2), n_permutations: int = 1000,
                       random_state: int = 0) -> dict[str, dict[str, float]]:
    """The filter-similarity figures of a tree of units (Gregor, Szlam & LeCun 2011), as
    ``benchmarks/bench_lateral_inhibition.py`` prints them: :func:`branch_similarity` of the filters
    ``(k, d)`` (|cos|) for the branches rooted at each depth in ``levels`` (keys ``level1``, ...)
    and for ancestor–descendant pairs (key ``relatives``)."""
    results = {f"level{level}": branch_similarity(filters, parent, level=level, n_permutations=n_permutations,
                                                  random_state=random_state) for level in levels}
    results["relatives"] = branch_similarity(filters, parent, pairs="relatives", n_permutations=n_permutations,
                                             random_state=random_state)
    return results

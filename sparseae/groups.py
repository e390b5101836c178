"""Group structures over the code units: one explicit object that every group penalty and
proximal operator accepts.

A :class:`GroupStructure` is a list of memberships (group j, unit i, weight w_ij) stored as three
flat tensors, so group sums are a single ``scatter_add`` (no Python loop over groups):

    ‖z‖_{g_j} = √(Σ_{i ∈ g_j} w_ij z_i² + ε)

Builders: :func:`disjoint_groups` (blocks), :func:`grid_groups` (K×K windows on a 2-D grid of
units, toroidal or not, optional Gaussian weights: topographic maps), :func:`tree_groups` (every
sub-tree of a parent array is a group) with :func:`balanced_tree`, and :func:`custom_groups`
(any list of index sets). A structure is saved as a JSON-able :meth:`~GroupStructure.spec`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import ConfigError
from .validation import check_number

KINDS = ("disjoint", "grid", "tree", "custom")
#: Largest n_components × n_groups for which group norms use a dense membership matrix.
DENSE_LIMIT = 1 << 22


@dataclass(eq=False)
class GroupStructure:
    """Memberships ``(group_index[m], unit_index[m], weights[m])`` of ``n_groups`` groups over
    ``n_components`` units. ``kind`` says how it was built; ``parent`` (trees) and ``spec`` rebuild it."""

    group_index: torch.Tensor
    unit_index: torch.Tensor
    weights: torch.Tensor
    n_groups: int
    n_components: int
    kind: str
    spec: dict[str, Any]
    parent: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.n_groups < 1 or len(self.unit_index) == 0:
            raise ConfigError("a group structure needs at least one non-empty group")
        if self.unit_index.is_meta:  # a model built on the meta device for its shapes: no values
            return
        if int(self.unit_index.min()) < 0 or int(self.unit_index.max()) >= self.n_components:
            raise ConfigError(f"group members must be units 0..{self.n_components - 1}, got "
                              f"{int(self.unit_index.min())}..{int(self.unit_index.max())}")
        sizes = torch.bincount(self.group_index, minlength=self.n_groups)
        if (sizes == 0).any():
            raise ConfigError(f"group {int(torch.nonzero(sizes == 0)[0])} is empty")
        if (self.weights <= 0).any():
            raise ConfigError("group weights must be positive")

    def check_fits(self, n_components: int) -> None:
        """Raise :class:`ConfigError` unless the structure is over exactly ``n_components`` units."""
        if n_components != self.n_components:
            raise ConfigError(f"the {self.kind} group structure covers {self.n_components} code units, "
                              f"but the code has {n_components}")

    @property
    def sizes(self) -> torch.Tensor:
        """Members per group: (n_groups,)."""
        return torch.bincount(self.group_index, minlength=self.n_groups)

    @property
    def overlapping(self) -> bool:
        """Whether some unit belongs to more than one group."""
        return bool((torch.bincount(self.unit_index, minlength=self.n_components) > 1).any())

    @property
    def uniform_weights(self) -> bool:
        return bool((self.weights == 1).all())

    def members(self, group: int) -> list[int]:
        """The units of one group (for inspection and tests)."""
        return sorted(self.unit_index[self.group_index == group].tolist())

    def membership_matrix(self, device: torch.device | str | None = None,
                          dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """M (n_components, n_groups), M[i, j] = w_ij for i ∈ g_j and 0 elsewhere (cached per
        device and dtype): the group sums of squares of z (batch, n_components) are z² M."""
        cache = self.__dict__.setdefault("_membership_cache", {})
        key = (str(torch.device(device) if device is not None else "cpu"), dtype)
        if key not in cache:
            matrix = torch.zeros(self.n_components, self.n_groups, dtype=dtype)
            matrix[self.unit_index, self.group_index] = self.weights.to(dtype)
            cache[key] = matrix.to(key[0])
        return cache[key]

    def group_norms(self, z: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
        """√(Σ_{i∈g} w z_i² + ε) for every group: z (batch, n_components) → (batch, n_groups).
        Group sums are one matmul z² M with the dense :meth:`membership_matrix` when it has at most
        ``DENSE_LIMIT`` entries (much faster than gather + scatter, forward and backward), else a
        gather over the memberships and an ``index_add``."""
        self.check_fits(z.shape[-1])
        if self.n_components * self.n_groups <= DENSE_LIMIT:
            return (z.pow(2) @ self.membership_matrix(z.device, z.dtype) + eps).sqrt()
        unit = self.unit_index.to(z.device)
        squares = z[:, unit].pow(2) * self.weights.to(device=z.device, dtype=z.dtype)
        sums = z.new_zeros(z.shape[0], self.n_groups).index_add_(1, self.group_index.to(z.device), squares)
        return (sums + eps).sqrt()


def _structure(groups: Sequence[Sequence[int]], n_components: int, kind: str, spec: dict[str, Any],
               weights: Sequence[Sequence[float]] | None = None, parent: np.ndarray | None = None) -> GroupStructure:
    group_index, unit_index, values = [], [], []
    for j, members in enumerate(groups):
        members = [int(i) for i in members]
        if len(set(members)) != len(members):
            raise ConfigError(f"group {j} lists a unit twice: {members}")
        group_index += [j] * len(members)
        unit_index += members
        values += [1.0] * len(members) if weights is None else [float(w) for w in weights[j]]
    return GroupStructure(torch.tensor(group_index, dtype=torch.long), torch.tensor(unit_index, dtype=torch.long),
                          torch.tensor(values, dtype=torch.float64), len(groups), n_components, kind, spec, parent)


def disjoint_groups(n_components: int, group_size: int) -> GroupStructure:
    """Consecutive blocks of ``group_size`` units (``n_components`` must be a multiple)."""
    check_number(n_components, "n_components", low=1, integer=True)
    check_number(group_size, "group_size", low=1, integer=True)
    if n_components % group_size:
        raise ConfigError(f"{n_components} code units do not split into groups of {group_size}")
    blocks = [range(start, start + group_size) for start in range(0, n_components, group_size)]
    return _structure(blocks, n_components, "disjoint", {"kind": "disjoint", "group_size": group_size,
                                                         "n_components": n_components})


def grid_groups(height: int, width: int, window: int = 3, *, toroidal: bool = True,
                gaussian_sigma: float | None = None) -> GroupStructure:
    """Overlapping ``window``×``window`` neighbourhoods on a ``height``×``width`` grid of units
    (unit i sits at row i // width, column i % width): one group per grid position (toroidal: the
    grid wraps around), or per position where the window fits (not toroidal). ``window`` may be a
    (rows, columns) pair: ``height=1, window=(1, K)`` gives 1-D windows of K consecutive units.
    ``gaussian_sigma`` weights each member by exp(−d²/2σ²), d its distance to the window's centre
    (Kavukcuoglu et al. 2009; Hyvärinen & Hoyer 2001 use uniform weights)."""
    for name, value in (("height", height), ("width", width)):
        check_number(value, name, low=1, integer=True)
    if isinstance(window, (list, tuple)):
        if len(window) != 2:
            raise ConfigError(f"window must be K or (rows, columns), got {window!r}")
        for value in window:
            check_number(value, "window", low=1, integer=True)
        window = [int(value) for value in window]
    else:
        check_number(window, "window", low=1, integer=True)
    window_rows, window_cols = window if isinstance(window, list) else (window, window)
    if window_rows > height or window_cols > width:
        raise ConfigError(f"a {window_rows}×{window_cols} window does not fit a {height}×{width} grid")
    if gaussian_sigma is not None:
        check_number(gaussian_sigma, "gaussian_sigma", low=0.0, low_inclusive=False)
    offsets = [(dr, dc) for dr in range(window_rows) for dc in range(window_cols)]
    centre_r, centre_c = (window_rows - 1) / 2, (window_cols - 1) / 2
    rows = range(height) if toroidal else range(height - window_rows + 1)
    cols = range(width) if toroidal else range(width - window_cols + 1)
    groups, weights = [], []
    for r in rows:
        for c in cols:
            groups.append([((r + dr) % height) * width + (c + dc) % width for dr, dc in offsets])
            weights.append([math.exp(-((dr - centre_r) ** 2 + (dc - centre_c) ** 2) / (2 * gaussian_sigma ** 2))
                            if gaussian_sigma else 1.0 for dr, dc in offsets])
    spec = {"kind": "grid", "height": height, "width": width, "window": window, "toroidal": toroidal,
            "gaussian_sigma": gaussian_sigma}
    return _structure(groups, height * width, "grid", spec, weights)


def balanced_tree(depth: int, branching: int) -> np.ndarray:
    """Parent array of a complete tree: node 0 is the root (parent −1), nodes numbered breadth first;
    ``depth`` levels below the root. depth=2, branching=3 gives 1 + 3 + 9 = 13 nodes."""
    check_number(depth, "depth", low=0, integer=True)
    check_number(branching, "branching", low=1, integer=True)
    parent = [-1]
    level = [0]
    for _ in range(depth):
        nxt = []
        for node in level:
            for _ in range(branching):
                parent.append(node)
                nxt.append(len(parent) - 1)
        level = nxt
    return np.asarray(parent)


def _depths(parent: np.ndarray) -> np.ndarray:
    depth = np.full(len(parent), -1)
    for node in range(len(parent)):
        chain, current = [], node
        while current != -1 and depth[current] < 0:
            chain.append(current)
            current = parent[current]
            if len(chain) > len(parent):
                raise ConfigError("the parent array has a cycle")
        base = -1 if current == -1 else depth[current]
        for offset, member in enumerate(reversed(chain)):
            depth[member] = base + 1 + offset
    return depth


def tree_groups(parent: Sequence[int]) -> GroupStructure:
    """One group per node: the node and all its descendants (Jenatton et al. 2011; Kavukcuoglu's
    tree-structured sparse coding). ``parent[i]`` is the parent of unit i, −1 for a root."""
    parent = np.asarray(list(parent), dtype=np.int64)
    if parent.ndim != 1 or not len(parent):
        raise ConfigError("a tree needs a non-empty parent array")
    if ((parent < -1) | (parent >= len(parent))).any() or (parent == np.arange(len(parent))).any():
        raise ConfigError(f"parent entries must be −1 or another node's index 0..{len(parent) - 1}")
    depth = _depths(parent)
    descendants: list[list[int]] = [[i] for i in range(len(parent))]
    for node in np.argsort(-depth, kind="stable"):  # deepest first: children are complete before parents
        if parent[node] >= 0:
            descendants[parent[node]] += descendants[node]
    return _structure(descendants, len(parent), "tree", {"kind": "tree", "parent": parent.tolist()}, parent=parent)


def custom_groups(index_sets: Sequence[Sequence[int]], n_components: int,
                  weights: Sequence[Sequence[float]] | None = None) -> GroupStructure:
    """Any list of index sets over ``n_components`` units (optionally weighted)."""
    check_number(n_components, "n_components", low=1, integer=True)
    if isinstance(index_sets, (str, bytes)) or not len(index_sets):
        raise ConfigError("custom groups need a non-empty list of index lists")
    spec = {"kind": "custom", "groups": [list(map(int, g)) for g in index_sets], "n_components": n_components,
            "weights": None if weights is None else [list(map(float, w)) for w in weights]}
    return _structure(index_sets, n_components, "custom", spec, weights)


def depth_of_groups(structure: GroupStructure) -> np.ndarray:
    """For a tree structure, the depth of each group's root node (group j is rooted at node j)."""
    if structure.parent is None:
        raise ConfigError("only a tree structure has depths")
    return _depths(structure.parent)


def make_groups(spec: dict[str, Any]) -> GroupStructure:
    """Rebuild a structure from its :attr:`~GroupStructure.spec` (as in a config file), e.g.
    ``{"kind": "grid", "height": 20, "width": 20, "window": 3}`` or ``{"kind": "tree", "depth": 2,
    "branching": 4}``."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise ConfigError(f"a group structure is a mapping with 'kind' one of {', '.join(KINDS)}, got {spec!r}")
    options = {k: v for k, v in spec.items() if k != "kind"}
    try:
        if spec["kind"] == "disjoint":
            return disjoint_groups(**options)
        if spec["kind"] == "grid":
            return grid_groups(**options)
        if spec["kind"] == "tree":
            if "parent" in options:
                return tree_groups(options["parent"])
            return tree_groups(balanced_tree(**options))
        return custom_groups(options.pop("groups"), **options)
    except TypeError as exc:
        raise ConfigError(f"group structure {spec['kind']!r}: {exc}") from None
    except KeyError as exc:
        raise ConfigError(f"group structure {spec['kind']!r} needs {exc}") from None


@dataclass
class TreePruning:
    """What :func:`prune_tree` did: ``keep`` (the kept units, old indices, in order), the pruned
    tree's ``structure`` (units renumbered 0..len(keep)−1), and ``removed_roots`` (the roots of
    the pruned branches)."""

    keep: np.ndarray
    structure: GroupStructure
    removed_roots: list[int]

    def report(self) -> dict[str, Any]:
        """Before/after counts for a log or a summary."""
        before = len(self.structure.spec.get("pruned_from", [])) or None
        return {"units_before": before, "units_after": int(len(self.keep)),
                "branches_removed": len(self.removed_roots), "removed_roots": self.removed_roots}


def prune_tree(structure: GroupStructure, activation_frequency: Any, threshold: float) -> TreePruning:
    """Remove every branch (a node and its descendants) whose units are all active less often
    than ``threshold`` (a fraction of samples, e.g. from :func:`sparseae.evaluate.sparsity_stats`):
    train with a larger tree than needed, then prune what the data do not use. A kept node's
    ancestors are always kept, so the result is again a tree. activation_frequency: (n_units,)."""
    if structure.parent is None:
        raise ConfigError("prune_tree needs a tree group structure (tree_groups)")
    frequency = np.asarray(activation_frequency, dtype=np.float64)
    if frequency.shape != (structure.n_components,):
        raise ConfigError(f"{frequency.shape[0] if frequency.ndim else 0} activation frequencies for a tree of "
                          f"{structure.n_components} units")
    check_number(threshold, "threshold", low=0.0)
    parent = structure.parent
    # a branch is used when any unit in it is used; every group j is the branch rooted at node j
    used_branch = np.array([bool((frequency[structure.members(j)] >= threshold).any())
                            for j in range(structure.n_groups)])
    keep = np.flatnonzero(used_branch)
    removed_roots = [int(j) for j in np.flatnonzero(~used_branch)
                     if parent[j] == -1 or used_branch[parent[j]]]
    if not len(keep):
        raise ConfigError(f"no unit is active at least {threshold:g} of the time: the whole tree would go")
    renumber = {int(old): new for new, old in enumerate(keep)}
    new_parent = [renumber[int(parent[old])] if parent[old] >= 0 else -1 for old in keep]
    pruned = tree_groups(new_parent)
    pruned.spec["pruned_from"] = parent.tolist()
    return TreePruning(keep, pruned, removed_roots)

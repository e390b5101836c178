"""Layers point one way: every import in the package (function-local and TYPE_CHECKING ones included,
relative and absolute) is parsed with ``ast`` into a graph between its units (a subpackage, or a
top-level module such as ``errors`` or ``io``); no cycle, no model importing its trainer.

Order, bottom to top: errors, _version, tensors, distributed, devices, registry, validation, threads,
locking, groups, data → coding → nn → models → io → train → config → runs → estimators, cli, report.
"""
from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

import sparseae

PACKAGE = Path(sparseae.__file__).parent
ROOT = "sparseae"
#: unit → units it must never import (directly).
FORBIDDEN = {
    "models": {"train", "runs", "cli", "estimators", "report"},
    "nn": {"models", "train", "runs", "cli", "estimators", "report"},
    "coding": {"nn", "models", "train", "runs", "cli", "estimators", "report"},
    "io": {"train", "runs", "cli"},
    "train": {"runs", "cli", "estimators", "report"},
    "runs": {"cli", "estimators", "report"},
    "report": {"cli"},
}


def _unit(parts: list[str]) -> str:
    """The unit of module ``sparseae.<parts>``: its first part (a subpackage or a top-level module)."""
    return parts[0] if parts else ROOT


def _is_module(parts: list[str]) -> bool:
    path = PACKAGE.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def import_edges(package: Path = PACKAGE) -> dict[tuple[str, str], list[str]]:
    """``(from unit, to unit) → ["file:line", ...]`` for every import between two units."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for file in sorted(package.rglob("*.py")):
        parts = list(file.relative_to(package).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        module = parts[:-1] if is_package else parts
        source = _unit(module)
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            targets: list[list[str]] = []
            if isinstance(node, ast.Import):
                targets = [alias.name.split(".") for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module if is_package else module[:-1]
                    base = [ROOT] + base[:len(base) - (node.level - 1)]
                else:
                    base = []
                named = base + (node.module.split(".") if node.module else [])
                if named[:1] == [ROOT] and len(named) == 1:  # from sparseae import x: x may be a module
                    targets = [[ROOT, alias.name] if _is_module([alias.name]) else [ROOT] for alias in node.names]
                else:
                    targets = [named]
            for target in targets:
                if target[:1] != [ROOT]:
                    continue
                unit = _unit(target[1:])
                if unit != source:
                    edges[(source, unit)].append(f"{file.relative_to(package.parent)}:{node.lineno}")
    return edges


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_parser_sees_relative_absolute_local_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "sparseae"
    (pkg / "models").mkdir(parents=True)
    (pkg / "train").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("from .. import errors\n")
    (pkg / "models" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sparseae.io import x\n"
        "def f():\n    from ..train import train\n    import sparseae.runs.folder\n")
    edges = import_edges(pkg)
    assert set(edges) == {("train", "errors"), ("models", "io"), ("models", "train"), ("models", "runs")}
    assert edges[("models", "train")] == ["sparseae/models/__init__.py:5"]
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_cycle_between_subpackages():
    edges = import_edges()
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    cycle = _cycle(graph)
    assert cycle is None, "import cycle " + " -> ".join(cycle) + ": " + "; ".join(
        f"{a} -> {b} at {', '.join(edges[(a, b)][:3])}" for a, b in itertools.pairwise(cycle))


def test_lower_layers_do_not_import_upper_ones():
    edges = import_edges()
    wrong = [f"{a} -> {b} at {', '.join(where[:3])}" for (a, b), where in sorted(edges.items())
             if b in FORBIDDEN.get(a, ())]
    assert not wrong, "imports against the layer order: " + "; ".join(wrong)


def test_models_declare_a_known_training_procedure():
    from sparseae.models import MODELS, create_model
    from sparseae.runs.procedures import PROCEDURES

    declared = {}
    for name in MODELS.names():
        kwargs = {"image_shape": (8, 8)} if name in ("conv_sae", "local_sae", "conv_stack") else {}
        if name == "conv_stack":
            kwargs["layers"] = [{"kernel_size": 3}]
        try:
            model = create_model(name, 64, 4, **kwargs)
        except Exception:  # noqa: BLE001 — a model that needs more parameters is checked by its own tests
            continue
        declared[name] = model.training_procedure
    assert set(declared.values()) <= set(PROCEDURES)
    assert declared["autoencoder"] == "plain" and declared["drsae"] == "supervised"
    assert declared["deep_autoencoder"] == declared["mlp_classifier"] == "pretrain_finetune"
    assert declared["conv_stack"] == "layerwise"

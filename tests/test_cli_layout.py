"""The ``sparseae`` command's modules (issue 23): one verb (or a small group of related verbs) per
module of ``sparseae.cli``, each adding its own subparser; the old catch-all module is gone."""
from __future__ import annotations

import argparse
import importlib

import pytest

from sparseae.cli import build_parser

#: Verb → the module of ``sparseae.cli`` that holds its handler.
HOMES = {"train": "train", "evaluate": "evaluate", "probe": "probe", "index": "hashing", "query": "hashing",
         "plot": "plot", "report": "report", "gradcheck": "gradcheck", "demo": "demo", "models": "listings",
         "datasets": "listings", "examples": "examples", "recipes": "recipes", "export": "export",
         "harvest": "harvest", "bench": "bench"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_each_verb_is_handled_by_its_own_module_in_help_order():
    verbs = _subparsers(build_parser())
    assert list(verbs) == list(HOMES)
    for verb, sub in verbs.items():
        handlers = [sub.get_default("handler")]
        if handlers == [None]:  # a verb with its own subcommands (bench synthetic)
            handlers = [nested.get_default("handler") for nested in _subparsers(sub).values()]
        for handler in handlers:
            assert handler.__module__ == f"sparseae.cli.{HOMES[verb]}", verb
            assert handler.__name__.startswith("command_"), verb


def test_the_catch_all_commands_module_is_gone():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("sparseae.cli.commands")

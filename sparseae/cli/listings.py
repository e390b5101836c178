"""``sparseae models`` and ``sparseae datasets``: what is registered, with its parameters."""
from __future__ import annotations

import argparse
import inspect
import re
import textwrap
from typing import Any

from ..data import DATASETS
from ..models import MODELS
from .output import Output, display_width, plain_text, plural

#: The arguments every model builder needs (:func:`~sparseae.models.create_model`).
MODEL_ARGUMENTS = {"n_features": "input size (a run takes it from its data)",
                   "n_components": "code size (a run config's model.n_components, default 64)"}
#: Columns of a one-line listing.
LISTING_WIDTH = 100


def _describe_builder(builder: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    doc = inspect.getdoc(builder) or ""
    parameters, required = {}, []
    for name, parameter in inspect.signature(builder).parameters.items():
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
        if name in skip:
            continue
        parameters[name] = ("(required)" if parameter.default is inspect.Parameter.empty
                            else parameter.default)
    paragraphs = [plain_text(part) for part in doc.split("\n\n") if part.strip()]
    return {"description": paragraphs[0] if paragraphs else "", "details": paragraphs[1:],
            "required": required, "parameters": parameters}


def _list(out: Output, kind: str, entries: dict[str, dict[str, Any]]) -> int:
    for name, entry in entries.items():
        out.line(f"{name}" + (f" — {entry['description']}" if entry["description"] else ""))
        for parameter, default in entry["parameters"].items():
            shown = "(required)" if default == "(required)" else f"= {default!r}"
            out.line(f"    {parameter} {shown}")
    out.json({kind: entries})
    return 0


def _first_sentence(text: str, width: int) -> str:
    """The first sentence of ``text``, cut at a word to at most ``width`` columns (with …)."""
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text, maxsplit=1)[0]
    if display_width(sentence) <= width:
        return sentence
    cut = sentence[:width - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(",;:—- ") + "…"


def command_models(args: argparse.Namespace, out: Output) -> int:
    """``sparseae models``: one line per registered model; ``sparseae models NAME``: that model's
    description, its required arguments and its parameters with their defaults."""
    names = MODELS.names() if args.name is None else [args.name]
    entries = {name: _describe_builder(MODELS.get(name), skip=tuple(MODEL_ARGUMENTS)) for name in names}
    if args.name is None:
        out.line(f"{plural(len(names), 'model')}; every one needs {' and '.join(MODEL_ARGUMENTS)}, "
                 "and sparseae models NAME lists its other parameters:")
        column = max(display_width(name) for name in names)
        for name, entry in entries.items():
            room = LISTING_WIDTH - column - 4
            out.line(f"  {name}{' ' * (column - display_width(name))}  {_first_sentence(entry['description'], room)}")
    else:
        entry = entries[args.name]
        out.line(f"{args.name} — {entry['description']}")
        for paragraph in entry["details"]:
            out.line()
            out.line(textwrap.fill(paragraph, LISTING_WIDTH))
        rows = [(name, f"(required) {MODEL_ARGUMENTS.get(name, '')}".rstrip()) for name in entry["required"]]
        rows += [(name, f"= {default!r}") for name, default in entry["parameters"].items()]
        out.line()
        out.table(rows, "arguments (create_model(NAME, n_features, n_components, **parameters); in a run "
                        "config: model.KEY):")
    out.json({"models": entries})
    return 0


def command_datasets(args: argparse.Namespace, out: Output) -> int:
    """``sparseae datasets``: every registered dataset with its options."""
    return _list(out, "datasets", {name: _describe_builder(DATASETS.get(name)) for name in DATASETS.names()})


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``models`` and ``datasets`` subcommands."""
    models = commands.add_parser("models", parents=[common], help="list the registered models")
    models.add_argument("name", nargs="?", metavar="NAME", help="one model: its description and parameters")
    models.set_defaults(handler=command_models)
    datasets = commands.add_parser("datasets", parents=[common], help="list the registered datasets")
    datasets.set_defaults(handler=command_datasets)

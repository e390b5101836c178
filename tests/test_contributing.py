"""CONTRIBUTING.md stays true: every file path and every ``sparseae.x.y`` name it cites exists, each
``sparseae`` command it shows is one that test_docs.py runs (or its block is marked not run), and
the README links to it."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from test_docs import DOCS, PAGES, README, SHELL, parse_blocks, readme_commands, shell_commands

ROOT = Path(__file__).resolve().parents[1]
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
#: A repository path in backquotes: ``sparseae/nn/penalties.py``, ``docs/models/<family>.md``, ``tests/``.
PATH = re.compile(r"`((?:sparseae|tests|docs|benchmarks|examples|\.ci)/[\w./<>*-]*"
                  r"|[\w-]+\.(?:md|toml|yml|yaml|py))`")
#: A dotted name in the package: ``sparseae.nn.penalties.register_penalty``.
NAME = re.compile(r"`(sparseae(?:\.\w+)+)`")


def cited_paths(text: str) -> list[str]:
    return sorted(set(PATH.findall(text)))


def cited_names(text: str) -> list[str]:
    return sorted(set(NAME.findall(text)))


def path_exists(cited: str) -> bool:
    """A placeholder (``<family>``) stands for any file of an existing folder; a glob must match."""
    if "<" in cited:
        before = cited.split("<", 1)[0]
        return (ROOT / before[:before.rfind("/") + 1]).is_dir()
    if "*" in cited:
        return any(ROOT.glob(cited))
    return (ROOT / cited).exists()


def resolve(name: str) -> object:
    """The object a dotted name names: the longest importable module, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)  # AttributeError: the name does not exist
        return obj
    raise ModuleNotFoundError(name)


def commands_test_docs_runs() -> set[tuple[str, ...]]:
    """Every ``sparseae`` argv that test_docs.py runs: the docs pages' shell blocks and the README's."""
    runs = {tuple(argv) for page in PAGES for block in parse_blocks((DOCS / page).read_text(encoding="utf-8"))
            if block.language in SHELL and not block.norun for argv in shell_commands(block)}
    runs |= {tuple(c.argv) for c in readme_commands(README.read_text(encoding="utf-8")) if c.argv is not None}
    return runs


def test_the_extractors_find_paths_names_and_placeholders():
    text = ("see `sparseae/nn/penalties.py`, `docs/models/<family>.md`, `tests/`, `mkdocs.yml`, "
            "`sparseae.nn.penalties.register_penalty` and `sparseae` and `model.penalties`")
    assert cited_paths(text) == ["docs/models/<family>.md", "mkdocs.yml", "sparseae/nn/penalties.py", "tests/"]
    assert cited_names(text) == ["sparseae.nn.penalties.register_penalty"]
    assert path_exists("docs/models/<family>.md") and path_exists("sparseae/recipes/*.yaml")
    assert path_exists("tests/test_<family>.py") and not path_exists("docs/nowhere/<family>.md")
    assert not path_exists("sparseae/no_such_file.py")
    from sparseae.nn.penalties import register_penalty
    assert resolve("sparseae.nn.penalties.register_penalty") is register_penalty
    with pytest.raises(AttributeError):
        resolve("sparseae.nn.penalties.no_such_name")


def test_every_cited_path_exists():
    paths = cited_paths(CONTRIBUTING.read_text(encoding="utf-8"))
    assert len(paths) >= 30, paths  # the checklists cite files: the extractor must see them
    missing = [path for path in paths if not path_exists(path)]
    assert not missing, f"CONTRIBUTING.md cites paths that do not exist: {missing}"


def test_every_cited_name_imports():
    names = cited_names(CONTRIBUTING.read_text(encoding="utf-8"))
    assert len(names) >= 15, names
    broken = []
    for name in names:
        try:
            resolve(name)
        except (ImportError, AttributeError) as exc:
            broken.append(f"{name} ({type(exc).__name__})")
    assert not broken, f"CONTRIBUTING.md names what the package does not have: {broken}"


def test_its_commands_are_run_by_the_docs_tests_or_marked():
    blocks = [b for b in parse_blocks(CONTRIBUTING.read_text(encoding="utf-8")) if b.language in SHELL]
    runs = commands_test_docs_runs()
    shown = [argv for block in blocks if not block.norun for argv in shell_commands(block)]
    assert len(shown) >= 5, shown
    not_run = [" ".join(argv) for argv in shown if tuple(argv) not in runs]
    assert not not_run, (f"CONTRIBUTING.md shows `sparseae` commands that neither README.md nor docs/ run "
                         f"in tests/test_docs.py: {not_run}; show one they run, or mark the block <!-- norun -->")
    assert any(block.norun for block in blocks)  # the pytest / ruff / mkdocs lines: marked


def test_the_readme_links_it_and_the_hooks_it_lists_are_the_contract():
    assert "CONTRIBUTING.md" in README.read_text(encoding="utf-8")
    from sparseae.models import Autoencoder

    text = CONTRIBUTING.read_text(encoding="utf-8")
    hooks = re.search(r"The contract hooks:.*?\((.*?)\)", text, re.DOTALL)[1]  # the parenthesis lists them
    listed = re.findall(r"`(\w+)`", hooks)
    assert len(listed) >= 10
    assert [hook for hook in listed if hook not in vars(Autoencoder)] == []


#: Names the checklists cite from the tests and the library besides dotted ones: where each lives.
CITED_ELSEWHERE = {
    "tests/test_estimators.py": ["CHECK_PARAMS", "test_every_public_estimator_has_check_parameters"],
    "tests/test_architecture.py": ["FORBIDDEN"], "tests/test_models.py": ["SMALL"],
    "tests/test_model_contract.py": ["SMALL"], "tests/cli_checks.py": ["assert_one_line_error"],
    "tests/test_docs.py": ["write_synthetic_mnist"], "sparseae/cli/__init__.py": ["build_parser"],
    "sparseae/cli/recipes.py": ["add_parser"], "sparseae/models/base.py": ["energy", "add_penalties",
                                                                           "refuse_penalties"],
}


def test_the_other_names_it_cites_are_where_it_says():
    text = CONTRIBUTING.read_text(encoding="utf-8")
    for path, names in CITED_ELSEWHERE.items():
        source = (ROOT / path).read_text(encoding="utf-8")
        for name in names:
            assert f"`{name}" in text, f"CITED_ELSEWHERE lists {name}, which CONTRIBUTING.md does not cite"
            assert re.search(rf"^\s*(?:def {name}\(|{name}\s*[:=])", source, re.MULTILINE), f"{name} is not in {path}"

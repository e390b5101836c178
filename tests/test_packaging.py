"""The package people depend on: ``python -m build`` makes a wheel and an sdist that ``twine check``
passes, with an SPDX license, classifiers, ``py.typed`` and the example configs the docs
cite (``sparseae examples``), a README without relative links, and no setuptools deprecation."""
from __future__ import annotations

import email
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from sparseae.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "sparseae" / "examples"
#: What a build of the checkout must not see: git state, build outputs, caches, run folders.
_NOT_SOURCE_ANYWHERE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                              ".benchmarks", ".whl", ".gl", "*.tmp", "*.nbi", "*.nbc")
#: Output folders of the checkout's root only: ``sparseae/runs/`` is a package of the same name.
_NOT_SOURCE_AT_ROOT = {"runs", "site"}


def _not_source(folder: str, names: list[str]) -> set[str]:
    """``shutil.copytree``'s ignore: build and run outputs, never the package's own ``runs``."""
    ignored = set(_NOT_SOURCE_ANYWHERE(folder, names))
    if Path(folder).resolve() == ROOT.resolve():
        ignored |= _NOT_SOURCE_AT_ROOT & set(names)
    return ignored


def _setuptools_version() -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", importlib.metadata.version("setuptools"))[:2])


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(wheel, sdist, build output) built from a copy of the checkout, without build isolation."""
    for module in ("build", "twine"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    if _setuptools_version() < (77,):
        pytest.skip("the build needs setuptools >= 77 installed (--no-isolation uses the installed one)")
    work = tmp_path_factory.mktemp("packaging")
    source, out = work / "source", work / "dist"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_not_source)
    completed = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), "."],
                               cwd=source, capture_output=True, text=True, timeout=300)
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log[-4000:]
    (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
    return wheel, sdist, log


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(archive.read(name))


def test_twine_check_passes_on_the_wheel_and_the_sdist(dists):
    wheel, sdist, _ = dists
    completed = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.count("PASSED") == 2, completed.stdout


def test_the_build_prints_no_setuptools_deprecation(dists):
    log = dists[2]
    assert "as a TOML table is deprecated" not in log
    assert not re.search(r"SetuptoolsDeprecationWarning|is deprecated", log), \
        [line for line in log.splitlines() if "deprecat" in line.lower()]


def test_the_metadata_has_an_spdx_license_classifiers_and_keywords(dists):
    meta = _metadata(dists[0])
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers and "Programming Language :: Python :: 3" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")], "the SPDX expression replaces them"
    assert "sparse autoencoder" in meta["Keywords"]
    # no Project-URL yet: the project has no public repository or documentation host to name
    assert meta.get_all("Project-URL") is None
    extras = " ".join(meta.get_all("Requires-Dist"))
    for needed in ("pandas", "build", "twine"):
        assert re.search(rf"\b{needed}\b[^;]*; extra == \"test\"", extras), needed


def test_the_wheel_ships_py_typed_the_license_and_the_examples_and_no_tests(dists):
    with zipfile.ZipFile(dists[0]) as archive:
        names = archive.namelist()
        assert "sparseae/py.typed" in names
        licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert licenses and b"MIT License" in archive.read(licenses[0])
        for example in sorted(EXAMPLES.iterdir()):
            if example.is_file():
                assert archive.read(f"sparseae/examples/{example.name}") == example.read_bytes(), example.name
    packages = sorted(str(p.relative_to(ROOT).as_posix()) for p in (ROOT / "sparseae").rglob("__init__.py")
                      if "__pycache__" not in p.parts)
    assert [p for p in packages if p not in names] == [], "subpackages missing from the wheel"
    assert not [n for n in names if n.split("/")[0] in ("tests", "benchmarks", "docs", "examples")]
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".nbi", ".nbc"))]


def test_the_readme_has_no_relative_links_and_the_files_it_names_are_in_the_sdist(dists):
    """PyPI shows the README with no files around it: every link is absolute, and each file the
    README names is one of the source distribution's."""
    description = _metadata(dists[0]).get_payload(decode=True).decode("utf-8")
    assert description.strip() == (ROOT / "README.md").read_text(encoding="utf-8").strip()
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)", description)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", description, re.MULTILINE)
    targets += re.findall(r"""<(?:img|a)\b[^>]*\b(?:src|href)=["']([^"']+)""", description)
    relative = [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*://|#|mailto:", t)]
    assert not relative, f"README links that break on PyPI: {relative}"
    with tarfile.open(dists[1]) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    named = set(re.findall(r"(?<![\w/.-])((?:examples|benchmarks|docs)/[\w./-]*\w|[A-Z]+\.md)\b", description))
    named = {name for name in named if (ROOT / name).is_file()}
    assert {"BENCHMARKS.md", "CHANGELOG.md", "examples/ufldl_patches.yaml"} <= named
    assert named <= members, sorted(named - members)
    assert {"LICENSE", "CHANGELOG.md", "docs/index.md", "sparseae/py.typed"} <= members


def test_the_examples_come_with_an_installed_wheel(dists, tmp_path):
    """Installed from the wheel (not this checkout), ``sparseae examples --copy .`` writes the
    configs the docs cite into ./examples/, and they are those of the repository."""
    target = tmp_path / "site"
    completed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                                "--target", str(target), str(dists[0])], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    work = tmp_path / "work"
    work.mkdir()
    script = ("import sys, sparseae; from sparseae.cli import main; print(sparseae.__file__); "
              "sys.exit(main(['examples', '--copy', '.', '--json']))")
    completed = subprocess.run([sys.executable, "-c", script], cwd=work, env={**os.environ, "PYTHONPATH": str(target)},
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    origin, report = completed.stdout.split("\n", 1)
    assert Path(origin).is_relative_to(target), origin
    assert sorted(json.loads(report)["written"]) == sorted(p.name for p in EXAMPLES.iterdir() if p.is_file())
    for example in EXAMPLES.iterdir():
        if example.is_file():
            assert (work / "examples" / example.name).read_bytes() == example.read_bytes()


# --------------------------------------------------------- without a build: the checkout itself

def test_every_example_the_docs_cite_is_shipped_in_the_package():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    cited = {name for page in pages
             for name in re.findall(r"examples/([\w.-]+\.(?:yaml|toml|py))", page.read_text(encoding="utf-8"))}
    assert {"ufldl_patches.yaml", "cae_mnist.yaml", "minilm_sae.py"} <= cited
    missing = sorted(name for name in cited if not (EXAMPLES / name).is_file())
    assert not missing, f"the docs cite examples the package does not ship: {missing}"
    assert (ROOT / "examples").resolve() == EXAMPLES.resolve(), "examples/ is the link to sparseae/examples/"


def test_sparseae_examples_lists_prints_and_copies(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["examples", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["examples"]
    assert sorted(listed) == sorted(p.name for p in EXAMPLES.iterdir() if p.is_file())
    assert main(["examples", "ufldl_patches"]) == 0
    assert capsys.readouterr().out == (EXAMPLES / "ufldl_patches.yaml").read_text(encoding="utf-8")

    assert main(["examples", "cae_mnist.yaml", "--copy", "here", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == ["cae_mnist.yaml"]
    assert sorted(p.name for p in (tmp_path / "here" / "examples").iterdir()) == ["cae_mnist.yaml"]
    assert main(["examples", "--copy", "here", "--json"]) == 0  # the same file again: left as it is
    report = json.loads(capsys.readouterr().out)
    assert report["unchanged"] == ["cae_mnist.yaml"] and "cae_mnist.yaml" not in report["written"]
    assert (tmp_path / "here" / "examples" / "ufldl_patches.yaml").read_bytes() == \
        (EXAMPLES / "ufldl_patches.yaml").read_bytes()


def test_sparseae_examples_refuses_to_replace_a_different_file_and_unknown_names(tmp_path, capsys):
    folder = tmp_path / "examples"
    folder.mkdir()
    (folder / "drsae_mnist.yaml").write_text("model: {name: mine}\n")
    assert main(["examples", "--copy", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already has a different drsae_mnist.yaml" in err
    assert [p.name for p in folder.iterdir()] == ["drsae_mnist.yaml"], "nothing was written"
    assert (folder / "drsae_mnist.yaml").read_text() == "model: {name: mine}\n"
    assert main(["examples", "nope"]) == 2
    assert "unknown example 'nope'; known: cae_mnist.yaml" in capsys.readouterr().err


def test_the_install_line_and_ci_use_the_configured_index():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in ('pip install torch==2.13.0 && pip install -e . && sparseae demo',
                    'pip install torch==2.13.0 && pip install -e ".[test]" && python -m pytest'):
        assert command in readme
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert not re.search(r"index-url|find-links|https?://", ci), "CI relies on the configured package index"

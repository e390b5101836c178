"""A battery of bad inputs and faults a careless or hostile user can cause (issue 21): each is an
exception of :mod:`sparseae.errors` in the library and, at the command line, one line
``sparseae: error: ...`` on stderr with exit status 2 — never a traceback, never a hang, and a
command that fails changes no run folder.

The first tests are the cases the battery found broken (each named after what it feeds in); the
parametrized sweeps at the end keep the cases that already held from coming undone. Everything
runs in-process through :func:`sparseae.cli.main`, on one tiny run trained once for the module.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sparseae import cli
from sparseae.cli import main
from sparseae.config import load_config, read_config_file
from sparseae.data import load_array, load_dataset, load_mnist
from sparseae.errors import CheckpointError, ConfigError, DataError, OutputExistsError, SparseAEError
from sparseae.io import load_model
from sparseae.models import create_model
from sparseae.train import TrainConfig
from sparseae.validation import as_float_array

from cli_checks import assert_one_line_error, run_cli

TINY = ["--set", "model.n_components=8", "--set", "train.max_epochs=1", "--set", "output.plots=false",
        "--set", "train.device=cpu", "--quiet"]
GOOD_CONFIG = {"model": {"name": "sparse_ae_l1", "n_components": 4}, "data": {"name": "digits"},
               "train": {"max_epochs": 1, "device": "cpu"}, "output": {"plots": False}}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the lock a writer holds for an instant), by relative path."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != ".sparseae.lock"}


def huge_npy_bytes() -> bytes:
    """A .npy whose header announces 4e16 bytes of float32 data and holds 64."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 100000), }"
    header = header + " " * (118 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 64


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """``run/``: a 1-epoch sparse_ae_l1 run on digits; ``data/``: good and bad array files."""
    root = tmp_path_factory.mktemp("battery")
    assert main(["train", "--model", "sparse_ae_l1", "--data", "digits", *TINY, "--out", str(root / "run")]) == 0
    data = root / "data"
    data.mkdir()
    X = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    np.save(data / "good.npy", X)
    np.save(data / "dates.npy", np.zeros((4, 2), dtype="datetime64[s]"))
    np.save(data / "durations.npy", np.zeros((4, 2), dtype="timedelta64[s]"))
    (data / "huge.npy").write_bytes(huge_npy_bytes())
    with zipfile.ZipFile(data / "huge.npz", "w") as archive:
        archive.writestr("X.npy", huge_npy_bytes())
    (data / "truncated.npy").write_bytes((data / "good.npy").read_bytes()[:200])
    nan = X.copy()
    nan[3, 2] = np.nan
    np.save(data / "nan.npy", nan)
    np.save(data / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(data / "three_d.npy", X.reshape(40, 2, 3))
    np.save(data / "one_d.npy", X[:, 0])
    np.save(data / "empty.npy", np.zeros((0, 6), np.float32))
    np.save(data / "complex.npy", X.astype(np.complex64))
    np.savez(data / "xy.npz", X=X, y=np.arange(40) % 3)
    np.savez(data / "empty.npz")
    (data / "ragged.csv").write_text("1,2,3\n4,5\n")
    (data / "empty.csv").write_text("")
    (data / "binary.npy").write_bytes(os.urandom(300))
    (data / "dir.npy").mkdir()
    os.symlink(data / "loop2.npy", data / "loop.npy")
    os.symlink(data / "loop.npy", data / "loop2.npy")
    os.mkfifo(data / "fifo.npy")
    return root


def array_train(root: Path, out: str, *sets: str, model: str = "sparse_ae_l1") -> list[str]:
    argv = ["train", "--model", model, "--data", "array", *TINY, "--out", str(root / "out" / out)]
    for assignment in sets:
        argv += ["--set", assignment]
    return argv


def write_config(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


# --- found broken by the battery, now refused in one line ----------------------------------------

@pytest.mark.parametrize("name", ["dates.npy", "durations.npy"])
def test_dates_and_durations_are_not_numbers(root, capsys, name):
    with pytest.raises(DataError, match="dates or durations"):
        as_float_array(np.load(root / "data" / name))
    assert_one_line_error(*run_cli(capsys, *array_train(root, name, f"data.path={root / 'data' / name}")),
                          "dates or durations")


@pytest.mark.parametrize("value", ["", "3", "[a, b]", "{a: 1}"], ids=["null", "int", "list", "mapping"])
@pytest.mark.parametrize("dataset", ["array", "shards", "mnist"])
def test_a_data_path_that_is_not_a_path(root, capsys, dataset, value):
    argv = ["train", "--model", "sparse_ae_l1", "--data", dataset, *TINY, "--out", str(root / "out" / "p"),
            "--set", f"data.path={value}"]
    status, err = run_cli(capsys, *argv)
    if dataset == "mnist" and value == "":  # path: null is "look in the usual places"
        assert_one_line_error(status, err, "mnist")
    else:
        assert_one_line_error(status, err, "path must be a file or folder path")


@pytest.mark.parametrize("assignment, words", [
    ("data.cache_dir=3", "cache_dir must be"), ("data.download=maybe", "download must be true or false")])
def test_mnist_options_of_the_wrong_type(root, capsys, assignment, words):
    status, err = run_cli(capsys, "train", "--model", "sparse_ae_l1", "--data", "mnist", *TINY,
                          "--out", root / "out" / "mnist", "--set", assignment)
    assert_one_line_error(status, err, words)  # and no download was tried for "maybe"
    with pytest.raises(ConfigError):
        load_mnist(None, download="yes")


def test_a_header_announcing_more_data_than_the_file_holds(root, capsys):
    """Refused from the header, before NumPy allocates petabytes (it raised MemoryError)."""
    data = root / "data"
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_array(data / "huge.npy", mmap=False)
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_array(data / "huge.npz")
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_array(data / "truncated.npy", mmap=False)
    assert load_array(data / "good.npy", mmap=False).shape == (40, 6)
    assert load_array(data / "xy.npz", key="X").shape == (40, 6)
    assert_one_line_error(*run_cli(capsys, *array_train(root, "huge", f"data.path={data / 'huge.npz'}")),
                          "truncated or corrupt")


def test_query_input_with_a_lying_header(root, capsys, tmp_path):
    assert main(["train", "--model", "semantic_hashing", "--data", "digits", "--set", "model.hidden=[16]", *TINY,
                 "--out", str(tmp_path / "hash")]) == 0
    assert main(["index", str(tmp_path / "hash"), "--out", str(tmp_path / "index"), "--quiet"]) == 0
    for name in ("huge.npy", "huge.npz"):
        status, err = run_cli(capsys, "query", tmp_path / "index", "--input", root / "data" / name, "--quiet")
        assert_one_line_error(status, err, "truncated or corrupt")
    assert_one_line_error(*run_cli(capsys, "query", tmp_path / "index", "--data", "digits", "--rows", "0",
                                   "--show", "-1", "--quiet"), "--show")


@pytest.mark.parametrize("suffix, text", [
    (".json", "[" * 100_000 + "]" * 100_000),
    (".toml", "a = " + "[" * 5_000 + "]" * 5_000 + "\n"),
    (".yaml", "a: " + "[" * 800 + "]" * 800 + "\n"),
], ids=["json", "toml", "yaml"])
def test_a_config_nested_too_deeply(tmp_path, capsys, suffix, text):
    path = write_config(tmp_path, "deep" + suffix, text)
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_config_file(path)
    assert_one_line_error(*run_cli(capsys, "train", path, "--out", tmp_path / "run", "--quiet"), "nested too deeply")


@pytest.mark.parametrize("text, words", [
    ("model:\n  name: sparse_ae_l1\n  1: 2\ndata: {name: digits}\n", "key 1"),
    ("model:\n  name: sparse_ae_l1\n  ~: 2\ndata: {name: digits}\n", "key None"),
    ("model: {name: sparse_ae_l1}\ndata: {name: digits, test: {1: 2}}\n", "data.test"),
    ("model: {name: deep_autoencoder}\ndata: {name: digits}\npretrain: {layer_params: {2: 3}}\n", "layer_params"),
], ids=["int-key", "null-key", "test-key", "layer-params-key"])
def test_config_keys_that_are_not_names(tmp_path, capsys, text, words):
    path = write_config(tmp_path, "keys.yaml", text)
    assert_one_line_error(*run_cli(capsys, "train", path, "--out", tmp_path / "run", "--quiet"), words)
    with pytest.raises(ConfigError, match="not a name"):
        load_config(base={"model": {"name": "linear_ae", 3: 4}, "data": {"name": "digits"}})


@pytest.mark.parametrize("name, text", [
    ("twice.yaml", yaml.safe_dump(GOOD_CONFIG) + "model:\n  name: linear_ae\n"),
    ("twice.json", '{"model": {"name": "linear_ae"}, "model": {"name": "sparse_ae_l1"}, "data": {"name": "digits"}}'),
])
def test_a_key_given_twice_is_not_silently_dropped(tmp_path, capsys, name, text):
    path = write_config(tmp_path, name, text)
    assert_one_line_error(*run_cli(capsys, "train", path, "--out", tmp_path / "run", "--quiet"), "twice")
    assert not (tmp_path / "run").exists()
    merged = ("model: {name: sparse_ae_l1, n_components: 4}\ndata: {name: digits}\n"  # merge keys stay allowed
              "train: {<<: {max_epochs: 3, device: cpu}, max_epochs: 1}\n")
    assert load_config(write_config(tmp_path, "merge.yaml", merged)).train["max_epochs"] == 1


@pytest.mark.parametrize("n_components", [2**40, 2**62])
def test_a_model_too_large_for_memory(tmp_path, capsys, n_components):
    status, err = run_cli(capsys, "train", "--model", "sparse_ae_l1", "--data", "digits", *TINY,
                          "--out", tmp_path / "run", "--set", f"model.n_components={n_components}")
    assert_one_line_error(status, err, "n_components")
    with pytest.raises(ConfigError):
        create_model("sparse_ae_l1", n_components, n_components)


@pytest.mark.parametrize("assignment, words", [
    ("train.random_state=99999999999999999999", "random_state must be <="),
    ("train.amp=on_cpu", "amp must be true or false"),
    ("train.shuffle=maybe", "shuffle must be true or false"),
    ("train.progress=2", "progress must be true or false"),
    ("data.classes=[[1]]", "flat list"),
    ("data.classes=[[1], 2]", "flat list"),
])
def test_train_and_data_options_of_the_wrong_type(tmp_path, capsys, assignment, words):
    path = write_config(tmp_path, "good.yaml", yaml.safe_dump(GOOD_CONFIG))
    status, err = run_cli(capsys, "train", path, "--out", tmp_path / "run", "--quiet", "--set", assignment)
    assert_one_line_error(status, err, words)
    assert not (tmp_path / "run").exists()


def test_an_unknown_compile_backend_is_refused_when_training_starts():
    config = TrainConfig(compile="no_such_backend").validate()  # reading a config checks no fact of torch
    with pytest.raises(ConfigError, match="no torch.compile backend"):
        config.training_device()


@pytest.mark.parametrize("assignment, words", [
    ("data.random_state=x", "random_state must be an integer"),
    ("data.random_state=-1", "random_state must be >= 0"),
    ("data.random_state=1.5", "random_state must be an integer"),
    ("data.ufldl_normalize=maybe", "ufldl_normalize must be true or false"),
    ("data.n_patches=1000000000000000", "do not fit in memory"),
])
def test_patches_options(tmp_path, capsys, assignment, words):
    status, err = run_cli(capsys, "train", "--model", "sparse_ae_l1", "--data", "patches", *TINY,
                          "--out", tmp_path / "run", "--set", "data.n_patches=50", "--set", assignment)
    assert_one_line_error(status, err, words)


def test_demo_with_a_patch_size_that_is_not_a_number(tmp_path, capsys):
    status, err = run_cli(capsys, "demo", "--quick", "--out", tmp_path / "demo", "--set", "data.patch_size=abc",
                          "--quiet")
    assert_one_line_error(status, err, "patch_size")
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("argv, words", [
    (["probe", "{run}", "--seed", "-1"], "--seed"),
    (["probe", "{run}", "--seed", str(2**70)], "--seed"),
    (["gradcheck", "--seed", "-1"], "--seed"),
    (["gradcheck", "--seed", str(2**70)], "--seed"),
    (["gradcheck", "--samples", "100000000", "--n-features", "100000"], "do not fit in memory"),
    (["gradcheck", "--n-features", str(2**62)], "do not fit in memory"),
])
def test_command_options_out_of_range(root, capsys, argv, words):
    argv = [arg.replace("{run}", str(root / "run")) for arg in argv]
    assert_one_line_error(*run_cli(capsys, *argv, "--quiet"), words)


@pytest.mark.parametrize("record", ["[1, 2]", "3", '"text"', "null"])
def test_metrics_records_that_are_not_objects(root, tmp_path, capsys, record):
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    (run / "metrics.jsonl").write_text(record + "\n")
    status, err = run_cli(capsys, "plot", run, "--out", tmp_path / "pictures")
    assert_one_line_error(status, err, "metrics.jsonl is corrupt")
    status, err = run_cli(capsys, "report", run, "--out", tmp_path / "page.html", "--quiet")
    assert status == 0 and "Traceback" not in err, err  # the page says the history is corrupt
    assert "metrics.jsonl is corrupt" in (tmp_path / "page.html").read_text()


def test_report_never_replaces_a_file_that_is_not_a_report(root, tmp_path, capsys):
    data = tmp_path / "data.npy"
    np.save(data, np.arange(5))
    before = data.read_bytes()
    assert_one_line_error(*run_cli(capsys, "report", root / "run", "--out", data, "--quiet"),
                          "not a sparseae report")
    assert data.read_bytes() == before
    fifo = tmp_path / "pipe.html"  # not a regular file (as a device): refused without opening it
    os.mkfifo(fifo)
    assert_one_line_error(*run_cli(capsys, "report", root / "run", "--out", fifo, "--quiet"), "not a regular file")
    assert not fifo.is_file()
    page = tmp_path / "page.html"  # an earlier report is replaced, as always
    assert run_cli(capsys, "report", root / "run", "--out", page, "--quiet")[0] == 0
    page.write_text(page.read_text().replace("</body>", "<!-- old --></body>"))
    assert run_cli(capsys, "report", root / "run", "--out", page, "--quiet")[0] == 0
    assert "<!-- old -->" not in page.read_text()


def test_ctrl_c_while_the_modules_load_is_one_line_and_130(monkeypatch, capsys):
    def interrupted(argv=None):
        raise KeyboardInterrupt  # as when Ctrl-C falls in build_parser's imports, outside main's try

    monkeypatch.setattr(cli, "main", interrupted)
    monkeypatch.setattr(sys, "argv", ["sparseae", "train"])
    with pytest.raises(SystemExit) as stopped:
        cli.run()
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert err.strip() == "sparseae: error: interrupted", err


def test_library_inputs_of_the_wrong_kind():
    with pytest.raises(ConfigError, match="unknown model"):
        create_model(["sparse_ae_l1"], 6, 4)
    with pytest.raises(DataError, match="sparse tensor"):
        as_float_array(torch.eye(3).to_sparse())
    with pytest.raises(ConfigError, match="path must be"):
        load_array(None)
    with pytest.raises(ConfigError, match="path must be"):
        load_dataset("shards", path=None)
    with pytest.raises(ConfigError, match="random_state must be <="):
        TrainConfig(random_state=2**64).validate()


def test_load_model_on_a_device_this_machine_lacks(root):
    with pytest.raises(ConfigError, match="map_location"):
        load_model(root / "run" / "model", map_location="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            load_model(root / "run" / "model", map_location="cuda")


# --- the sweep: cases that held before the battery, kept holding ---------------------------------

DATA_FILES = ["nan.npy", "strings.npy", "three_d.npy", "one_d.npy", "empty.npy", "complex.npy", "empty.npz",
              "ragged.csv", "empty.csv", "binary.npy", "dir.npy", "loop.npy", "fifo.npy", "truncated.npy",
              "missing.npy"]


@pytest.mark.parametrize("name", DATA_FILES)
def test_sweep_bad_data_files(root, capsys, name):
    """No hang on a FIFO, no traceback on a symlink loop: one line each."""
    assert_one_line_error(*run_cli(capsys, *array_train(root, name, f"data.path={root / 'data' / name}")))


CONFIG_FILES = {
    "invalid.yaml": "model: [\n", "invalid.toml": "[model\nname=", "invalid.json": "{model:",
    "python-tag.yaml": "!!python/object/apply:os.system ['echo pwned']\n", "list.yaml": "- a\n- b\n",
    "scalar.yaml": "42\n", "empty.yaml": "", "section-list.yaml": "model: [a, b]\ndata: {name: digits}\n",
    "unknown-section.yaml": yaml.safe_dump({**GOOD_CONFIG, "extra": {"a": 1}}),
    "utf16.yaml": yaml.safe_dump(GOOD_CONFIG).encode("utf-16"), "binary.yaml": bytes(range(256)),
    "config.txt": yaml.safe_dump(GOOD_CONFIG), "nan.json": '{"model": {"name": "sparse_ae_l1", "n_components": NaN}}',
    "date.toml": "[model]\nname='sparse_ae_l1'\n[data]\nname='digits'\n[train]\nrandom_state=2024-01-01\n",
}


@pytest.mark.parametrize("name", list(CONFIG_FILES) + ["missing.yaml", "folder.yaml"])
def test_sweep_bad_config_files(tmp_path, capsys, name):
    if name == "folder.yaml":
        (tmp_path / name).mkdir()
    elif name in CONFIG_FILES:
        write_config(tmp_path, name, CONFIG_FILES[name])
    assert_one_line_error(*run_cli(capsys, "train", tmp_path / name, "--out", tmp_path / "run", "--quiet"))
    assert not (tmp_path / "run").exists()


SETS = [
    "model.n_components=abc", "model.n_components=0", "model.n_components=-1", "model.n_components=1.5",
    "model.n_components=true", "model.n_components=null", "model.name=nope", "model.name=3",
    "model.sparsity_weight=-1", "model.sparsity_weight=nan", "model.sparsity_weight=.inf", "model.activation=foo",
    "model.bogus=1", "train.batch_size=0", "train.batch_size=x", "train.batch_size=true",
    "train.learning_rate=.nan", "train.learning_rate=.inf", "train.learning_rate=-1", "train.learning_rate=0",
    "train.learning_rate=fast", "train.max_epochs=0", "train.max_epochs=1.5", "train.lbfgs_max_iter=0",
    "train.validation_fraction=1", "train.n_iter_no_change=0", "train.tol=-1", "train.monitor=3",
    "train.lr_decay=0", "train.random_state=x", "train.random_state=-1", "train.device=gpu",
    "train.device=cuda:x", "train.dtype=float8", "train.grad_clip=0", "train.optimizer=LBFGS",
    "train.momentum=2", "train.max_iter=3", "train.max_epochs.x=1", "data.classes=[99]", "data.classes=[]",
    "data.classes=3", "data.normalize=foo", "data.test=x", "data.test={name: nope}", "data.test.split=test",
    "data.bogus=1", "output.dir=3", "output.plots=maybe", "output.bogus=1", "pretrain.max_epochs=1",
    "pretrain.layer_params=3", "foo", "=", "train.=3", ".x=1", "train.max_epochs", "nosuch.key=1", "model=3",
    "train..max_epochs=3", "train.max_epochs=[", "train.max_epochs=!!python/object:os.system {}",
    "model.n_components=" + "[" * 3000 + "]" * 3000,
]


@pytest.mark.parametrize("assignment", SETS, ids=[s[:40] for s in SETS])
def test_sweep_bad_settings_leave_the_run_as_it_was(root, capsys, assignment):
    """Even with --overwrite, a bad setting is refused before the finished run is touched."""
    before = snapshot(root / "run")
    status, err = run_cli(capsys, "train", "--model", "sparse_ae_l1", "--data", "digits", *TINY,
                          "--out", root / "run", "--overwrite", "--set", assignment)
    assert_one_line_error(status, err)
    assert snapshot(root / "run") == before


def _corrupt(run: Path, how: str) -> None:
    if how == "config-binary":
        (run / "config.yaml").write_bytes(bytes(range(256)))
    elif how == "config-truncated":
        text = (run / "config.yaml").read_text()
        (run / "config.yaml").write_text(text[: len(text) // 2] + "\n- [cut off")
    elif how == "config-list":
        (run / "config.yaml").write_text("[1, 2]\n")
    elif how == "config-folder":
        (run / "config.yaml").unlink()
        (run / "config.yaml").mkdir()
    elif how == "no-model":
        shutil.rmtree(run / "model")
        shutil.rmtree(run / "checkpoint")
    elif how == "weights-missing":
        (run / "model" / "model.safetensors").unlink()
    elif how == "model-config-list":
        (run / "model" / "config.json").write_text("[1]")
    elif how == "model-unknown":
        config = json.loads((run / "model" / "config.json").read_text())
        (run / "model" / "config.json").write_text(json.dumps({**config, "model": "nope"}))


CORRUPTIONS = ["config-binary", "config-truncated", "config-list", "config-folder", "no-model",
               "weights-missing", "model-config-list", "model-unknown"]


@pytest.mark.parametrize("how", CORRUPTIONS)
@pytest.mark.parametrize("command", ["evaluate", "plot", "probe", "index"])
def test_sweep_commands_on_a_damaged_run(root, tmp_path, capsys, how, command):
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    _corrupt(run, how)
    before = snapshot(run)
    extra = {"plot": ["--out", tmp_path / "pictures"], "index": ["--out", tmp_path / "index"]}.get(command, [])
    assert_one_line_error(*run_cli(capsys, command, run, *extra, "--quiet"))
    assert snapshot(run) == before


@pytest.mark.parametrize("target", ["empty", "file", "missing"])
@pytest.mark.parametrize("command", ["evaluate", "plot", "probe", "report", "index", "query", "resume"])
def test_sweep_commands_on_what_is_not_a_run(root, tmp_path, capsys, target, command):
    path = {"empty": tmp_path / "empty", "file": root / "data" / "good.npy", "missing": tmp_path / "nope"}[target]
    if target == "empty":
        path.mkdir()
    argv = {"plot": ["plot", path, "--out", tmp_path / "p"], "index": ["index", path, "--out", tmp_path / "i"],
            "query": ["query", path, "--data", "digits", "--rows", "0"],
            "resume": ["train", "--resume", "--out", path]}.get(command, [command, path])
    assert_one_line_error(*run_cli(capsys, *argv, "--quiet"))


@pytest.mark.parametrize("argv", [
    ["gradcheck", "--n-features", "0"], ["gradcheck", "--samples", "0"], ["gradcheck", "--epsilon", "nan"],
    ["gradcheck", "--tolerance", "nan"], ["gradcheck", "--model", "nope"], ["gradcheck", "--set", "train.x=1"],
    ["gradcheck", "--model", "conv_sae", "--set", "model.image_shape=[5,5]"],
    ["gradcheck", "--model", "autoencoder", "--set", "model.sparsity=group", "--set", "model.groups=abc"],
    ["gradcheck", "--model", "topk_sae", "--set", "model.k=100"],
    ["gradcheck", "--model", "denoising_ae", "--set", "model.corruption=masking:x"],
    ["gradcheck", "--model", "deep_autoencoder", "--set", "model.hidden=[a]"],
    ["probe", "{run}", "--test-fraction", "1"], ["probe", "{run}", "--C", "0"],
    ["evaluate", "{run}", "--set", "data.split=test"], ["evaluate", "{run}", "--device", "gpu"],
    ["evaluate", "{run}", "--data", "array", "--set", "data.path={data}/good.npy"],
    ["plot", "{run}", "--out", "{data}/good.npy/pictures"],
    ["train", "--model", "linear_ae", "--data", "digits", "--out", "{data}/good.npy/run"],
    ["train", "--model", "linear_ae", "--data", "digits", "--out", "{data}/good.npy"],
    ["train", "--resume", "--overwrite", "--out", "{run}"],
    ["train", "--resume", "--out", "{run}", "--model", "linear_ae", "--data", "digits"],
    ["report", "{run}", "{data}/good.npy"], ["report", "{run}", "--device", "gpu"],
], ids=lambda argv: " ".join(argv)[:60])
def test_sweep_command_options(root, capsys, argv):
    before = snapshot(root / "run")
    argv = [arg.replace("{run}", str(root / "run")).replace("{data}", str(root / "data")) for arg in argv]
    assert_one_line_error(*run_cli(capsys, *argv, "--quiet"))
    assert snapshot(root / "run") == before


def test_sweep_every_error_is_ours():
    """The library's errors keep the built-in bases scripts catch."""
    for error in (ConfigError, DataError, CheckpointError, OutputExistsError):
        assert issubclass(error, SparseAEError)
    assert issubclass(ConfigError, ValueError) and issubclass(OutputExistsError, FileExistsError)

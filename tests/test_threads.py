"""CPU threads: the cores this process really has, the size rule of ``"auto"``, ``--threads`` on
the commands, ``train.threads`` in a run config (issue 22)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from sparseae import threads as th
from sparseae.cli import main
from sparseae.config import load_config
from sparseae.errors import ConfigError
from sparseae.gradcheck import check_gradients
from sparseae.models import create_model
from sparseae.train import TrainConfig, train
from sparseae.train.trainer import Callback


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def no_omp_limit(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def fake_cgroup(tmp_path, proc_line: str, files: dict[str, str]):
    """A cgroup tree under tmp_path/cgroup with ``files`` (relative path → text) and a
    /proc/self/cgroup holding ``proc_line``; returns (root, proc file)."""
    root = tmp_path / "cgroup"
    root.mkdir()
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = tmp_path / "proc_cgroup"
    proc.write_text(proc_line)
    return root, proc


# ------------------------------------------------------------------------------- the cores

def test_cgroup_v2_quota_caps_the_affinity_rounded_down(tmp_path, no_omp_limit):
    root, proc = fake_cgroup(tmp_path, "0::/job/step\n", {"job/cpu.max": "250000 100000\n",
                                                          "job/step/cpu.max": "max 100000\n"})
    assert th.cgroup_cpu_limit(root, proc) == pytest.approx(2.5)  # the parent's quota applies to the child
    assert th.available_cores(affinity=range(8), root=root, proc_cgroup=proc) == 2
    assert th.available_cores(affinity={5}, root=root, proc_cgroup=proc) == 1  # affinity is smaller
    (root / "job" / "cpu.max").write_text("50000 100000\n")  # half a core: still one thread
    assert th.available_cores(affinity=range(8), root=root, proc_cgroup=proc) == 1


def test_cgroup_v2_without_a_quota_leaves_the_affinity(tmp_path, no_omp_limit):
    root, proc = fake_cgroup(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert th.cgroup_cpu_limit(root, proc) is None
    assert th.available_cores(affinity={0, 2, 4}, root=root, proc_cgroup=proc) == 3


def test_cgroup_v1_cfs_quota(tmp_path, no_omp_limit):
    files = {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
             "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
             "memory/docker/abc/memory.limit_in_bytes": "1000\n"}
    root, proc = fake_cgroup(tmp_path, "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n", files)
    assert th.cgroup_cpu_limit(root, proc) == pytest.approx(3.0)
    assert th.available_cores(affinity=range(16), root=root, proc_cgroup=proc) == 3
    (root / "cpu,cpuacct/docker/abc/cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert th.available_cores(affinity=range(16), root=root, proc_cgroup=proc) == 16


def test_no_cgroup_files_and_omp_num_threads(tmp_path, monkeypatch):
    missing = tmp_path / "nothing"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert th.cgroup_cpu_limit(missing, missing) is None
    assert th.available_cores(affinity=range(6), root=missing, proc_cgroup=missing) == 6
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # e.g. set by torchrun for its workers
    assert th.available_cores(affinity=range(6), root=missing, proc_cgroup=missing) == 2


def test_busy_cores_counts_other_processes_use_of_our_cpus(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    lines = lambda busy0, busy1, idle0, idle1: (  # noqa: E731 - user nice system idle iowait ...
        f"cpu  0 0 0 0 0 0 0 0\ncpu0 {busy0} 0 0 {idle0} 0 0 0 0\ncpu1 {busy1} 0 0 {idle1} 0 0 0 0\n"
        f"cpu2 {busy0} 0 0 {idle0} 0 0 0 0\nintr 1 2 3\n")
    stat.write_text(lines(100, 100, 1000, 1000))
    # during the interval cpu0 and cpu2 run flat out, cpu1 is idle
    real_sleep = th.time.sleep

    def interval(seconds):  # the interval passes (this process sleeping) while the counters move
        stat.write_text(lines(110, 100, 1000, 1010))
        real_sleep(seconds)

    monkeypatch.setattr(th.time, "sleep", interval)
    assert th.busy_cores({0, 1}, proc_stat=stat) == 1
    stat.write_text(lines(100, 100, 1000, 1000))
    assert th.busy_cores({1}, proc_stat=stat) == 0  # cpu0's load is not on our CPUs
    stat.write_text(lines(100, 100, 1000, 1000))
    assert th.busy_cores({0, 1, 2}, proc_stat=stat) == 2
    assert th.busy_cores({0, 1}, proc_stat=tmp_path / "absent") == 0


def test_busy_cores_on_this_machine_is_a_count_of_our_cpus():
    cpus = th._affinity()
    assert 0 <= th.busy_cores(interval=0.02) <= len(cpus)


# -------------------------------------------------------------------------------- the rule

def test_auto_is_one_thread_for_small_steps_and_all_free_cores_for_large(monkeypatch):
    monkeypatch.setattr(th, "busy_cores", lambda *a, **k: pytest.fail("not needed for one thread"))
    small = th.step_work(create_model("sparse_ae_kl", 64, 25), 10)  # the UFLDL gradient check's batch
    assert small < th.WORK_PER_THREAD
    assert th.auto_threads(small, cores=16) == 1
    assert th.auto_threads(0, cores=16) == 1
    monkeypatch.undo()
    assert th.auto_threads(10**12, cores=16, busy=0) == 16
    assert th.auto_threads(3 * th.WORK_PER_THREAD, cores=16, busy=0) == 3
    assert th.auto_threads(10**12, cores=16, busy=10) == 6  # the cores other processes hold are left out
    assert th.auto_threads(10**12, cores=2, busy=2) == 1
    assert th.auto_threads(None, cores=4, busy=1) == 3  # unknown work: taken as large


def test_auto_never_exceeds_the_available_cores(monkeypatch):
    cores = th.available_cores()
    for work in (None, 1, 10**7, 10**10, 10**15):
        assert 1 <= th.auto_threads(work) <= cores
        assert 1 <= th.resolve_threads("auto", work) <= cores
    monkeypatch.setattr(th, "available_cores", lambda **_: 3)
    monkeypatch.setattr(th, "busy_cores", lambda *a, **k: 0)
    assert th.auto_threads(10**15) == 3


def test_step_work_is_rows_times_parameters():
    model = create_model("sparse_ae_l1", 784, 256)
    n_parameters = sum(p.numel() for p in model.parameters())
    assert th.step_work(model, 10) == 10 * n_parameters
    assert th.step_work(model, 256) == 256 * n_parameters >= 256 * 2 * 784 * 256


@pytest.mark.parametrize("value", [0, -1, "x", 1.5, True, "", [2]])
def test_check_threads_refuses(value):
    with pytest.raises(ConfigError, match="threads"):
        th.check_threads(value)


def test_check_threads_accepts_and_set_threads_applies():
    assert th.check_threads("3") == 3 and th.check_threads(2) == 2
    assert th.check_threads("auto") == "auto" and th.check_threads(None) is None
    assert th.set_threads(1) == 1 and torch.get_num_threads() == 1
    assert th.set_threads(None) == 1  # None leaves the setting
    with th.using_threads(2) as n:
        assert n == 2 == torch.get_num_threads()
    assert torch.get_num_threads() == 1


# ------------------------------------------------------------------- train() and gradcheck

class ThreadProbe(Callback):
    def __init__(self):
        self.seen: set[int] = set()

    def on_step(self, step, model):
        self.seen.add(torch.get_num_threads())


def test_train_runs_on_train_threads_and_restores_the_setting(digits):
    X = digits[0][:300]
    torch.set_num_threads(1)
    for threads, expected in ((2, {2}), ("auto", {1}), (None, {1})):  # auto: a 64-16 model is small
        probe = ThreadProbe()
        train(create_model("sparse_ae_l1", 64, 16), X, TrainConfig(max_epochs=1, batch_size=100, device="cpu",
                                                                   threads=threads), callbacks=[probe])
        assert probe.seen == expected, threads
        assert torch.get_num_threads() == 1


@pytest.mark.parametrize("value", [0, -1, "x"])
def test_train_threads_in_a_config_is_validated(value):
    with pytest.raises(ConfigError, match="threads"):
        TrainConfig(threads=value).validate()
    with pytest.raises(ConfigError, match="threads"):
        load_config(model="sparse_ae_l1", data="digits", assignments=[f"train.threads={value}"])


def test_check_gradients_uses_its_threads(monkeypatch):
    seen = []
    real = th.using_threads

    def spy(threads, work=None):
        seen.append((threads, work))
        return real(threads, work)

    monkeypatch.setattr("sparseae.gradcheck.using_threads", spy)
    torch.set_num_threads(2)
    model = create_model("sparse_ae_kl", 8, 4)
    counts = []
    result = check_gradients(model, np.random.default_rng(0).uniform(0.1, 0.9, (5, 8)),
                             loss_fn=lambda m, x: (counts.append(torch.get_num_threads()), m.loss(x).loss)[1])
    assert result.passed and set(counts[1:]) == {1}  # auto: one thread for a tiny check (the first call is outside)
    assert seen == [("auto", th.step_work(model, 5))]
    assert torch.get_num_threads() == 2
    with pytest.raises(ConfigError, match="threads"):
        check_gradients(model, np.ones((2, 8)) * 0.5, threads=0)


# ------------------------------------------------------------------------------- the CLI

def record_threads(monkeypatch, target: str) -> list[int]:
    """Wrap ``target`` (module:attribute path) to note torch's thread count when it runs."""
    import importlib

    module_name, attribute = target.rsplit(".", 1)
    module = importlib.import_module(module_name)
    real, seen = getattr(module, attribute), []

    def wrapper(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, attribute, wrapper)
    return seen


def train_args(out, *extra):
    return ["train", "--model", "sparse_ae_l1", "--data", "digits", "--set", "model.n_components=8",
            "--set", "train.max_epochs=1", "--set", "output.plots=false", "--device", "cpu", "--out", str(out),
            "--quiet", *extra]


def test_threads_flag_sets_torchs_threads_for_train_and_is_recorded(tmp_path, monkeypatch):
    seen = record_threads(monkeypatch, "sparseae.train.trainer._minibatch_epoch")
    torch.set_num_threads(1)
    assert main(train_args(tmp_path / "two", "--threads", "2")) == 0
    assert seen == [2]  # an explicit count holds, though auto would take 1 for this small model
    assert torch.get_num_threads() == 1  # restored when the command ends
    recorded = yaml.safe_load((tmp_path / "two" / "config.yaml").read_text())
    assert recorded["train"]["threads"] == 2
    assert main(train_args(tmp_path / "auto")) == 0
    assert seen == [2, 1]
    assert yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())["train"]["threads"] == "auto"
    assert main(train_args(tmp_path / "set", "--set", "train.threads=2")) == 0
    assert seen == [2, 1, 2]


def test_threads_flag_for_gradcheck_and_evaluate(tmp_path, monkeypatch, capsys):
    seen = record_threads(monkeypatch, "sparseae.gradcheck.relative_difference")  # inside the check
    torch.set_num_threads(1)
    assert main(["gradcheck", "--n-features", "6", "--n-components", "3", "--threads", "2", "--quiet"]) == 0
    assert set(seen[:-1]) == {2}  # per parameter, inside the check (the last call sums them up after it)
    assert torch.get_num_threads() == 1
    assert main(train_args(tmp_path / "run")) == 0
    seen = record_threads(monkeypatch, "sparseae.runs.metrics.compute_metrics")
    assert main(["evaluate", str(tmp_path / "run"), "--threads", "2", "--quiet"]) == 0
    assert seen == [2]
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_bad_threads_is_one_line_and_exit_2(tmp_path, capsys, value):
    for argv in (["gradcheck", "--threads", value], train_args(tmp_path / "r", "--threads", value),
                 train_args(tmp_path / "r", "--set", f"train.threads={value}")):
        capsys.readouterr()
        status = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and err[0].startswith("sparseae: error: ") and "threads" in err[0]


def test_every_computing_command_takes_threads():
    import argparse

    from sparseae.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    computing = {"train", "evaluate", "plot", "probe", "report", "gradcheck", "demo", "index", "query"}
    with_threads = {name for name, parser in subparsers.choices.items()
                    if any("--threads" in action.option_strings for action in parser._actions)}
    assert computing <= with_threads

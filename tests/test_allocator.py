"""The allocator setting of the ``sparseae`` program: large freed blocks are reused, not unmapped."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import sparseae.allocator as allocator
from sparseae.allocator import keep_freed_memory

LINUX = sys.platform.startswith("linux")
#: Allocate, touch and free a 64 MiB tensor 20 times; print the minor page faults the last 10 took
#: (glibc settles its heap over the first few, measured 5).
FAULTS = """
import resource, sys, torch
import sparseae.allocator as a
kept = a.keep_freed_memory() if sys.argv[1] == "keep" else False
for step in range(20):
    if step == 10:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.empty(16 * 1024 * 1024).fill_(1.0)
    del block
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != allocator.ENV_SWITCH}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    kept, faults = done.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(not LINUX, reason="glibc's mallopt: Linux only")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    kept, with_setting = _faults("keep")
    if not kept:
        pytest.skip("this Linux's C library has no mallopt (not glibc)")
    _, without = _faults("plain")
    pages = 10 * 64 * 1024 * 1024 // 4096
    assert without > 0.8 * pages  # every allocation faulted its pages in again
    assert with_setting < 0.05 * pages  # the block was reused


def test_the_switch_and_the_users_own_settings_win(monkeypatch):
    monkeypatch.setenv(allocator.ENV_SWITCH, "0")
    assert keep_freed_memory() is False
    monkeypatch.delenv(allocator.ENV_SWITCH)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert keep_freed_memory() is False
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert keep_freed_memory() is False


def test_the_program_sets_it_before_running_a_command(monkeypatch, capsys):
    from sparseae import cli

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda *a, **k: calls.append(a) or True)
    monkeypatch.setattr(sys, "argv", ["sparseae", "models"])
    with pytest.raises(SystemExit) as exit_info:
        cli.run()
    assert exit_info.value.code in (0, None) and calls == [()]
    assert "sparse_ae_kl" in capsys.readouterr().out

"""Helpers the fault tests share: run the CLI in-process and check its one-line errors."""
from __future__ import annotations

from sparseae.cli import main


def run_cli(capsys, *argv) -> tuple[int, str]:
    """``sparseae ARGV`` in this process: (exit status, stderr)."""
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    return status, capsys.readouterr().err


def assert_one_line_error(status: int, err: str, *words: str) -> None:
    """Exit status 2 and one ``sparseae: error:`` line naming every word (case-insensitive), with no
    traceback and no NumPy/PyTorch warning beside it."""
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparseae: error: "), err
    assert "Traceback" not in err and "Warning" not in err, err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])

"""The worker's liveness file: touched each loop turn, judged by its age by `python -m worker.liveness`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from shared.config import PROJECT_ROOT
from worker.liveness import Liveness, check


def test_touch_creates_the_file_and_refreshes_its_time(tmp_path):
    path = tmp_path / "alive"
    Liveness(str(path)).touch()
    os.utime(path, (time.time() - 100, time.time() - 100))
    Liveness(str(path)).touch()
    assert time.time() - path.stat().st_mtime < 10


def test_an_empty_path_turns_the_signal_off_while_a_set_one_is_touched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Liveness("").touch()  # no file, no error
    assert os.listdir(tmp_path) == []
    Liveness("alive").touch()  # the same call with a path does write: the empty one is off, not broken
    assert os.listdir(tmp_path) == ["alive"]


def test_a_directory_that_cannot_be_written_warns_once_and_the_file_is_touched_once_it_can_be(tmp_path, caplog):
    path = tmp_path / "missing-dir" / "alive"
    liveness = Liveness(str(path))
    with caplog.at_level(logging.WARNING, logger="worker.liveness"):
        liveness.touch()
        liveness.touch()
    [warning] = caplog.records  # once, not every loop turn
    assert "cannot touch LIVENESS_FILE" in warning.getMessage()
    path.parent.mkdir()
    liveness.touch()
    os.utime(path, (time.time() - 100, time.time() - 100))
    liveness.touch()
    assert time.time() - path.stat().st_mtime < 10  # the mtime moved: the worker's signal recovered


def test_a_fresh_file_is_alive_an_old_one_is_stuck_and_a_missing_one_is_not_started(tmp_path):
    path = tmp_path / "alive"
    expected = f"{path} does not exist: the worker has not reached its loop (still loading the model?)"
    assert check(str(path), 60) == (False, expected)
    path.touch()
    now = path.stat().st_mtime
    assert check(str(path), 60, now=now + 5)[0] is True
    alive, reason = check(str(path), 60, now=now + 61)
    assert not alive and "last touched 61.0 s ago (limit 60 s)" in reason


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker.liveness", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PROJECT_ROOT, **env},
        timeout=60,
    )


def test_the_command_exits_0_while_fresh_and_1_once_older_than_the_limit(tmp_path):
    path = tmp_path / "alive"
    path.touch()
    assert _run({"LIVENESS_FILE": str(path)}).returncode == 0
    os.utime(path, (time.time() - 30, time.time() - 30))
    result = _run({"LIVENESS_FILE": str(path)}, "--max-age-s", "10")
    assert result.returncode == 1 and "the worker's loop is stuck" in result.stderr


def test_the_command_says_when_liveness_file_is_not_set():
    result = _run({"LIVENESS_FILE": ""})
    assert result.returncode == 2 and "LIVENESS_FILE is not set" in result.stderr

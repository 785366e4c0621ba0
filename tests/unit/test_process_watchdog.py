"""The granian watchdog's decisions (api/process_watchdog.py): kill a child whose heartbeat is too old, never
a process that is not its child, and forget the files of processes that are gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from api import process_watchdog
from api.process_watchdog import Verdict, Watchdog, judge


def children(*pids: int):
    return lambda pid: pid in pids


def test_a_child_whose_beat_is_older_than_the_timeout_is_killed_and_forgotten():
    assert judge({11: 100.0}, now=161.0, timeout_s=60, is_child=children(11)) == Verdict(kill=(11,), forget=(11,))


def test_a_child_that_beat_within_the_timeout_is_left_alone():
    assert judge({11: 100.0, 12: 159.0}, now=160.0, timeout_s=60, is_child=children(11, 12)) == Verdict((), ())


def test_a_process_that_is_not_a_child_is_never_killed_only_its_file_forgotten():
    assert judge({11: 0.0, 12: 0.0}, now=1000.0, timeout_s=60, is_child=children(12)) == Verdict(
        kill=(12,), forget=(11, 12)
    )


def test_is_child_knows_its_own_children_from_others():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_watchdog.is_child(child.pid)
        assert not process_watchdog.is_child(os.getpid())  # itself
        assert not process_watchdog.is_child(1)  # init, nobody's child here
    finally:
        child.kill()
        child.wait()
    assert not process_watchdog.is_child(child.pid)  # gone


def test_the_beat_interval_is_a_quarter_of_the_timeout_at_most_a_second():
    assert process_watchdog.beat_interval(60) == 1.0
    assert process_watchdog.beat_interval(2) == 0.5


def test_a_look_kills_a_stale_child_and_removes_its_file_and_those_of_the_gone(tmp_path):
    stale = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    fresh = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        now = time.monotonic()
        for pid, beat in ((stale.pid, now - 10), (fresh.pid, now), (1, now - 10), (999_999_999, now)):
            (tmp_path / str(pid)).touch()
            os.utime(tmp_path / str(pid), (beat, beat))
        verdict = Watchdog(str(tmp_path), 5).look()
        assert verdict.kill == (stale.pid,)
        assert stale.wait(timeout=10) == -9
        assert fresh.poll() is None
        assert sorted(os.listdir(tmp_path)) == [str(fresh.pid)]
    finally:
        for process in (stale, fresh):
            process.kill()
            process.wait()

"""Under granian, the guarantee gunicorn's master gives: an API process that stops beating is killed and replaced.

gunicorn's master SIGKILLs a worker whose main loop has not notified for `timeout` seconds. granian only
replaces workers that exit (`respawn_failed_workers`), so this module does the rest, the way gunicorn does it:

- each worker process, as soon as it starts (`load_app`, granian's target loader, before it builds the app
  from api.wsgi), runs a daemon thread that touches `<directory>/<pid>` every `beat_interval` seconds, setting its
  modification time to CLOCK_MONOTONIC (which every process on the machine shares; wall-clock jumps do not
  count);
- the serving process runs `Watchdog`, a thread that reads those times and SIGKILLs a process of its own
  (its parent id checked first) whose file is older than API_PROCESS_TIMEOUT_S; granian sees the exit and
  starts another in its place.

What stops the beats: a process that stops running Python (SIGSTOP, a call that holds the GIL and never
returns, a process starved of CPU for the whole timeout). What does not: a request thread deadlocked while
the process's other threads still run, exactly as for gunicorn's gthread heartbeat.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


def beat_interval(timeout_s: float) -> float:
    """Seconds between beats, and between the watchdog's looks: a quarter of the timeout, at most 1 s."""
    return min(1.0, timeout_s / 4)


def load_app(directory: str, interval_s: float) -> Callable[..., Any]:
    """granian's target loader in each worker process: start the heartbeat, then import the app."""
    threading.Thread(target=_beat, args=(os.path.join(directory, str(os.getpid())), interval_s), daemon=True).start()
    from api.wsgi import app

    return app


def _beat(path: str, interval_s: float) -> None:
    while True:
        now = time.monotonic()
        try:
            try:
                os.utime(path, (now, now))
            except FileNotFoundError:  # the first beat
                open(path, "w").close()
                os.utime(path, (now, now))
        except OSError:  # the directory went away: the serving process is exiting
            pass
        time.sleep(interval_s)


@dataclass(frozen=True)
class Verdict:
    """What one look at the heartbeats decides: processes to kill, and files to remove (after a kill, or of
    a process that is no longer a child: it exited and granian reaped it)."""

    kill: tuple[int, ...]
    forget: tuple[int, ...]


def judge(beats: Mapping[int, float], now: float, timeout_s: float, is_child: Callable[[int], bool]) -> Verdict:
    """The verdict on `beats` (process id → time of its last beat, on the monotonic clock) at `now`."""
    kill, forget = [], []
    for pid, beat in beats.items():
        if not is_child(pid):
            forget.append(pid)
        elif now - beat > timeout_s:
            kill.append(pid)
            forget.append(pid)
    return Verdict(tuple(kill), tuple(forget))


def is_child(pid: int) -> bool:
    """Whether `pid` is a process whose parent is this process (from /proc; False once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except (OSError, ValueError, IndexError):
        return False


class Watchdog:
    """The serving process's thread: kills a child whose heartbeat is older than `timeout_s`."""

    def __init__(self, directory: str, timeout_s: float) -> None:
        self.directory = directory
        self.timeout_s = timeout_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-process-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def look(self) -> Verdict:
        """Read the heartbeats, kill the stale children, remove the files of the killed and the gone."""
        verdict = judge(self._beats(), time.monotonic(), self.timeout_s, is_child)
        for pid in verdict.kill:
            log.error(
                "API server process %d sent no heartbeat for over %s s (API_PROCESS_TIMEOUT_S): killing it; "
                "granian starts another",
                pid,
                self.timeout_s,
            )
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in verdict.forget:
            try:
                os.remove(os.path.join(self.directory, str(pid)))
            except FileNotFoundError:
                pass
        return verdict

    def _beats(self) -> dict[int, float]:
        beats = {}
        for name in os.listdir(self.directory):
            try:
                beats[int(name)] = os.stat(os.path.join(self.directory, name)).st_mtime
            except (ValueError, FileNotFoundError):
                continue
        return beats

    def _run(self) -> None:
        while not self._stopped.wait(beat_interval(self.timeout_s)):
            try:
                self.look()
            except Exception:  # never let one bad look end the watch
                log.exception("the API process watchdog failed to check the heartbeats")

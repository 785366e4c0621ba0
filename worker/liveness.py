"""The worker's liveness signal: a file whose modification time the worker's loop refreshes on every turn.

Heartbeats in Redis say "this worker holds its leases"; they cannot restart a process. A container runtime
can, if it has a cheap check that fails when the loop stops turning (a model call that hangs, a deadlock):
`python -m worker.liveness` exits 0 while LIVENESS_FILE is younger than `--max-age-s`, 1 otherwise. The
loop turns at least once a second when idle, and once per micro-batch when busy, so the limit must exceed
the longest micro-batch (model time plus MAX_MICROBATCH_DELAY_MS) by a margin. While Redis is down the
loop still turns (it waits with backoff), so an outage does not restart workers that would only wait again.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from shared.config import ConfigError, Settings

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 60.0  # far above a normal turn (≤ 1 s idle), below what an operator tolerates as hung


class Liveness:
    """Touches the liveness file; a no-op when the path is empty."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._warned = False

    def touch(self) -> None:
        """Set the file's modification time to now, creating it if needed (about 10 µs)."""
        if not self.path:
            return
        try:
            with open(self.path, "a"):
                os.utime(self.path)
        except OSError as exc:
            if not self._warned:  # once: a read-only or missing directory would otherwise log every turn
                log.warning("cannot touch LIVENESS_FILE %r (%s): liveness checks will fail", self.path, exc)
                self._warned = True


def age_s(path: str, now: float | None = None) -> float | None:
    """Seconds since the file was last touched, or None if it does not exist (the worker has not started)."""
    try:
        mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - mtime


def check(path: str, max_age_s: float, now: float | None = None) -> tuple[bool, str]:
    """(alive?, a sentence saying why) for the liveness file at `path`."""
    age = age_s(path, now)
    if age is None:
        return False, f"{path} does not exist: the worker has not reached its loop (still loading the model?)"
    if age > max_age_s:
        return False, f"{path} was last touched {age:.1f} s ago (limit {max_age_s:g} s): the worker's loop is stuck"
    return True, f"{path} touched {age:.1f} s ago"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.liveness", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-age-s",
        type=float,
        default=DEFAULT_MAX_AGE_S,
        help="oldest acceptable age of LIVENESS_FILE, in seconds (default %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"liveness: {exc}", file=sys.stderr)
        return 2
    if not settings.liveness_file:
        print("liveness: LIVENESS_FILE is not set, so the worker writes no liveness signal", file=sys.stderr)
        return 2
    alive, reason = check(settings.liveness_file, args.max_age_s)
    print(f"liveness: {reason}", file=sys.stdout if alive else sys.stderr)
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())

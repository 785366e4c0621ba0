"""Backoff through a Redis outage: one warning when it starts, one when Redis answers again, and pauses that
double from FIRST_BACKOFF_S up to MAX_BACKOFF_S in between. One per thread that talks to Redis."""

from __future__ import annotations

import logging
import time

FIRST_BACKOFF_S = 0.1  # first pause after Redis fails; doubled each time, up to MAX_BACKOFF_S
MAX_BACKOFF_S = 2.0


class Outage:
    """The state of one thread's current outage (if any) and its next pause."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.down_since: float | None = None
        self._backoff_s = FIRST_BACKOFF_S

    def failed(self, reason: str, holding: int) -> float:
        """Record a failure (warning once per outage); returns the seconds to pause before trying again."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.log.warning("%s: holding %d job(s) and retrying until it answers", reason, holding)
        pause = self._backoff_s
        self._backoff_s = min(2 * self._backoff_s, MAX_BACKOFF_S)
        return pause

    def answered(self) -> None:
        """Redis answered: end the outage (logging how long it lasted) and reset the backoff."""
        if self.down_since is not None:
            self.log.warning("Redis answers again after %.1f s", time.monotonic() - self.down_since)
            self.down_since = None
        self._backoff_s = FIRST_BACKOFF_S

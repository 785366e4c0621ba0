"""A one-waiter wake-up cheaper than threading.Event: a bare lock held while nothing has come.

`wake` releases it, `sleep` takes it back: one C-level lock operation each way, where Event.wait builds a
Condition and allocates a new lock per call. Used on every request's path (api/jobs/waiter.py,
api/jobs/group_commit.py), where Event's bookkeeping showed in the API's profile.
"""

from __future__ import annotations

import threading


class Wakeup:
    """Wake one sleeping thread; a wake with nobody asleep is kept for the next sleep (wakes do not add up)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def wake(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # woken already, and the sleeper has not looked yet
            pass

    def sleep(self, timeout_s: float = -1) -> bool:
        """Whether woken (then not again until the next wake) before `timeout_s` (-1: no limit) passed."""
        return self._lock.acquire(timeout=timeout_s)

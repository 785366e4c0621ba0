"""Group commit: the Redis writes of concurrent submits in one API process go out as one pipeline.

A request thread that finds no flush under way becomes the leader: it sends its own commands at once (one
client alone waits for nobody, so a lone request gets no added latency). Requests that arrive while a
flush is in flight queue their commands; when it returns, the leader hands its replies out and makes the
first of the queued requests the next leader, which sends everything queued so far in one round trip.
Under load, N concurrent submits cost one round trip (one connection checkout, one write, one read)
instead of N, and Redis reads and answers them in one go; the commands are the same, none is added.

Each request gets exactly its own replies, or the exception that ended the round trip it was in (a
connection error fails every request of that pipeline: none of them is reported accepted, as before).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import redis
from redis.client import Pipeline

from api.jobs.wakeup import Wakeup

Commands = Callable[[Pipeline], None]


class _Entry:
    """One request's commands, and what it is told back: replies, an error, or "you lead now"."""

    __slots__ = ("commands", "count", "replies", "error", "leads", "done")

    def __init__(self, commands: Commands, count: int) -> None:
        self.commands = commands
        self.count = count
        self.replies: list[Any] = []
        self.error: BaseException | None = None
        self.leads = False
        self.done = Wakeup()

    def result(self) -> list[Any]:
        if self.error is not None:
            raise self.error
        for reply in self.replies:
            if isinstance(reply, Exception):
                raise reply
        return self.replies


class GroupCommit:
    """Runs each caller's commands in a pipeline shared with whatever other callers queued meanwhile."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._lock = threading.Lock()
        self._queued: list[_Entry] = []
        self._flushing = False

    def execute(self, commands: Commands, count: int) -> list[Any]:
        """Add `count` commands to a pipeline with `commands(pipe)`; returns their replies (in order)."""
        entry = _Entry(commands, count)
        with self._lock:
            if self._flushing:
                self._queued.append(entry)
                group = None
            else:
                self._flushing, group = True, [entry]
        if group is None:
            entry.done.sleep()
            if not entry.leads:
                return entry.result()
            with self._lock:  # handed the lead: take everything queued (ours is first in it)
                group, self._queued = self._queued, []
        self._flush(group)
        self._hand_on()
        return entry.result()

    def _flush(self, group: list[_Entry]) -> None:
        try:
            with self.connection.pipeline(transaction=False) as pipe:
                for entry in group:
                    entry.commands(pipe)
                replies = pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for entry in group:
                entry.error = exc
        else:
            start = 0
            for entry in group:
                entry.replies = replies[start : start + entry.count]
                start += entry.count
        for entry in group[1:]:  # the leader (first) reads its own
            entry.done.wake()

    def _hand_on(self) -> None:
        """Make the first queued request the next leader, or end the flushing."""
        with self._lock:
            if not self._queued:
                self._flushing = False
                return
            successor = self._queued[0]
        successor.leads = True
        successor.done.wake()

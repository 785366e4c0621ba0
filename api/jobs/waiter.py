"""Waiting for results: one pub/sub listener per API process wakes every request waiting on a job.

A publish ends a micro-batch's jobs and sends one message on `keys.results_channel()` listing them, one
"<id> <result JSON>" line each. The listener thread hands each line to the request waiting for that id,
so a `?wait` costs Redis no command per job and no polling. A message can be missed (the listener was
reconnecting, or subscribed only after it was sent), so a waiter also reads the job itself once the
listener has reconnected and at least every RECHECK_S.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import redis

from api.jobs.wakeup import Wakeup
from shared import keys

log = logging.getLogger(__name__)

RECHECK_S = 5.0  # the longest a waiter trusts the listener before reading the job itself
SUBSCRIBE_WAIT_S = 2.0  # how long a first waiter waits for the listener to be subscribed
IDLE_POLL_S = 1.0  # how often the listener wakes with no message (to notice it should reconnect)
MAX_BACKOFF_S = 2.0  # the longest pause between reconnects


class Waiting:
    """One request's wait for one job, woken by the listener thread with the result or with a request to
    read the job itself (the listener reconnected, so a message may have been missed)."""

    __slots__ = ("wakeup", "document")

    def __init__(self) -> None:
        self.wakeup = Wakeup()
        self.document: bytes | None = None

    def deliver(self, document: bytes | None) -> None:
        if document is not None:
            self.document = document
        self.wakeup.wake()


class ResultWaiter:
    """The process's listener and the waits it serves; `read` returns a job's result if it has one."""

    def __init__(self, connection: redis.Redis, read: Callable[[str], bytes | None]) -> None:
        self.connection = connection
        self.read = read
        self._waiting: dict[str, list[Waiting]] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None
        self._pid: int | None = None

    def expect(self, job_id: str) -> Waiting:
        """Start waiting for `job_id` (before submitting it, so that its result cannot be missed)."""
        self._ensure_listening()
        waiting = Waiting()
        with self._lock:
            self._waiting.setdefault(job_id, []).append(waiting)
        return waiting

    def wait(self, job_id: str, waiting: Waiting, timeout_s: float, check_first: bool) -> bytes | None:
        """The job's result, or None if it has none within `timeout_s`; always stops waiting for it.

        `check_first`: read the job before the first wait (it may have ended before `expect`).
        """
        deadline = time.monotonic() + timeout_s
        try:
            self._subscribed.wait(min(SUBSCRIBE_WAIT_S, timeout_s))
            if check_first and (document := self.read(job_id)) is not None:
                return document
            while (left := deadline - time.monotonic()) > 0:
                waiting.wakeup.sleep(min(left, RECHECK_S))
                if waiting.document is not None:
                    return waiting.document
                if (document := self.read(job_id)) is not None:  # woken to re-read, or RECHECK_S passed
                    return document
            return None
        finally:
            self._forget(job_id, waiting)

    def _forget(self, job_id: str, waiting: Waiting) -> None:
        with self._lock:
            waits = self._waiting.get(job_id, [])
            if waiting in waits:
                waits.remove(waiting)
            if not waits:
                self._waiting.pop(job_id, None)

    def _ensure_listening(self) -> None:
        # One listener per process; gunicorn forks after import, so the process id decides.
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._subscribed.clear()
                self._listener = threading.Thread(target=self._listen, name="result-listener", daemon=True)
                self._listener.start()

    def stop(self) -> None:
        """End the listener (within IDLE_POLL_S) and wait for it: it closes its pub/sub connection itself, so
        the pool can be closed after, never under its read (which fails inside redis-py). For a process that
        outlives its service (bench/redis_only.py); an API process's listener lives as long as the process."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(IDLE_POLL_S + MAX_BACKOFF_S)

    def _listen(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                with self.connection.pubsub() as pubsub:
                    pubsub.subscribe(keys.results_channel())
                    while not self._stopping.is_set():
                        message = pubsub.get_message(timeout=IDLE_POLL_S)
                        if message is None:
                            continue
                        if message["type"] == "message":
                            self._dispatch(message["data"])
                        elif message["type"] == "subscribe":  # (re)subscribed: messages may have been missed
                            backoff = 0.1
                            self._subscribed.set()
                            self._wake_all()
            except redis.RedisError as exc:
                self._subscribed.clear()
                log.debug("result listener lost Redis (%s); reconnecting", exc)
                self._stopping.wait(backoff)
                backoff = min(2 * backoff, MAX_BACKOFF_S)
            except Exception:  # never let the listener die: waiters would fall back to slow re-reads
                log.exception("result listener failed; restarting it")
                self._stopping.wait(backoff)

    def _wake_all(self) -> None:
        with self._lock:
            waits = [w for ws in self._waiting.values() for w in ws]
        for waiting in waits:
            waiting.deliver(None)

    def _dispatch(self, data: bytes) -> None:
        """Hand each "<id> <document>" line to whoever waits for that id (one lock round per message)."""
        lines = [line.partition(b" ") for line in data.split(b"\n")]
        with self._lock:
            found = [
                (list(waits), document)
                for job_id, _, document in lines
                if (waits := self._waiting.get(job_id.decode(errors="replace")))
            ]
        for waits, document in found:
            for waiting in waits:
                waiting.deliver(document)

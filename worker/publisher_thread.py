"""The publisher thread: publishes micro-batch N−1 while the model runs micro-batch N.

The worker's model thread hands each micro-batch's completed claims (with its RunStats and the round trips
claiming them cost) to `hand()` and goes on; this thread publishes them oldest first (interactive results
ahead of bulk chunks' waiting), one `publish` call (one Lua call) per handoff, and writes the counters when
they are due. A model thread with nothing else to do (no rows in hand) publishes inline instead, when
nothing waits here and no chunk is in it: waking this thread costs a lone client's request more (~0.1 ms)
than the publish costs the idle model thread. A handoff leaves the queue only once it is published, so
`holding()` lists every claim not yet published, and the worker's heartbeat renews their leases.

While Redis is unreachable the claims are kept and retried with backoff; a command Redis refuses (out of
memory, say) drops that handoff: its leases lapse and recovery requeues its jobs. Anything else ends the
thread and `check()` re-raises it in the model thread, which stops the worker as an error in its own
loop would. The queue is bounded: `wait_for_room` holds the model thread back while MAX_WAITING handoffs
wait, so a slow or absent Redis also slows claiming. `stop()` publishes everything handed over, then ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import redis

from worker.claim import Claim
from worker.outage import Outage
from worker.outcomes import FLUSH_S
from worker.runner import RunStats

log = logging.getLogger("worker.publisher")

# Handoffs waiting at most (the oldest is being published): the model thread collects the next micro-batch
# while at most one is being published, so publishing N overlaps running N+1. A deeper outbox is a FIFO
# behind the fair claim (docs/tenants.md): under one key's flood another key's job, claimed next, waited
# there behind the flood's handoffs (the fairness drill's p99 claimed-to-ended 18-27 ms at 4, 8-14 ms at 2,
# with the same throughput on the ceiling bench); work that cannot be published yet waits in Redis instead,
# where the claim orders it fairly.
MAX_WAITING = 2

PublishFn = Callable[[list[Claim], RunStats | None, int], list[Claim]]


@dataclass
class Handoff:
    """One micro-batch's completed claims, what running it cost, and the round trips claiming it cost."""

    claims: list[Claim]
    stats: RunStats | None
    round_trips: int


class PublisherFailed(RuntimeError):
    """The publisher thread ended on an error that is not Redis's (the cause is chained)."""


class PublisherThread:
    """Owns the outbox: the handoffs not yet published. See the module docstring.

    Args:
        publish: `Publisher.publish`; returns the claims it skipped as no longer this worker's.
        flush_if_due: writes the counters if they are due (a Redis error leaves them for the next try).
        lease_s: the lease, named in the warning about skipped claims.
    """

    def __init__(
        self, publish: PublishFn, flush_if_due: Callable[[], None], lease_s: int, max_waiting: int = MAX_WAITING
    ) -> None:
        self._publish = publish
        self._flush_if_due = flush_if_due
        self.lease_s = lease_s
        self.max_waiting = max_waiting
        self._waiting: deque[Handoff] = deque()  # oldest first; the head is the one being published
        self._cond = threading.Condition()
        # Held while publishing or writing the counters: by this thread, or by `hand` publishing inline.
        self._publishing = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        self.outage = Outage(log)

    def start(self) -> None:
        """Start the thread (a daemon: a worker that cannot reach Redis at exit does not hang on it)."""
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def hand(self, claims: list[Claim], stats: RunStats | None, round_trips: int, inline: bool = False) -> None:
        """Queue one micro-batch's completed claims for publishing; returns at once, or with `inline` (the
        caller has nothing else to do now) once published, if nothing waits, the thread is not publishing and
        no chunk is among them (a chunk's outputs are written to storage first: that stays off the model
        thread). A publish that finds Redis unreachable inline is left to the thread (which retries it); an error
        that is not Redis's is raised here, as the thread's would be by `check`.

        Interactive results go ahead of waiting chunks' (whose outputs are written to storage first, which
        takes longer): a client waiting on /predict is not held behind a batch. The head, being published,
        stays; otherwise each kind keeps its order.
        """
        handoff = Handoff(claims, stats, round_trips)
        with self._cond:
            at = len(self._waiting)
            if not _has_chunks(handoff):
                at = next((i for i in range(1, at) if _has_chunks(self._waiting[i])), at)
            self._waiting.insert(at, handoff)
            inline = inline and at == 0 and not _has_chunks(handoff) and self._publishing.acquire(blocking=False)
            if not inline:
                self._cond.notify_all()
                return
        try:  # the thread takes a handoff only holding `_publishing`: this one stays at the head meanwhile
            published = self._publish_head(handoff, backoff=False)
        finally:
            self._publishing.release()
        with self._cond:
            if published:
                self._waiting.popleft()
            self._cond.notify_all()

    def holding(self) -> list[Claim]:
        """Every claim handed over and not yet published (their leases must be renewed)."""
        with self._cond:
            return [claim for handoff in self._waiting for claim in handoff.claims]

    @property
    def idle(self) -> bool:
        """Everything handed over has been published (or dropped)."""
        with self._cond:
            return not self._waiting

    def wait_for_room(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` until fewer than `max_waiting` handoffs wait; True if there is room."""
        with self._cond:
            return self._cond.wait_for(
                lambda: len(self._waiting) < self.max_waiting or self.failure is not None, timeout_s
            )

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` until everything handed over is published; True if it is."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._waiting or self.failure is not None, timeout_s)

    def check(self) -> None:
        """Raise PublisherFailed if the thread ended on an error."""
        if self.failure is not None:
            raise PublisherFailed(f"the publisher thread stopped: {self.failure!r}") from self.failure

    def stop(self, timeout_s: float | None = None) -> bool:
        """Publish everything handed over, then end the thread; False if it is still at it after `timeout_s`."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return self.idle

    def _run(self) -> None:
        try:
            while self._next():
                with self._publishing:
                    with self._cond:  # read again: an inline publish may have taken it meanwhile
                        head = self._waiting[0] if self._waiting else None
                    if head is None:
                        self._flush()  # the counters of the last micro-batches, written within FLUSH_S of going idle
                    elif self._publish_head(head):
                        with self._cond:
                            self._waiting.popleft()
                            self._cond.notify_all()
        except BaseException as exc:  # a bug, not an outage: the model thread re-raises it (`check`)
            log.exception("the publisher thread failed")
            with self._cond:
                self.failure = exc
                self._cond.notify_all()

    def _next(self) -> bool:
        """Wait up to FLUSH_S for a handoff; False once stopping with nothing left."""
        with self._cond:
            if not self._waiting and not self._stopping:
                self._cond.wait(FLUSH_S)
            return bool(self._waiting) or not self._stopping

    def _publish_head(self, head: Handoff, backoff: bool = True) -> bool:
        """Publish one handoff; False if Redis was unreachable (it stays at the head, to be retried: after a
        backoff here, or by the thread)."""
        try:
            lost = self._publish(head.claims, head.stats, head.round_trips)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if backoff:
                reason = f"Redis is unreachable while publishing ({type(exc).__name__}: {exc})"
                time.sleep(self.outage.failed(reason, len(self.holding())))
            return False
        except redis.RedisError:
            log.exception(
                "Redis refused to publish a micro-batch; dropping its %d result(s): their leases lapse and "
                "recovery requeues them",
                len(head.claims),
            )
            return True
        self.outage.answered()
        if lost:
            log.warning(
                "%d result(s) not published: this worker's lease on them lapsed and they were queued again "
                "(a step took longer than the %d s lease?)",
                len(lost),
                self.lease_s,
            )
        self._flush()
        return True

    def _flush(self) -> None:
        try:
            self._flush_if_due()
        except redis.RedisError as exc:  # the counters stay in the tally for the next flush
            log.debug("counters not written yet: %s", exc)


def _has_chunks(handoff: Handoff) -> bool:
    return any(claim.chunk is not None for claim in handoff.claims)

"""The publisher thread, driven by a fake publish: results wait through Redis failures and stop drains them."""

from __future__ import annotations

import logging
import threading

import pytest
import redis

from shared.batches import ChunkSpec
from worker import outage
from worker.claim import Claim
from worker.publisher_thread import PublisherFailed, PublisherThread
from worker.runner import RunStats

WAIT_S = 10.0  # a deadline for conditions, not a sleep


def claims(*ids: str) -> list[Claim]:
    return [Claim(id=i, queue_index=0, lease=f"{i}:token", rows=1) for i in ids]


class FakePublish:
    """Raises the queued errors in turn, then publishes; `gate` (when set) holds each call until opened."""

    def __init__(self, errors: list[Exception] | None = None, lost: list[str] | None = None) -> None:
        self.errors = list(errors or [])
        self.lost = set(lost or [])
        self.calls: list[list[str]] = []
        self.published: list[str] = []
        self.stats: list[RunStats | None] = []
        self.gate: threading.Event | None = None
        self.threads: list[str] = []  # the thread of each call

    def __call__(self, batch: list[Claim], stats: RunStats | None, round_trips: int) -> list[Claim]:
        if self.gate is not None:
            assert self.gate.wait(WAIT_S)
        self.calls.append([c.id for c in batch])
        self.threads.append(threading.current_thread().name)
        if self.errors:
            raise self.errors.pop(0)
        self.published += [c.id for c in batch if c.id not in self.lost]
        self.stats.append(stats)
        return [c for c in batch if c.id in self.lost]


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch):
    monkeypatch.setattr(outage, "FIRST_BACKOFF_S", 0.01)


def started(publish: FakePublish, **kwargs) -> PublisherThread:
    thread = PublisherThread(publish, lambda: None, lease_s=2, **kwargs)
    thread.start()
    return thread


def test_handed_micro_batches_are_published_in_order_with_their_stats():
    publish = FakePublish()
    thread = started(publish)
    thread.hand(claims("a", "b"), RunStats(2, 1, 0.01), 1)
    thread.hand(claims("c"), None, 0)
    assert thread.wait_idle(WAIT_S)
    assert publish.published == ["a", "b", "c"]
    assert publish.stats == [RunStats(2, 1, 0.01), None]
    assert thread.stop(WAIT_S)


def test_claims_are_kept_while_redis_is_unreachable_and_published_once_it_answers(caplog):
    publish = FakePublish(errors=[redis.ConnectionError("down"), redis.TimeoutError("slow")])
    publish.gate = threading.Event()
    thread = started(publish)
    thread.hand(claims("a", "b"), RunStats(2, 1, 0.01), 1)
    assert [c.id for c in thread.holding()] == ["a", "b"]  # the heartbeat renews these leases meanwhile
    publish.gate.set()
    with caplog.at_level(logging.WARNING, logger="worker.publisher"):
        assert thread.wait_idle(WAIT_S)
    assert publish.calls == [["a", "b"]] * 3
    assert publish.published == ["a", "b"]
    assert thread.holding() == []
    assert "Redis is unreachable while publishing" in caplog.text and "Redis answers again" in caplog.text
    assert thread.stop(WAIT_S)


def test_stop_publishes_everything_handed_over_before_it_returns():
    publish = FakePublish(errors=[redis.ConnectionError("down")])
    thread = started(publish)
    for i in range(3):
        thread.hand(claims(f"job{i}"), RunStats(1, 1, 0.01), 1)
    assert thread.stop(WAIT_S)
    assert publish.published == ["job0", "job1", "job2"]
    assert thread.idle


def test_a_command_redis_refuses_drops_that_micro_batch_only():
    publish = FakePublish(errors=[redis.ResponseError("OOM command not allowed")])
    thread = started(publish)
    thread.hand(claims("refused"), None, 0)
    thread.hand(claims("next"), None, 0)
    assert thread.wait_idle(WAIT_S)
    assert publish.published == ["next"]  # the refused one's lease lapses and recovery requeues it
    assert thread.stop(WAIT_S)


def test_results_whose_lease_lapsed_are_reported(caplog):
    publish = FakePublish(lost=["late"])
    thread = started(publish)
    with caplog.at_level(logging.WARNING, logger="worker.publisher"):
        thread.hand(claims("late", "fine"), None, 0)
        assert thread.wait_idle(WAIT_S)
    assert "1 result(s) not published" in caplog.text
    assert thread.stop(WAIT_S)


def test_interactive_results_are_published_ahead_of_waiting_chunks_and_each_kind_keeps_its_order():
    publish = FakePublish()
    publish.gate = threading.Event()
    thread = started(publish)
    thread.hand(claims("head"), None, 0)  # being published (held at the gate)
    chunk = ChunkSpec("batch", 0, 0, 1024, ("pixels",))
    for name in ("chunk-1", "chunk-2"):
        thread.hand([Claim(id=name, queue_index=1, lease=f"{name}:token", rows=1024, chunk=chunk)], None, 0)
    thread.hand(claims("single-1"), None, 0)
    thread.hand(claims("single-2"), None, 0)
    publish.gate.set()
    assert thread.wait_idle(WAIT_S)
    assert publish.published == ["head", "single-1", "single-2", "chunk-1", "chunk-2"]
    assert thread.stop(WAIT_S)


def test_with_nothing_waiting_the_model_thread_publishes_inline_before_hand_returns():
    publish = FakePublish()
    thread = started(publish)
    thread.hand(claims("a"), RunStats(1, 1, 0.01), 1, inline=True)
    assert publish.published == ["a"] and publish.threads == [threading.current_thread().name]
    assert thread.idle
    thread.hand(claims("b"), None, 0)  # not inline: the thread's
    assert thread.wait_idle(WAIT_S)
    assert publish.threads[1] == "publisher"
    assert thread.stop(WAIT_S)


def test_an_inline_handoff_waits_behind_one_being_published_and_keeps_its_order():
    publish = FakePublish()
    publish.gate = threading.Event()
    thread = started(publish)
    thread.hand(claims("first"), None, 0)  # being published by the thread (held at the gate)
    thread.hand(claims("second"), None, 0, inline=True)  # returns at once: handed to the thread
    assert [c.id for c in thread.holding()] == ["first", "second"]
    publish.gate.set()
    assert thread.wait_idle(WAIT_S)
    assert publish.published == ["first", "second"] and publish.threads == ["publisher", "publisher"]
    assert thread.stop(WAIT_S)


def test_chunks_are_never_published_inline():
    publish = FakePublish()
    publish.gate = threading.Event()
    thread = started(publish)
    chunk = ChunkSpec("batch", 0, 0, 1024, ("pixels",))
    thread.hand([Claim(id="chunk", queue_index=1, lease="chunk:token", rows=1024, chunk=chunk)], None, 0, inline=True)
    assert [c.id for c in thread.holding()] == ["chunk"]  # hand returned before it was published
    publish.gate.set()
    assert thread.wait_idle(WAIT_S)
    assert publish.threads == ["publisher"]
    assert thread.stop(WAIT_S)


def test_an_inline_publish_that_finds_redis_unreachable_is_retried_by_the_thread():
    publish = FakePublish(errors=[redis.ConnectionError("down")])
    thread = started(publish)
    thread.hand(claims("a"), None, 0, inline=True)
    assert thread.wait_idle(WAIT_S)
    assert publish.calls == [["a"], ["a"]] and publish.published == ["a"]
    assert publish.threads == [threading.current_thread().name, "publisher"]
    assert thread.stop(WAIT_S)


def test_the_model_thread_waits_for_room_while_the_queue_is_full():
    publish = FakePublish()
    publish.gate = threading.Event()
    thread = started(publish, max_waiting=2)
    thread.hand(claims("a"), None, 0)
    assert thread.wait_for_room(0.0)
    thread.hand(claims("b"), None, 0)
    assert not thread.wait_for_room(0.01)
    publish.gate.set()
    assert thread.wait_for_room(WAIT_S)
    assert thread.stop(WAIT_S)


def test_an_error_that_is_not_redis_ends_the_thread_and_is_raised_in_the_model_thread():
    publish = FakePublish(errors=[TypeError("cannot serialize")])
    thread = started(publish, max_waiting=1)
    thread.hand(claims("a"), None, 0)
    assert thread.wait_for_room(WAIT_S)  # a failure releases a waiting model thread
    with pytest.raises(PublisherFailed, match="cannot serialize"):
        thread.check()


def test_counters_are_written_after_a_publish_and_when_idle_and_a_failed_write_is_not_a_failed_publish():
    publish = FakePublish()
    flushes: list[int] = []

    def flush_if_due() -> None:
        flushes.append(1)
        if len(flushes) == 1:
            raise redis.ConnectionError("down")

    thread = PublisherThread(publish, flush_if_due, lease_s=2)
    thread.start()
    thread.hand(claims("a"), RunStats(1, 1, 0.01), 1)
    assert thread.wait_idle(WAIT_S)
    assert publish.calls == [["a"]]  # the failed write did not publish "a" again
    thread.hand(claims("b"), None, 0)
    assert thread.stop(WAIT_S)
    assert len(flushes) >= 2 and publish.published == ["a", "b"]

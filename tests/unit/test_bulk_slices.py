"""RedisSource.take: interactive rows and bulk rows never share a micro-batch; a key's chunk runs whole while
no other key's interactive job comes, and in slices of MAX_MICROBATCH_ROWS while they do."""

from __future__ import annotations

import time

import pytest

from worker.claim import Claim
from worker.redis_source import RedisSource

INTERACTIVE, BULK = 0, 1


@pytest.fixture
def source(monkeypatch) -> RedisSource:
    src = RedisSource(None, ["q", "q-bulk"], "w", lease_s=5, chunk_rows=1024)  # type: ignore[arg-type]  # no Redis
    monkeypatch.setattr(src, "claim", lambda rows, timeout, priority_only=False: None)  # nothing more queued
    return src


def held(job_id: str, lane: int, rows: int, tenant: str = "team-a") -> Claim:
    return Claim(id=job_id, queue_index=lane, lease="l", rows=rows, tenant=tenant)


def test_an_interactive_job_runs_without_the_bulk_rows_in_hand(source):
    source.pending.extend([held("chunk", BULK, 1024), held("single", INTERACTIVE, 1)])
    batch = source.take(256, 0.0)
    assert [(s.claim.id, s.rows, s.bulk) for s in batch] == [("single", 1, False)]


def test_a_chunk_runs_whole_while_no_interactive_job_comes(source):
    source.pending.append(held("chunk", BULK, 1024))
    batch = source.take(256, 0.0)
    assert [(s.claim.id, s.rows, s.bulk) for s in batch] == [("chunk", 1024, True)]


def test_a_chunk_runs_whole_while_only_its_own_key_sends_interactive_jobs(source):
    source.pending.append(held("chunk", BULK, 1024))
    source._interactive_at["team-a"] = time.monotonic()
    assert [s.rows for s in source.take(256, 0.0)] == [1024]


def test_a_chunk_runs_in_slices_while_another_keys_interactive_jobs_come(source):
    source.pending.append(held("chunk", BULK, 1024))
    source._interactive_at["team-b"] = time.monotonic()
    assert [s.rows for s in source.take(256, 0.0)] == [256]
    assert [s.rows for s in source.take(256, 0.0)] == [256]


def test_filling_an_interactive_micro_batch_takes_no_bulk_rows(source):
    source.pending.append(held("chunk", BULK, 1024))
    assert source.take(255, 0.0, bulk=False) == []


def test_with_a_chunk_in_hand_the_model_thread_claims_only_interactive_jobs(monkeypatch):
    """The next chunk is the claim thread's (`prefetch`, while this one runs): claiming and reading it in
    `take` would hold the model thread."""
    src = RedisSource(None, ["q", "q-bulk"], "w", lease_s=5, chunk_rows=1024)  # type: ignore[arg-type]  # no Redis
    asked: list[bool] = []
    monkeypatch.setattr(src, "claim", lambda rows, timeout, priority_only=False: asked.append(priority_only))
    src.pending.extend([held("chunk", BULK, 1024), held("single", INTERACTIVE, 1)])
    src.take(256, 0.0)
    assert asked == [True]
    src.pending.clear()
    asked.clear()
    src.pending.append(held("single", INTERACTIVE, 1))  # no chunk in hand: this claim may take one
    src.take(256, 0.0)
    assert asked == [False]


def test_a_whole_chunk_of_one_key_does_not_run_on_into_another_keys_chunk_while_that_key_is_sliced(source):
    """The last slice of A's chunk (sliced while B's /predict came), with B's chunk claimed behind it: while A's
    own /predict jobs come, A's rows run to the end of its chunk, and B's chunk waits for a micro-batch of its own,
    in slices."""
    a = Claim(id="a-chunk", queue_index=BULK, lease="l", rows=1024, tenant="a", next_row=768, done_rows=768)
    source.pending.extend([a, held("b-chunk", BULK, 1024, tenant="b")])
    source._interactive_at["a"] = time.monotonic()
    assert [(s.claim.id, s.rows) for s in source.take(256, 0.0)] == [("a-chunk", 256)]
    assert [(s.claim.id, s.rows) for s in source.take(256, 0.0)] == [("b-chunk", 256)]

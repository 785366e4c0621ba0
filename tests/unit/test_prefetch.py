"""RedisSource.prefetch: claims at most one micro-batch ahead, never beside a rerun, never after a stop; and
`quiet`, which lets the model thread publish inline."""

from __future__ import annotations

import pytest

from worker.claim import Claim
from worker.redis_source import RedisSource


@pytest.fixture
def source(monkeypatch) -> RedisSource:
    src = RedisSource(None, ["q"], "w", lease_s=5)  # type: ignore[arg-type]  # no Redis: its claims are faked
    src.asked = []  # type: ignore[attr-defined]
    monkeypatch.setattr(src, "claim", lambda rows, timeout: src.asked.append((rows, timeout)))
    src._piling = True  # the last claim took several jobs: work is piling up
    return src


def held(rows: int, handed_out: int, rerun: bool = False) -> Claim:
    return Claim(id=f"j{rows}.{handed_out}", queue_index=0, lease="l", rows=rows, rerun=rerun, next_row=handed_out)


def test_prefetch_claims_without_waiting_for_the_room_the_next_micro_batch_has(source):
    source.pending.extend([held(3, 3), held(10, 4)])  # 6 rows in hand not yet handed out
    source.prefetch(8)
    assert source.asked == [(2, 0.0)]


def test_prefetch_claims_nothing_when_the_rows_in_hand_fill_the_next_micro_batch(source):
    source.pending.append(held(100, 64))
    source.prefetch(8)
    assert source.asked == []


def test_prefetch_claims_nothing_beside_a_rerun_or_after_a_stop(source):
    source.pending.append(held(1, 1, rerun=True))
    source.prefetch(8)
    source.pending.clear()
    source.stop_claiming()
    source.prefetch(8)
    assert source.asked == []


def test_prefetch_claims_nothing_while_jobs_come_one_per_claim(source):
    source._piling = False  # e.g. one client: an empty claim per micro-batch would only cost Redis
    source.pending.append(held(1, 1))
    source.prefetch(8)
    assert source.asked == []


def test_the_source_is_quiet_only_with_nothing_in_hand_while_jobs_come_one_per_claim(source):
    assert not source.quiet  # jobs are piling up: the model thread claims while the publisher thread publishes
    source._piling = False
    assert source.quiet  # e.g. one client: the next claim would wait, so the model thread publishes inline
    source.pending.append(held(1, 0))
    assert not source.quiet  # rows in hand to run next

"""The Redis side of idempotency keys (api/idempotency.py) against a real Redis: who wins a key, what a
duplicate sees while the first request runs, and a first request that dies without finishing."""

from __future__ import annotations

import pytest

from api import idempotency
from api.idempotency import IdempotencyKeys
from shared.config import Settings
from shared.errors import Conflict, RequestInProgress

pytestmark = pytest.mark.integration

ROUTE = "POST /predict"


@pytest.fixture
def registry(redis_db, monkeypatch) -> IdempotencyKeys:
    monkeypatch.setattr(idempotency, "WAIT_FOR_FIRST_S", 0.2)  # a duplicate's wait, short for these tests
    return IdempotencyKeys(redis_db, Settings.from_env({}).replace(result_ttl=120))


def test_the_first_reservation_wins_and_lapses_if_never_finished(registry, redis_db):
    first = registry.reserve("owner-a", "k", ROUTE)
    assert first.won and not registry.reserve("owner-a", "k", ROUTE).won
    assert registry.reserve("owner-b", "k", ROUTE).won  # another API key, another key space
    (key,) = [k for k in redis_db.scan_iter("*") if b"owner-a" in k]
    assert 0 < redis_db.ttl(key) <= idempotency.RESERVATION_S  # a holder that crashes frees the key


def test_a_duplicate_gets_409_in_progress_while_the_first_runs_then_the_first_id(registry, redis_db):
    first = registry.reserve("", "k", ROUTE)
    duplicate = registry.reserve("", "k", ROUTE)
    with pytest.raises(RequestInProgress):
        duplicate.replay("digest-1")
    first.finish("digest-1", "job-1")
    assert duplicate.replay("digest-1") == "job-1"
    with pytest.raises(Conflict, match="different request body"):
        duplicate.replay("digest-2")
    (key,) = list(redis_db.scan_iter("*"))
    assert idempotency.RESERVATION_S < redis_db.ttl(key) <= 120  # RESULT_TTL once final


def test_a_first_request_that_fails_releases_its_key_for_the_next(registry):
    with pytest.raises(ValueError), registry.reserve("", "k", ROUTE) as first:
        assert first.won
        raise ValueError("enqueue failed")
    assert registry.reserve("", "k", ROUTE).won


def test_a_key_used_on_another_route_is_a_conflict_at_once(registry):
    registry.reserve("", "k", ROUTE).finish("digest", "job-1")
    with pytest.raises(Conflict, match="already used for POST /predict, not POST /batches"):
        registry.reserve("", "k", "POST /batches").replay("digest")


def test_a_reservation_taken_over_after_it_expired_is_not_overwritten_by_its_late_holder(registry, redis_db):
    late = registry.reserve("", "k", ROUTE)
    redis_db.flushdb()  # as if its reservation lapsed
    successor = registry.reserve("", "k", ROUTE)
    assert successor.won
    late.finish("digest-late", "job-late")
    successor.finish("digest", "job-2")
    assert registry.reserve("", "k", ROUTE).replay("digest") == "job-2"

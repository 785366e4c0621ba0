"""The API's result listener against a real Redis: a published result wakes its waiter, and `stop` ends the
listener before the caller closes the connection pool."""

from __future__ import annotations

import logging

import pytest

from api.jobs.waiter import ResultWaiter
from shared import keys

pytestmark = pytest.mark.integration


def test_a_published_result_wakes_its_waiter_and_stop_ends_the_listener_cleanly(redis_db, caplog):
    waiter = ResultWaiter(redis_db, read=lambda job_id: None)
    waiting = waiter.expect("job-1")
    waiter._ensure_listening()
    # Subscribed (other tests' services on the same server may listen on the channel too: no count).
    assert waiter._subscribed.wait(10)
    redis_db.publish(keys.results_channel(), b'job-1 {"status":"finished"}')
    assert waiter.wait("job-1", waiting, 10, check_first=False) == b'{"status":"finished"}'
    with caplog.at_level(logging.DEBUG, logger="api.jobs.waiter"):
        waiter.stop()
        assert not waiter._listener.is_alive()
        redis_db.connection_pool.disconnect()  # what bench/redis_only.py does next: nothing is reading now
    assert not [r for r in caplog.records if r.levelno >= logging.DEBUG]  # no failure, no reconnect

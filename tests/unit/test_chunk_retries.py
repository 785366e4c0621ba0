"""A chunk that failed on storage waits STORAGE_RETRY_S before its next attempt, doubling after each failure."""

from __future__ import annotations

from worker.chunk_retries import retry_delay_s


def test_the_wait_doubles_with_each_attempt_spent():
    # MAX_ATTEMPTS=3: RQ's retries_left is 2 after the first start, 1 after the second.
    assert [retry_delay_s(5.0, 3, left) for left in (2, 1)] == [5.0, 10.0]
    assert [retry_delay_s(1.0, 5, left) for left in (4, 3, 2, 1)] == [1.0, 2.0, 4.0, 8.0]

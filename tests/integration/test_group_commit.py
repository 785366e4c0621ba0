"""Group commit against a real Redis: submits that arrive while a round trip is in flight share the next one,
and each caller gets exactly its own replies or the error of the round trip it was in."""

from __future__ import annotations

import threading

import pytest
import redis

from api.jobs.group_commit import GroupCommit
from scripts.harness import free_port
from tests.support import wait_until

pytestmark = pytest.mark.integration

QUEUED = 10


class CountingRedis(redis.Redis):
    """A real client that counts the pipelines (round trips) it sends."""

    pipelines = 0

    def pipeline(self, *args, **kwargs):
        self.pipelines += 1
        return super().pipeline(*args, **kwargs)


def test_requests_queued_behind_a_round_trip_share_the_next_one_and_get_their_own_replies(redis_db):
    client = CountingRedis(connection_pool=redis_db.connection_pool)
    commit = GroupCommit(client)
    leader_replies: list = []
    leader = threading.Thread(
        target=lambda: leader_replies.extend(commit.execute(lambda p: p.blpop("gate", 10).incr("n"), 2))
    )
    leader.start()
    wait_until(lambda: commit._flushing, 5)  # the leader's round trip waits on "gate" inside Redis
    replies: dict[int, list] = {}

    def submit(i: int) -> None:
        replies[i] = commit.execute(lambda p: p.rpush("jobs", i).hset(f"job:{i}", "v", i), 2)

    followers = [threading.Thread(target=submit, args=(i,)) for i in range(QUEUED)]
    for t in followers:
        t.start()
    wait_until(lambda: len(commit._queued) == QUEUED, 5)
    redis_db.rpush("gate", "open")
    for t in [leader, *followers]:
        t.join(10)
    assert leader_replies == [(b"gate", b"open"), 1]
    assert client.pipelines == 2  # the leader's, then one for all ten queued behind it
    order = [int(v) for v in redis_db.lrange("jobs", 0, -1)]
    assert sorted(order) == list(range(QUEUED))
    for i in range(QUEUED):
        assert replies[i] == [order.index(i) + 1, 1]  # its own RPUSH's list length, its own HSET


def test_a_failing_command_fails_only_its_own_request(redis_db):
    commit = GroupCommit(redis_db)
    redis_db.rpush("a-list", "x")
    with pytest.raises(redis.ResponseError):
        commit.execute(lambda p: p.incr("a-list"), 1)
    assert commit.execute(lambda p: p.incr("n"), 1) == [1]


def test_a_lost_connection_fails_every_request_of_the_round_trip_and_the_next_one_works(redis_db):
    commit = GroupCommit(redis.Redis(port=free_port(), socket_connect_timeout=1))
    with pytest.raises(redis.ConnectionError):
        commit.execute(lambda p: p.incr("n"), 1)
    assert not commit._flushing  # the lead was given up: the next request is not stuck behind it
    commit.connection = redis_db
    assert commit.execute(lambda p: p.incr("n"), 1) == [1]

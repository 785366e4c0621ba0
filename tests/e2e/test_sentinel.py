"""Redis Sentinel: a master, a replica and three Sentinels (real redis-server processes). Our connections
and RQ's command line find the master through the Sentinels, and the service rides out a failover."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from scripts.failover_drill import run_drill
from scripts.harness import child_env
from scripts.sentinel_topology import MASTER_NAME, SentinelTopology
from shared import rq_keys
from shared.config import PROJECT_ROOT, Settings
from shared.connection import connect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    replicated = SentinelTopology(tmp_path_factory.mktemp("sentinel")).start()
    yield replicated
    replicated.stop()


def sentinel_settings(topology: SentinelTopology) -> Settings:
    return Settings.from_env({}).replace(redis_sentinels=topology.sentinels, redis_sentinel_master=MASTER_NAME)


def test_a_connection_through_sentinel_writes_to_the_master_and_the_replica_receives_it(topology):
    connection = connect(sentinel_settings(topology))
    connection.set("sentinel-test", b"on the master")
    assert connection.wait(1, 5000) == 1  # the master says the write reached its replica
    replica = redis.Redis(port=topology.replica.port)
    assert replica.get("sentinel-test") == b"on the master"
    assert connection.connection_pool.get_master_address() == ("127.0.0.1", topology.master.port)


def test_rq_info_finds_the_master_through_the_settings_module(topology):
    settings = sentinel_settings(topology)
    connect(settings).rpush(rq_keys.queue("sentinel-probe"), b"x")
    connect(settings).sadd(rq_keys.QUEUES, rq_keys.queue("sentinel-probe"))
    info = subprocess.run(
        [f"{sys.prefix}/bin/rq", "info", "-c", "shared.rq_settings", "--only-queues"],
        cwd=PROJECT_ROOT,
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert info.returncode == 0, info.stderr
    assert "sentinel-probe" in info.stdout


def test_the_service_rides_out_a_failover_and_every_job_submitted_after_it_finishes(tmp_path):
    report = run_drill(tmp_path, before_s=1.0, after_s=1.0)
    assert report.accepted_before > 0 and report.accepted_after > 0, report
    assert report.lost_after == 0 and report.unfinished_after == 0, report
    assert set(report.refusals) <= {"503"} and report.without_retry_after == 0, report

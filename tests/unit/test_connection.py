"""Connection settings for Redis through Sentinel, worked out without a server (the real failover:
tests/e2e/test_sentinel.py)."""

from __future__ import annotations

from shared.config import Settings
from shared.connection import master_options


def test_a_rediss_url_beside_sentinels_gives_the_master_its_password_database_and_tls():
    settings = Settings.from_env({}).replace(
        redis_url="rediss://:secret@ignored:1/4", redis_sentinels="10.0.0.1:26379", redis_sentinel_master="main"
    )
    assert master_options(settings) == {"password": "secret", "db": 4, "ssl": True}

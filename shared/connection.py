"""The Redis client every process uses, built from settings."""

from __future__ import annotations

import redis

from shared.config import Settings


def redis_url(settings: Settings) -> str:
    """REDIS_URL, or the loopback address of the embedded server."""
    return settings.redis_url or f"redis://127.0.0.1:{settings.redis_port}/0"


def connect(settings: Settings) -> redis.Redis:
    """A client on a connection pool; bytes in, bytes out (RQ needs undecoded replies).

    Timeouts stay unset on purpose: blocking reads (BLMOVE for long-polls) must not be cut short.
    """
    return redis.Redis.from_url(redis_url(settings), health_check_interval=30)

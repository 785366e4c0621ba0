"""The Redis client every process uses, built from settings."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from shared.config import Settings

# redis-py's default retries a failed command for several seconds; ours gives up within about half a
# second, so that while Redis is down the API answers 503 promptly and the worker's loop does the waiting.
# A restart that is quicker than that goes unnoticed.
RETRY = Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.25), retries=3)
MAX_BLOCKING_WAIT_S = 30.0  # the longest ?wait a client may ask for (api/responses.py MAX_WAIT_S)
BLOCKING_MARGIN_S = 30.0


def redis_url(settings: Settings) -> str:
    """REDIS_URL, or the loopback address of the embedded server."""
    return settings.redis_url or f"redis://127.0.0.1:{settings.redis_port}/0"


def connect(settings: Settings) -> redis.Redis:
    """A client on a connection pool; bytes in, bytes out (RQ needs undecoded replies).

    The socket timeout must outlast the longest blocking read (a 30 s long-poll, a worker's batch window):
    redis-py's default of 5 s would cut those short. It still ends a read from a Redis that hangs.
    """
    socket_timeout = BLOCKING_MARGIN_S + MAX_BLOCKING_WAIT_S + settings.max_microbatch_delay_ms / 1000
    return redis.Redis.from_url(redis_url(settings), health_check_interval=30, retry=RETRY,
                                socket_timeout=socket_timeout, socket_connect_timeout=2)

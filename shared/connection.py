"""The Redis client every process uses, built from settings: one URL, or the master that Sentinel names."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff  # type: ignore[attr-defined]  # newer than types-redis
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from shared import keys, rq_keys
from shared.config import ConfigError, Settings

# redis-py's default retries a failed command for several seconds; ours gives up within about half a
# second, so that while Redis is down the API answers 503 promptly and the worker's loop does the waiting.
# A restart that is quicker than that goes unnoticed.
RETRY = Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.25), retries=3)
MAX_BLOCKING_WAIT_S = 30.0  # the longest ?wait a client may ask for (api/responses.py MAX_WAIT_S)
BLOCKING_MARGIN_S = 30.0
# A Sentinel that does not answer within this is skipped for the next one: asking them is a short request.
SENTINEL_TIMEOUT_S = 0.5


def redis_url(settings: Settings) -> str:
    """REDIS_URL, or the loopback address of the embedded server; with REDIS_PASSWORD as its password."""
    url = settings.redis_url or f"redis://127.0.0.1:{settings.redis_port}/0"
    return with_password(url, settings.redis_password) if settings.redis_password else url


def with_password(url: str, password: str) -> str:
    """`url` with `password` in place of its own (the username, if any, kept)."""
    parts = urlsplit(url)
    username = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{quote(username, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def connect(settings: Settings) -> redis.Redis:
    """A client on a connection pool; bytes in, bytes out (RQ needs undecoded replies).

    The socket timeout must outlast the longest blocking read (a 30 s long-poll, a worker's batch window):
    redis-py's default of 5 s would cut those short. It still ends a read from a Redis that hangs.
    With REDIS_SENTINELS, every new connection asks the Sentinels for the current master, so after a
    failover the broken connections are replaced by ones to the promoted replica.

    Raises:
        ConfigError: the settings' key prefixes are not the ones this process's key names were built with.
    """
    require_key_prefixes(settings)
    options: dict[str, Any] = {
        "health_check_interval": 30,
        "retry": RETRY,
        "socket_connect_timeout": 2,
        "socket_timeout": BLOCKING_MARGIN_S + MAX_BLOCKING_WAIT_S + settings.max_microbatch_delay_ms / 1000,
    }
    if settings.redis_sentinels:
        return sentinel(settings).master_for(settings.redis_sentinel_master, **options, **master_options(settings))
    return redis.Redis.from_url(redis_url(settings), **options)


def require_key_prefixes(settings: Settings) -> None:
    """Fail unless the process's key names (ours and RQ's, both fixed at import from the environment) carry
    the settings' prefixes: settings built in-process with another prefix would otherwise read and write
    another deployment's keys."""
    in_use = (keys.PREFIX, rq_keys.PREFIX)
    wanted = (settings.redis_key_prefix, settings.rq_key_prefix)
    if in_use != wanted:
        raise ConfigError(
            f"REDIS_KEY_PREFIX={wanted[0]!r} and RQ_KEY_PREFIX={wanted[1]!r} are not valid here: this process "
            f"was started with {in_use[0]!r} and {in_use[1]!r} (set both in the environment before it starts)"
        )


def sentinel(settings: Settings) -> Sentinel:
    """A client of the Sentinels named by REDIS_SENTINELS (the master is asked for per connection)."""
    sentinel_options: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }
    if settings.redis_sentinel_password:
        sentinel_options["password"] = settings.redis_sentinel_password
    return Sentinel(list(settings.sentinel_addresses()), sentinel_kwargs=sentinel_options)


def master_options(settings: Settings) -> dict[str, Any]:
    """What REDIS_URL says about the master besides its address: password, username, database, TLS."""
    if not settings.redis_url and not settings.redis_password:
        return {}
    options = parse_url(settings.redis_url or "redis://")
    options.pop("host", None)
    options.pop("port", None)
    if settings.redis_password:
        options["password"] = settings.redis_password
    if options.pop("connection_class", None) is redis.SSLConnection:
        options["ssl"] = True  # master_for picks its own connection class; this makes it the TLS one
    return options

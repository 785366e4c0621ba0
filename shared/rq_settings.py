"""Settings for RQ's own command line, derived from ours: `rq info -c shared.rq_settings` (from the project root).

RQ reads the upper-case names of this module: REDIS_URL for one Redis, or SENTINEL for a master found
through Redis Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD), so `rq info`
follows a failover just like the API and the workers.
"""

from __future__ import annotations

from typing import Any

from shared.config import Settings
from shared.connection import SENTINEL_TIMEOUT_S, master_options, redis_url


def rq_settings(settings: Settings) -> dict[str, Any]:
    """The upper-case settings RQ's `-c` option reads, for `settings`."""
    if not settings.redis_sentinels:
        return {"REDIS_URL": redis_url(settings)}
    master = master_options(settings)
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": SENTINEL_TIMEOUT_S}
    if settings.redis_sentinel_password:
        sentinel_kwargs["password"] = settings.redis_sentinel_password
    return {
        "SENTINEL": {
            "INSTANCES": list(settings.sentinel_addresses()),
            "MASTER_NAME": settings.redis_sentinel_master,
            "DB": master.get("db", 0),
            "USERNAME": master.get("username"),
            "PASSWORD": master.get("password"),
            "SSL": bool(master.get("ssl", False)),
            "SENTINEL_KWARGS": sentinel_kwargs,
        }
    }


globals().update(rq_settings(Settings.from_env()))

"""The operator's view of fair share: each API key's backlog in each lane, read from Redis.

    python -m shared.tenant_backlog        # with the service's environment (REDIS_URL, QUEUE_NAME, ...)

prints one line per key with work waiting (or a deficit kept) in a lane: its queued jobs and rows, the age
of its oldest waiting job, whether it is in the lane's ring (its turn will come) and its deficit. Read only:
a handful of commands per key, for a person at a terminal, never on a request's path.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from shared import fair, keys, model_registry, rq_keys
from shared.config import ConfigError, Settings
from shared.connection import connect


@dataclass(frozen=True)
class Backlog:
    """One key's waiting work in one lane."""

    lane: str
    tenant: str
    jobs: int
    rows: int
    oldest_age_s: float
    in_ring: bool
    deficit: int | None


def read_backlog(connection: redis.Redis, lanes: Sequence[str], now: float | None = None) -> list[Backlog]:
    """Every sub-queue of `lanes` with jobs waiting, in the ring, or with a deficit kept."""
    now = time.time() if now is None else now
    out = []
    for lane in lanes:
        ring = {m.decode() for m in connection.lrange(keys.ring(lane), 0, -1)}
        deficits = {k.decode(): int(v) for k, v in connection.hgetall(keys.deficits(lane)).items()}
        for sub in fair.sub_queues(connection, lane):
            jobs = connection.llen(rq_keys.queue(sub))
            if not jobs and sub not in ring and sub not in deficits:
                continue
            extra = int(connection.get(keys.extra_rows(sub)) or 0)
            head = connection.lindex(rq_keys.queue(sub), 0)
            enqueued = rq_keys.parse_timestamp(
                connection.hget(rq_keys.job(head.decode()), "enqueued_at") if head else None
            )
            age = max(0.0, now - enqueued.timestamp()) if enqueued else 0.0
            out.append(
                Backlog(
                    lane, fair.tenant_of(sub) or "-", jobs, max(0, jobs + extra), age, sub in ring, deficits.get(sub)
                )
            )
    return out


def render(rows: Sequence[Backlog]) -> str:
    """A fixed-width table of `rows`."""
    lines = [f"{'lane':<20} {'key':<24} {'jobs':>8} {'rows':>10} {'oldest s':>9} {'ring':>5} {'deficit':>8}"]
    for b in rows:
        deficit = "" if b.deficit is None else str(b.deficit)
        lines.append(
            f"{b.lane:<20} {b.tenant:<24} {b.jobs:>8} {b.rows:>10} {b.oldest_age_s:>9.1f} "
            f"{'yes' if b.in_ring else 'no':>5} {deficit:>8}"
        )
    return "\n".join(lines)


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    connection = connect(settings)
    print(render(read_backlog(connection, served_lanes(connection, [settings.queue_name, settings.bulk_queue_name]))))
    return 0


def served_lanes(connection: redis.Redis, first: Sequence[str]) -> list[str]:
    """`first` (the first model's lanes), then every lane of the models the workers advertise (their queues)."""
    documents = (model_registry.decode(raw)[0] for raw in connection.hvals(keys.model_registry()))
    found = [lane for model in model_registry.merge(documents).values() for lane in (model.queue, model.bulk_queue)]
    return list(dict.fromkeys([*first, *found]))


if __name__ == "__main__":
    sys.exit(main())

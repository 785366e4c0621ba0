"""Tell the world this worker is alive and what model it serves: RQ's worker registry, plus our own
sorted set of live workers (what `/readyz` reads), the advertised model signature, and this worker's
registry document (shared/model_registry.py: every model, version and state it serves)."""

from __future__ import annotations

import time
from collections.abc import Iterable

import orjson
import redis
from rq import Worker

from shared import keys, rq_keys
from shared.config import Settings
from shared.model_registry import decode
from shared.signature import ModelSignature
from worker.claim import Claim


def superseded_documents(connection: redis.Redis, registry_doc: bytes) -> list[bytes]:
    """Registry fields of workers no longer live that served none but this worker's models: this worker's
    document now says what they said (so stopped workers' documents do not pile up)."""
    mine = {m.name for m in decode(registry_doc)[0]}
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.model_registry())
        pipe.zrangebyscore(keys.workers(), time.time(), "+inf")
        documents, live = pipe.execute()
    live_names = set(live)
    return [
        worker
        for worker, raw in documents.items()
        if worker not in live_names and {m.name for m in decode(raw)[0]} <= mine
    ]


def model_document(signature: ModelSignature, settings: Settings, load_s: float) -> bytes:
    """The advertised model document: the signature plus the micro-batching settings (`batching`) and load time."""
    doc = orjson.loads(signature.to_json())
    doc["batching"] = {
        "max_microbatch_rows": settings.max_microbatch_rows,
        "max_microbatch_delay_ms": settings.max_microbatch_delay_ms,
        "microbatch_window": settings.microbatch_window,
    }
    doc["load_seconds"] = round(load_s, 3)
    return orjson.dumps(doc)


class Registration:
    """Birth, heartbeats and death of one worker, each a single pipelined round trip."""

    def __init__(self, connection: redis.Redis, worker: Worker, settings: Settings, queue_names: list[str]) -> None:
        self.connection = connection
        self.worker = worker
        self.queue_names = queue_names
        self.interval_s = settings.heartbeat_s
        self.ttl_s = 3 * settings.heartbeat_s
        self._next_beat = 0.0
        self._model_doc = b""
        self._registry_doc = b""

    def birth(self, model_doc: bytes, registry_doc: bytes) -> None:
        """Register with RQ and as a live worker, and advertise the model and registry documents."""
        self._model_doc = model_doc
        self._registry_doc = registry_doc
        self.worker.register_birth()
        superseded = superseded_documents(self.connection, registry_doc)
        with self.connection.pipeline() as pipe:
            pipe.set(keys.model(), model_doc)
            if superseded:
                pipe.hdel(keys.model_registry(), *superseded)
            pipe.hset(keys.model_registry(), self.worker.name, registry_doc)
            pipe.zadd(keys.workers(), {self.worker.name: time.time() + self.ttl_s})
            pipe.sadd(rq_keys.QUEUES, *(rq_keys.queue(name) for name in self.queue_names))
            self.worker.set_state("idle", pipeline=pipe)
            pipe.execute()
        self._next_beat = time.monotonic() + self.interval_s

    def beat_if_due(self, in_hand: Iterable[Claim], lease_s: int) -> None:
        """Refresh liveness and renew the leases of the jobs in hand, at most once per interval.

        A lease is renewed only while it is still in the registry (ZADD XX): one that recovery took back
        stays gone, so the late publish of its job is refused.
        """
        if time.monotonic() < self._next_beat:
            return
        leases: dict[int, list[str]] = {}
        for claim in in_hand:
            leases.setdefault(claim.queue_index, []).append(claim.lease)
        with self.connection.pipeline() as pipe:
            # A Redis that lost its data (no persistence) gets the model document back within a beat; NX so
            # that workers of two model versions do not overwrite each other's at every beat.
            pipe.set(keys.model(), self._model_doc, nx=True)
            pipe.hset(keys.model_registry(), self.worker.name, self._registry_doc)
            self.worker.heartbeat(int(self.ttl_s) + 60, pipeline=pipe)
            self.worker.set_state("busy" if leases else "idle", pipeline=pipe)
            pipe.zadd(keys.workers(), {self.worker.name: time.time() + self.ttl_s})
            pipe.zremrangebyscore(keys.workers(), "-inf", time.time())
            pipe.sadd(rq_keys.QUEUES, *(rq_keys.queue(name) for name in self.queue_names))
            lapse = time.time() + lease_s
            for index, members in leases.items():
                pipe.zadd(rq_keys.started(self.queue_names[index]), dict.fromkeys(members, lapse), xx=True)
            pipe.execute()
        self._next_beat = time.monotonic() + self.interval_s

    def advertise_models(self, registry_doc: bytes) -> None:
        """Advertise a changed registry document now (a version loaded, failed or unloaded)."""
        self._registry_doc = registry_doc
        self.connection.hset(keys.model_registry(), self.worker.name, registry_doc)

    def death(self) -> None:
        """Leave the live set and RQ's registry. The registry document stays: while no worker serves a model
        (scaled to zero), the API still accepts and queues its jobs from what was advertised last."""
        self.connection.zrem(keys.workers(), self.worker.name)
        self.worker.register_death()

"""The model signature as the workers advertised it, cached briefly so validation costs no round trip."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import redis

from shared import keys
from shared.errors import NotReady
from shared.signature import ModelSignature

CACHE_S = 2.0  # a restarted worker with a new model is seen within this many seconds


class ModelInfo:
    """Reads `infer:model`; thread-safe, refreshed at most every CACHE_S seconds."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._lock = threading.Lock()
        self._expires = 0.0
        self._signature: ModelSignature | None = None
        self._document: dict[str, Any] | None = None

    def signature(self) -> ModelSignature:
        """The advertised signature; raises NotReady if no worker has advertised one yet."""
        self._refresh()
        if self._signature is None:
            raise NotReady("no worker has loaded the model yet; start a worker or retry shortly", retry_after=2)
        return self._signature

    def document(self) -> dict[str, Any]:
        """The whole advertised model document (signature, micro-batching settings)."""
        self.signature()
        assert self._document is not None
        return self._document

    def _refresh(self) -> None:
        now = time.monotonic()
        if now < self._expires:
            return
        with self._lock:
            if now < self._expires:
                return
            raw = self.connection.get(keys.model())
            if raw is not None:
                self._signature = ModelSignature.from_json(raw)
                self._document = orjson.loads(raw)
            self._expires = now + (CACHE_S if raw is not None else 0.0)

    def live_workers(self) -> list[str]:
        """Names of workers whose last heartbeat has not expired."""
        return [m.decode() for m in self.connection.zrangebyscore(keys.workers(), time.time(), "+inf")]

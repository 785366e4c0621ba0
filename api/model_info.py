"""The models the workers serve, as they advertised them (shared/model_registry.py), cached briefly so that
validation costs no round trip; and the one resolver every protocol calls to turn a request's model name,
version or label into the model version, signature and queue its job goes to."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from shared import keys
from shared.errors import NotFound, NotReady
from shared.model_registry import ModelStatus, decode, merge
from shared.signature import ModelSignature

CACHE_S = 2.0  # a new version or a restarted worker is seen within this many seconds
# A request naming what the cached view does not serve reads the registry again first (at most this often), so
# that a version (or model) that just became available is not refused for up to CACHE_S.
MISS_REFRESH_S = 0.1


class ModelNotServed(NotFound):
    """The request names a model, version or label that is not served; each protocol words it its own way
    from `model`, `version` and `label` (the one generic message names the models served)."""

    def __init__(self, message: str, model: str, version: str | None, label: str | None, served: list[str]) -> None:
        super().__init__(message, field="model")
        self.model, self.version, self.label, self.served = model, version, label, served


@dataclass(frozen=True)
class Served:
    """A request's model, resolved: the version its job is pinned to (None: the newest available when a
    worker claims it), the signature its input is checked against, and the model's queues."""

    status: ModelStatus
    version: str | None
    signature: ModelSignature

    @property
    def name(self) -> str:
        return self.status.name

    @property
    def queue(self) -> str:
        return self.status.queue


class ModelInfo:
    """Reads the model registry of the live workers; thread-safe, refreshed at most every CACHE_S seconds."""

    def __init__(self, connection: redis.Redis, default_queue: str = "predict") -> None:
        """`default_queue`: QUEUE_NAME, the queue of the model a request without a model name goes to."""
        self.connection = connection
        self.default_queue = default_queue
        self._lock = threading.Lock()
        self._expires = 0.0
        self._read_at = float("-inf")
        self._models: dict[str, ModelStatus] = {}
        self._live: set[str] = set()
        self._batching: dict[str, Any] = {}
        # The models, and what a request naming no version or label resolves to by model name (None: the
        # default model) in that view: replaced together, so a memo never outlives the view it was made from.
        self._view: tuple[dict[str, ModelStatus], dict[str | None, Served]] = ({}, {})

    def models(self) -> dict[str, ModelStatus]:
        """Every model a worker advertised, by name: as the live workers serve it, or as last advertised."""
        self._refresh()
        return self._models

    def resolve(self, name: str | None = None, version: str | None = None, label: str | None = None) -> Served:
        """The model version a request names (no name: the first model of the configuration, whose queue is
        QUEUE_NAME; no version or label: the newest AVAILABLE, bound when the job is claimed).

        Raises:
            NotReady: no worker has advertised a model yet, or the model has no version available.
            ModelNotServed: the model, version or label is not served.
        """
        try:
            return self._resolve(name, version, label)
        except (ModelNotServed, NotReady):
            if not self._refresh_early():
                raise
        return self._resolve(name, version, label)

    def _resolve(self, name: str | None, version: str | None, label: str | None) -> Served:
        """`resolve` on the current view; what a request naming no version or label (nearly all) resolves to
        is remembered until the view is read again."""
        self._refresh()
        models, memo = self._view
        if version is not None or label is not None:
            return self._resolve_in(models, name, version, label)
        served = memo.get(name)
        if served is None:
            served = memo[name] = self._resolve_in(models, name, None, None)
        return served

    def _resolve_in(
        self, models: dict[str, ModelStatus], name: str | None, version: str | None, label: str | None
    ) -> Served:
        if not models:
            raise NotReady("no worker has loaded a model yet; start a worker or retry shortly", retry_after=2)
        status = models.get(name) if name is not None else self._default(models)
        if status is None:
            raise ModelNotServed(
                f"model {name!r} is not served (served: {', '.join(models)})", str(name), version, label, list(models)
            )
        available = status.available()
        if version is not None and version.isdigit():
            version = str(int(version))  # TF Serving's directories may be zero-padded ("00000123" is 123)
        if label is not None:
            version = status.labels.get(label)
            if version is None:
                labels = ", ".join(status.labels) or "none"
                raise ModelNotServed(
                    f"model {status.name!r} has no version label {label!r} (labels: {labels})",
                    status.name,
                    None,
                    label,
                    list(models),
                )
        if version is not None and version not in available:
            listed = ", ".join(available) or "none"
            raise ModelNotServed(
                f"model {status.name!r} has no version {version} available (available: {listed})",
                status.name,
                version,
                label,
                list(models),
            )
        if not available:
            raise NotReady(f"model {status.name!r} has no version available yet; retry shortly", retry_after=2)
        chosen = status.versions[version or available[0]]
        assert chosen.signature is not None  # an AVAILABLE version has its signature advertised
        return Served(status, version, chosen.signature)

    def _default(self, models: dict[str, ModelStatus]) -> ModelStatus:
        return next((m for m in models.values() if m.queue == self.default_queue), next(iter(models.values())))

    def signature(self) -> ModelSignature:
        """The first model's newest signature; raises NotReady if no worker has advertised one yet."""
        return self.resolve().signature

    def document(self, name: str | None = None) -> dict[str, Any]:
        """A model's document for GET /v1/models: its newest signature, versions, labels, batching settings."""
        served = self.resolve(name)
        document: dict[str, Any] = orjson.loads(served.signature.to_json())
        document["versions"] = [v.to_dict() | {"signature": None} for v in served.status.versions.values()]
        document["labels"] = served.status.labels
        document["queues"] = [served.status.queue, served.status.bulk_queue]
        document["batching"] = self._batching
        return document

    def _refresh_early(self) -> bool:
        """Expire the cached view if it is older than MISS_REFRESH_S; True if it was."""
        with self._lock:
            if time.monotonic() - self._read_at < MISS_REFRESH_S:
                return False
            self._expires = 0.0
            return True

    def _refresh(self) -> None:
        now = time.monotonic()
        if now < self._expires:
            return
        with self._lock:
            if now < self._expires:
                return
            self._read_at = now
            with self.connection.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.model_registry())
                pipe.zrangebyscore(keys.workers(), time.time(), "+inf")
                documents, live = pipe.execute()
            live_names = set(live)
            decoded = {worker: decode(raw) for worker, raw in sorted(documents.items())}
            serving = merge(models for worker, (models, _) in decoded.items() if worker in live_names)
            # A model no live worker serves (scaled to zero, or restarting) keeps what was advertised last.
            stopped = merge(models for worker, (models, _) in decoded.items() if worker not in live_names)
            self._models = {**{n: m for n, m in stopped.items() if n not in serving}, **serving}
            self._view = (self._models, {})
            self._live = set(serving)
            self._batching = next(iter(decoded.values()))[1] if decoded else {}
            self._expires = now + (CACHE_S if self._models else 0.0)

    def is_live(self, name: str) -> bool:
        """Whether a live worker serves the model (else its versions are as last advertised, and none runs)."""
        self._refresh()
        return name in self._live

    def live_workers(self) -> list[str]:
        """Names of workers whose last heartbeat has not expired."""
        return [m.decode() for m in self.connection.zrangebyscore(keys.workers(), time.time(), "+inf")]

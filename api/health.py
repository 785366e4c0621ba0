"""Liveness, readiness and model metadata: GET /healthz, /readyz, /v1/models.

Two readiness scopes, because two different callers ask:
  - `/readyz` (scope `service`, the default): can the service answer a prediction now? Redis answers and a
    live worker has the model loaded. For people, `make run`, smoke tests and an external status page.
  - `/readyz?scope=api`: can this API process take requests? Redis answers (PING). For a load balancer or a
    Kubernetes readiness probe on the API pods: it must not depend on workers, or every API pod would leave
    the load balancer while workers roll or scale to zero, although the API still accepts (queues) jobs.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from api.responses import json_response
from api.services import services
from shared.errors import InvalidInput, NotReady

bp = Blueprint("health", __name__)

SCOPES = ("service", "api")


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive (touches nothing else)."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """scope=service (default): 200 when Redis answers and a live worker has the model loaded, else 503.
    scope=api: 200 when Redis answers (workers are not asked), else 503."""
    scope = request.args.get("scope", "service")
    if scope not in SCOPES:
        raise InvalidInput(f"scope {scope[:50]!r} is not known", field="scope", expected=" or ".join(SCOPES))
    ext = services()
    if scope == "api":
        ext.jobs.connection.ping()  # a Redis failure becomes 503 in api/error_handler.py
        return json_response({"ready": True, "scope": "api"})
    workers = ext.model_info.live_workers()
    if not workers:
        raise NotReady("no live worker has the model loaded", retry_after=2)
    return json_response({"ready": True, "workers": len(workers)})


@bp.get("/v1/models")
def models() -> Response:
    """Every served model with a version available: name, newest version and its inputs and outputs, every
    version's state, labels, queues, micro-batching settings (`batching`), live workers; the first model first."""
    info = services().model_info
    first = info.resolve().name
    names = [first, *(n for n, m in info.models().items() if n != first and m.available())]
    workers = info.live_workers()
    return json_response({"models": [info.document(name) | {"workers": workers} for name in names]})

"""Liveness, readiness and model metadata: GET /healthz, /readyz, /v1/models."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from api.responses import json_response
from shared.errors import NotReady

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive (touches nothing else)."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """200 when Redis answers and at least one live worker has the model loaded; 503 otherwise."""
    ext = current_app.extensions["inference"]
    workers = ext.model_info.live_workers()
    if not workers:
        raise NotReady("no live worker has the model loaded", retry_after=2)
    return json_response({"ready": True, "workers": len(workers)})


@bp.get("/v1/models")
def models() -> Response:
    """The served model: name, version, inputs, outputs, batching settings, live workers."""
    ext = current_app.extensions["inference"]
    document = dict(ext.model_info.document())
    document["workers"] = ext.model_info.live_workers()
    return json_response({"models": [document]})

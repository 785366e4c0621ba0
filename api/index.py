"""GET /: what this server is, for a person or a script that finds it: name, version, served models, links.

It also answers KServe's v1 liveness check (the kserve SDK's `is_server_live` GETs the root and reads
`"status": "alive"`), so the page says so: the process answered.
"""

from __future__ import annotations

from flask import Blueprint, Response

from api.responses import json_response
from api.services import services
from shared.errors import NotReady
from shared.version import SERVICE_NAME, VERSION

bp = Blueprint("index", __name__)

LINKS = {
    "docs": "/docs",
    "openapi": "/openapi.json",
    "metrics": "/metrics",
    "health": "/healthz",
    "ready": "/readyz",
    "models": "/v1/models",
}


@bp.get("/")
def index() -> Response:
    """Service name, version, the models workers have advertised (none yet: []) and where to go next."""
    ext = services()
    try:
        document = ext.model_info.document()
        models = [{"name": document["name"], "version": str(document["version"])}]
    except NotReady:
        models = []
    return json_response(
        {"service": SERVICE_NAME, "version": VERSION, "status": "alive", "models": models, "links": LINKS}
    )

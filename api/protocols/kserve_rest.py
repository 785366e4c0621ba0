"""KServe v2 / Open Inference Protocol over HTTP (what Triton and tritonclient.http speak), served by the
same queue and micro-batching worker as /predict.

GET  /v2/health/live, /v2/health/ready, /v2 (server metadata)
GET  /v2/models/<name>[/versions/<v>]          model metadata
GET  /v2/models/<name>[/versions/<v>]/ready    model readiness
POST /v2/models/<name>[/versions/<v>]/infer    typed tensors, JSON or binary (api/protocols/kserve_codec.py)
Errors on these routes are {"error": "..."} (api/error_handler.py picks the shape by blueprint).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from api.jobs.submit import infer
from api.model_info import Served
from api.protocols.kserve_codec import parse_request, render_response, resolve, tensor_metadata
from api.responses import json_response
from api.services import services
from shared.errors import NotReady, UnsupportedMediaType

bp = Blueprint("kserve", __name__)

SERVER_NAME = "batched-inference-queue"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "tensorflow"
HEADER_LENGTH = "Inference-Header-Content-Length"


def served(name: str, version: str | None) -> Served:
    """The model version the route names (KServe's "unknown model" words when it is not served)."""
    return resolve(services().model_info, name, version)


def _require_live_worker() -> None:
    if not services().model_info.live_workers():
        raise NotReady("no live worker has the model loaded", retry_after=2)


@bp.get("/v2/health/live")
def live() -> Response:
    """The server process is alive."""
    return json_response({"live": True})


@bp.get("/v2/health/ready")
def ready() -> Response:
    """200 when at least one live worker has the model loaded, else 503."""
    _require_live_worker()
    return json_response({"ready": True})


@bp.get("/v2")
def server_metadata() -> Response:
    """Server name, version and the protocol extensions it supports."""
    return json_response({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})


@bp.get("/v2/models/<name>")
@bp.get("/v2/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> Response:
    """Inputs and outputs with v2 datatypes (of the version, or the newest); -1 marks the batch dimension and
    any free dimension. `versions` lists every version available."""
    target = served(name, version)
    signature = target.signature
    return json_response(
        {
            "name": signature.name,
            "versions": target.status.available() if version is None else [signature.version],
            "platform": PLATFORM,
            "inputs": [tensor_metadata(t) for t in signature.inputs],
            "outputs": [tensor_metadata(t) for t in signature.outputs],
        }
    )


@bp.get("/v2/models/<name>/ready")
@bp.get("/v2/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> Response:
    """200 when a live worker has the model (that version, when given) AVAILABLE, else 503 (404: unknown)."""
    target = served(name, version)
    if not services().model_info.is_live(target.name):
        raise NotReady("no live worker has the model loaded", retry_after=2)
    return json_response({"name": target.name, "ready": True})


@bp.post("/v2/models/<name>/infer")
@bp.post("/v2/models/<name>/versions/<version>/infer")
def model_infer(name: str, version: str | None = None) -> Response:
    """Run one inference request; waits for the queued job (up to PROTOCOL_TIMEOUT_S)."""
    target = served(name, version)
    signature = target.signature
    if request.headers.get("Content-Encoding", "identity") != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {request.headers['Content-Encoding'][:32]!r} is not supported",
            expected="an uncompressed body",
        )
    ext = services()
    parsed = parse_request(
        request.get_data(cache=False), request.headers.get(HEADER_LENGTH), signature, ext.settings.max_rows_per_request
    )
    outcome = infer(parsed.arrays, served=target)
    body, header_length = render_response(parsed, outcome.by_name(signature), signature, outcome.model)
    if header_length is None:
        return json_response(body)
    return Response(body, content_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)})

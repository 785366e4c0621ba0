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
from api.protocols.kserve_codec import parse_request, render_response, tensor_metadata
from api.responses import json_response
from api.services import services
from shared.errors import NotFound, NotReady, UnsupportedMediaType
from shared.signature import ModelSignature

bp = Blueprint("kserve", __name__)

SERVER_NAME = "batched-inference-queue"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "tensorflow"
HEADER_LENGTH = "Inference-Header-Content-Length"


def served(name: str, version: str | None) -> ModelSignature:
    """The served model's signature if `name` (and `version`, when given) is what the workers serve."""
    signature = services().model_info.signature()
    if name != signature.name or (version is not None and version != signature.version):
        which = f" version {version}" if version is not None else ""
        raise NotFound(
            f"Request for unknown model: '{name}'{which} is not found "
            f"(this server serves '{signature.name}' version {signature.version})"
        )
    return signature


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
    """Inputs and outputs with v2 datatypes; -1 marks the batch dimension and any free dimension."""
    signature = served(name, version)
    return json_response(
        {
            "name": signature.name,
            "versions": [signature.version],
            "platform": PLATFORM,
            "inputs": [tensor_metadata(t) for t in signature.inputs],
            "outputs": [tensor_metadata(t) for t in signature.outputs],
        }
    )


@bp.get("/v2/models/<name>/ready")
@bp.get("/v2/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> Response:
    """200 when the model is served by a live worker, else 503."""
    signature = served(name, version)
    _require_live_worker()
    return json_response({"name": signature.name, "ready": True})


@bp.post("/v2/models/<name>/infer")
@bp.post("/v2/models/<name>/versions/<version>/infer")
def model_infer(name: str, version: str | None = None) -> Response:
    """Run one inference request; waits for the queued job (up to PROTOCOL_TIMEOUT_S)."""
    signature = served(name, version)
    if request.headers.get("Content-Encoding", "identity") != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {request.headers['Content-Encoding'][:32]!r} is not supported",
            expected="an uncompressed body",
        )
    ext = services()
    parsed = parse_request(
        request.get_data(cache=False), request.headers.get(HEADER_LENGTH), signature, ext.settings.max_rows_per_request
    )
    outcome = infer(parsed.arrays)
    body, header_length = render_response(parsed, outcome.by_name(signature), signature, outcome.model)
    if header_length is None:
        return json_response(body)
    return Response(body, content_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)})

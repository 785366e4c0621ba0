"""One error handler for the app: our ServiceError tree and Werkzeug's HTTP errors become one JSON shape.

Routes of another protocol answer in that protocol's shape instead: TensorFlow Serving's REST API and
KServe v2 both use `{"error": "<message>"}`. The shape is picked by the blueprint that matched, or, for a
URL no route matched (404/405), by its path prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import orjson
import redis
from flask import Flask, Response, has_request_context, request
from werkzeug.exceptions import HTTPException

from shared.errors import NotReady, ServiceError, StorageUnavailable, for_status
from shared.storage import StoreUnreachable

log = logging.getLogger(__name__)


STORAGE_RETRY_AFTER_S = 5  # an object store outage rarely ends within a second; uploads are costly to resend
PROTOCOL_BLUEPRINTS = frozenset({"tfserving", "kserve"})
PROTOCOL_PREFIXES = ("/v1/models/", "/v2/")
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})


def speaks_protocol() -> bool:
    """True when the request in hand is on a TF Serving or KServe route (or under their paths)."""
    if not has_request_context():
        return False
    if request.blueprint is not None:
        return request.blueprint in PROTOCOL_BLUEPRINTS
    return request.path.startswith(PROTOCOL_PREFIXES) or request.path == "/v2"


def protocol_body(error: ServiceError) -> dict[str, str]:
    """{"error": "<message>"}, the field and the expected form folded into the sentence."""
    details = [f"field {error.field}" if error.field else "", f"expected {error.expected}" if error.expected else ""]
    details = [d for d in details if d]
    return {"error": error.message + (f" ({'; '.join(details)})" if details else "")}


def error_response(error: ServiceError) -> Response:
    """Render a ServiceError as {"error": {...}} with its status (and Retry-After when it has one)."""
    body = protocol_body(error) if speaks_protocol() else error.to_dict()
    response = Response(orjson.dumps(body), status=error.status, mimetype="application/json")
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="inference"'
    return response


def drain_body() -> None:
    """Read and drop what is left of the request body, so the connection can carry the client's next request.

    Errors raised before the view reads the body (a full queue, a bad key, a bad query) would otherwise
    leave it unread, and gunicorn closes such a connection (beyond 64 KiB) without telling the client.
    """
    try:
        while request.stream.read(1 << 16):
            pass
    except Exception:  # over MAX_CONTENT_LENGTH, or the client went away: the connection closes anyway
        pass


def allowed_methods(valid: Iterable[str]) -> str:
    """The Allow header of a 405: the route's methods as the OpenAPI document lists them.

    Werkzeug adds HEAD to every GET route; HEAD keeps working (it is GET without the body, RFC 9110 9.3.2)
    but is not advertised, so that Allow and the document name the same methods.
    """
    return ", ".join(sorted(m for m in set(valid) if m not in IMPLICIT_METHODS))


def handle_error(exc: Exception) -> Response:
    drain_body()
    if isinstance(exc, ServiceError):
        return error_response(exc)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return error_response(NotReady("Redis is not reachable; try again shortly", retry_after=1))
    if isinstance(exc, redis.ResponseError) and str(exc).startswith("OOM"):
        # maxmemory reached under noeviction: nothing was written, so the client may retry; a 500 would
        # read as a bug. Logged so that the operator sees why (docs/operations.md, "Redis unreachable or full").
        log.error("Redis is out of memory (maxmemory with noeviction): refusing writes")
        return error_response(NotReady("Redis is full; try again later", retry_after=5))
    if isinstance(exc, StoreUnreachable):
        log.warning("answering 503: %s", exc)
        return error_response(StorageUnavailable(f"{exc}; try again shortly", retry_after=STORAGE_RETRY_AFTER_S))
    if isinstance(exc, HTTPException):
        response = error_response(for_status(exc.code or 500, exc.description or exc.name))
        valid_methods = getattr(exc, "valid_methods", None)  # set on MethodNotAllowed only
        if exc.code == 405 and valid_methods:
            response.headers["Allow"] = allowed_methods(valid_methods)
        return response
    log.exception("unhandled error")
    return error_response(ServiceError("internal server error"))


def init_app(app: Flask) -> None:
    app.register_error_handler(Exception, handle_error)

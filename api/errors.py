"""One error handler for the app: our ServiceError tree and Werkzeug's HTTP errors become one JSON shape."""

from __future__ import annotations

import logging

import orjson
import redis
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from shared.errors import NotReady, ServiceError

log = logging.getLogger(__name__)


def error_response(error: ServiceError) -> Response:
    """Render a ServiceError as {"error": {...}} with its status (and Retry-After when it has one)."""
    response = Response(orjson.dumps(error.to_dict()), status=error.status, mimetype="application/json")
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


def handle_error(exc: Exception) -> Response:
    drain_body()
    if isinstance(exc, ServiceError):
        return error_response(exc)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return error_response(NotReady("Redis is not reachable; try again shortly", retry_after=1))
    if isinstance(exc, HTTPException):
        error = ServiceError(exc.description or exc.name)
        error.status = exc.code or 500
        error.code = exc.name.lower().replace(" ", "_")
        response = error_response(error)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response
    log.exception("unhandled error")
    return error_response(ServiceError("internal server error"))


def init_app(app: Flask) -> None:
    app.register_error_handler(Exception, handle_error)

"""Per-request bookkeeping: the request id (X-Request-ID in and out), one access log line, HTTP metrics.

The id is the client's X-Request-ID when it is acceptable (1-128 of `A-Z a-z 0-9 . _ : + / = -`), else a
new one; an unacceptable id is replaced, not refused, so a tracing header never breaks a request. It is
returned on every response, set on every log line of the request, and stored in the RQ job's meta.
"""

from __future__ import annotations

import logging
import os
import time
from contextvars import Token
from typing import Any

from flask import Flask, Request, Response, request
from flask.sessions import NullSession, SessionInterface, SessionMixin
from werkzeug.datastructures import ImmutableMultiDict

from api import metrics
from shared.logs import log_line, request_id_or_new, request_id_var

log = logging.getLogger("api.access")

HEADER = "X-Request-ID"


class _Parameters(ImmutableMultiDict):
    """Query and form parameters whose `get` of an absent name costs a dict lookup: Werkzeug's raises and
    catches a BadRequestKeyError (an HTTPException built per absent name), and /predict asks for five
    optional parameters that a request seldom sends."""

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:  # type: ignore[override]  # noqa: A002
        if type is not None:
            return super().get(key, default, type)
        values = dict.get(self, key)  # a MultiDict's dict holds each name's list of values
        return values[0] if values else default


class _NoSession(SessionInterface):
    """The API keeps no session (no secret key, no view reads one): every request gets one shared empty,
    read-only session, where Flask's default interface builds a new one per request to find that out."""

    _empty = NullSession()

    def open_session(self, app: Flask, request: Request) -> NullSession:
        return self._empty

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Never called: Flask saves no null session."""


class ApiRequest(Request):
    """Flask's request, with `_Parameters` for `args` and `form`, and this module's bookkeeping for the
    request as typed attributes (attributes of `g` cost a context lookup and a string key each)."""

    parameter_storage_class = _Parameters
    request_id: str | None = None
    started: float | None = None  # perf_counter() when `_begin` ran
    id_token: Token[str | None] | None = None  # undoes request_id_var's setting at teardown


def this_request() -> ApiRequest:
    """The request in hand: the object itself, not the context-local proxy, whose every attribute read is a
    lookup (a microsecond each, dozens of them per request)."""
    return request._get_current_object()  # type: ignore[attr-defined]


def current_request_id() -> str | None:
    """The id of the request being served."""
    return this_request().request_id


def _begin() -> None:
    served = this_request()
    served.request_id = request_id_or_new(served.headers.get(HEADER))
    served.id_token = request_id_var.set(served.request_id)
    served.started = time.perf_counter()


def _end(response: Response) -> Response:
    served = this_request()
    response.headers[HEADER] = served.request_id or request_id_or_new(None)
    if served.started is not None:
        seconds = time.perf_counter() - served.started
        method, path, status = served.method, served.path, response.status_code
        route = served.url_rule.rule if served.url_rule is not None else "(unmatched)"
        metrics.observe_request(method, route, status, seconds)
        duration_ms = seconds * 1000
        fields = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_ms, 2),
            "pid": os.getpid(),  # which API process answered (API_PROCESSES > 1)
        }
        log_line(log, logging.INFO, f"{method} {path} {status} {duration_ms:.1f} ms", fields)
    return response


def _teardown(_exc: BaseException | None) -> None:
    served = this_request()
    if served.id_token is not None:
        request_id_var.reset(served.id_token)
        served.id_token = None


def init_app(app: Flask) -> None:
    app.request_class = ApiRequest
    app.session_interface = _NoSession()
    app.before_request(_begin)
    app.after_request(_end)
    app.teardown_request(_teardown)

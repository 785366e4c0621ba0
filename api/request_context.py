"""Per-request bookkeeping: the request id (X-Request-ID in and out), one access log line, HTTP metrics.

The id is the client's X-Request-ID when it is acceptable (1-128 of `A-Z a-z 0-9 . _ : + / = -`), else a
new one; an unacceptable id is replaced, not refused, so a tracing header never breaks a request. It is
returned on every response, set on every log line of the request, and stored in the RQ job's meta.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from flask import Flask, Request, Response, g, request
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
    """Flask's request, with `_Parameters` for `args` and `form`."""

    parameter_storage_class = _Parameters


def current_request_id() -> str | None:
    """The id of the request being served."""
    return g.get("request_id")


def _begin() -> None:
    g.request_id = request_id_or_new(request.headers.get(HEADER))
    g.request_token = request_id_var.set(g.request_id)
    g.request_started = time.perf_counter()


def _end(response: Response) -> Response:
    response.headers[HEADER] = g.get("request_id") or request_id_or_new(None)
    started = g.get("request_started")
    if started is not None:
        seconds = time.perf_counter() - started
        # The request itself, not the context-local proxy, whose every attribute read is a lookup.
        served = request._get_current_object()  # type: ignore[attr-defined]
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
    token = g.pop("request_token", None)
    if token is not None:
        request_id_var.reset(token)


def init_app(app: Flask) -> None:
    app.request_class = ApiRequest
    app.session_interface = _NoSession()
    app.before_request(_begin)
    app.after_request(_end)
    app.teardown_request(_teardown)

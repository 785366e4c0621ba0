"""The longest URL the API takes: a path and query string over MAX_TARGET_BYTES answer 414 `uri_too_long`.

The same limit under both servers (API_SERVER). granian has none of its own below its 408 KB header buffer
(then 431); gunicorn refuses a request line over 8190 bytes itself (api/gunicorn_conf.py
`limit_request_line`, its own HTML page), so the app's limit sits below that: `POST <target> HTTP/1.1`
with a target of 8000 bytes is 8014 bytes, and a longer target gets this JSON 414 from both servers up to
gunicorn's own limit. 8000 bytes leave room for POST /batches's query options as the OpenAPI document
describes them (metadata of 8 values of up to 64 characters, percent-encoded, and a callback_url); longer
values go in a form field.

The path is counted as the server decoded it (granian gives the app no raw request line), the query
string as sent: one length check per request, on the hot path.
"""

from __future__ import annotations

from flask import Flask, request

from shared.errors import UriTooLong

MAX_TARGET_BYTES = 8000


def _refuse_long_target() -> None:
    environ = request.environ
    if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > MAX_TARGET_BYTES:
        raise UriTooLong(
            "the URL is too long",
            expected=f"a path and query string of at most {MAX_TARGET_BYTES} bytes (send long values in the body)",
        )


def init_app(app: Flask) -> None:
    """Check every request's URL first, before authentication (as a server's own limit would)."""
    app.before_request(_refuse_long_target)

"""JSON responses rendered with orjson (the API's hot path spends real time encoding)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson
from flask import Response, request

from shared.connection import MAX_BLOCKING_WAIT_S
from shared.errors import InvalidInput

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

MAX_WAIT_S = MAX_BLOCKING_WAIT_S  # the Redis client's socket timeout is sized to outlast this


class WholeResponse(Response):
    """A response whose body is in memory, handed to the WSGI server as a list of one bytes object.

    Werkzeug hands every body over as an iterator (to be closed after), which granian sends by calling back
    into Python for each chunk and for the close, taking the GIL back each time; a list it sends in one write.
    The response is closed when its body is taken (nothing of a bytes body is left to close), not after it is
    sent. HEAD and bodiless statuses get an empty body, as before.
    """

    def get_app_iter(self, environ: WSGIEnvironment) -> Iterable[bytes]:
        chunks = super().get_app_iter(environ)
        body = b"".join(chunks)
        self.close()
        return [body]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response; `body` may be already-encoded bytes (a stored status document)."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return WholeResponse(data, status=status, headers=headers, mimetype="application/json")


def wait_seconds() -> float:
    """The `?wait=S` query parameter: 0 when absent, at most MAX_WAIT_S (an empty value is not a number)."""
    raw = request.args.get("wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_S:
        raise InvalidInput(
            f"wait={raw[:32]!r} is not a valid wait", field="wait", expected=f"seconds from 0 to {MAX_WAIT_S:g}"
        )
    return value

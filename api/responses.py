"""JSON responses rendered with orjson (the API's hot path spends real time encoding)."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, request

from shared.connection import MAX_BLOCKING_WAIT_S
from shared.errors import InvalidInput

MAX_WAIT_S = MAX_BLOCKING_WAIT_S  # the Redis client's socket timeout is sized to outlast this


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response; `body` may be already-encoded bytes (a stored status document)."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(data, status=status, headers=headers, mimetype="application/json")


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

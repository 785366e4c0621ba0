"""Schemathesis hooks for `make fuzz` (loaded through schemathesis.toml): send the upload formats of
POST /batches as raw bytes, so the document's example NDJSON and CSV bodies (and generated ones) go out."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("application/x-ndjson", "text/csv", "application/x-npy")
def raw_upload(_ctx: Any, value: Any) -> bytes:
    """The body as it is: bytes, a Binary value, or text (an example) encoded as UTF-8."""
    return value.encode() if isinstance(value, str) else serialize_binary(value)

"""The body of POST /batches as a stream of bytes: raw (NDJSON, CSV, .npy) or the file part of a multipart
form, plus the upload's options. Nothing here holds more than one read (1 MiB) of the file in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from shared.webhooks import check_callback_url

READ_BYTES = 1 << 20
MAX_FIELD_BYTES = 64 * 1024
DECODER_FEED = 64 * 1024
DRAIN_BYTES = 16 << 20
MAX_METADATA_BYTES = 4096

FORMATS = {
    "application/x-ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "application/jsonlines": "ndjson",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-npy": "npy",
    "application/npy": "npy",
}
EXTENSIONS = {".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv", ".npy": "npy"}
EXPECTED_TYPES = "Content-Type application/x-ndjson, text/csv or application/x-npy, or a multipart/form-data file"


@dataclass
class Options:
    """The options of an upload, from the query string or (overriding) multipart form fields."""

    callback_url: str | None = None
    metadata: Any = None
    on_error: str = "reject"
    callback_hosts: frozenset[str] = frozenset()  # WEBHOOK_ALLOWED_HOSTS

    def update(self, values: dict[str, str]) -> None:
        if values.get("callback_url"):
            self.callback_url = check_callback_url(values["callback_url"], self.callback_hosts)
        if values.get("metadata"):
            self.metadata = parse_metadata(values["metadata"])
        if values.get("on_error"):
            if values["on_error"] not in ("reject", "skip"):
                raise InvalidInput(
                    f"on_error={values['on_error'][:32]!r} is not an option",
                    field="on_error",
                    expected="reject (default) or skip",
                )
            self.on_error = values["on_error"]


def parse_metadata(raw: str) -> dict:
    """`metadata`: a JSON object of at most MAX_METADATA_BYTES, stored and echoed on the batch."""
    try:
        value = orjson.loads(raw) if len(raw) <= MAX_METADATA_BYTES else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput(
            "metadata is not a small JSON object",
            field="metadata",
            expected=f"a JSON object of at most {MAX_METADATA_BYTES} bytes",
        )
    return value


@dataclass
class Upload:
    """The file being uploaded: its format and its bytes, read lazily; form fields appear as they are read."""

    format: str
    pieces: Iterator[bytes]
    fields: dict[str, str] = field(default_factory=dict)


def too_large(stream: IO[bytes], limit: int, size: int | None = None) -> PayloadTooLarge:
    """The 413 for an upload over `limit`, after reading (and dropping) up to DRAIN_BYTES more of it.

    A server that closes a connection with unread data makes the kernel reset it, and the client may then
    lose the answer; draining a little makes a moderate overrun end with a clean 413.
    """
    drained = 0
    try:
        while drained < DRAIN_BYTES and (piece := stream.read(READ_BYTES)):
            drained += len(piece)
    except (OSError, ValueError):  # the client gave up sending
        pass
    what = f"{size} bytes" if size is not None else f"larger than {limit} bytes"
    return PayloadTooLarge(f"the upload is {what}", field="file", expected=f"at most MAX_BATCH_BYTES={limit} bytes")


def read_pieces(stream: IO[bytes], limit: int) -> Iterator[bytes]:
    """The request body in reads of READ_BYTES, raising PayloadTooLarge past `limit` bytes."""
    seen = 0
    while True:
        piece = stream.read(READ_BYTES)
        if not piece:
            return
        seen += len(piece)
        if seen > limit:
            raise too_large(stream, limit)
        yield piece


def open_upload(content_type: str | None, stream: IO[bytes], limit: int) -> Upload:
    """The upload in the request: a raw body of a known type, or the one file of a multipart form."""
    mime, params = parse_options_header(content_type or "")
    mime = mime.lower()
    pieces = read_pieces(stream, limit)
    if mime == "multipart/form-data":
        if not params.get("boundary"):
            raise InvalidInput(
                "multipart body without a boundary", field="file", expected="multipart/form-data; boundary=..."
            )
        return _multipart(pieces, params["boundary"].encode("latin1"))
    if mime not in FORMATS:
        raise UnsupportedMediaType(
            f"Content-Type {mime or '(none)'!r} is not an upload format", expected=EXPECTED_TYPES
        )
    return Upload(FORMATS[mime], pieces)


def _multipart(pieces: Iterator[bytes], boundary: bytes) -> Upload:
    fields: dict[str, str] = {}
    parts = _file_parts(pieces, boundary, fields)
    first = next(parts, None)
    if first is None:
        raise InvalidInput("the multipart form has no file part", field="file", expected="one file field")
    part, data = first
    mime = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    extension = "." + part.filename.rsplit(".", 1)[-1].lower() if "." in (part.filename or "") else ""
    kind = FORMATS.get(mime) or EXTENSIONS.get(extension)
    if kind is None:
        raise UnsupportedMediaType(
            f"file part {part.filename!r} ({mime or 'no type'}) is not an upload format",
            expected="a .ndjson/.jsonl, .csv or .npy file, or its Content-Type",
        )
    return Upload(kind, itertools.chain([data], _rest(parts)), fields)


def _rest(parts: Iterator[tuple[File, bytes]]) -> Iterator[bytes]:
    for _, data in parts:
        yield data


def _feeds(pieces: Iterator[bytes]) -> Iterator[bytes | None]:
    """The pieces cut into DECODER_FEED slices for the multipart decoder, then None for the end."""
    for piece in pieces:
        for start in range(0, len(piece), DECODER_FEED):
            yield piece[start : start + DECODER_FEED]
    yield None


def _file_parts(pieces: Iterator[bytes], boundary: bytes, fields: dict[str, str]) -> Iterator[tuple[File, bytes]]:
    """Yield (file part, data) as the file's data arrives; small fields go into `fields` as they end."""
    # The decoder's buffer limit also bounds part headers; feeding it small slices keeps file data under it.
    decoder = MultipartDecoder(boundary, max_form_memory_size=4 * DECODER_FEED, max_parts=32)
    current: Field | File | None = None
    file: File | None = None
    value = bytearray()
    for feed in _feeds(pieces):
        decoder.receive_data(feed)
        event = _next_event(decoder)
        while not isinstance(event, NeedData | Epilogue):
            if isinstance(event, Field):
                current, value = event, bytearray()
            elif isinstance(event, File):
                if file is not None:
                    raise InvalidInput(
                        "the multipart form has more than one file", field="file", expected="one file field"
                    )
                current = file = event
            elif isinstance(event, Data) and isinstance(current, File):
                yield current, event.data
            elif isinstance(event, Data) and isinstance(current, Field):
                value += event.data
                if len(value) > MAX_FIELD_BYTES:
                    raise PayloadTooLarge(
                        f"form field {current.name!r} is over {MAX_FIELD_BYTES} bytes", field=current.name
                    )
                if not event.more_data:
                    fields[current.name] = value.decode("utf-8", "replace")
            event = _next_event(decoder)


def _next_event(decoder: MultipartDecoder) -> Any:
    """The decoder's next event; its ValueError for a malformed body (no part headers, a part after the
    closing boundary, a bad header line) becomes a 400."""
    try:
        return decoder.next_event()
    except ValueError as exc:
        raise InvalidInput(
            f"the multipart body is malformed: {exc}",
            field="file",
            expected="multipart/form-data parts, each with a Content-Disposition header, between the boundary lines",
        ) from None

"""Log set-up for every process: plain text for people or one JSON object per line (LOG_FORMAT), and the
request id that ties the API's lines for a request to the worker's lines for its job.

The id travels as a record attribute: the API sets it for the request in hand through `request_id_var`
(a ContextVar, so each gunicorn thread sees its own); the worker passes `extra={"request_id": ...}` for a
job's lines, because one batch holds many jobs of many requests.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Ids we accept from clients (X-Request-ID): what tracing systems send (uuids, hex, W3C-style ids), short
# enough for a log line, and nothing that could break a header or a log parser.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:+/=-]{1,128}$")

# LogRecord attributes that are not "extra" fields a caller added.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


def request_id_or_new(candidate: str | None) -> str:
    """The client's X-Request-ID if it is acceptable, else a new random id (uuid4 hex)."""
    if candidate and _REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Give every record a `request_id` attribute: the caller's, else the current request's, else None."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id (when known), extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id := getattr(record, "request_id", None):
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """The classic line, with ` [request_id]` appended when the record has one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request_id={rid}]" if rid else line


class StderrHandler(logging.StreamHandler):
    """A stderr handler that formats a record before taking the handler's lock, which it holds only for the
    write: the API's request threads each write an access line, and formatting under the lock made them
    queue on it (the lock showed in the API's profile under load). Lines are written whole, one at a time."""

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        try:
            line = self.format(record) + self.terminator
            with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
                self.stream.write(line)
                self.stream.flush()
        except RecursionError:  # as StreamHandler.emit
            raise
        except Exception:
            self.handleError(record)
        return True


def make_handler(log_format: str) -> logging.Handler:
    """A stderr handler with our formatter and the request-id filter."""
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    return handler


def configure_logging(level: str, log_format: str) -> None:
    """Route the root logger through one handler in `log_format` ("text" or "json")."""
    skip_unused_record_fields()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(make_handler(log_format))
    root.setLevel(level)


def skip_unused_record_fields() -> None:
    """Stop filling in record fields no format of ours or of the servers' prints: the caller (a walk up the
    stack per record), the thread and the multiprocessing process name (`%(process)d`, the process id, which
    gunicorn's own lines print, stays). The logging HOWTO's "Optimization" switches: they cut a log call by
    about a third, and the API writes a line per request."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False

"""Log set-up for every process: plain text for people or one JSON object per line (LOG_FORMAT), and the
request id that ties the API's lines for a request to the worker's lines for its job.

The id travels as a record attribute: the API sets it for the request in hand through `request_id_var`
(a ContextVar, so each gunicorn thread sees its own); the worker passes `extra={"request_id": ...}` for a
job's lines, because one batch holds many jobs of many requests.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.ids import uuid4_hex

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
    return uuid4_hex()


class RequestIdFilter(logging.Filter):
    """Give every record a `request_id` attribute: the caller's, else the current request's, else None."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id (when known), extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        rid = getattr(record, "request_id", None)
        return self.line(record.created, record.levelname, record.name, record.getMessage(), rid, fields)

    def line(
        self, created: float, level: str, name: str, message: str, request_id: str | None, fields: dict[str, Any]
    ) -> str:
        """The line `format` writes for a record with these attributes and `fields` as its extra fields."""
        entry = {
            "ts": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "logger": name,
            "message": message,
        }
        if request_id:
            entry["request_id"] = request_id
        entry.update(fields)
        return orjson.dumps(entry, default=str).decode()


@functools.lru_cache(maxsize=2)
def _local_second(whole: int) -> str:
    """Formatter.formatTime's default text for a whole second, formatted once (strftime per line showed)."""
    return time.strftime(logging.Formatter.default_time_format, logging.Formatter.converter(whole))


class TextFormatter(logging.Formatter):
    """The classic line, with ` [request_id]` appended when the record has one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request_id={rid}]" if rid else line

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        return super().formatTime(record, datefmt) if datefmt else self._asctime(record.created)

    def _asctime(self, created: float) -> str:
        """Formatter.formatTime's default text for `created`: "2026-12-04 22:45:01,234" (local time)."""
        whole = int(created)
        return f"{_local_second(whole)},{int((created - whole) * 1000):03d}"  # Formatter.default_msec_format

    def line(
        self, created: float, level: str, name: str, message: str, request_id: str | None, fields: dict[str, Any]
    ) -> str:
        """The line `format` writes for a record with these attributes (extra `fields` are not in text lines)."""
        line = f"{self._asctime(created)} {name} {level} {message}"
        return f"{line} [request_id={request_id}]" if request_id else line


class StderrHandler(logging.StreamHandler):
    """A stderr handler that formats a record before taking the handler's lock, which it holds only for the
    write: the API's request threads each write an access line, and formatting under the lock made them
    queue on it (the lock showed in the API's profile under load). Lines are written whole, one at a time."""

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        try:
            self.write_line(self.format(record))
        except RecursionError:  # as StreamHandler.emit
            raise
        except Exception:
            self.handleError(record)
        return True

    def write_line(self, line: str) -> None:
        """Write one formatted line, whole."""
        line += self.terminator
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            self.stream.write(line)
            self.stream.flush()


def log_line(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """`logger.log(level, message, extra=fields)` for a finished message (no arguments, no exception) and extra
    fields other than request_id; the same line, at a fraction of the cost, when it goes to our handler alone.

    The API writes one per request, and the logging module's path (a LogRecord, the dispatch through loggers,
    handlers and filters, strftime) cost more than the line: when the logger has no filter of its own and the
    line reaches exactly one handler, ours as `make_handler` set it up, the line is formatted and written
    straight. Any other set-up (another handler added, a test's capture) takes the logging module's path, and
    so does a line whose straight write fails, so that the error is reported as logging reports it.
    """
    if not logger.isEnabledFor(level):
        return
    handler = _sole_handler(logger, level)
    if handler is not None and isinstance(handler.formatter, (TextFormatter, JsonFormatter)):
        name = logging.getLevelName(level)
        try:
            line = handler.formatter.line(time.time(), name, logger.name, message, request_id_var.get(), fields)
            handler.write_line(line)
            return
        except Exception:  # written nowhere: the logging module's path tries again and reports why it fails
            pass
    logger.log(level, message, extra=fields)


def _sole_handler(logger: logging.Logger, level: int) -> StderrHandler | None:
    """The handler a `level` line of `logger` reaches if it is the only one, ours, and filters nothing out."""
    if logger.filters:
        return None
    reached: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:  # as Logger.callHandlers walks
        reached.extend(current.handlers)
        current = current.parent if current.propagate else None
    if len(reached) != 1 or type(reached[0]) is not StderrHandler or level < reached[0].level:
        return None
    handler = reached[0]
    return handler if all(type(f) is RequestIdFilter for f in handler.filters) else None


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

"""Log lines: JSON objects with the request id when LOG_FORMAT=json; client request ids are checked."""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time

import orjson

from shared.logs import (
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    log_line,
    make_handler,
    request_id_or_new,
    request_id_var,
    skip_unused_record_fields,
)


def _record(message: str, **extra) -> logging.LogRecord:
    record = logging.LogRecord("worker.publish", logging.INFO, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    RequestIdFilter().filter(record)
    return record


def test_json_lines_carry_level_logger_message_request_id_and_extra_fields():
    line = JsonFormatter().format(_record("job 1 finished", request_id="abc", job_id="1"))
    entry = orjson.loads(line)
    assert entry["level"] == "INFO" and entry["logger"] == "worker.publish"
    assert entry["message"] == "job 1 finished"
    assert entry["request_id"] == "abc" and entry["job_id"] == "1"
    assert "\n" not in line


def test_the_current_request_id_is_used_when_the_record_has_none():
    token = request_id_var.set("from-context")
    try:
        record = _record("hello")
    finally:
        request_id_var.reset(token)
    assert orjson.loads(JsonFormatter().format(record))["request_id"] == "from-context"
    assert TextFormatter().format(record).endswith("hello [request_id=from-context]")


def test_acceptable_client_request_ids_are_kept_and_others_replaced():
    assert request_id_or_new("4bf92f3577b34da6a3ce929d0e0e4736") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert request_id_or_new("trace:abc/1+2=3") == "trace:abc/1+2=3"
    for bad in (None, "", "has space", "x" * 129, "new\nline", 'quote"'):
        replaced = request_id_or_new(bad)
        assert replaced != bad and len(replaced) == 32


def test_lines_from_many_threads_are_written_whole_and_a_bad_record_does_not_stop_the_next(capsys):
    handler = make_handler("text")
    logger = logging.Logger("api.access")
    logger.addHandler(handler)

    def write(n: int) -> None:
        for i in range(200):
            logger.info("thread %d line %d", n, i)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.info("bad %d", "not a number")  # reported by logging's own error path, as StreamHandler does
    logger.info("after")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " api.access INFO " in line]
    assert len(lines) == 8 * 200 + 1 and lines[-1].endswith(" after")
    assert all(re.search(r" thread \d line \d+$", line) for line in lines[:-1])
    assert "--- Logging error ---" in err


def test_records_keep_the_process_id_that_gunicorns_own_lines_print():
    skip_unused_record_fields()  # what configure_logging does in every process
    record = logging.getLogger("gunicorn.error").makeRecord("gunicorn.error", logging.INFO, "", 0, "up", None, None)
    assert logging.Formatter("[%(process)d] %(message)s").format(record) == f"[{os.getpid()}] up"


def _logged(log_format: str, write) -> list[str]:
    """The lines `write(logger)` puts through a handler of ours in `log_format`."""
    stream = io.StringIO()
    handler = make_handler(log_format)
    handler.setStream(stream)  # type: ignore[attr-defined]
    logger = logging.Logger("api.access")
    logger.addHandler(handler)
    write(logger)
    return stream.getvalue().splitlines()


def test_a_line_written_straight_is_the_line_the_logging_module_writes(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1_764_888_301.0456)  # both paths read the clock through time.time
    fields = {"method": "POST", "path": "/predict", "status": 200, "duration_ms": 1.25, "pid": 7}
    token = request_id_var.set("rid-1")
    try:
        for log_format in ("text", "json"):
            straight = _logged(log_format, lambda lg: log_line(lg, logging.INFO, "POST /predict 200 1.2 ms", fields))
            logged = _logged(log_format, lambda lg: lg.info("POST /predict 200 1.2 ms", extra=fields))
            assert straight == logged and len(straight) == 1, log_format
    finally:
        request_id_var.reset(token)


def test_a_line_written_straight_keeps_levels_and_reaches_every_handler():
    quiet = _logged("text", lambda lg: (lg.setLevel(logging.WARNING), log_line(lg, logging.INFO, "dropped", {})))
    assert quiet == []
    captured: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = captured.append  # type: ignore[method-assign]

    def two_handlers(logger: logging.Logger) -> None:
        logger.addHandler(capture)
        log_line(logger, logging.INFO, "to both", {"status": 200})

    assert _logged("text", two_handlers)[0].endswith(" api.access INFO to both")
    assert [(r.getMessage(), r.status) for r in captured] == [("to both", 200)]  # type: ignore[attr-defined]


def test_text_timestamps_are_the_logging_modules_own():
    for created in (1_764_888_301.0456, 1_764_888_301.9999, 1_764_888_302.0, 86_400.5):
        record = _record("hello")
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0  # as LogRecord sets them
        assert TextFormatter().formatTime(record) == logging.Formatter().formatTime(record), created

"""Log lines: JSON objects with the request id when LOG_FORMAT=json; client request ids are checked."""

from __future__ import annotations

import logging

import orjson

from shared.logs import JsonFormatter, RequestIdFilter, TextFormatter, request_id_or_new, request_id_var


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

"""Whole responses: the body goes to the WSGI server as one bytes object, with the same status and headers."""

from __future__ import annotations

from flask import Response
from werkzeug.test import EnvironBuilder

from api.responses import json_response


def _served(response: Response, method: str) -> tuple[list[str], dict[str, str], object]:
    started: list[str] = []
    headers: dict[str, str] = {}

    def start_response(status: str, sent: list[tuple[str, str]], exc_info: object = None) -> None:
        started.append(status)
        headers.update(sent)

    return started, headers, response(EnvironBuilder(method=method).get_environ(), start_response)


def test_a_json_response_is_one_bytes_object_with_the_headers_werkzeug_sends():
    for method, body in (("GET", b'{"id":"1"}'), ("HEAD", b"")):
        status, headers, sent = _served(json_response({"id": "1"}, status=202, headers={"Retry-After": "1"}), method)
        plain = Response(b'{"id":"1"}', status=202, headers={"Retry-After": "1"}, mimetype="application/json")
        plain_status, plain_headers, plain_sent = _served(plain, method)
        assert sent == [body] and b"".join(plain_sent) == body
        assert status == plain_status == ["202 ACCEPTED"] and headers == plain_headers
        assert headers["Content-Length"] == "10"

"""Every kind of bad request gets a 4xx JSON error naming what was wrong and what was expected."""

from __future__ import annotations

import pytest

from shared import rq_keys

pytestmark = pytest.mark.e2e

ROW = [0.0] * 64


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        (b'{"instances": [[1, 2', 400, None, "not valid JSON"),
        (b'{"rows": []}', 400, "instances", "instances"),
        (b'{"instances": []}', 400, "instances", "empty"),
        (b'{"instances": [[1, 2, 3]]}', 400, "instances", "shape [3]"),
        (b'{"instances": [[[1], [2]]]}', 400, "instances", "shape [2, 1]"),
        (b'{"instances": [' + b'"a",' * 63 + b'"a"]}', 400, "instances", "strings"),
        (b'{"instances": [[' + b'"1",' * 63 + b'"1"]]}', 400, "instances", "strings"),
        (b'{"instances": [[1, 2], [1]]}', 400, "instances", "ragged"),
        (b'{"instances": [[NaN' + b", 0" * 63 + b"]]}", 400, None, "not valid JSON"),
        (b'{"instances": [[1e400' + b", 0" * 63 + b"]]}", 400, None, "infinity"),
        (b'{"instances": [[1e39' + b", 0" * 63 + b"]]}", 400, "instances", "too large for float32"),
        (b'{"instances": [[null' + b", 0" * 63 + b"]]}", 400, "instances", "not numbers"),
        (b'{"instances": [[{"a": 1}' + b", 0" * 63 + b"]]}", 400, "instances", "not numbers"),
        (b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, None, "not valid JSON"),
        (b'{"instances": {"a": 1}}', 400, "instances", "list of rows"),
        (b'"just a string"', 400, "instances", "instances"),
        (b'{"instances": [[true' + b", 0" * 63 + b"]]}", 400, "instances", "true/false where numbers are expected"),
        (b'{"instances": [[0' + b", 0" * 63 + b']], "timeout": "5"}', 400, "timeout", "JSON number"),
        (b'{"instances": [[0' + b", 0" * 63 + b']], "callback_url": "http://[::1"}', 400, "callback_url", "not usable"),
    ],
)
def test_bad_body_gets_400_naming_the_problem(service, body, status, field, words):
    response = service.http.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words in error["message"] + str(error.get("expected", ""))
    assert error.get("field") == field
    if field == "instances" and status == 400:
        assert error["expected"]


def test_too_many_rows_is_400_with_the_limit(service):
    response = service.http.post("/predict", json={"instances": [ROW] * (service.settings.max_rows_per_request + 1)})
    assert response.status_code == 400
    assert "MAX_ROWS_PER_REQUEST" in response.json()["error"]["expected"]


def test_body_over_max_content_length_is_413(service):
    body = b'{"instances": [' + b"0," * (service.settings.max_content_length // 2) + b"0]}"
    response = service.http.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"  # the code POST /batches answers too


def test_wrong_content_type_is_415(service):
    response = service.http.post(
        "/predict", content=b"instances=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["expected"] == "Content-Type: application/json"


@pytest.mark.parametrize("wait", ["-1", "31", "soon"])
def test_wait_outside_0_to_30_seconds_is_400(service, wait):
    response = service.http.post(f"/predict?wait={wait}", json={"instances": [ROW]})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "wait"


def test_unknown_route_and_wrong_method_are_json(service):
    assert service.http.get("/nope").json()["error"]["code"] == "not_found"
    response = service.http.get("/predict")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_bad_requests_never_reach_the_queue(service):
    before = service.redis.llen(rq_keys.queue(service.settings.queue_name))
    service.http.post("/predict", json={"instances": [[1, 2, 3]]})
    assert service.redis.llen(rq_keys.queue(service.settings.queue_name)) == before
    assert service.redis.llen(rq_keys.intermediate(service.settings.queue_name)) == 0


@pytest.mark.parametrize(
    "body", [b"--b\r\n[]--b--\r\n", b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n--b\r\n"]
)
def test_a_malformed_multipart_upload_is_400_naming_the_file(service, body):
    response = service.upload(body, "multipart/form-data; boundary=b")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "file" and "multipart" in error["message"] and error["expected"]

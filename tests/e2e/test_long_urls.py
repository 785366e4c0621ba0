"""An over-long URL answers 414 `uri_too_long` in the service's JSON under both API servers
(api/request_line.py: over 8000 bytes of path and query string); gunicorn alone also refuses, with its own HTML
page, a request line over its 8190-byte limit before the app sees it."""

from __future__ import annotations

import pytest

from api.request_line import MAX_TARGET_BYTES

pytestmark = pytest.mark.e2e

GUNICORN_REQUEST_LINE = 8190  # api/gunicorn_conf.py limit_request_line


@pytest.fixture(scope="module", params=["granian", "gunicorn"])
def api(request, make_module_service):
    """The API alone (no worker: the limit is checked before anything else) under each server."""
    return make_module_service(workers=0, api_server=request.param)


def query_of(path: str, target_bytes: int) -> str:
    """A query string that makes `path?query` count `target_bytes` bytes of path and query string."""
    return "x=" + "a" * (target_bytes - len(path) - 2)


def test_a_url_just_over_the_limit_gets_the_json_414_with_its_code(api):
    response = api.http.post(
        "/predict?" + query_of("/predict", MAX_TARGET_BYTES + 1),
        json={"instances": [[0.0]]},
        headers={"X-Request-ID": "too-long-1"},
    )
    assert response.status_code == 414, response.text
    error = response.json()["error"]
    assert error["code"] == "uri_too_long" and str(MAX_TARGET_BYTES) in error["expected"]
    assert response.headers["X-Request-ID"]


def test_a_url_at_the_limit_is_served(api):
    response = api.http.get("/healthz?" + query_of("/healthz", MAX_TARGET_BYTES))
    assert response.status_code == 200, response.text


def test_a_long_path_on_an_unknown_route_is_414_not_404(api):
    response = api.http.get("/" + "p" * MAX_TARGET_BYTES)
    assert (response.status_code, response.json()["error"]["code"]) == (414, "uri_too_long")


def test_a_protocol_route_answers_its_414_in_the_protocols_shape(api):
    response = api.http.post("/v1/models/digits:predict?" + query_of("/v1/models/digits:predict", MAX_TARGET_BYTES + 1))
    assert response.status_code == 414
    assert "too long" in response.json()["error"]


def test_past_gunicorns_request_line_limit_only_gunicorn_answers_with_its_own_page(api):
    response = api.http.get("/healthz?" + query_of("/healthz", GUNICORN_REQUEST_LINE))
    assert response.status_code == 414
    if api.settings.api_server == "gunicorn":
        assert response.headers["content-type"].startswith("text/html")
    else:
        assert response.json()["error"]["code"] == "uri_too_long"

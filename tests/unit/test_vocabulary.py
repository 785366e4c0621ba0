"""Error codes are a closed set (shared/schema.py ApiErrorCode) that every answer uses, Werkzeug's too.

The client package keeps copies of the server's closed vocabularies (it must not import the server): job
statuses, batch statuses, job error codes and API error codes. Each copy must equal the server's own
definition, so adding a value on either side fails here until the other side learns it."""

from __future__ import annotations

import importlib
import re

import pytest
from flask import Flask, abort, request
from werkzeug.exceptions import default_exceptions

from api.error_handler import init_app
from inferq import core
from inferq import errors as client_errors
from shared import errors as server_errors
from shared.batches import BatchStatus
from shared.schema import ApiErrorCode, ErrorCode, JobStatus
from tests.source_tree import python_files, read


def server_api_errors() -> dict[str, int]:
    """Each API error code of shared/errors.py with its HTTP status."""
    return {cls.code: cls.status for cls in server_errors.ERROR_CLASSES}


def test_the_clients_job_statuses_are_the_servers():
    assert set(core.JOB_STATUSES) == {status.value for status in JobStatus}
    assert set(core.JOB_TERMINAL) == {status.value for status in JobStatus if status.is_terminal}


def test_the_clients_batch_statuses_are_the_servers():
    assert set(core.BATCH_STATUSES) == {status.value for status in BatchStatus}
    assert set(core.BATCH_TERMINAL) == {status.value for status in BatchStatus if status.is_terminal}


def test_the_clients_job_error_codes_are_the_servers():
    assert set(core.JOB_ERROR_CODES) == {code.value for code in ErrorCode}


def test_every_api_error_code_has_a_client_class_with_the_same_status():
    assert {code: cls.status for code, cls in client_errors.BY_CODE.items()} == server_api_errors()


def test_every_error_class_anywhere_uses_a_code_of_the_closed_set(monkeypatch):
    monkeypatch.setenv("ALLOW_ANONYMOUS", "true")  # api.wsgi builds the served app at import: it needs keys or this
    for path in python_files("api", "shared"):
        importlib.import_module(path.removesuffix(".py").replace("/", ".").removesuffix(".__init__"))
    codes = {cls.code for cls in server_errors._subclasses(server_errors.ServiceError)}
    assert codes == server_errors.API_ERROR_CODES == {code.value for code in ApiErrorCode}


def test_no_code_sets_an_error_code_outside_the_error_classes():
    """A code is a class's, never assigned to an error in hand (that is how `request_entity_too_large` came)."""
    assigned = re.compile(r"\.code\s*=(?!=)|\bcode\s*=\s*[\"']")
    found = [
        (path, n)
        for path in python_files("api", "shared", "worker")
        if path != "shared/errors.py"
        for n, line in enumerate(read(path).splitlines(), 1)
        if assigned.search(line)
    ]
    assert found == []


@pytest.mark.parametrize("status", sorted(default_exceptions))
def test_every_werkzeug_http_error_answers_a_code_of_the_closed_set(status):
    app = Flask(__name__)
    init_app(app)
    app.add_url_rule("/raise", "raise", lambda: abort(status))
    response = app.test_client().get("/raise")
    assert response.status_code == status
    assert response.get_json()["error"]["code"] in server_errors.API_ERROR_CODES


def test_a_too_large_body_is_payload_too_large_on_every_route():
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 10
    init_app(app)
    app.add_url_rule("/predict", "predict", lambda: str(len(request.get_data())), methods=["POST"])
    response = app.test_client().post("/predict", data=b"x" * 100)
    assert (response.status_code, response.get_json()["error"]["code"]) == (413, "payload_too_large")

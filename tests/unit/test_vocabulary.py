"""The client package keeps copies of the server's closed vocabularies (it must not import the server): job
statuses, batch statuses, job error codes and API error codes. Each copy must equal the server's own
definition, so adding a value on either side fails here until the other side learns it."""

from __future__ import annotations

import inspect

from inferq import core
from inferq import errors as client_errors
from shared import errors as server_errors
from shared.batches import BatchStatus
from shared.schema import ErrorCode, JobStatus


def server_api_errors() -> dict[str, int]:
    """Each API error code of shared/errors.py with its HTTP status."""
    classes = [
        cls
        for _, cls in inspect.getmembers(server_errors, inspect.isclass)
        if issubclass(cls, server_errors.ServiceError)
    ]
    return {cls.code: cls.status for cls in classes}


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

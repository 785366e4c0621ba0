"""The client package keeps copies of the server's closed vocabularies (it must not import the server): job
statuses, batch statuses, job error codes and API error codes. Each copy must equal the server's own
definition, so adding a value on either side fails here until the other side learns it."""

from __future__ import annotations

import inspect
import pathlib
import re

from inferq import core
from inferq import errors as client_errors

from shared import errors as server_errors
from shared import schema
from shared.batches import BatchStatus
from shared.config import PROJECT_ROOT
from shared.schema import JobStatus


def server_job_error_codes() -> set[str]:
    """The job error codes: the ErrorCode enum where there is one, else the named constants of shared/schema.py
    and the codes the worker fails jobs with."""
    if hasattr(schema, "ErrorCode"):
        return {code.value for code in schema.ErrorCode}
    named = {schema.DEADLINE_EXCEEDED, schema.WORKER_LOST}
    worker = pathlib.Path(PROJECT_ROOT, "worker")
    used = {m for path in worker.glob("*.py") for m in re.findall(r"\.fail\(\s*\"(\w+)\"", path.read_text())}
    return named | used


def server_api_errors() -> dict[str, int]:
    """Each API error code of shared/errors.py with its HTTP status."""
    classes = [cls for _, cls in inspect.getmembers(server_errors, inspect.isclass)
               if issubclass(cls, server_errors.ServiceError)]
    return {cls.code: cls.status for cls in classes}


def test_the_clients_job_statuses_are_the_servers():
    assert set(core.JOB_STATUSES) == {status.value for status in JobStatus}
    assert set(core.JOB_TERMINAL) == {status.value for status in JobStatus if status.is_terminal}


def test_the_clients_batch_statuses_are_the_servers():
    assert set(core.BATCH_STATUSES) == {status.value for status in BatchStatus}
    assert set(core.BATCH_TERMINAL) == {status.value for status in BatchStatus if status.is_terminal}


def test_the_clients_job_error_codes_are_the_servers():
    assert set(core.JOB_ERROR_CODES) == server_job_error_codes()


def test_every_api_error_code_has_a_client_class_with_the_same_status():
    assert {code: cls.status for code, cls in client_errors.BY_CODE.items()} == server_api_errors()

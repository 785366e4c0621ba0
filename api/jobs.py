"""Submit and poll: POST /predict, GET /result/<id>, DELETE /jobs/<id>."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, url_for

from api.auth import current_owner
from api.request_context import current_request_id
from api.responses import json_response, wait_seconds
from api.validation import instances_from_body, job_timeout, parse_json, rows_to_arrays
from shared.schema import JobStatus
from shared.webhooks import check_callback_url

bp = Blueprint("jobs", __name__)

RETRY_AFTER_S = "1"


def _pending(job_id: str, status: JobStatus) -> Response:
    """202 for a job not done yet, pointing at its result URL."""
    url = url_for("jobs.result", job_id=job_id)
    return json_response(
        {"id": job_id, "status": status.value, "result_url": url},
        status=202,
        headers={"Location": url, "Retry-After": RETRY_AFTER_S},
    )


@bp.post("/predict")
def predict() -> Response:
    """Validate rows against the model, enqueue one job; with ?wait=S hold until done or S passes.

    `callback_url` (query or body field) gets the final document by webhook. A full queue
    (MAX_QUEUE_DEPTH) answers 429 before the body is even parsed.
    """
    wait = wait_seconds()
    ext = current_app.extensions["inference"]
    ext.store.check_capacity()
    body = parse_json(request.get_data(cache=False), request.content_type)
    instances = instances_from_body(body)
    timeout = job_timeout(body, request.args.get("timeout"), ext.settings.job_timeout)
    # Both places are checked when both are given; the query string wins.
    in_body = check_callback_url(body.get("callback_url") if isinstance(body, dict) else None, ext.settings.callback_hosts)
    callback_url = check_callback_url(request.args.get("callback_url"), ext.settings.callback_hosts) or in_body
    arrays = rows_to_arrays(instances, ext.model_info.signature(), ext.settings.max_rows_per_request)
    job_id = ext.store.submit(arrays, owner=current_owner(), timeout_s=timeout, callback_url=callback_url,
                              request_id=current_request_id())
    if wait > 0:
        document = ext.store.wait(job_id, wait)
        if document is not None:
            return json_response(document)
    return _pending(job_id, JobStatus.QUEUED)


@bp.get("/result/<job_id>")
def result(job_id: str) -> Response:
    """The job's document when done (200), its status while pending (202), 404 if unknown or expired."""
    wait = wait_seconds()
    store = current_app.extensions["inference"].store
    state = store.state(job_id, current_owner())
    if state.document is None and wait > 0:
        state.document = store.wait(job_id, wait)
    if state.document is not None:
        return json_response(state.document)
    return _pending(job_id, state.status)


@bp.delete("/jobs/<job_id>")
def cancel(job_id: str) -> Response:
    """Cancel a job that has not started (200 with its document); 409 if it already started or ended."""
    return json_response(current_app.extensions["inference"].store.cancel(job_id, current_owner()))

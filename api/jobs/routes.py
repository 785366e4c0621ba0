"""Submit and poll: POST /predict, GET /result/<id>, DELETE /jobs/<id>."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, url_for

from api import idempotency
from api.auth import current_owner
from api.model_info import ModelInfo, Served
from api.request_context import current_request_id
from api.responses import json_response, wait_seconds
from api.services import services
from api.validation import instances_from_body, may_hold_booleans, parse_json, rows_to_arrays, start_deadline
from shared.errors import InvalidInput
from shared.schema import JobStatus
from shared.webhooks import check_callback_url

bp = Blueprint("jobs", __name__)

RETRY_AFTER_S = "1"
ROUTE = "POST /predict"
REPLAYED = {"Idempotent-Replayed": "true"}  # as Stripe marks an answer given again for a reused key
DEADLINE_GRACE_S = 0.05  # a wait capped at the job's deadline ends this much past it, so the job reads as expired


def _pending(job_id: str, status: JobStatus, headers: dict[str, str] | None = None) -> Response:
    """202 for a job not done yet, pointing at its result URL."""
    url = url_for("jobs.result", job_id=job_id)
    return json_response(
        {"id": job_id, "status": status.value, "result_url": url},
        status=202,
        headers={"Location": url, "Retry-After": RETRY_AFTER_S, **(headers or {})},
    )


@bp.post("/predict")
def predict() -> Response:
    """Validate rows against the model, enqueue one job; with ?wait=S hold until done or S passes.

    `callback_url` (query or body field) gets the final document by webhook. `model` and `version` (query
    or body fields; the query wins) name the model and its version or version label; by default the first
    model served, its newest version when a worker takes the job. A full queue (MAX_QUEUE_DEPTH, or the
    caller's key's limit) answers 429 before the body is even read when the query names the model or only
    one model is served; otherwise the body may name another model, whose queue is the one checked. With
    an Idempotency-Key header, a request sent again gets the first one's job (see api/idempotency.py).
    """
    wait = wait_seconds()
    key = idempotency.requested_key()
    ext, args, owner = services(), request.args, current_owner()
    named = args.get("model")
    if named is not None or len(ext.model_info.models()) == 1:
        ext.jobs.check_capacity(owner, ext.model_info.resolve(named).queue)
    raw = request.get_data(cache=False)
    body = parse_json(raw, request.content_type)
    served = model_asked(body, ext.model_info)
    ext.jobs.check_capacity(owner, served.queue)
    instances = instances_from_body(body)
    deadline_s = start_deadline(body, args.get("timeout"), ext.settings.job_start_deadline_s)
    # Both places are checked when both are given; the query string wins.
    in_body = check_callback_url(
        body.get("callback_url") if isinstance(body, dict) else None, ext.settings.callback_hosts
    )
    callback_url = check_callback_url(args.get("callback_url"), ext.settings.callback_hosts) or in_body
    arrays = rows_to_arrays(instances, served.signature, ext.settings.max_rows_per_request, may_hold_booleans(raw))
    where = {"queue": served.queue, "version": served.version}
    request_id = current_request_id()
    if key is None:  # the common case: wait for the result without reading the job (api/jobs/waiter.py)
        job_id, document = ext.jobs.submit_and_wait(
            arrays, _bounded(wait, deadline_s), owner, deadline_s, callback_url, request_id, **where
        )
        return _answer(job_id, wait, deadline_s, waited=True, document=document)
    fingerprint = idempotency.Fingerprint(ROUTE)
    fingerprint.add(raw)
    digest = fingerprint.finish(args.to_dict())
    with ext.idempotency.reserve(owner, key, ROUTE) as reservation:
        if not reservation.won:
            return _answer(reservation.replay(digest), wait, deadline_s, replayed=True)
        job_id = ext.jobs.submit(arrays, owner, deadline_s, callback_url, request_id, **where)
        reservation.finish(digest, job_id)
    return _answer(job_id, wait, deadline_s)


def model_asked(body: Any, model_info: ModelInfo) -> Served:
    """The model and version a /predict or /batches request names: `model` and `version` in the query string
    or the JSON body (the query wins); `version` is a version number or a version label."""
    fields, args = body if isinstance(body, dict) else {}, request.args
    asked: dict[str, str | None] = {}
    for name in ("model", "version"):
        value = args.get(name, fields.get(name))
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int)) or value == ""):
            raise InvalidInput(f"{name!r} must be a non-empty string", field=name, expected="a model name or version")
        asked[name] = None if value is None else str(value)
    version = asked["version"]
    label = version if version is not None and not version.isdigit() else None
    return model_info.resolve(asked["model"], None if label else version, label)


def _bounded(wait: float, deadline_s: float) -> float:
    """The wait, ended at the job's start deadline (`deadline_s`), when a job still queued can only be expired."""
    return min(wait, deadline_s + DEADLINE_GRACE_S) if deadline_s > 0 else wait


def _answer(
    job_id: str,
    wait: float,
    deadline_s: float,
    *,
    replayed: bool = False,
    waited: bool = False,
    document: bytes | None = None,
) -> Response:
    """What POST /predict answers for the job: its document if it is done (within `wait`), else 202.

    `waited`: the caller already waited for the result (`document`, None if it did not come).
    """
    jobs = services().jobs
    state = jobs.state(job_id, current_owner()) if replayed else None
    if state is not None:
        document = state.document
    if document is None and wait > 0 and not waited:
        document = jobs.wait(job_id, _bounded(wait, deadline_s))
    if document is None and 0 < deadline_s <= wait:  # waited up to the deadline: a job still queued reads expired
        state = jobs.state(job_id, current_owner())
        document = state.document
    headers = REPLAYED if replayed else None
    if document is not None:
        return json_response(document, headers=headers)
    return _pending(job_id, state.status if state is not None else JobStatus.QUEUED, headers)


@bp.get("/result/<job_id>")
def result(job_id: str) -> Response:
    """The job's document when done (200), its status while pending (202), 404 if unknown or expired."""
    wait = wait_seconds()
    jobs = services().jobs
    state = jobs.state(job_id, current_owner())
    if state.document is None and wait > 0:
        state.document = jobs.wait(job_id, wait)
    if state.document is not None:
        return json_response(state.document)
    return _pending(job_id, state.status)


@bp.delete("/jobs/<job_id>")
def cancel(job_id: str) -> Response:
    """Cancel a job that has not started (200 with its document); 409 if it already started or ended."""
    return json_response(services().jobs.cancel(job_id, current_owner()))

"""Bulk batches: POST /batches, GET /batches/<id>, its /results and /errors, DELETE /batches/<id>."""

from __future__ import annotations

import collections
import logging
import re
import uuid

from flask import Blueprint, Response, request, url_for
from werkzeug.wsgi import get_input_stream

from api import idempotency
from api.auth import current_owner, require_owner
from api.bulk import result_files
from api.bulk.ingest import ingest
from api.bulk.uploads import Options, Upload, open_upload, too_large
from api.jobs.routes import REPLAYED, model_asked
from api.model_info import Served
from api.responses import json_response
from api.services import services
from shared.batch_records import BatchEnd
from shared.batches import BatchRecord, BatchStatus, status_document
from shared.errors import Conflict, InvalidInput, NotFound
from shared.storage import StoreUnreachable

bp = Blueprint("batches", __name__)
log = logging.getLogger(__name__)

ROUTE = "POST /batches"
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NDJSON = "application/x-ndjson"
NPY = "application/x-npy"
FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@bp.post("/batches")
def create() -> Response:
    """Stream the upload to storage while validating it, then enqueue its chunks; 202 with the batch.

    With an Idempotency-Key header, an upload sent again gets the first one's batch (see api/idempotency.py).
    """
    ext = services()
    key = idempotency.requested_key()
    limit = ext.settings.max_batch_bytes
    # Uploads have their own limit, MAX_BATCH_BYTES, counted while reading. So the body is read from Werkzeug's
    # safe input stream without Flask's MAX_CONTENT_LENGTH (sized for /predict bodies), whose cut-off would
    # also leave no way to drain the rest of an oversized body.
    stream = get_input_stream(request.environ, max_content_length=None)
    if request.content_length is not None and request.content_length > limit:
        raise too_large(stream, limit, request.content_length)
    options = Options(callback_hosts=ext.settings.callback_hosts)
    options.update(request.args.to_dict())
    served = model_asked(None, ext.model_info)  # ?model=; its chunks run on the newest version when taken
    if served.version is not None:
        raise InvalidInput(
            "a batch cannot be pinned to a model version: its chunks run on the newest version when taken",
            field="version",
            expected="no version (use POST /predict to pin one)",
        )
    upload = open_upload(request.content_type, stream, limit)
    if key is None:
        return _accepted(_create(upload, options, served))
    fingerprint = idempotency.Fingerprint(ROUTE)
    with services().idempotency.reserve(current_owner(), key, ROUTE) as reservation:
        upload.pieces = fingerprint.pieces(upload.pieces, reservation.renew)
        if not reservation.won:  # the same upload? Only its bytes can tell: read them through the hash
            collections.deque(upload.pieces, maxlen=0)
            return _accepted(reservation.replay(fingerprint.finish(request.args.to_dict(), upload.fields)), REPLAYED)
        batch_id = _create(upload, options, served)
        collections.deque(upload.pieces, maxlen=0)  # whatever ingest left unread counts too, as for a replay
        reservation.finish(fingerprint.finish(request.args.to_dict(), upload.fields), batch_id)
    return _accepted(batch_id)


def _create(upload: Upload, options: Options, served: Served) -> str:
    """Ingest the upload as a new batch and enqueue its chunks on the model's bulk queue; returns its id
    (nothing is left on failure). Chunks run on the newest version when a worker takes them."""
    ext = services()
    batch_id = uuid.uuid4().hex
    ext.batches.begin(batch_id, options.callback_url, options.metadata, current_owner())
    try:
        # A multipart on_error field may arrive before or after the file: ask at each decision.
        skip = lambda: upload.fields.get("on_error", options.on_error) == "skip"  # noqa: E731
        stored, skipped = ingest(upload.format, upload.pieces, ext.storage, batch_id, served.signature, skip)
        options.update(upload.fields)  # multipart fields override the query string
        tenant = ext.jobs.tenants.of(current_owner()).name
        lane = served.status.bulk_queue
        ext.batches.enqueue(batch_id, stored, skipped, options.callback_url, options.metadata, lane=lane, tenant=tenant)
    except BaseException:
        ext.batches.discard(batch_id)
        _delete_files(batch_id)
        raise
    return batch_id


def _accepted(batch_id: str, headers: dict[str, str] | None = None) -> Response:
    """202 with the batch's status document, as a new upload answers (and a replayed one, in its current state)."""
    url = url_for("batches.status", batch_id=batch_id)
    document = status_document(batch_id, _record(batch_id))
    return json_response(document, status=202, headers={"Location": url, **(headers or {})})


@bp.get("/batches/<batch_id>")
def status(batch_id: str) -> Response:
    """The batch's status document."""
    return json_response(status_document(batch_id, _record(batch_id)))


@bp.get("/batches/<batch_id>/results")
def results(batch_id: str) -> Response:
    """Predictions in input order, streamed: NDJSON, or `.npy` with Accept: application/x-npy.

    Ready once the batch is completed (or cancelled: its finished chunks); while it runs, `?partial=true`
    gives the finished prefix.
    """
    ext = services()
    record = _record(batch_id)
    state = record.status
    partial = _flag("partial")
    if state is BatchStatus.EXPIRED:
        raise NotFound(f"batch {batch_id!r} expired and its files were deleted", field="id")
    if state is BatchStatus.FAILED:
        raise Conflict(f"batch {batch_id!r} failed: no row has a result", expected="see its errors_url")
    if not state.is_terminal and not partial:
        raise Conflict(
            f"batch {batch_id!r} is {state.value}; results are ready once it is completed",
            expected="a completed batch, or ?partial=true for the rows finished so far",
        )
    chunks = result_files.finished_chunks(ext.storage, batch_id, record, prefix_only=not state.is_terminal)
    if request.accept_mimetypes.best_match([NDJSON, NPY], default=NDJSON) == NPY:
        body, mimetype = result_files.npy_results(ext.storage, batch_id, chunks), NPY
    else:
        body, mimetype = result_files.ndjson_results(ext.storage, batch_id, chunks), NDJSON
    rows = sum(spec.rows for spec in chunks)
    return Response(body, mimetype=mimetype, headers={"X-Rows": str(rows), "X-Batch-Status": state.value})


@bp.get("/batches/<batch_id>/errors")
def errors(batch_id: str) -> Response:
    """NDJSON {row, error} of every row that has no result (skipped at upload, or in a failed chunk)."""
    ext = services()
    record = _record(batch_id)
    if record.status is BatchStatus.EXPIRED:
        raise NotFound(f"batch {batch_id!r} expired and its files were deleted", field="id")
    return Response(result_files.errors(ext.storage, ext.batches.connection, batch_id, record), mimetype=NDJSON)


@bp.delete("/batches/<batch_id>")
@bp.post("/batches/<batch_id>/cancel")  # OpenAI's Batch API shape, for clients written against it
def cancel(batch_id: str) -> Response:
    """Cancel: chunks not started never run. The batch is not deleted: it stays readable (status cancelled,
    finished chunks downloadable) until BATCH_TTL. 409 once the batch ended."""
    ext = services()
    _record(batch_id)  # unknown, or another key's batch: 404 before anything changes
    outcome = ext.batches.end(batch_id, BatchStatus.CANCELLED)
    if outcome is BatchEnd.UNKNOWN:
        raise NotFound(f"no batch {batch_id!r}: unknown, or expired more than BATCH_TTL ago", field="id")
    document = status_document(batch_id, ext.batches.get(batch_id))
    if outcome is BatchEnd.ALREADY_ENDED:
        raise Conflict(
            f"batch {batch_id!r} cannot be cancelled: it is {document['status']}",
            expected="a batch that is queued or in_progress",
        )
    return json_response(document)


def _delete_files(batch_id: str) -> None:
    """Delete a failed upload's files; with the store down, leave them to the bucket's lifecycle rule."""
    storage = services().storage
    try:
        storage.delete_prefix(batch_id)
    except StoreUnreachable as exc:  # the error in hand (often this outage) is the one to answer with
        log.warning("could not delete the files of failed upload %s (the lifecycle rule will): %s", batch_id, exc)


def _record(batch_id: str) -> BatchRecord:
    """The batch's record; 404 for an unknown id, or a batch created with another API key."""
    _check_id(batch_id)
    record = services().batches.get(batch_id)
    require_owner(
        record.owner,
        NotFound(f"no batch {batch_id!r}: unknown, or expired more than BATCH_TTL ago", field="id"),
    )
    return record


def _flag(name: str) -> bool:
    """A boolean query parameter: true/false (or 1/0, yes/no, any case); absent is false."""
    raw = request.args.get(name, "false").lower()
    if raw not in FLAGS:
        raise InvalidInput(f"{name}={raw[:32]!r} is not a boolean", field=name, expected="true or false")
    return FLAGS[raw]


def _check_id(batch_id: str) -> None:
    if not _BATCH_ID.match(batch_id):
        raise NotFound(f"no batch {batch_id[:64]!r}: a batch id is 1-64 letters, digits, '-' or '_'", field="id")

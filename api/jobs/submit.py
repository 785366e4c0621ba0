"""Synchronous inference for the protocol routes (TF Serving, KServe): the same queue and micro-batching worker as
/predict, waited on for the caller.

One job per request: submit (one round trip), block on the job's done list (BLMOVE, no polling), parse
the finished document once and hand its predictions back per output name, for the protocol module to
shape. A job not done within PROTOCOL_TIMEOUT_S is cancelled if it has not started, and answered 504.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from api.auth import current_owner
from api.jobs.redis_jobs import RedisJobs
from api.model_info import Served
from api.request_context import current_request_id
from api.services import services
from shared.errors import InferenceFailed, ServiceError, TimedOut
from shared.signature import ModelRef, ModelSignature


@dataclass
class Predictions:
    """A finished job: its predictions in TF Serving's row format and the model that made them
    ({name, version}: the version that answered)."""

    predictions: list[Any]
    model: ModelRef

    def by_name(self, signature: ModelSignature) -> dict[str, list[Any]]:
        """Each output's rows (JSON values, in row order), keyed by output name."""
        return outputs_by_name(self.predictions, signature)


def infer(arrays: dict[str, np.ndarray], signature: str | None = None, served: Served | None = None) -> Predictions:
    """Queue one job for `arrays` (run by the named model signature, default `serving_default`) on the model
    version `served` names (default: the first model's newest), wait for it, and return its predictions.

    Raises:
        TimedOut: not done within PROTOCOL_TIMEOUT_S.
        InferenceFailed: the worker could not run the job (the message says why).
    """
    ext = services()
    timeout_s = ext.settings.protocol_timeout_s
    return run_job(ext.jobs, timeout_s, arrays, signature, current_request_id(), served, current_owner())


def run_job(
    jobs: RedisJobs,
    timeout_s: float,
    arrays: dict[str, np.ndarray],
    signature: str | None = None,
    request_id: str | None = None,
    served: Served | None = None,
    owner: str = "",
) -> Predictions:
    """`infer` without Flask: the gRPC server calls this with its own RedisJobs. `owner`: the caller's key's
    digest (api.auth): the job goes to that key's sub-queue of the model's queue and counts against its limit."""
    queue, version = (served.queue, served.version) if served is not None else (None, None)
    jobs.check_capacity(owner, queue)
    job_id, raw = jobs.submit_and_wait(
        arrays, timeout_s, request_id=request_id, owner=owner, signature=signature, queue=queue, version=version
    )
    if raw is None:
        try:  # nobody will read this job's result: spare the worker if it has not started
            jobs.cancel(job_id)
        except ServiceError:
            pass
        raise TimedOut(f"job {job_id} did not finish within {timeout_s:g} s (PROTOCOL_TIMEOUT_S)")
    doc = orjson.loads(raw)
    if doc["status"] != "finished":
        error = doc.get("error") or {}
        raise InferenceFailed(error.get("message") or f"job {job_id} ended {doc['status']}")
    return Predictions(doc["predictions"], ModelRef.from_dict(doc["model"]))


def outputs_by_name(predictions: list[Any], signature: ModelSignature) -> dict[str, list[Any]]:
    """Undo the row format of the stored document: a value per row (one output) or a dict per row."""
    if predictions and isinstance(predictions[0], dict):
        names = list(predictions[0])
        return {name: [row[name] for row in predictions] for name in names}
    return {signature.outputs[0].name: predictions}

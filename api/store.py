"""The API's view of jobs in Redis: enqueue as RQ jobs, read status documents, wait, cancel.

Submitting is one pipelined round trip (RQ's `Queue.enqueue` makes several). Waiting for a result is
a blocking BLMOVE of the job's `done` list onto itself: it returns as soon as the worker pushes the
document, leaves it there for other readers, and costs no polling.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import numpy as np
import orjson
import redis
from rq import Queue
from rq.job import Job
from rq.registry import CanceledJobRegistry

from shared import keys, metrics, webhooks
from shared.config import Settings
from shared.errors import Conflict, NotFound
from shared.payload import encode_inputs
from shared.schema import JobStatus, OrjsonSerializer, canceled_doc

# Ids made here are uuid4 hex (122 random bits); RQ's own ids (uuid4 with dashes, or custom) are also
# accepted. Anything with other characters (slashes, dots) cannot name a job.
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What the RQ job records as its function; jobs on these queues are run by our batching worker only.
JOB_FUNC = "worker.batched_inference"


@dataclass
class JobState:
    """A job as a reader sees it: the final document if there is one, else the pending status."""

    status: JobStatus
    document: bytes | None = None


class JobStore:
    """Redis operations for /predict, /result and /jobs; one instance per app."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.queue = Queue(settings.queue_name, connection=connection, serializer=OrjsonSerializer)

    def submit(self, arrays: dict[str, np.ndarray], callback_url: str | None = None,
               request_id: str | None = None) -> str:
        """Enqueue one job for `arrays` in a single round trip; returns its id.

        Both extras ride in the RQ job's meta: `callback_url` for the worker that ends the job to schedule
        the webhook, `request_id` so the worker's log lines for the job carry it.
        """
        job_id = uuid.uuid4().hex
        rows = len(next(iter(arrays.values())))
        job = Job.create(
            JOB_FUNC,
            args=(encode_inputs(arrays),),
            connection=self.connection,
            id=job_id,
            description=f"predict {rows} row(s)",
            result_ttl=self.settings.result_ttl,
            failure_ttl=self.settings.result_ttl,
            serializer=OrjsonSerializer,
            meta={k: v for k, v in (("callback_url", callback_url), ("request_id", request_id)) if v} or None,
        )
        with self.connection.pipeline() as pipe:
            self.queue.enqueue_job(job, pipeline=pipe)
            pipe.execute()
        return job_id

    def state(self, job_id: str) -> JobState:
        """The job's state; raises NotFound for an unknown or expired id."""
        self._check_id(job_id)
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.lindex(keys.done(job_id), 0)
            pipe.hget(Job.key_for(job_id), "status")
            document, status = pipe.execute()
        if document is not None:
            return JobState(JobStatus(orjson.loads(document)["status"]), document)
        if status is None:
            raise NotFound(f"no job {job_id!r}: unknown, or its result expired", field="id")
        try:
            return JobState(JobStatus(status.decode()))
        except ValueError:  # RQ states we do not expose (deferred, scheduled...) read as queued
            return JobState(JobStatus.QUEUED)

    def wait(self, job_id: str, timeout_s: float) -> bytes | None:
        """Block up to `timeout_s` for the job's final document; None if it is not done by then."""
        key = keys.done(job_id)
        return self.connection.blmove(key, key, timeout_s, src="LEFT", dest="LEFT")

    def cancel(self, job_id: str) -> bytes:
        """Cancel a job that has not started; returns its (canceled) document.

        Raises:
            NotFound: unknown or expired id.
            Conflict: the job was already claimed by a worker, or is done.
        """
        state = self.state(job_id)
        # LREM is atomic: if it removed the id, no worker can claim the job any more.
        if state.status is not JobStatus.QUEUED or not self.connection.lrem(self.queue.key, 1, job_id):
            raise Conflict(
                f"job {job_id!r} cannot be cancelled: it is {'running' if state.status is JobStatus.QUEUED else state.status.value}",
                expected="a job that is still queued",
            )
        document = orjson.dumps(canceled_doc(job_id))
        meta = self.connection.hget(Job.key_for(job_id), "meta")
        callback_url = OrjsonSerializer.loads(meta).get("callback_url") if meta else None
        with self.connection.pipeline() as pipe:
            pipe.hset(Job.key_for(job_id), "status", JobStatus.CANCELED.value)
            CanceledJobRegistry(self.queue.name, connection=self.connection).add(
                Job(job_id, connection=self.connection), ttl=self.settings.result_ttl, pipeline=pipe
            )
            pipe.expire(Job.key_for(job_id), self.settings.result_ttl)
            pipe.rpush(keys.done(job_id), document)
            pipe.expire(keys.done(job_id), self.settings.result_ttl)
            pipe.hincrbyfloat(keys.metrics(), metrics.job_status_field(JobStatus.CANCELED.value), 1)
            if callback_url:
                webhooks.enqueue(pipe, "job", job_id, callback_url, self.settings.result_ttl)
            pipe.execute()
        return document

    @staticmethod
    def _check_id(job_id: str) -> None:
        if not _JOB_ID.match(job_id):
            raise NotFound(f"no job {job_id[:64]!r}: a job id is 1-64 letters, digits, '-' or '_'", field="id")

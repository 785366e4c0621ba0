"""The API's view of jobs in Redis: enqueue as RQ jobs, read status documents, wait, cancel.

Submitting is one pipelined round trip (RQ's `Queue.enqueue` makes several). Waiting for a result is
a blocking BLMOVE of the job's `done` list onto itself: it returns as soon as the worker pushes the
document, leaves it there for other readers, and costs no polling.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

import numpy as np
import orjson
import redis
from rq import Queue
from rq.job import Job, Retry
from rq.registry import CanceledJobRegistry
from rq.utils import current_timestamp

from api.auth import owns
from shared import keys, metrics, webhooks
from shared.config import Settings
from shared.errors import Conflict, NotFound, QueueFull
from shared.payload import encode_inputs
from shared.schema import ErrorCode, JobError, JobStatus, OrjsonSerializer, canceled_doc, error_doc

# Ids made here are uuid4 hex (122 random bits); RQ's own ids (uuid4 with dashes, or custom) are also
# accepted. Anything with other characters (slashes, dots) cannot name a job.
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What the RQ job records as its function; jobs on these queues are run by our batching worker only.
JOB_FUNC = "worker.batched_inference"
QUEUE_FULL_RETRY_AFTER_S = 1.0
# How long a process trusts the queue depth it last saw before reading it again (seconds).
DEPTH_REFRESH_S = 0.25

# KEYS: queue, job hash, RQ canceled registry, done list, queued-rows counter.
# ARGV: job id, canceled document, TTL, registry score, rows field name, canceled status.
CANCEL_SCRIPT = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
local rows = tonumber(redis.call('HGET', KEYS[2], ARGV[5]) or '0') or 0
if rows ~= 0 and redis.call('DECRBY', KEYS[5], rows) < 0 then redis.call('SET', KEYS[5], 0) end
redis.call('HSET', KEYS[2], 'status', ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[2])
redis.call('EXPIRE', KEYS[4], ARGV[3])
return 1
"""


@dataclass
class JobState:
    """A job as a reader sees it: the final document if there is one, else the pending status."""

    status: JobStatus
    document: bytes | None = None


class JobStore:
    """Redis operations for /predict, /result and /jobs; one instance per app.

    Methods that read or change a job take the caller's `owner` (see `api.auth`): a job created with
    another key reads as unknown.
    """

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.queue = Queue(settings.queue_name, connection=connection, serializer=OrjsonSerializer)
        self.rows_key = keys.queued_rows(settings.queue_name)
        self._cancel = connection.register_script(CANCEL_SCRIPT)
        self._depth, self._depth_at = 0, float("-inf")

    def check_capacity(self) -> None:
        """Raise QueueFull when MAX_QUEUE_DEPTH rows or more are waiting (the body is not read yet).

        The depth is remembered from this process's last submit (its INCRBY reply) or read, for at most
        DEPTH_REFRESH_S: a check costs no round trip on the hot path. A remembered depth at the limit is
        read again before refusing, so a 429 always reflects the queue as it is now.
        """
        limit = self.settings.max_queue_depth
        if not limit:
            return
        if self._depth < limit and time.monotonic() - self._depth_at < DEPTH_REFRESH_S:
            return
        waiting = int(self.connection.get(self.rows_key) or 0)
        self._note_depth(waiting)
        if waiting >= limit:
            raise QueueFull(f"{waiting} rows are waiting, as many as this server queues (MAX_QUEUE_DEPTH={limit})",
                            expected="a retry after Retry-After seconds", retry_after=QUEUE_FULL_RETRY_AFTER_S)

    def submit(self, arrays: dict[str, np.ndarray], owner: str = "", timeout_s: float = 0.0,
               callback_url: str | None = None, request_id: str | None = None) -> str:
        """Enqueue one job for `arrays` in a single round trip; returns its id.

        `timeout_s` > 0 gives the job a deadline: a worker that reaches it later fails it as `expired`.
        `callback_url` and `request_id` ride in the RQ job's meta: the worker that ends the job schedules
        the webhook, and its log lines for the job carry the request id.
        """
        job_id = uuid.uuid4().hex
        rows = len(next(iter(arrays.values())))
        attempts = self.settings.max_attempts
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
            # RQ's own retry count is the attempt budget: RQ's registry cleanup and ours both spend it when a
            # worker dies with the job in hand, and requeue the job at the front while some is left.
            retry=Retry(max=attempts - 1, enqueue_at_front=True) if attempts > 1 else None,
        )
        fields: dict[str, str | int] = {keys.JOB_ROWS: rows}
        if timeout_s > 0:
            fields[keys.JOB_DEADLINE] = repr(time.time() + timeout_s)
        if owner:
            fields[keys.JOB_OWNER] = owner
        with self.connection.pipeline() as pipe:
            self.queue.enqueue_job(job, pipeline=pipe)
            pipe.hset(job.key, mapping=fields)
            pipe.incrby(self.rows_key, rows)
            self._note_depth(pipe.execute()[-1])
        return job_id

    def _note_depth(self, waiting: int) -> None:
        # Threads of one process share these; a race only makes the next check read Redis again.
        self._depth, self._depth_at = int(waiting), time.monotonic()

    def state(self, job_id: str, owner: str = "") -> JobState:
        """The job's state; raises NotFound for an unknown or expired id, or one that `owner` did not create."""
        self._check_id(job_id)
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.lindex(keys.result(job_id), 0)
            pipe.hmget(Job.key_for(job_id), "status", keys.JOB_OWNER, keys.JOB_DEADLINE)
            document, (status, stored_owner, deadline) = pipe.execute()
        if (document is None and status is None) or not owns(stored_owner, owner):
            raise NotFound(f"no job {job_id!r}: unknown, or its result expired", field="id")
        if document is not None:
            return JobState(JobStatus(orjson.loads(document)["status"]), document)
        try:
            state = JobState(JobStatus(status.decode()))
        except ValueError:  # RQ states we do not expose (deferred, scheduled...) read as queued
            return JobState(JobStatus.QUEUED)
        if state.status is JobStatus.CANCELED:  # cancelled with RQ's own tools
            return JobState(state.status, orjson.dumps(canceled_doc(job_id)))
        if state.status is JobStatus.QUEUED and deadline is not None and float(deadline) < time.time():
            # Past its deadline with no worker there yet: it will never run (the worker that reaches it
            # fails it as expired), so say so now rather than `queued`.
            message = "the job's deadline passed before a worker could start it"
            return JobState(JobStatus.EXPIRED, orjson.dumps(error_doc(job_id, JobError(ErrorCode.DEADLINE_EXCEEDED, message))))
        if state.status.is_terminal:
            # Ended without our document: RQ's own registry cleanup (e.g. run by `rq info`) failed it.
            message = f"the job was marked {state.status.value} outside this service's worker; submit it again"
            return JobState(JobStatus.FAILED, orjson.dumps(error_doc(job_id, JobError(ErrorCode.WORKER_LOST, message))))
        return state

    def wait(self, job_id: str, timeout_s: float) -> bytes | None:
        """Block up to `timeout_s` for the job's final document; None if it is not done by then."""
        key = keys.result(job_id)
        return self.connection.blmove(key, key, timeout_s, src="LEFT", dest="LEFT")

    def cancel(self, job_id: str, owner: str = "") -> bytes:
        """Cancel a job that has not started; returns its (canceled) document.

        Raises:
            NotFound: unknown or expired id, or a job `owner` did not create.
            Conflict: the job was already claimed by a worker, or is done.
        """
        state = self.state(job_id, owner)
        document = orjson.dumps(canceled_doc(job_id))
        registry = CanceledJobRegistry(self.queue.name, connection=self.connection)
        ttl = self.settings.result_ttl
        # One Lua call: the job leaves the queue, and is marked cancelled, only if no worker claimed it.
        cancelled = state.status is JobStatus.QUEUED and self._cancel(
            keys=[self.queue.key, Job.key_for(job_id), registry.key, keys.result(job_id), self.rows_key],
            args=[job_id, document, ttl, current_timestamp() + ttl, keys.JOB_ROWS, JobStatus.CANCELED.value],
        )
        if not cancelled:
            raise Conflict(
                f"job {job_id!r} cannot be cancelled: it is {'running' if state.status is JobStatus.QUEUED else state.status.value}",
                expected="a job that is still queued",
            )
        meta = self.connection.hget(Job.key_for(job_id), "meta")
        callback_url = OrjsonSerializer.loads(meta).get("callback_url") if meta else None
        with self.connection.pipeline() as pipe:
            pipe.hincrbyfloat(keys.metrics(), metrics.job_status_field(JobStatus.CANCELED.value), 1)
            if callback_url:
                webhooks.enqueue(pipe, "job", job_id, callback_url, self.settings.result_ttl)
            pipe.execute()
        return document

    @staticmethod
    def _check_id(job_id: str) -> None:
        if not _JOB_ID.match(job_id):
            raise NotFound(f"no job {job_id[:64]!r}: a job id is 1-64 letters, digits, '-' or '_'", field="id")

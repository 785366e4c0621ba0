"""The API's view of jobs in Redis: enqueue them as RQ jobs, read their status and result, wait, cancel.

Submitting is one round trip of two commands (the job hash, the queue; a third for a job of several rows),
shared by the submits of concurrent requests in one process (api/jobs/group_commit.py), writing RQ's own
format (shared/rq_keys.py) so that RQ's tools see the job. The result of an ended job is a field of its
hash; waiting for it costs no command (api/jobs/waiter.py).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

import numpy as np
import orjson
import redis
from redis.client import Pipeline

from api.auth import owns
from api.jobs.group_commit import GroupCommit
from api.jobs.waiter import ResultWaiter
from shared import keys, lua, rq_keys, worker_metrics
from shared.config import Settings
from shared.errors import Conflict, NotFound, QueueFull
from shared.payload import ENDED_DATA, PREDICT_FUNC, encode_inputs
from shared.schema import ErrorCode, JobError, JobMeta, JobStatus, canceled_doc, error_doc
from shared.webhooks import delivery_id

# Ids made here are uuid4 hex (122 random bits); RQ's own ids (uuid4 with dashes, or custom) are also
# accepted. Anything with other characters (slashes, dots) cannot name a job.
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
QUEUE_FULL_RETRY_AFTER_S = 1.0
# How long a process trusts the queue depth it last saw before reading it again (seconds).
DEPTH_REFRESH_S = 0.25


@dataclass
class _Depth:
    """What this process last saw of one queue's depth: rows waiting, when, and the extra rows part."""

    rows: int = 0
    at: float = float("-inf")
    extra: int = 0


@dataclass
class JobState:
    """A job as a reader sees it: the final document if there is one, else the pending status."""

    status: JobStatus
    document: bytes | None = None


class RedisJobs:
    """Redis operations for /predict, /result and /jobs; one instance per app.

    Methods that read or change a job take the caller's `owner` (see `api.auth`): a job created with
    another key reads as unknown.
    """

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.results = ResultWaiter(connection, self.result)
        self.writes = GroupCommit(connection)
        self._depths: dict[str, _Depth] = {}
        self._registered: set[str] = set()

    def check_capacity(self, queue: str | None = None) -> None:
        """Raise QueueFull when MAX_QUEUE_DEPTH rows or more are waiting in `queue` (default QUEUE_NAME, the
        first model's); the body is not read yet.

        The depth is remembered from this process's last submit (its RPUSH reply) or read, for at most
        DEPTH_REFRESH_S: a check costs no round trip on the hot path. A remembered depth at the limit is
        read again before refusing, so a 429 always reflects the queue as it is now.
        """
        limit = self.settings.max_queue_depth
        if not limit:
            return
        queue = queue or self.settings.queue_name
        seen = self._depths.setdefault(queue, _Depth())
        if seen.rows < limit and time.monotonic() - seen.at < DEPTH_REFRESH_S:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.llen(rq_keys.queue(queue))
            pipe.get(keys.extra_rows(queue))
            jobs, extra = pipe.execute()
        seen.extra = max(0, int(extra or 0))
        waiting = jobs + seen.extra
        seen.rows, seen.at = waiting, time.monotonic()
        if waiting >= limit:
            raise QueueFull(
                f"{waiting} rows are waiting, as many as this server queues (MAX_QUEUE_DEPTH={limit})",
                expected="a retry after Retry-After seconds",
                retry_after=QUEUE_FULL_RETRY_AFTER_S,
            )

    def submit(
        self,
        arrays: dict[str, np.ndarray],
        owner: str = "",
        deadline_s: float = 0.0,
        callback_url: str | None = None,
        request_id: str | None = None,
        job_id: str | None = None,
        signature: str | None = None,
        queue: str | None = None,
        version: str | None = None,
    ) -> str:
        """Enqueue one job for `arrays` in a single round trip (shared with the submits of other threads of
        this process under load, api/jobs/group_commit.py); returns its id.

        `deadline_s` > 0 gives the job a start deadline: a worker that reaches it later fails it as `expired`.
        `callback_url` and `request_id` ride in the RQ job's meta: the worker that ends the job schedules
        the webhook, and its log lines for the job carry the request id. `signature` names the model
        signature that runs the job (None: the default one). `queue` is the model's queue (default QUEUE_NAME)
        and `version` the model version the job is pinned to (None: the newest available when claimed).
        """
        job_id = job_id or uuid.uuid4().hex
        queue = queue or self.settings.queue_name
        queue_key = rq_keys.queue(queue)
        rows = len(next(iter(arrays.values())))
        fields = rq_keys.job_fields(
            queue_name=queue,
            func_name=PREDICT_FUNC,
            args=[encode_inputs(arrays, signature, version)],
            max_attempts=self.settings.max_attempts,
            now=rq_keys.timestamp(),
        )
        fields[keys.JOB_ROWS] = rows
        if deadline_s > 0:
            fields[keys.JOB_DEADLINE] = repr(time.time() + deadline_s)
        if owner:
            fields[keys.JOB_OWNER] = owner
        meta = JobMeta(callback_url, request_id).encode()
        if meta is not None:
            fields[rq_keys.JobField.META] = meta
        register = queue not in self._registered  # so that `rq info` lists it (workers repeat it at each heartbeat)

        def commands(pipe: Pipeline) -> None:
            if register:
                pipe.sadd(rq_keys.QUEUES, queue_key)
            pipe.hset(rq_keys.job(job_id), mapping=fields)
            pipe.rpush(queue_key, job_id)
            if rows > 1:
                pipe.incrby(keys.extra_rows(queue), rows - 1)

        replies = self.writes.execute(commands, register + 2 + (rows > 1))
        self._registered.add(queue)
        # Threads of one process share these; a race only makes the next check read Redis again.
        seen = self._depths.setdefault(queue, _Depth())
        if rows > 1:
            seen.extra = max(0, int(replies[-1]))
        seen.rows, seen.at = int(replies[-1 if rows == 1 else -2]) + seen.extra, time.monotonic()
        return job_id

    def submit_and_wait(
        self,
        arrays: dict[str, np.ndarray],
        wait_s: float,
        owner: str = "",
        deadline_s: float = 0.0,
        callback_url: str | None = None,
        request_id: str | None = None,
        signature: str | None = None,
        queue: str | None = None,
        version: str | None = None,
    ) -> tuple[str, bytes | None]:
        """`submit`, then wait up to `wait_s` (0: not at all) for the result; returns (id, result or None)."""
        where = {"signature": signature, "queue": queue, "version": version}
        if wait_s <= 0:
            return self.submit(arrays, owner, deadline_s, callback_url, request_id, **where), None
        job_id = uuid.uuid4().hex
        waiting = self.results.expect(job_id)  # before the job exists, so that its result cannot be missed
        try:
            self.submit(arrays, owner, deadline_s, callback_url, request_id, job_id=job_id, **where)
        except BaseException:
            self.results.wait(job_id, waiting, 0, check_first=False)  # stops waiting
            raise
        return job_id, self.results.wait(job_id, waiting, wait_s, check_first=False)

    def result(self, job_id: str) -> bytes | None:
        """The job's result, if it has ended (no owner check: for waiters that checked it already)."""
        return self.connection.hget(rq_keys.job(job_id), keys.JOB_RESULT)

    def state(self, job_id: str, owner: str = "") -> JobState:
        """The job's state; raises NotFound for an unknown or purged id, or one that `owner` did not create."""
        self._check_id(job_id)
        status, document, stored_owner, deadline = self.connection.hmget(
            rq_keys.job(job_id), rq_keys.JobField.STATUS, keys.JOB_RESULT, keys.JOB_OWNER, keys.JOB_DEADLINE
        )
        if status is None or not owns(stored_owner, owner):
            raise NotFound(
                f"no job {job_id!r}: unknown, or its result was purged (RESULT_TTL after it ended)", field="id"
            )
        if document is not None:
            return JobState(JobStatus(orjson.loads(document)["status"]), document)
        try:
            state = JobState(JobStatus(status.decode()))
        except ValueError:  # RQ states we do not expose (deferred, scheduled...) read as queued
            return JobState(JobStatus.QUEUED)
        if state.status is JobStatus.CANCELED:  # cancelled with RQ's own tools, or a chunk of a cancelled batch
            return JobState(state.status, orjson.dumps(canceled_doc(job_id)))
        if state.status is JobStatus.QUEUED and deadline is not None and float(deadline) < time.time():
            # Past its deadline with no worker there yet: it will never run (the worker that reaches it
            # fails it as expired), so say so now rather than `queued`.
            error = JobError(ErrorCode.DEADLINE_EXCEEDED, "the job's deadline passed before a worker could start it")
            return JobState(JobStatus.EXPIRED, orjson.dumps(error_doc(job_id, error)))
        if state.status.is_terminal:
            # Ended without our result: RQ's own registry cleanup (e.g. run by rq-dashboard) failed it.
            error = JobError(
                ErrorCode.WORKER_LOST,
                f"the job was marked {state.status.value} outside this service's worker; submit it again",
            )
            return JobState(JobStatus.FAILED, orjson.dumps(error_doc(job_id, error)))
        return state

    def wait(self, job_id: str, timeout_s: float) -> bytes | None:
        """Block up to `timeout_s` for the job's result; None if it is not done by then."""
        return self.results.wait(job_id, self.results.expect(job_id), timeout_s, check_first=True)

    def cancel(self, job_id: str, owner: str = "") -> bytes:
        """Cancel a job that has not started; returns its (canceled) document.

        Raises:
            NotFound: unknown or purged id, or a job `owner` did not create.
            Conflict: the job was already claimed by a worker, or is done.
        """
        state = self.state(job_id, owner)
        document = orjson.dumps(canceled_doc(job_id))
        cancelled = state.status is JobStatus.QUEUED and _cancel(self.connection, self.settings, job_id, document)
        if not cancelled:
            raise Conflict(
                f"job {job_id!r} cannot be cancelled: it is "
                f"{'running' if state.status is JobStatus.QUEUED else state.status.value}",
                expected="a job that is still queued",
            )
        self.connection.hincrbyfloat(keys.metrics(), worker_metrics.job_status_field(JobStatus.CANCELED.value), 1)
        return document

    @staticmethod
    def _check_id(job_id: str) -> None:
        if not _JOB_ID.match(job_id):
            raise NotFound(f"no job {job_id[:64]!r}: a job id is 1-64 letters, digits, '-' or '_'", field="id")


def _cancel(connection: redis.Redis, settings: Settings, job_id: str, document: bytes) -> bool:
    """cancel.lua: the job leaves its queue (RQ's `origin` field: each model has its own) and ends `canceled`,
    only if no worker claimed it."""
    member = delivery_id("job", job_id)
    now = time.time()
    origin = connection.hget(rq_keys.job(job_id), "origin")
    queue = origin.decode() if origin else settings.queue_name
    return bool(
        lua.script("cancel", "webhook")(
            keys=[
                rq_keys.queue(queue),
                rq_keys.job(job_id),
                rq_keys.canceled(queue),
                keys.extra_rows(queue),
                keys.purge_index(),
                keys.webhooks(),
                keys.webhook(member),
            ],
            args=[
                job_id,
                document,
                rq_keys.timestamp(),
                now,
                now + settings.result_ttl,
                settings.result_ttl,
                keys.results_channel(),
                member,
                ENDED_DATA,
            ],
            client=connection,
        )
    )

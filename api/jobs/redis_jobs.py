"""The API's view of jobs in Redis: enqueue them as RQ jobs, read their status and result, wait, cancel.

Submitting is one round trip (the job hash and its key's sub-queue of its model's lane, pipelined: two
commands, no script), shared by the submits of concurrent requests in one process
(api/jobs/group_commit.py); a push that finds the sub-queue empty is followed by a second round trip, the
sub-queue's join of its lane's ring (shared/fair.py). It writes RQ's own format (shared/rq_keys.py) so that
RQ's tools see the job. The result of an ended job is a field of its hash; waiting for it costs no command
(api/jobs/waiter.py).
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass

import numpy as np
import orjson
import redis
from redis.client import Pipeline

from api.auth import owns
from api.jobs.group_commit import GroupCommit
from api.jobs.waiter import ResultWaiter
from api.metrics import TENANT_REJECTIONS
from api.queue_metrics import ANONYMOUS_LABEL
from shared import fair, keys, lua, rq_keys, worker_metrics
from shared.config import Settings
from shared.errors import Conflict, NotFound, QueueFull
from shared.ids import uuid4_hex
from shared.payload import ENDED_DATA, PREDICT_FUNC, encode_inputs
from shared.schema import ErrorCode, JobError, JobMeta, JobStatus, canceled_doc, error_doc
from shared.tenants import ANONYMOUS, Tenant, Tenants
from shared.webhooks import delivery_id

log = logging.getLogger(__name__)
# Ids made here are uuid4 hex (122 random bits); RQ's own ids (uuid4 with dashes, or custom) are also
# accepted. Anything with other characters (slashes, dots) cannot name a job.
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
QUEUE_FULL_RETRY_AFTER_S = 1.0
# How long a process trusts the queue depth it last saw before reading it again (seconds).
DEPTH_REFRESH_S = 0.25
# How often a process registers a sub-queue it submits to in RQ's set of queues again (seconds): Redis may
# have lost the set (a restart without persistence), and the metrics, `rq info` and the recovery sweep find
# sub-queues there. One SADD per sub-queue and process per period.
REGISTER_EVERY_S = 30.0


@dataclass
class Depth:
    """Rows waiting that one process last saw (and has submitted since): in the lane, in one key's sub-queue."""

    lane: int
    own: int
    at: float
    renewing: bool = False  # a thread of this process is reading them again

    def below(self, limit: int, own_limit: int) -> bool:
        """Whether neither limit (0: none) is reached."""
        return (not limit or self.lane < limit) and (not own_limit or self.own < own_limit)

    def add(self, rows: int) -> None:
        self.lane += rows
        self.own += rows


@dataclass
class JobState:
    """A job as a reader sees it: the final document if there is one, else the pending status."""

    status: JobStatus
    document: bytes | None = None
    queue: str = ""  # the RQ queue it was submitted to (its key's sub-queue)


class RedisJobs:
    """Redis operations for /predict, /result and /jobs; one instance per app.

    Methods that read or change a job take the caller's `owner` (see `api.auth`): a job created with
    another key reads as unknown.
    """

    def __init__(self, connection: redis.Redis, settings: Settings, tenants: Tenants | None = None) -> None:
        self.connection = connection
        self.settings = settings
        self.tenants = tenants or Tenants()
        self.results = ResultWaiter(connection, self.result)
        self.writes = GroupCommit(connection)
        self._depths: dict[tuple[str, str], Depth] = {}  # by (lane, tenant name): what this process last saw
        self._registered: dict[str, float] = {}  # sub-queue → when this process last registered it (monotonic)
        for tenant in [*self.tenants.by_digest.values(), ANONYMOUS]:  # every key's series exists from the start
            TENANT_REJECTIONS.labels(tenant.name or ANONYMOUS_LABEL)

    def check_capacity(self, owner: str = "", lane: str | None = None) -> None:
        """Raise QueueFull when the caller's key has its limit of rows waiting in `lane` (a model's queue,
        default QUEUE_NAME: MAX_QUEUED_ROWS_PER_KEY, or its own in API_KEYS_FILE), or the lane MAX_QUEUE_DEPTH
        rows (the body is not read yet).

        The depths are remembered from this process's last read, plus what it submitted since, for at most
        DEPTH_REFRESH_S and the read that renews them, which one thread makes: a check costs no round trip on
        the hot path. A remembered depth at a limit is read again before refusing, so a 429 always reflects
        the queues as they are now.
        """
        tenant = self.tenants.of(owner)
        limit, own_limit = (
            self.settings.max_queue_depth,
            tenant.max_queued_rows or self.settings.max_queued_rows_per_key,
        )
        if not limit and not own_limit:
            return
        lane = lane or self.settings.queue_name
        last = self._depths.get((lane, tenant.name))
        if last is not None and last.below(limit, own_limit):
            if last.renewing or time.monotonic() - last.at < DEPTH_REFRESH_S:
                return
            last.renewing = True  # this thread reads them again; the others trust them meanwhile (not read them too)
        try:
            seen = self._read_depth(lane, tenant)
        except BaseException:
            if last is not None:
                last.renewing = False  # the next check reads them
            raise
        if own_limit and seen.own >= own_limit:
            TENANT_REJECTIONS.labels(tenant.name or ANONYMOUS_LABEL).inc()
            whose, others = (
                (f"of key {tenant.name!r}", "; other keys are still accepted")
                if tenant.name
                else ("of anonymous traffic (API keys are off: all of it is one key)", "")
            )
            raise QueueFull(
                f"{seen.own} rows {whose} are waiting in {lane!r}, as many as it may queue "
                f"({'max_queued_rows in API_KEYS_FILE' if tenant.max_queued_rows else 'MAX_QUEUED_ROWS_PER_KEY'}"
                f"={own_limit}){others}",
                expected="a retry after Retry-After seconds",
                retry_after=QUEUE_FULL_RETRY_AFTER_S,
            )
        if limit and seen.lane >= limit:
            raise QueueFull(
                f"{seen.lane} rows are waiting in {lane!r}, as many as this server queues (MAX_QUEUE_DEPTH={limit})",
                expected="a retry after Retry-After seconds",
                retry_after=QUEUE_FULL_RETRY_AFTER_S,
            )

    def _read_depth(self, lane: str, tenant: Tenant) -> Depth:
        """depth.lua: rows waiting in `lane` and in the tenant's sub-queue, remembered for DEPTH_REFRESH_S."""
        sub = fair.sub_queue(lane, tenant.name)
        lane_rows, own_rows = lua.script("depth")(
            keys=[keys.ring(lane), rq_keys.queue(sub), keys.extra_rows(sub)],
            args=[rq_keys.queue(""), keys.extra_rows("")],
            client=self.connection,
        )
        # Threads of one process share these; a race only makes the next check read Redis again.
        seen = self._depths[lane, tenant.name] = Depth(int(lane_rows), int(own_rows), time.monotonic())
        return seen

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
        signature that runs the job (None: the default one). `queue` is the model's queue, its lane (default
        QUEUE_NAME): the job goes to the caller's key's sub-queue of it. `version` is the model version the
        job is pinned to (None: the newest available when claimed).
        """
        job_id = job_id or uuid4_hex()
        rows = len(next(iter(arrays.values())))
        tenant = self.tenants.of(owner)
        lane = queue or self.settings.queue_name
        sub = fair.sub_queue(lane, tenant.name)
        fields = rq_keys.job_fields(
            queue_name=sub,
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
        # So that `rq info`, the metrics and the sweep list it (the workers register their lanes at heartbeats).
        register = time.monotonic() - self._registered.get(sub, -math.inf) >= REGISTER_EVERY_S
        queue_key = rq_keys.queue(sub)

        def commands(pipe: Pipeline) -> None:
            if register:
                pipe.sadd(rq_keys.QUEUES, queue_key)
            pipe.hset(rq_keys.job(job_id), mapping=fields)
            pipe.rpush(queue_key, job_id)
            if rows > 1:
                pipe.incrby(keys.extra_rows(sub), rows - 1)

        replies = self.writes.execute(commands, register + 2 + (rows > 1))
        if replies[register + 1] == 1:  # the sub-queue was empty: it joins its lane's ring (shared/fair.py)
            self._join_ring(lane, sub)
        if register:
            self._registered[sub] = time.monotonic()
        seen = self._depths.get((lane, tenant.name))
        if seen is not None:
            seen.add(rows)
        return job_id

    def _join_ring(self, lane: str, sub: str) -> None:
        """Put `sub`, which this process's push just made non-empty, at the back of `lane`'s ring.

        A plain RPUSH, no script: only the push that finds a sub-queue empty (RPUSH answers 1) joins it, and a
        sub-queue that empties leaves the ring in the same script (claim, cancel), so it is not there already.
        If this second round trip fails, the job is queued all the same: the workers' recovery sweep puts a
        sub-queue with jobs but out of its ring back in within HEARTBEAT_S (tidy_queue.lua), so the job is
        accepted as any other, only later to run."""

        def join(pipe: Pipeline) -> None:
            pipe.rpush(keys.ring(lane), sub)

        try:
            self.writes.execute(join, 1)
        except redis.exceptions.RedisError as exc:
            log.warning("sub-queue %s not put in its ring (%s): the recovery sweep will", sub, exc)

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
        job_id = uuid4_hex()
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
        status, document, stored_owner, deadline, origin = self.connection.hmget(
            rq_keys.job(job_id),
            rq_keys.JobField.STATUS,
            keys.JOB_RESULT,
            keys.JOB_OWNER,
            keys.JOB_DEADLINE,
            rq_keys.JobField.ORIGIN,
        )
        if status is None or not owns(stored_owner, owner):
            raise NotFound(
                f"no job {job_id!r}: unknown, or its result was purged (RESULT_TTL after it ended)", field="id"
            )
        if document is not None:
            return JobState(JobStatus(orjson.loads(document)["status"]), document)
        queue = origin.decode() if origin else self.settings.queue_name
        try:
            state = JobState(JobStatus(status.decode()), queue=queue)
        except ValueError:  # RQ states we do not expose (deferred, scheduled...) read as queued
            return JobState(JobStatus.QUEUED, queue=queue)
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
        cancelled = state.status is JobStatus.QUEUED and _cancel(
            self.connection, self.settings, job_id, document, state.queue or self.settings.queue_name
        )
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


def _cancel(connection: redis.Redis, settings: Settings, job_id: str, document: bytes, queue: str) -> bool:
    """cancel.lua: the job leaves `queue` (RQ's `origin`: its key's sub-queue of its model's lane) and ends
    `canceled`, only if no worker claimed it.

    A sub-queue this empties leaves its lane's ring at once (shared/fair.py's invariant)."""
    member = delivery_id("job", job_id)
    now = time.time()
    return bool(
        lua.script("cancel", "webhook", "ring")(
            keys=[
                rq_keys.queue(queue),
                rq_keys.job(job_id),
                rq_keys.canceled(fair.lane_of(queue)),
                keys.extra_rows(queue),
                keys.purge_index(),
                keys.webhooks(),
                keys.webhook(member),
                keys.ring(fair.lane_of(queue)),
                keys.deficits(fair.lane_of(queue)),
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
                queue,
            ],
            client=connection,
        )
    )

"""Claim queued jobs for micro-batches: the worker's side of the queue.

A claim is one Lua call (shared/lua/claim.lua) that takes up to N job ids from the queues in priority
order, marks each started in RQ's format with a lease in its queue's started registry, and returns what
the worker needs of each job: two commands per job and a handful per call, whatever N. There is no
window in which a claimed job has no lease, so a worker that dies at any point leaves nothing behind
that recovery cannot find. A job whose deadline has passed is failed as `expired` without running.

Each queue is a lane (`Lane`): a model's interactive queue, or its bulk queue of chunks. Within a lane every
API key has its own sub-queue, and the lane's ring lists those with work waiting: claim.lua takes from them
by deficit round robin (shared/lua/lib/fair.lua, shared/fair.py), in turns of `quanta` rows (an eighth of a
micro-batch on an interactive lane, one chunk on a bulk lane) × the key's weight. Each job comes back with its sub-queue
(RQ's `origin`, whose key it is) and its lane (whose model it is).

An idle worker waits with a blocking BLMOVE of an interactive lane's ring onto itself (tail to tail: the
list is left as it was), which returns as soon as a key's sub-queue gets work, then claims.

A claim takes about the rows the worker has room for (the last job may pass it), from the interactive
lanes first, then the bulk ones (so only as many chunks as that room needs, over every model);
while the worker holds nothing but bulk rows it checks the interactive lanes before each micro-batch, so
interactive jobs overtake the bulk rows in hand. A micro-batch is all interactive rows or all bulk rows, and
a key's chunks run in slices while other keys' interactive jobs come (`_limit`). With several models, each
claim starts at the next model's lanes (round robin), so no model starves; an idle worker waits on their
interactive queues in turn.
A claimed job is bound to the model version it runs on (`resolve`): the one it is pinned to, or the
newest available; a pinned version this worker does not serve fails it as `version_unavailable`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson
import redis

from shared import fair, keys, lua, rq_keys
from shared.batches import ChunkSpec, utc_now
from shared.payload import decode_inputs, signature_name, version_asked
from shared.schema import ErrorCode
from worker.chunks import ChunkFiles
from worker.claim import Claim, ClaimedJob
from worker.microbatcher import Segment
from worker.model.manager import ServedVersion

log = logging.getLogger(__name__)

# Redis times blocking commands in ticks of 100 ms (hz 10) and reads a timeout under a tick as 0, which means
# "block until something arrives": a shorter wait is slept here instead.
MIN_BLOCK_S = 0.1
# Lua's unpack() takes at most ~8,000 values; more jobs than this per claim gains nothing anyway.
MAX_JOBS_PER_CLAIM = 4096
# An idle worker waits on an interactive ring (BLMOVE, non-destructive) at most this long before it looks at the
# bulk lanes too: what a batch uploaded to an idle service may wait to start. Four looks a second cost an idle
# worker about 16 Redis commands a second.
BULK_LOOK_S = 0.25
# While another key's interactive jobs have come within this many seconds, chunks run in slices (RedisSource._limit).
INTERACTIVE_QUIET_S = 1.0
# resolve(model, version asked or None) → the version a claim runs on, or why there is none.
Resolve = Callable[[str, "str | None"], "ServedVersion | str"]


@dataclass(frozen=True)
class Lane:
    """One queue the worker claims from: whose model it is, and whether it holds bulk chunks."""

    queue: str
    model: str = ""
    bulk: bool = False


def default_lanes(queue_names: Sequence[str]) -> list[Lane]:
    """One model's lanes: the first queue interactive, the others bulk."""
    return [Lane(name, bulk=i > 0) for i, name in enumerate(queue_names)]


def claim_jobs(
    client: redis.Redis,
    queue_names: Sequence[str],
    caps: Sequence[int],
    *,
    quanta: Sequence[int],
    weights: Mapping[str, int],
    most: int,
    room: int,
    token: str,
    lease_until: float,
    worker_name: str,
    busy: bool,
) -> list[ClaimedJob]:
    """claim.lua: claim and start up to `most` jobs and about `room` rows (the last job may pass it: a job runs
    whole, over several micro-batches if need be), at most `caps[i]` jobs from lane `queue_names[i]` (each job
    names its lane's position: `ClaimedJob.lane`), its keys' sub-queues served by deficit round robin in turns
    of `quanta[i]` rows × the key's weight (`weights`: name → weight, 1 if absent)."""
    script_keys: list[str] = []
    for name in queue_names:
        script_keys += [keys.ring(name), keys.deficits(name), rq_keys.started(name)]
    reply = lua.script("claim", "zadd", "fair")(
        keys=script_keys,
        args=[
            most,
            rq_keys.JOB_PREFIX,
            ":" + token,
            lease_until,
            rq_keys.timestamp(),
            worker_name,
            int(busy),
            utc_now(),
            keys.batch(""),
            rq_keys.queue(""),
            keys.extra_rows(""),
            orjson.dumps(dict(weights)),
            room,
            *(v for pair in zip(caps, quanta, strict=True) for v in pair),
        ],
        client=client,
    )
    per_job = ClaimedJob.VALUES
    return [ClaimedJob.decode(reply[i : i + per_job]) for i in range(0, len(reply), per_job)]


class RedisSource:
    """Implements `microbatcher.Source` over the queues; keeps the unfinished rows of claims between micro-batches.

    `chunks` loads the rows of bulk chunk jobs from storage; `chunk_rows` (rows per job on the bulk lanes)
    bounds how many of those one claim takes. `lanes` default to one model's: the first queue interactive,
    the others bulk; without `resolve`, claims are bound to no version (the runner's default model).
    `quanta` gives a key's turn in rows at weight 1 on an interactive lane and on a bulk lane, `weights` the
    keys' weights (shared/tenants.py).
    """

    def __init__(
        self,
        connection: redis.Redis,
        queue_names: Sequence[str],
        worker_name: str,
        lease_s: int,
        chunks: ChunkFiles | None = None,
        chunk_rows: int = 1,
        lanes: Sequence[Lane] | None = None,
        resolve: Resolve | None = None,
        quanta: tuple[int, int] = (MAX_JOBS_PER_CLAIM, MAX_JOBS_PER_CLAIM),
        weights: Mapping[str, int] | None = None,
    ) -> None:
        self.connection = connection
        self.lanes = list(lanes) if lanes is not None else default_lanes(queue_names)
        self.queue_names = [lane.queue for lane in self.lanes]
        self.resolve = resolve
        self.quanta = quanta
        self.weights = dict(weights or {})
        self._turn = 0  # round robin over the models: which one's lanes the next claim starts with
        self.worker_name = worker_name
        self.lease_s = lease_s
        self.chunks = chunks
        self.chunk_rows = chunk_rows
        self.pending: deque[Claim] = deque()
        self.rejected: list[Claim] = []
        self.claiming = True
        self._empty = True  # the last claim found every queue empty: wait on the first before claiming again
        self._piling = False  # the last claim took several jobs, or all it asked for: prefetching pays
        self._interactive_at: dict[str, float] = {}  # key name → when a claim last took its interactive job
        # Round trips spent on claims that got work, since the last `take_round_trips()`.
        self.round_trips = 0

    def take(self, max_rows: int, timeout: float, bulk: bool | None = None) -> list[Segment]:
        """See `microbatcher.Source.take`: pending rows first, then new claims (none once claiming stopped).

        A micro-batch holds interactive rows or bulk rows, never both (`bulk`: which; None: interactive if any
        is in hand): an interactive job never waits for bulk rows in its own model call. While the worker
        holds a job that runs alone, it claims nothing else.
        """
        if self.claiming and self._holding_only_bulk() and not any(c.rerun for c in self.pending):
            self.claim(max_rows, 0.0, priority_only=True)  # interactive jobs go ahead of bulk rows in hand
        kind = self._next_kind() if bulk is None else bulk
        segments = self._from_pending(self._limit(max_rows, kind), kind)
        room = self._limit(max_rows, kind) - sum(s.rows for s in segments)
        if room > 0 and self.claiming and not any(c.rerun for c in self.pending):
            # With a chunk's rows still to run in hand, only interactive jobs are claimed here, in the model
            # thread: the next chunk is `prefetch`'s, claimed and read in the claim thread while this one runs.
            self.claim(room, timeout if not segments else 0.0, priority_only=True in self._waiting_kinds())
            kind = self._next_kind() if kind is None else kind
            # A chunk just claimed widens the limit: it runs whole (or in slices, see `_limit`).
            segments += self._from_pending(
                self._limit(max_rows, kind) - sum(s.rows for s in segments),
                kind,
                segments[0].claim.tenant if segments else None,
            )
        return segments

    def prefetch(self, max_rows: int) -> None:
        """Claim, without waiting, jobs for the rows the next micro-batch has room for: they are decoded now
        (while the model runs the micro-batch in hand) and handed out by the next `take`.

        At most one micro-batch ahead: rows in hand not yet handed out count against `max_rows`. Claiming
        while holding work never takes a rerun (claim.lua's `busy`), and nothing is claimed beside one.
        """
        if not self._piling and not self._holding_only_bulk():
            return  # one job per claim with room to spare: nothing is piling up, an empty claim only costs Redis
        room = self._limit(max_rows, self._holding_only_bulk()) - sum(c.rows - c.next_row for c in self.pending)
        if room > 0 and self.claiming and not any(c.rerun for c in self.pending):
            self.claim(room, 0.0)

    def stop_claiming(self) -> None:
        """Finish what is in hand, take nothing new."""
        self.claiming = False

    def rewind(self) -> None:
        """Hand out again the rows of a micro-batch that was collected but never ran (a step failed part-way)."""
        for claim in self.pending:
            claim.next_row = claim.done_rows

    def _from_pending(self, max_rows: int, bulk: bool | None, tenant: str | None = None) -> list[Segment]:
        """Up to `max_rows` rows of the claims in hand of one kind. Bulk rows come from one key's chunks (`tenant`,
        or the first chunk's): the key `_limit` sized the micro-batch for, whole or in slices."""
        segments: list[Segment] = []
        for claim in self.pending:
            if max_rows <= 0 or bulk is None:
                break
            if self.lanes[claim.queue_index].bulk != bulk or (bulk and tenant not in (None, claim.tenant)):
                continue
            start = claim.next_row
            stop = min(claim.rows, start + max_rows)
            if stop > start:
                segments.append(Segment(claim, start, stop, rerun=claim.rerun, bulk=bulk))
                claim.next_row = stop
                max_rows -= stop - start
                tenant = claim.tenant
        return segments

    def _limit(self, max_rows: int, bulk: bool | None) -> int:
        """Rows for the next micro-batch: MAX_MICROBATCH_ROWS, or for bulk rows a whole chunk (BATCH_CHUNK_ROWS).
        A chunk is batch work already: one model call at its size costs less than several at the interactive
        size. But an interactive job that comes while the model runs waits for that call to end: while another
        key's interactive jobs come (within INTERACTIVE_QUIET_S), the next chunk's key's rows run in slices of
        MAX_MICROBATCH_ROWS (the interactive lanes are checked before each slice), so that one key's batch
        costs another key's /predict one slice at most. A key's own interactive jobs wait for its chunk."""
        if not bulk:
            return max_rows
        owner = next((c.tenant for c in self.pending if self.lanes[c.queue_index].bulk and c.next_row < c.rows), "")
        now = time.monotonic()
        others = any(now - at < INTERACTIVE_QUIET_S for key, at in self._interactive_at.items() if key != owner)
        return max_rows if others else max(max_rows, self.chunk_rows)

    def _next_kind(self) -> bool | None:
        """Whether the next micro-batch is bulk: False while interactive rows wait in hand, None with no rows."""
        waiting = self._waiting_kinds()
        return None if not waiting else min(waiting)

    def _waiting_kinds(self) -> set[bool]:
        """The kinds of the rows in hand not yet handed out: True for bulk rows, False for interactive ones."""
        return {self.lanes[c.queue_index].bulk for c in self.pending if c.next_row < c.rows}

    def _holding_only_bulk(self) -> bool:
        return bool(self.pending) and all(self.lanes[c.queue_index].bulk for c in self.pending)

    def _claim_order(self) -> tuple[list[int], list[int]]:
        """This claim's interactive and bulk lanes (positions in `lanes`), each starting at the next model."""
        self._turn += 1
        interactive = [i for i, lane in enumerate(self.lanes) if not lane.bulk]
        bulk = [i for i, lane in enumerate(self.lanes) if lane.bulk]
        return _rotated(interactive, self._turn), _rotated(bulk, self._turn)

    def claim(self, max_rows: int, timeout: float, priority_only: bool = False) -> None:
        """Claim jobs for about `max_rows` rows, waiting up to `timeout` s on the first queue if all are empty.

        The last job taken may pass `max_rows` (a job runs whole, over several micro-batches if need be), so
        the worker holds about one micro-batch of rows ahead whatever the rows per job: a key's backlog of
        many-row jobs is not claimed in one go ahead of another key's job (claim.lua's `room`). Called by
        `take` and `prefetch`; public so that bench/bulk_profile.py can time it.
        """
        trips = 0
        interactive, bulk = self._claim_order()
        if self._empty and timeout > 0 and not priority_only:
            # Only one lane's ring (its keys' sub-queues with work) can be waited on, without taking anything
            # out of it: when the wait ends with nothing there, the claim below still looks at every lane, so an
            # idle worker notices other work within the wait (split over models), and bulk work within
            # BULK_LOOK_S (a batch uploaded to an idle service starts without waiting out IDLE_TIMEOUT_S).
            wait = min(timeout, max(MIN_BLOCK_S, timeout / len(interactive))) if len(interactive) > 1 else timeout
            wait = min(wait, BULK_LOOK_S) if bulk else wait
            if wait >= MIN_BLOCK_S:
                trips += 1
                first = keys.ring(self.queue_names[interactive[0]])
                self.connection.blmove(first, first, wait, src="RIGHT", dest="RIGHT")
            else:  # too short for Redis's blocking timer, which reads it as 0: "wait forever"
                time.sleep(wait)
        max_jobs = min(max_rows, MAX_JOBS_PER_CLAIM)
        bulk_cap = 0 if priority_only else -(-max_rows // self.chunk_rows)
        order = interactive + bulk
        token = uuid.uuid4().hex[:12]
        jobs = claim_jobs(
            self.connection,
            [self.queue_names[i] for i in order],
            [max_jobs] * len(interactive) + [bulk_cap] * len(bulk),
            quanta=[self.quanta[self.lanes[i].bulk] for i in order],
            weights=self.weights,
            most=max_jobs,
            room=max_rows,
            token=token,
            lease_until=time.time() + self.lease_s,
            worker_name=self.worker_name,
            busy=bool(self.pending),
        )
        trips += 1
        jobs = [dataclasses.replace(job, lane=order[job.lane]) for job in jobs]  # this claim's order → the lane
        for job in jobs:
            if not self.lanes[job.lane].bulk:
                self._interactive_at[fair.tenant_of(job.queue)] = time.monotonic()
        if not priority_only:
            # Every lane ran out (fewer jobs than asked of each): the next claim waits on an interactive
            # lane's ring (a BLMOVE that returns at once if jobs came meanwhile) instead of finding it empty.
            taken = sum(1 for job in jobs if not self.lanes[job.lane].bulk)
            rows = sum(job.rows for job in jobs)
            self._empty = rows < max_rows and taken < max_jobs and (not bulk or len(jobs) - taken < bulk_cap)
            self._piling = len(jobs) >= min(2, max_jobs) or rows >= max_rows
        if jobs:
            claims = [self._restore(token, job) for job in jobs]
            self._keep([c for c in claims if c is not None], at_front=priority_only)
            self.round_trips += trips

    def _restore(self, token: str, job: ClaimedJob) -> Claim | None:
        claim = Claim(
            id=job.id,
            queue_index=job.lane,
            model=self.lanes[job.lane].model,
            lease=rq_keys.lease(job.id, token),
            rows=job.rows,
            rerun=job.rerun,
            retries_left=job.retries_left,
            request_id=job.meta.request_id,
            callback_url=job.meta.callback_url,
            enqueued_at=job.enqueued_at,
            tenant=fair.tenant_of(job.queue),
            waited_s=max(0.0, time.time() - job.enqueued_at.timestamp()) if job.enqueued_at is not None else None,
        )
        late = time.time() - job.deadline
        if late > 0:  # never run a job past its deadline: the client has stopped waiting for it
            claim.fail(
                ErrorCode.DEADLINE_EXCEEDED, f"the job's deadline passed {late:.1f} s before a worker could start it"
            )
            return claim
        try:
            args = rq_keys.job_args(job.data)
            if job.batch_id:
                claim.chunk = ChunkSpec.from_payload(args[0])
                claim.inputs = self.chunks.load(claim.chunk) if self.chunks is not None else None
            else:
                claim.inputs = decode_inputs(args[0])
                claim.signature = signature_name(args[0])
            if claim.inputs is None:
                raise ValueError("this worker has no storage for bulk chunks")
            claim.rows = len(next(iter(claim.inputs.values())))
            pinned = None if job.batch_id else version_asked(args[0])
        except Exception as exc:  # a foreign or corrupt payload (or a batch's deleted file) fails this job alone
            if claim.chunk is not None and self.chunks is not None:  # storage_failed (retried) or invalid_payload
                claim.fail(*self.chunks.load_failed(exc))
            else:
                claim.fail(ErrorCode.INVALID_PAYLOAD, f"job payload could not be decoded: {exc}")
            return claim
        self._bind(claim, pinned)
        return claim

    def _bind(self, claim: Claim, pinned: str | None) -> None:
        """Bind the claim to the version it runs on (it holds that version until it is done)."""
        if self.resolve is None:
            return
        served = self.resolve(claim.model, pinned)
        if isinstance(served, str):
            claim.fail(ErrorCode.VERSION_UNAVAILABLE, served)
        else:
            claim.served = served

    def _keep(self, claims: list[Claim], at_front: bool) -> None:
        """Hold the claimed jobs; those failed already (past deadline, bad payload) go straight to publish.

        A job we hold that comes back in a claim was requeued because our lease on it lapsed, so the copy in
        hand can no longer publish: the new claim replaces it.
        """
        again = {c.id for c in claims}
        if again & {c.id for c in self.pending}:
            self.pending = deque(c for c in self.pending if c.id not in again)
        self.rejected += [c for c in claims if c.error is not None]
        ready = [c for c in claims if c.error is None]
        if at_front:
            self.pending.extendleft(reversed(ready))
        else:
            self.pending.extend(ready)

    def take_finished(self) -> list[Claim]:
        """Remove and return the claims that are complete (all rows done, or failed)."""
        done = self.rejected + [c for c in self.pending if c.complete]
        self.rejected = []
        self.pending = deque(c for c in self.pending if not c.complete)
        return done

    def take_round_trips(self) -> int:
        """Round trips spent claiming since the last call (for the worker's stats)."""
        trips, self.round_trips = self.round_trips, 0
        return trips

    @property
    def idle(self) -> bool:
        """Nothing in hand."""
        return not self.pending and not self.rejected

    @property
    def quiet(self) -> bool:
        """Nothing in hand and jobs not piling up (the last claim took one): the model thread has nothing to
        run before its next claim, which would most likely wait for a job."""
        return not self.pending and not self._piling


def _rotated(items: list[int], turn: int) -> list[int]:
    """`items` starting at position `turn` (mod its length), for the round robin over models."""
    if not items:
        return items
    start = turn % len(items)
    return items[start:] + items[:start]

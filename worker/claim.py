"""A job in the worker's hands: what claiming it returned (`ClaimedJob`, claim.lua's reply decoded), then
(`Claim`) its decoded inputs and the outputs so far."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from shared import rq_keys
from shared.batches import ChunkSpec
from shared.schema import ErrorCode, JobError, JobMeta
from shared.signature import DEFAULT_SIGNATURE, ModelRef
from worker.model.manager import ServedVersion


@dataclass(frozen=True)
class ClaimedJob:
    """One job of claim.lua's reply, its positional values named and decoded (`decode`)."""

    id: str
    rerun: bool  # it was started before (its worker died): it runs alone
    rows: int
    data: bytes  # RQ's `data` field: the payload, or a chunk's row range
    deadline: float  # Unix time it must start by; +inf for none
    meta: JobMeta
    enqueued_at: datetime.datetime | None
    batch_id: str  # the batch of a chunk job; "" for other jobs
    retries_left: int  # attempts left after this one
    queue: str  # RQ's `origin`: its key's sub-queue of its lane (shared/fair.py)
    lane: int  # the position of its lane (a model's queue) in the list claimed from

    VALUES = 11  # values per job in the reply, in the order of the fields above

    @classmethod
    def decode(cls, values: Sequence[bytes]) -> ClaimedJob:
        """Never raises for a job's own fields: the claim has started and leased every job of the reply, so a
        field another writer left unreadable (RQ's pickled meta, a foreign timestamp) reads as absent, and the
        job's payload decides (`RedisSource._restore` fails an unreadable one alone)."""
        raw_id, started_before, rows, data, deadline, meta, enqueued_at, batch_id, retries_left, origin, lane = values
        return cls(
            id=raw_id.decode(),
            rerun=bool(started_before),
            rows=int(rows),  # claim.lua's own number
            data=data,
            deadline=_deadline(deadline),
            meta=_meta(meta),
            enqueued_at=_timestamp(enqueued_at),
            batch_id=batch_id.decode(errors="replace"),
            retries_left=_count(retries_left),
            queue=origin.decode(errors="replace"),
            lane=int(lane) - 1,  # Lua counts from 1
        )


def _meta(raw: bytes) -> JobMeta:
    try:
        return JobMeta.decode(raw)
    except (ValueError, AttributeError, TypeError):  # not JSON, or not an object
        return JobMeta(None, None)


def _timestamp(raw: bytes) -> datetime.datetime | None:
    try:
        return rq_keys.parse_timestamp(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _count(raw: bytes) -> int:
    try:
        return max(int(raw or 0), 0)
    except ValueError:
        return 0


def _deadline(raw: bytes) -> float:
    """A job's deadline (Unix time); +inf when it has none, or none that parses."""
    try:
        return float(raw or "inf")
    except ValueError:
        return float("inf")


@dataclass
class Claim:
    """One claimed job; `error` set means it fails without running (or failed while running).

    `lease` is its member in its queue's started registry, which this worker renews at each heartbeat and
    removes when it publishes the result. `chunk` is set for a bulk batch's chunk job.
    """

    id: str
    queue_index: int  # its queue's position in the worker's queue list (priority order)
    lease: str
    rows: int
    inputs: dict[str, np.ndarray] | None = None
    rerun: bool = False  # started before by a worker that died: runs alone (see shared/lua/claim.lua)
    retries_left: int = 0  # attempts left after this one (RQ's `retries_left`)
    request_id: str | None = None
    callback_url: str | None = None
    enqueued_at: datetime.datetime | None = None
    tenant: str = ""  # the API key name whose sub-queue it came from ("" for anonymous traffic, shared/fair.py)
    waited_s: float | None = None  # seconds from enqueue (the API's clock) to this claim (ours)
    chunk: ChunkSpec | None = None
    signature: str = DEFAULT_SIGNATURE  # the model signature that runs it (shared.payload.signature_name)
    model: str = ""  # the model whose queue it came from
    served: ServedVersion | None = None  # the version it runs on, bound when claimed (it holds that version)
    error: JobError | None = None
    next_row: int = 0
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    done_rows: int = 0

    @property
    def model_ref(self) -> ModelRef:
        """The model reported on its result: the version it ran on ("" when none was bound)."""
        return ModelRef(self.model, self.served.version if self.served is not None else "")

    @property
    def complete(self) -> bool:
        """Failed, or every row has its output."""
        return self.error is not None or self.done_rows >= self.rows

    def fail(self, code: ErrorCode, message: str) -> None:
        """Record why the job fails; the first reason given stands."""
        if self.error is None:
            self.error = JobError(code, message)

    def stacked_outputs(self) -> dict[str, np.ndarray]:
        """All outputs in row order, one array per output name."""
        if len(self.outputs) == 1:
            return self.outputs[0]
        return {k: np.concatenate([part[k] for part in self.outputs]) for k in self.outputs[0]}

"""A job in the worker's hands: what claiming it returned, its decoded inputs and the outputs so far."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import numpy as np

from shared.batches import ChunkSpec
from shared.schema import ErrorCode, JobError
from shared.signature import DEFAULT_SIGNATURE


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
    error: JobError | None = None
    next_row: int = 0
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    done_rows: int = 0

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

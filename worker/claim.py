"""A job in the worker's hands: what claiming it returned, its decoded inputs and the outputs so far."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import numpy as np

from shared.batches import ChunkSpec
from shared.schema import ErrorCode, JobError
from shared.signature import DEFAULT_SIGNATURE
from worker.model.manager import ServedVersion


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
    chunk: ChunkSpec | None = None
    signature: str = DEFAULT_SIGNATURE  # the model signature that runs it (shared.payload.signature_name)
    model: str = ""  # the model whose queue it came from
    served: ServedVersion | None = None  # the version it runs on, bound when claimed (it holds that version)
    error: JobError | None = None
    next_row: int = 0
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    done_rows: int = 0

    @property
    def model_ref(self) -> dict[str, str]:
        """The {name, version} reported on its result ("" for the version when none was bound)."""
        return {"name": self.model, "version": self.served.version if self.served is not None else ""}

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

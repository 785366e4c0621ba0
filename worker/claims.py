"""A job in the worker's hands: the RQ job, its execution record, its decoded inputs and the outputs so far."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rq.executions import Execution
from rq.job import Job

from shared.batches import ChunkSpec
from shared.schema import ErrorCode, JobError


@dataclass
class Claim:
    """One claimed RQ job; `error` set means it fails without running (or failed while running).

    `chunk` is the payload of a bulk batch's chunk job (batch id, chunk, row range), None for /predict jobs.
    """

    job: Job
    execution: Execution | None
    inputs: dict[str, np.ndarray] | None
    rows: int
    error: JobError | None = None
    rerun: bool = False  # started before by a worker that died: runs alone (see claim.CLAIM_SCRIPT)
    next_row: int = 0
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    done_rows: int = 0
    chunk: ChunkSpec | None = None

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def lease(self) -> str | None:
        """This claim's entry in RQ's started registry ("<job id>:<execution id>"); None before it started."""
        return self.execution.composite_key if self.execution is not None else None

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

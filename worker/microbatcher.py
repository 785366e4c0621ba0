"""Form one micro-batch from queued work: the IDLE → FILLING part of the worker's loop, with no Redis and no TF.

Two knobs: `max_rows` (rows per model call) and `max_delay_s` (the longest the first row of a micro-batch
may wait for company). The window opens when the first row is taken, never earlier. With a delay of zero
the deadline is "now": a micro-batch holds what was queued when the worker came for it, so micro-batches
grow only because work piles up while the model runs. A segment of a rerun job is a micro-batch by
itself and runs without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from worker.claims import Claim


@dataclass
class Segment:
    """Rows `start:stop` of one claim; a job with many rows may span several micro-batches.

    `rerun`: the claim's job was started before by a worker that died (it may be what crashed it), so the
    segment must be the only work in its micro-batch.
    """

    claim: Claim
    start: int
    stop: int
    rerun: bool = False

    @property
    def rows(self) -> int:
        return self.stop - self.start


class Source(Protocol):
    """Where queued work comes from."""

    def take(self, max_rows: int, timeout: float) -> list[Segment]:
        """Wait up to `timeout` s for the first row, then return everything available, up to `max_rows` rows."""


def validate_knobs(max_rows: int, max_delay_s: float) -> None:
    """Raise ValueError stating the rule a knob breaks."""
    if not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_rows must be an integer ≥ 1, got {max_rows!r}")
    if max_delay_s < 0:
        raise ValueError(f"max_delay_s must be ≥ 0 seconds, got {max_delay_s!r}")


def collect(
    source: Source,
    max_rows: int,
    max_delay_s: float,
    idle_timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> list[Segment]:
    """Return the next micro-batch (at most `max_rows` rows), or [] if nothing came within `idle_timeout_s`."""
    batch = source.take(max_rows, idle_timeout_s)  # IDLE
    if not batch or batch[0].rerun:  # a source hands out a rerun segment only by itself; it runs at once
        return batch
    deadline = clock() + max_delay_s
    rows = sum(s.rows for s in batch)
    while rows < max_rows:  # FILLING
        left = deadline - clock()
        if left <= 0:
            break
        more = source.take(max_rows - rows, left)
        batch.extend(more)
        rows += sum(s.rows for s in more)
    return batch

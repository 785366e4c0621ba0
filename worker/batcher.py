"""Form one batch from queued work: the IDLE → FILLING part of the worker's loop, with no Redis and no TF.

Two knobs: `max_batch_size` (rows per model call) and `max_delay_s` (the longest the first row of a
batch may wait for company). A segment marked `alone` is a batch by itself and runs without waiting. The window opens when the first row is taken, never earlier. With a
delay of zero the deadline is "now": a batch holds what was queued when the worker came for it, so
batches grow only because work piles up while the model runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Segment:
    """Rows `start:stop` of one job; a job with many rows may span several batches.

    `alone`: the segment must be the only work in its batch (its job may be what crashed a worker before).
    """

    job: Any
    start: int
    stop: int
    alone: bool = False

    @property
    def rows(self) -> int:
        return self.stop - self.start


class Source(Protocol):
    """Where queued work comes from."""

    def take(self, max_rows: int, timeout: float) -> list[Segment]:
        """Wait up to `timeout` s for the first row, then return everything available, up to `max_rows` rows."""


def validate_knobs(max_batch_size: int, max_delay_s: float) -> None:
    """Raise ValueError stating the rule a knob breaks."""
    if not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise ValueError(f"max_batch_size must be an integer ≥ 1, got {max_batch_size!r}")
    if max_delay_s < 0:
        raise ValueError(f"max_delay_s must be ≥ 0 seconds, got {max_delay_s!r}")


def collect(
    source: Source,
    max_batch_size: int,
    max_delay_s: float,
    idle_timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> list[Segment]:
    """Return the next batch (at most `max_batch_size` rows), or [] if nothing came within `idle_timeout_s`."""
    batch = source.take(max_batch_size, idle_timeout_s)  # IDLE
    if not batch or batch[0].alone:  # a source hands out an `alone` segment only by itself; it runs at once
        return batch
    deadline = clock() + max_delay_s
    rows = sum(s.rows for s in batch)
    while rows < max_batch_size:  # FILLING
        left = deadline - clock()
        if left <= 0:
            break
        more = source.take(max_batch_size - rows, left)
        batch.extend(more)
        rows += sum(s.rows for s in more)
    return batch

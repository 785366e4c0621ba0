"""Form one micro-batch from queued work: the IDLE → FILLING part of the worker's loop, with no Redis and no TF.

Two knobs: `max_rows` (rows per model call) and `max_delay_s` (the longest the first row of a micro-batch
may wait for company). The window opens when the first row is taken, never earlier. With a delay of zero
the deadline is "now": a micro-batch holds what was queued when the worker came for it, so micro-batches
grow only because work piles up while the model runs. A segment of a rerun job is a micro-batch by
itself and runs without waiting.

An optional `window` (worker/adaptive_window.py) may extend the wait past that deadline, a step at a
time, while the recent arrival rate and the model's cost curve say that more rows are coming and pay;
`collect` tells it the rows each micro-batch brought (segments that start a claim: new arrivals).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from worker.claim import Claim


@dataclass
class Segment:
    """Rows `start:stop` of one claim; a job with many rows may span several micro-batches.

    `rerun`: the claim's job was started before by a worker that died (it may be what crashed it), so the
    segment must be the only work in its micro-batch. `bulk`: rows of a bulk chunk (a micro-batch holds
    interactive rows or bulk rows, never both).
    """

    claim: Claim
    start: int
    stop: int
    rerun: bool = False
    bulk: bool = False

    @property
    def rows(self) -> int:
        return self.stop - self.start


class Source(Protocol):
    """Where queued work comes from."""

    def take(self, max_rows: int, timeout: float, bulk: bool | None = None) -> list[Segment]:
        """Wait up to `timeout` s for the first row, then return everything available, up to `max_rows` rows;
        only bulk rows or only interactive rows (`bulk`; None: the source's choice)."""


class Window(Protocol):
    """An adaptive extension of the filling window (see worker/adaptive_window.py)."""

    def wait_s(self, rows_in_hand: int, waited_s: float, now: float) -> float:
        """Seconds to wait now for more rows; 0 to run the micro-batch."""

    def observe_arrivals(self, rows: int, now: float) -> None:
        """`rows` new rows were claimed at `now`."""


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
    window: Window | None = None,
) -> list[Segment]:
    """Return the next micro-batch (at most `max_rows` rows), or [] if nothing came within `idle_timeout_s`.

    With a `window`, once `max_delay_s` has passed the micro-batch waits on as long as `window.wait_s`
    says, and a wait in which nothing came ends it.
    """
    batch = source.take(max_rows, idle_timeout_s)  # IDLE
    opened = clock()
    if not batch or batch[0].rerun:  # a source hands out a rerun segment only by itself; it runs at once
        _observe(window, batch, opened)
        return batch
    deadline = opened + max_delay_s
    rows = sum(s.rows for s in batch)
    arrived = list(batch)
    while rows < max_rows:  # FILLING
        now = clock()
        left = deadline - now
        adaptive = False
        if left <= 0 and window is not None:
            left, adaptive = window.wait_s(rows, now - opened, now), True
        if left <= 0:
            break
        more = source.take(max_rows - rows, left, bulk=batch[0].bulk)
        batch.extend(more)
        arrived += more
        rows += sum(s.rows for s in more)
        if adaptive and not more:
            break  # the rows the window waited for did not come: its rate is stale
    # Recorded after the decisions above, so that a micro-batch's own rows never argue for its waiting.
    _observe(window, arrived, clock())
    return batch


def _observe(window: Window | None, segments: list[Segment], now: float) -> None:
    """Tell the window how many new rows came: segments that start a claim (later ones were in hand)."""
    if window is not None:
        window.observe_arrivals(sum(s.rows for s in segments if s.start == 0), now)

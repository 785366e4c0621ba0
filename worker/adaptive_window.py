"""The adaptive micro-batch window: how much longer a micro-batch in hand should wait for more rows.

Pure (no Redis, no TF, no clock of its own): the worker tells it when rows arrived and what each model
call cost, and `collect` asks it, each time the queue has nothing more, whether waiting pays.

The rule. A model call costs about `a + b·n` seconds for `n` rows (fitted on recent calls): waiting for
one more row spreads the fixed cost `a` over `n + 1` rows instead of `n`, which saves each row
`a/n − a/(n+1)`; it costs each row already in hand the wait, about `1/λ` at the recent arrival rate `λ`.
So the window waits only while `a/n − a/(n+1) > 1/λ`, i.e. while `λ·a > n·(n+1)`: when rows come faster
than one per fixed cost, and the more so the fewer rows are in hand. Since each wait saves a row less than
`a`, the total wait is also capped by `a` (and by the configured cap). A wait in which nothing came ends
the window (the rate it was based on is stale). The rate is measured on arrivals *before* the micro-batch
in hand, so a lone request (nothing arrived recently) never waits.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Arrivals older than this no longer count towards the rate (seconds): long enough to average a few
# hundred micro-batches under load, short enough that the window closes within it once traffic stops.
RATE_HORIZON_S = 0.5
# Model calls the cost fit remembers: enough to see several micro-batch sizes, few enough to follow a load change.
COST_HISTORY = 64
# The longest one wait lasts, in expected inter-arrival times: take() returns as soon as a row comes, so
# this only bounds the cost of being wrong; two gaps catch the next row of a Poisson stream 86% of the time.
GAPS_PER_WAIT = 2.0


@dataclass(frozen=True)
class CostFit:
    """Seconds per model call as `fixed_s + per_row_s · rows`."""

    fixed_s: float
    per_row_s: float

    def seconds(self, rows: int) -> float:
        return self.fixed_s + self.per_row_s * rows


def fit_cost(calls: list[tuple[int, float]]) -> CostFit | None:
    """Least-squares `seconds = a + b·rows` over (rows, seconds) pairs, clamped to a, b ≥ 0.

    With one micro-batch size only, `a` and `b` cannot be told apart: 1-row calls count as all fixed cost
    (their cost is what waiting would spread), larger ones as all per-row cost (no reason to wait).
    None without any call.
    """
    if not calls:
        return None
    n = len(calls)
    mean_rows = sum(r for r, _ in calls) / n
    mean_s = sum(s for _, s in calls) / n
    spread = sum((r - mean_rows) ** 2 for r, _ in calls)
    if spread == 0:
        return CostFit(mean_s, 0.0) if mean_rows <= 1 else CostFit(0.0, mean_s / mean_rows)
    b = sum((r - mean_rows) * (s - mean_s) for r, s in calls) / spread
    if b < 0:  # noise (a busy machine) made bigger calls look cheaper: treat the cost as flat
        return CostFit(mean_s, 0.0)
    a = mean_s - b * mean_rows
    if a < 0:
        return CostFit(0.0, mean_s / mean_rows)
    return CostFit(a, b)


class AdaptiveWindow:
    """Observes arrivals and model calls; `wait_s` says how long a micro-batch in hand should still wait.

    Args:
        cap_s: the most a micro-batch waits in all, from its first row (e.g. ADAPTIVE_MAX_DELAY_MS).
        horizon_s: how far back arrivals count towards the rate.
    """

    def __init__(self, cap_s: float, horizon_s: float = RATE_HORIZON_S, history: int = COST_HISTORY) -> None:
        if cap_s < 0 or horizon_s <= 0:
            raise ValueError(f"cap_s must be ≥ 0 and horizon_s > 0 seconds, got {cap_s!r} and {horizon_s!r}")
        self.cap_s = cap_s
        self.horizon_s = horizon_s
        self._arrivals: deque[tuple[float, int]] = deque()  # (when, rows), oldest first
        self._rows_in_horizon = 0
        self._calls: deque[tuple[int, float]] = deque(maxlen=history)
        self._fit: CostFit | None = None

    def observe_arrivals(self, rows: int, now: float) -> None:
        """`rows` new rows were claimed at `now` (monotonic seconds)."""
        if rows > 0:
            self._arrivals.append((now, rows))
            self._rows_in_horizon += rows
        self._forget(now)

    def observe_model_call(self, rows: int, seconds: float) -> None:
        """One model call over `rows` rows took `seconds`."""
        if rows > 0 and seconds >= 0:
            self._calls.append((rows, seconds))
            self._fit = None  # refitted when next needed

    @property
    def cost(self) -> CostFit | None:
        """The current fit of the model's cost curve (None before any call)."""
        if self._fit is None and self._calls:
            self._fit = fit_cost(list(self._calls))
        return self._fit

    def rate(self, now: float) -> float:
        """Rows per second that arrived within the horizon before `now`."""
        self._forget(now)
        return self._rows_in_horizon / self.horizon_s

    def wait_s(self, rows_in_hand: int, waited_s: float, now: float) -> float:
        """How long to wait for more rows now (0: run the micro-batch), given `waited_s` already waited.

        Call it with the arrival rate as it was before the micro-batch in hand: `collect` records that
        micro-batch's arrivals only after it asked.
        """
        cost = self.cost
        rate = self.rate(now)
        if cost is None or rate <= 0 or rows_in_hand < 1:
            return 0.0
        if rate * cost.fixed_s <= rows_in_hand * (rows_in_hand + 1):
            return 0.0
        left = min(self.cap_s, cost.fixed_s) - waited_s
        return max(0.0, min(left, GAPS_PER_WAIT / rate))

    def _forget(self, now: float) -> None:
        while self._arrivals and self._arrivals[0][0] < now - self.horizon_s:
            self._rows_in_horizon -= self._arrivals.popleft()[1]

"""Progress bars for long work (rows of a batch, bytes of an upload): tqdm if it is installed, a plain
line on stderr if not. Both clients and the CLI use these."""

from __future__ import annotations

import sys
from typing import Any

try:
    from tqdm import tqdm
except ImportError:  # tqdm is optional
    tqdm = None


class Bar:
    """A bar of `unit`s done out of a total that may change: count, rate and ETA."""

    def __init__(self, description: str, unit: str, total: int | None = None, unit_scale: bool = False) -> None:
        self.description, self.unit = description, unit
        self._bar: Any = None
        if tqdm is not None:
            self._bar = tqdm(
                total=total, desc=description, unit=unit, unit_scale=unit_scale, dynamic_ncols=True, file=sys.stderr
            )
        self.n = 0
        self.total = total

    def advance_to(self, n: int, total: int | None = None, status: str | None = None) -> None:
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()
        if self._bar is not None:
            if status:
                self._bar.set_postfix_str(status, refresh=False)  # before update(), which redraws
            self._bar.update(n - self.n)
        else:
            print(f"\r{self.description}: {n}/{self.total or '?'} {self.unit} {status or ''}", end="", file=sys.stderr)
        self.n = n

    def add(self, count: int) -> None:
        self.advance_to(self.n + count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            print(file=sys.stderr)


class BatchProgress:
    """Rows done (or failed) out of the batch's total rows, fed with each status document."""

    def __init__(self, batch_id: str) -> None:
        self.bar = Bar(f"batch {batch_id[:8]}", "rows")

    def __call__(self, doc: dict) -> None:
        self.bar.advance_to(doc["done_rows"] + doc["failed_rows"], doc["total_rows"], doc["status"])

    def close(self) -> None:
        self.bar.close()

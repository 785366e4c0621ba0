"""RQ's timestamp format, as the job hashes we write carry it."""

from __future__ import annotations

import datetime
import time

from rq.utils import utcformat, utcparse

from shared import rq_keys


def test_now_is_written_as_rqs_utcformat_writes_it(monkeypatch):
    for seconds, micros in ((1_764_888_301, 45_678), (1_764_888_301, 0), (1_764_888_302, 999_999), (86_400, 5)):
        monkeypatch.setattr(time, "time_ns", lambda s=seconds, m=micros: (s * 1_000_000 + m) * 1000 + 999)
        when = datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(microsecond=micros)
        assert rq_keys.timestamp() == utcformat(when) == rq_keys.timestamp(when)
        assert utcparse(rq_keys.timestamp()) == when

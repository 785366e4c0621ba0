"""`make failover-drill` (run by `make soak`): the service on a replicated Redis behind Sentinel, a failover
under traffic, and a count of what it cost.

A master, a replica and three Sentinels (scripts/sentinel_topology.py); the API and a worker find the
master through REDIS_SENTINELS. Client threads submit jobs throughout; after DRILL_BEFORE_S the master is
SIGKILLed, the Sentinels promote the replica, and the traffic goes on for DRILL_AFTER_S once the service
answers again. Then every accepted job is read back. Replication is asynchronous, so a job accepted just
before the kill may never have reached the replica: the client then gets 404 for an id it was given.
Prints the numbers; exits 1 unless every job accepted after the switch finished and the service answered
503 with Retry-After (never another error) while it had no master.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from scripts.harness import Harness, free_port
from scripts.sentinel_topology import MASTER_NAME, SentinelTopology
from shared.config import Settings

CLIENTS = 4
ROW = [0.0] * 64
DRAIN_S = 60.0


@dataclass
class Accepted:
    """A job the API acknowledged (200 or 202), and when its request was sent (the drill's monotonic clock)."""

    job_id: str
    at: float


@dataclass
class Traffic:
    """Client threads submitting one-row jobs; records every acknowledged job and every refusal."""

    base_url: str
    accepted: list[Accepted] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    last_503: float | None = None
    without_retry_after: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            while not self.stop.is_set():
                # Classified by when it was sent: a request in flight at the kill may have been written to the
                # old master just before it died (the loss window), though its answer comes after.
                sent = time.monotonic()
                try:
                    r = http.post("/predict", json={"instances": [ROW]})
                except httpx.TransportError as exc:
                    self._refused(type(exc).__name__)
                    continue
                if r.status_code in (200, 202):
                    with self.lock:
                        self.accepted.append(Accepted(r.json()["id"], sent))
                    continue
                self._refused(str(r.status_code))
                if r.status_code == 503:
                    self.last_503 = time.monotonic()
                    self.without_retry_after += "Retry-After" not in r.headers
                time.sleep(0.05)

    def _refused(self, what: str) -> None:
        with self.lock:
            self.refusals[what] += 1


@dataclass(frozen=True)
class DrillReport:
    """What a failover cost: jobs lost (acknowledged before the kill, never on the replica) and how long the
    service answered 503."""

    accepted_before: int
    accepted_after: int
    lost_before: int
    lost_after: int
    unfinished_after: int
    loss_window_ms: float | None  # how long before the kill the earliest lost job was acknowledged
    promoted_after_s: float  # kill → the Sentinels name the replica
    unavailable_s: float  # kill → the last 503 the clients saw
    refusals: dict[str, int]
    without_retry_after: int
    lag_bytes: int  # replication backlog the replica had not acknowledged just before the kill

    @property
    def ok(self) -> bool:
        only_503 = set(self.refusals) <= {"503"}
        return (
            self.accepted_after > 0
            and self.lost_after == 0
            and self.unfinished_after == 0
            and self.without_retry_after == 0
            and only_503
        )

    def lines(self) -> list[str]:
        window = "none lost" if self.loss_window_ms is None else f"{self.loss_window_ms:.0f} ms before the kill"
        return [
            (
                f"accepted before the kill {self.accepted_before}, lost {self.lost_before} (window: {window}; "
                f"the replica was {self.lag_bytes} bytes behind just before the kill)"
            ),
            f"accepted after the kill {self.accepted_after}, lost {self.lost_after}, unfinished {self.unfinished_after}",
            (
                f"replica promoted {self.promoted_after_s:.1f} s after the kill; 503 answered until "
                f"{self.unavailable_s:.1f} s after it"
            ),
            f"refused: {self.refusals} ({self.without_retry_after} 503s without Retry-After)",
        ]


def final_status(http: httpx.Client, job_id: str, deadline: float) -> str:
    """The job's final status, 'lost' for a 404, 'unfinished' if it has none by `deadline`."""
    while time.monotonic() < deadline:
        try:
            r = http.get(f"/result/{job_id}", params={"wait": 5})
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if r.status_code == 404:
            return "lost"
        if r.status_code == 200:
            return r.json()["status"]
        time.sleep(0.2 if r.status_code == 503 else 0)
    return "unfinished"


def run_drill(
    work_dir: Path, before_s: float = 3.0, after_s: float = 3.0, settings: Settings | None = None
) -> DrillReport:
    """Start the topology and the service, run traffic across a failover, and count the cost."""
    topology = SentinelTopology(work_dir / "redis").start()
    base = settings or Settings.from_env()
    settings = base.replace(
        redis_url="",
        redis_sentinels=topology.sentinels,
        redis_sentinel_master=MASTER_NAME,
        redis_sentinel_password="",
        api_port=free_port(),
        heartbeat_s=1.0,
        api_keys="",
        data_dir=str(work_dir / "data"),
    )
    (work_dir / "logs").mkdir()
    service = Harness(settings, work_dir / "logs")
    try:
        service.start_api(wait_s=None)
        service.start_worker()
        service.wait_ready(180)
        return _drive(service, topology, before_s, after_s)
    finally:
        service.stop(timeout_s=20)
        topology.stop()


def _drive(service: Harness, topology: SentinelTopology, before_s: float, after_s: float) -> DrillReport:
    traffic = Traffic(service.base_url)
    threads = [threading.Thread(target=traffic.run, daemon=True) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        time.sleep(before_s)  # the traffic's length, not a synchronisation
        lag = topology.replication_lag_bytes()
        killed = time.monotonic()
        topology.kill_master()
        topology.wait_promoted(60)
        promoted = time.monotonic()
        deadline = promoted + 60
        while not any(a.at > promoted for a in traffic.accepted) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(after_s)
    finally:
        traffic.stop.set()
        for t in threads:
            t.join(30)
    return _count(service, traffic, killed, promoted, lag)


def _count(service: Harness, traffic: Traffic, killed: float, promoted: float, lag: int) -> DrillReport:
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + DRAIN_S
    with httpx.Client(base_url=service.base_url, timeout=30) as http:
        for job in traffic.accepted:
            statuses[job.job_id] = final_status(http, job.job_id, deadline)
    before = [a for a in traffic.accepted if a.at <= killed]
    after = [a for a in traffic.accepted if a.at > killed]
    lost_before = [a for a in before if statuses[a.job_id] == "lost"]
    return DrillReport(
        accepted_before=len(before),
        accepted_after=len(after),
        lost_before=len(lost_before),
        lost_after=sum(statuses[a.job_id] == "lost" for a in after),
        unfinished_after=sum(statuses[a.job_id] not in ("finished", "lost") for a in after),
        loss_window_ms=(killed - min(a.at for a in lost_before)) * 1000 if lost_before else None,
        promoted_after_s=promoted - killed,
        unavailable_s=(traffic.last_503 - killed) if traffic.last_503 and traffic.last_503 > killed else 0.0,
        refusals=dict(traffic.refusals),
        without_retry_after=traffic.without_retry_after,
        lag_bytes=lag,
    )


def main() -> int:
    before_s = float(os.environ.get("DRILL_BEFORE_S", "5"))
    after_s = float(os.environ.get("DRILL_AFTER_S", "5"))
    with tempfile.TemporaryDirectory(prefix="failover-drill-") as tmp:
        print(f"failover drill: master, replica, 3 Sentinels; {CLIENTS} clients; master SIGKILLed after {before_s:g} s")
        report = run_drill(Path(tmp), before_s, after_s)
    for line in report.lines():
        print(line)
    print("failover drill: OK" if report.ok else "failover drill: FAILED")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

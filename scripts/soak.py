"""`make soak`: drive a stack of our own with mixed traffic while killing a worker and Redis, then check
that every accepted job has exactly one correct result.

The stack (embedded Redis with `appendfsync always`, the API, two workers) runs on loopback on free
ports, from a temporary data directory. For SOAK_SECONDS (default 60) client threads submit single jobs,
some waiting with ?wait, some polled later, and one bulk batch (uploaded just before the first kill). A third
of the way in, one worker is SIGKILLed and started again; at two thirds, Redis is SIGKILLed and started again on
the same port and data. Then every accepted job is read back and compared with the model run in this
process. Prints accepted / finished / failed / lost counts; exits 1 unless lost, duplicated and wrong are 0.
"""

from __future__ import annotations

import io
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import orjson
import redis

from scripts.harness import Harness, own_stack_settings
from shared import keys

CLIENTS = 6
BULK_ROWS = 300_000  # several seconds of chunks, uploaded just before the worker is killed
DRAIN_S = 120.0  # how long accepted jobs may take to finish after the traffic stops


class Stack:
    """Embedded Redis (`appendfsync always`), the API and two workers, from the harness."""

    def __init__(self, data_dir: Path) -> None:
        settings = own_stack_settings(
            str(data_dir),
            redis_appendfsync="always",
            heartbeat_s=1.0,
            workers=2,
            api_keys="",
        )
        (data_dir / "logs").mkdir()
        self.harness = Harness(settings, data_dir / "logs")
        self.harness.start_redis()
        self.settings = self.harness.settings  # now with the embedded server's REDIS_URL
        self.harness.start_api(wait_s=None)
        for _ in range(settings.workers):
            self.harness.start_worker()
        self.base_url = self.harness.base_url
        self.harness.wait_ready(180)

    def kill_worker(self) -> None:
        victim = self.harness.workers[0]
        self.harness.kill(victim)
        self.harness.restart(victim)

    def kill_redis(self, down_s: float = 1.0) -> None:
        self.harness.kill_redis()
        time.sleep(down_s)
        self.harness.restart_redis()

    def stop(self) -> None:
        self.harness.stop(timeout_s=20)

    def log_text(self) -> str:
        return self.harness.log_text(tail_chars=10**9)


class Traffic:
    """Client threads: single jobs with and without ?wait; records every accepted job and its rows."""

    def __init__(self, base_url: str, data: np.ndarray) -> None:
        self.base_url = base_url
        self.data = data
        self.accepted: dict[str, list[int]] = {}
        self.refused: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            while not self.stop.is_set():
                rows = [rng.randrange(len(self.data)) for _ in range(rng.choice([1, 1, 2, 4, 8, 32]))]
                wait = rng.choice([0, 0, 2])
                try:
                    r = http.post("/predict", params={"wait": wait}, json={"instances": self.data[rows].tolist()})
                except httpx.TransportError as exc:
                    self.refused[type(exc).__name__] += 1
                    time.sleep(0.1)
                    continue
                if r.status_code in (200, 202):
                    with self.lock:
                        self.accepted[r.json()["id"]] = rows
                else:
                    self.refused[str(r.status_code)] += 1
                    time.sleep(0.1 if r.status_code in (429, 503) else 0)


class BulkBatch:
    """One bulk batch of the digits rows repeated, uploaded as .npy; checked row by row at the end."""

    def __init__(self, base_url: str, data: np.ndarray) -> None:
        self.base_url = base_url
        self.rows = np.resize(data, (BULK_ROWS, data.shape[1]))
        self.batch_id: str | None = None
        self.note = "bulk batch: not submitted"

    def submit(self) -> None:
        buffer = io.BytesIO()
        np.save(buffer, self.rows)
        try:
            r = httpx.post(
                f"{self.base_url}/batches",
                content=buffer.getvalue(),
                headers={"Content-Type": "application/x-npy"},
                timeout=120,
            )
        except httpx.TransportError as exc:
            self.note = f"bulk batch: upload failed ({type(exc).__name__})"
            return
        if r.status_code != 202:
            self.note = f"bulk batch: upload answered {r.status_code}"
            return
        self.batch_id = r.json()["id"]
        self.note = f"bulk batch {self.batch_id}: {BULK_ROWS} rows accepted"

    def check(self, expected: np.ndarray, data_rows: int) -> Counter:
        """Wait for the batch to end, download its results, compare every row with the model's."""
        counts: Counter[str] = Counter()
        if self.batch_id is None:
            return counts
        deadline = time.monotonic() + DRAIN_S
        status = None
        with httpx.Client(base_url=self.base_url, timeout=120) as http:
            while time.monotonic() < deadline:
                try:
                    r = http.get(f"/batches/{self.batch_id}")
                except httpx.TransportError:
                    r = None
                if r is not None and r.status_code == 200:
                    status = r.json()["status"]
                    if status in ("completed", "failed", "cancelled", "expired"):
                        break
                time.sleep(0.5)
            counts[f"batch {status}"] += 1
            seen = np.zeros(BULK_ROWS, dtype=np.int32)
            if status != "completed":
                print(f"bulk batch {self.batch_id} ended {status}: {r.text if r is not None else ''}")
            with http.stream("GET", f"/batches/{self.batch_id}/results", params={"partial": "true"}) as response:
                for line in response.iter_lines():
                    if not line:
                        continue
                    item = orjson.loads(line)
                    seen[item["row"]] += 1
                    if not np.allclose(item["prediction"], expected[item["row"] % data_rows], rtol=1e-4, atol=1e-5):
                        counts["batch rows wrong"] += 1
        counts["batch rows finished"] = int((seen == 1).sum())
        counts["batch rows lost"] = int((seen == 0).sum())
        counts["batch rows duplicated"] = int((seen > 1).sum())
        return counts


class PublishCounter:
    """Counts, per job id, the results published on the results channel: a job published twice is a duplicate."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.counts: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with redis.Redis.from_url(self.url).pubsub(ignore_subscribe_messages=True) as pubsub:
                    pubsub.subscribe(keys.results_channel())
                    while not self.stop.is_set():
                        message = pubsub.get_message(timeout=0.5)
                        if message is not None:
                            for line in message["data"].split(b"\n"):
                                self.counts[line.partition(b" ")[0].decode()] += 1
            except redis.RedisError:
                time.sleep(0.2)  # Redis is being restarted: nothing can be published meanwhile


def check(
    base_url: str,
    connection: redis.Redis,
    accepted: dict[str, list[int]],
    data: np.ndarray,
    model,
    published: Counter[str],
) -> Counter:
    """Read every accepted job back; count finished, failed, lost, duplicated and wrong."""
    counts: Counter[str] = Counter()
    expected = model.predict({model.signature.inputs[0].name: data})
    expected = next(iter(expected.values()))
    deadline = time.monotonic() + DRAIN_S
    with httpx.Client(base_url=base_url, timeout=40) as http:
        for job_id, rows in accepted.items():
            body = None
            while time.monotonic() < deadline:
                try:
                    r = http.get(f"/result/{job_id}", params={"wait": 10})
                except httpx.TransportError:
                    time.sleep(0.5)
                    continue
                if r.status_code == 200:
                    body = r.json()
                    break
                if r.status_code == 404:
                    break
                time.sleep(0.2 if r.status_code == 503 else 0)
            if body is None:
                counts["lost"] += 1
                continue
            counts[body["status"]] += 1
            if published[job_id] > 1:
                counts["duplicated"] += 1
            if body["status"] == "finished" and not np.allclose(
                body["predictions"], expected[rows], rtol=1e-4, atol=1e-5
            ):
                counts["wrong"] += 1
    return counts


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    from sklearn.datasets import load_digits

    from worker.model.loader import load_model

    data = load_digits().data.astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        print(f"soak: {seconds:g} s of traffic from {CLIENTS} clients; a worker and Redis are each killed once")
        stack_ = Stack(Path(tmp))
        settings = stack_.settings
        model = load_model(settings.model_path, settings.resolved_model_name, settings.model_version)
        print(
            f"stack: redis 127.0.0.1:{settings.redis_port} (appendfsync always), API {stack_.base_url}, "
            f"{settings.workers} workers; logs in {tmp}/logs/ while it runs"
        )
        traffic = Traffic(stack_.base_url, data)
        publishes = PublishCounter(settings.redis_url)
        threads = [threading.Thread(target=traffic.run, args=(i,), daemon=True) for i in range(CLIENTS)]
        started = time.monotonic()
        try:
            for t in threads:
                t.start()
            bulk = BulkBatch(stack_.base_url, data)
            for at, action, name in (
                (seconds / 3 - 3, bulk.submit, "bulk batch uploaded"),
                (seconds / 3, stack_.kill_worker, "worker SIGKILLed and restarted"),
                (2 * seconds / 3, stack_.kill_redis, "Redis SIGKILLed and restarted"),
            ):
                time.sleep(max(0.0, started + at - time.monotonic()))
                action()
                print(f"t={time.monotonic() - started:5.1f} s  {name} ({len(traffic.accepted)} jobs accepted so far)")
            time.sleep(max(0.0, started + seconds - time.monotonic()))
            traffic.stop.set()
            for t in threads:
                t.join(40)
            print(f"t={time.monotonic() - started:5.1f} s  traffic stopped; checking every accepted job")
            connection = redis.Redis.from_url(settings.redis_url)
            counts = check(stack_.base_url, connection, traffic.accepted, data, model, publishes.counts)
            publishes.stop.set()
            expected = next(iter(model.predict({model.signature.inputs[0].name: data}).values()))
            batch_counts = bulk.check(expected, len(data))
            stats = {k.decode(): int(float(v)) for k, v in connection.hgetall(keys.stats()).items()}
        finally:
            stack_.stop()
        log = stack_.log_text()
    recovery = [
        line.split(" WARNING ", 1)[1]
        for line in log.splitlines()
        if " WARNING " in line and ("requeued" in line or "Redis answers again" in line)
    ]
    accepted = len(traffic.accepted)
    print(
        f"accepted {accepted}  finished {counts['finished']}  failed {counts['failed'] + counts['expired']}  "
        f"lost {counts['lost']}  duplicated {counts['duplicated']}  wrong {counts['wrong']}"
    )
    print(f"not accepted (client retried): {dict(traffic.refused)}")
    print(
        f"interactive rows accepted {sum(len(r) for r in traffic.accepted.values())}; rows run, bulk rows included, "
        f"{stats.get('rows', 0)} (workers count them in memory and write them once a second, so a SIGKILLed "
        f"worker's last second is missing; a killed worker's micro-batch run again counts twice), "
        f"model calls {stats.get('model_calls', 0)}"
    )
    print(f"{bulk.note}: " + ", ".join(f"{k} {v}" for k, v in sorted(batch_counts.items())))
    for line in recovery:
        print(f"recovery: {line}")
    ok = accepted > 0 and counts["lost"] == 0 and counts["duplicated"] == 0 and counts["wrong"] == 0
    if bulk.batch_id is not None:
        ok = ok and batch_counts["batch completed"] == 1 and batch_counts["batch rows finished"] == BULK_ROWS
    print("soak: OK" if ok else "soak: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

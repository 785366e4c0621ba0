"""The Redis-only benchmark: what one job costs Redis, with no HTTP and no model in the way.

N one-row jobs go through the service's real code paths against the real (embedded) Redis: the API's
submit (`api.jobs.redis_jobs.RedisJobs.submit`), the worker's claim and start (`worker.redis_source.RedisSource.take`), fake
outputs in place of the model call, the worker's publish (`worker.publish.Publisher.publish`), and the
API's read (`RedisJobs.wait`, as `?wait` does, or `RedisJobs.state`, as a poll does). They run in rounds of
one micro-batch: submit `size` jobs, claim them, finish them, publish them, read them. Reported per job,
at micro-batch sizes 1, 8 and 64: Redis commands, Redis CPU, Redis memory per finished job, and the
ceiling one Redis core sets (1 / CPU per job) whatever the number of API processes and workers.

    python -m bench.redis_only [--jobs 2000] [--sizes 1,8,64] [--read wait|state]

The calls into the service are isolated in the small functions below (`submit`, `claim`, `finish`,
`publish`, `read`), so that a change of those interfaces needs a change here only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import redis
from rq import Queue, Worker

from bench.redis_cost import RedisCost, RedisMeter
from scripts.embedded_redis import EmbeddedRedis
from scripts.harness import free_port
from shared.config import Settings
from shared.connection import connect
from shared.schema import OrjsonSerializer
from shared.signature import ModelSignature, TensorSpec

if TYPE_CHECKING:  # imported at run time in build(): the worker's modules load TensorFlow
    from api.jobs.redis_jobs import RedisJobs
    from worker.publish import Publisher
    from worker.redis_source import RedisSource

SIZES = (1, 8, 64)
# The example model's signature (64 pixels in, 10 probabilities out); no TensorFlow is loaded here.
SIGNATURE = ModelSignature(
    "digits", "1", (TensorSpec("pixels", (64,), "float32"),), (TensorSpec("probabilities", (10,), "float32"),)
)


@dataclass
class Service:
    """The API's and one worker's Redis objects, built as the processes build them."""

    settings: Settings
    connection: redis.Redis
    jobs: RedisJobs
    source: RedisSource
    publisher: Publisher
    worker: Worker


def build(settings: Settings) -> Service:
    """RedisJobs, RedisSource and Publisher as the API and `python -m worker` make them (no bulk queue work)."""
    from api.jobs.redis_jobs import RedisJobs
    from worker.__main__ import lease_seconds
    from worker.outcomes import Tally
    from worker.publish import Publisher
    from worker.redis_source import RedisSource

    connection = connect(settings)
    queues = [
        Queue(q, connection=connection, serializer=OrjsonSerializer)
        for q in (settings.queue_name, settings.bulk_queue_name)
    ]
    worker = Worker(queues, connection=connection, name=f"redis-only.{os.getpid()}", serializer=OrjsonSerializer)
    worker.register_birth()
    names = [q.name for q in queues]
    source = RedisSource(connection, names, worker.name, lease_seconds(settings))
    publisher = Publisher(connection, names, SIGNATURE, settings.result_ttl, Tally(worker.key))
    return Service(settings, connection, RedisJobs(connection, settings), source, publisher, worker)


def submit(service: Service, count: int, row: np.ndarray, how: str) -> list[tuple[str, Any]]:
    """`count` one-row jobs through the API's submit; their ids, each with its wait (for `wait`: registered
    before the submit, as POST /predict?wait does, so the result arrives by the results channel)."""
    jobs = []
    for _ in range(count):
        job_id = uuid.uuid4().hex
        waiting = service.jobs.results.expect(job_id) if how == "wait" else None
        jobs.append((service.jobs.submit({"pixels": row}, job_id=job_id), waiting))
    return jobs


def claim(service: Service, max_rows: int) -> list:
    """One micro-batch through the worker's claim + start; the claims it holds rows of."""
    segments = service.source.take(max_rows, 0.0)
    return list({id(s.claim): s.claim for s in segments}.values())


def finish(claims: list) -> None:
    """What the model call would do: every claim gets outputs for all its rows."""
    for claimed in claims:
        claimed.outputs.append({"probabilities": np.full((claimed.rows, 10), 0.1, np.float32)})
        claimed.done_rows = claimed.rows


def publish(service: Service, rows: int) -> None:
    """The worker's publish of every complete claim, with the micro-batch's stats."""
    from worker.runner import RunStats

    done = service.source.take_finished()
    lost = service.publisher.publish(done, RunStats(rows, 1, 0.0), service.source.take_round_trips())
    if service.publisher.tally.due():  # the counters, as the worker's publisher thread writes them
        service.publisher.tally.flush(service.connection)
    if lost:
        raise RuntimeError(f"{len(lost)} job(s) were not published: the benchmark lost its leases")


def read(service: Service, jobs: list[tuple[str, Any]], how: str) -> None:
    """Each job's result as the API reads it: `wait` (?wait: the results channel's message, no command) or
    `state` (a poll: one HMGET)."""
    for job_id, waiting in jobs:
        if how == "wait":
            document = service.jobs.results.wait(job_id, waiting, 5.0, check_first=False)
        else:
            document = service.jobs.state(job_id).document
        if document is None or orjson.loads(document)["status"] != "finished":
            raise RuntimeError(f"job {job_id} has no finished result: {document!r}")


def run_size(service: Service, jobs: int, size: int, how: str) -> tuple[RedisCost, float]:
    """`jobs` jobs in rounds of `size`; the per-job Redis cost and the client-side seconds per job."""
    row = np.asarray([np.arange(64, dtype=np.float32) % 17])
    warm_up = submit(service, size, row, how)  # one round first: listener subscribed, scripts loaded
    finish(claim(service, size))
    publish(service, size)
    read(service, warm_up, how)
    meter = RedisMeter(service.connection)
    meter.start()
    started, done = time.perf_counter(), 0
    while done < jobs:
        round_jobs = submit(service, size, row, how)
        claims = claim(service, size)
        finish(claims)
        publish(service, sum(c.rows for c in claims))
        read(service, round_jobs, how)
        done += len(round_jobs)
    elapsed = time.perf_counter() - started
    return meter.finish(done), elapsed / done


def measure(jobs: int, sizes: tuple[int, ...] = SIZES, how: str = "wait") -> list[dict]:
    """One fresh database per micro-batch size on one embedded Redis; a result row per size."""
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        server = EmbeddedRedis(free_port(), workdir).start()
        try:
            for db, size in enumerate(sizes, start=1):
                settings = Settings.from_env({}).replace(
                    redis_url=server.url.rsplit("/", 1)[0] + f"/{db}", max_microbatch_rows=size
                )
                service = build(settings)
                cost, client_s = run_size(service, jobs, size, how)
                rows.append(
                    {
                        "system": "redis only",
                        "mode": f"micro-batch {size}",
                        "read": how,
                        "client_ms_per_job": client_s * 1000,
                        **cost.to_dict(),
                    }
                )
                print(f"redis only, micro-batch {size}: {cost.describe()}", file=sys.stderr, flush=True)
                service.jobs.results.stop()
                service.connection.close()
        finally:
            server.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2048)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--read", choices=["wait", "state"], default="wait")
    args = parser.parse_args()
    rows = measure(args.jobs, tuple(int(s) for s in args.sizes.split(",")), args.read)
    print(render(rows))
    return 0


def render(rows: list[dict]) -> str:
    """The Markdown table of the Redis-only benchmark."""
    lines = [
        (
            "| micro-batch | jobs | Redis commands/job | Redis CPU ms/job | Redis memory KB/finished job "
            "| jobs/s per Redis core | top commands per job |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        top = ", ".join(f"{k.upper()} {v:.1f}" for k, v in list(r["top_commands_per_job"].items())[:6])
        lines.append(
            f"| {r['mode'].split()[-1]} | {r['jobs']:,} | {r['commands_per_job']:.1f} "
            f"| {r['cpu_ms_per_job']:.3f} | {r['memory_bytes_per_job'] / 1024:.2f} "
            f"| {r['jobs_per_redis_core_s'] or 0:,.0f} | {top} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

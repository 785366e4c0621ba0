"""The worker process: load the model once, warm it up, register, then loop over batches until told to stop.

Run as `python -m worker`. SIGTERM or SIGINT: finish the work in hand, claim nothing more, exit 0.
A model that cannot be loaded exits with status 3 and a message naming the path and the reason.
Redis being unreachable never ends the process: it waits, holding its jobs, until Redis is back.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable

import redis
from rq import Queue, Worker

from shared import storage
from shared.batch_records import BatchRecords
from shared.config import ConfigError, Settings
from shared.connection import connect
from shared.logs import configure_logging
from shared.schema import OrjsonSerializer
from worker import tf_runtime
from worker.background import BackgroundThread
from worker.chunks import ChunkStore
from worker.claim import RedisSource
from worker.claims import Claim
from worker.liveness import Liveness
from worker.microbatcher import collect, validate_knobs
from worker.model import LoadedModel, ModelLoadError, load_model
from worker.model_path import ModelPathError, locate_model
from worker.outcomes import Tally
from worker.publish import Publisher
from worker.recovery import Recovery
from worker.registration import Registration, model_document
from worker.runner import RunStats, run_microbatch

log = logging.getLogger("worker")

IDLE_TIMEOUT_S = 1.0  # how long an idle worker blocks before it checks for a stop request
FIRST_BACKOFF_S = 0.1  # first pause after Redis fails; doubled each time, up to MAX_BACKOFF_S
MAX_BACKOFF_S = 2.0


def lease_seconds(settings: Settings) -> int:
    """How long a claimed job stays this worker's without a heartbeat: 3 beats, plus the batch window
    (a worker blocks that long collecting a batch, with the jobs claimed so far in hand)."""
    return max(2, math.ceil(3 * settings.heartbeat_s + settings.max_microbatch_delay_ms / 1000))


class InferenceWorker:
    """The outer loop: collect → run → publish → heartbeat → recovery, in one process that holds the model.

    Redis going away does not end it: the step that failed is abandoned (its rows are handed out again),
    completed jobs wait in the outbox, and the loop retries with backoff until Redis answers.
    """

    def __init__(self, settings: Settings, model: LoadedModel) -> None:
        validate_knobs(settings.max_microbatch_rows, settings.max_microbatch_delay_ms / 1000)
        self.settings = settings
        self.model = model
        self.connection = connect(settings)
        name = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        # Priority order: interactive /predict jobs, then bulk batch chunks.
        queue_names = [settings.queue_name, settings.bulk_queue_name]
        queues = [Queue(q, connection=self.connection, serializer=OrjsonSerializer) for q in queue_names]
        # RQ's worker registry, so that `rq info` lists this worker; jobs never go through RQ's own loop.
        self.rq_worker = Worker(queues, connection=self.connection, name=name, serializer=OrjsonSerializer)
        self.lease_s = lease_seconds(settings)
        files = storage.from_settings(settings)
        records = BatchRecords(self.connection, settings)
        self.chunks = ChunkStore(files, records)
        self.tally = Tally(self.rq_worker.key)
        self.source = RedisSource(
            self.connection, queue_names, name, self.lease_s, self.chunks, settings.batch_chunk_rows
        )
        self.registration = Registration(self.connection, self.rq_worker, settings, queue_names)
        self.publisher = Publisher(
            self.connection, queue_names, model.signature, settings.result_ttl, self.tally, self.chunks
        )
        self.recovery = Recovery(
            self.connection,
            queue_names,
            name,
            settings.heartbeat_s,
            settings.result_ttl,
            settings.max_attempts,
            self.chunks,
        )
        self.background = BackgroundThread(self.connection, settings, files, records)
        self.outbox: list[Claim] = []  # complete, not yet published
        self.outbox_stats: RunStats | None = None
        self.liveness = Liveness(settings.liveness_file)
        self.stopping = False
        self._backoff_s = FIRST_BACKOFF_S
        self._down_since: float | None = None

    def request_stop(self, signum: int, _frame: object) -> None:
        log.info("received %s: finishing the work in hand, then exiting", signal.Signals(signum).name)
        self.stopping = True
        self.source.stop_claiming()

    def in_hand(self) -> list[Claim]:
        """Every claim this worker holds a lease on."""
        return [*self.source.pending, *self.source.rejected, *self.outbox]

    @property
    def idle(self) -> bool:
        return self.source.idle and not self.outbox

    def run(self, load_s: float) -> None:
        document = model_document(self.model.signature, self.settings, load_s)
        while not self._attempt(lambda: self.registration.birth(document)):
            if self.stopping:
                return
        log.info(
            "worker %s ready: model %s v%s, max_microbatch_rows=%d, max_microbatch_delay_ms=%g, lease %d s",
            self.rq_worker.name,
            self.model.signature.name,
            self.model.signature.version,
            self.settings.max_microbatch_rows,
            self.settings.max_microbatch_delay_ms,
            self.lease_s,
        )
        self.background.start()
        try:
            while not (self.stopping and self.idle):
                self.liveness.touch()  # before the step: a step that hangs leaves the file to age
                self._attempt(self.step)
        finally:
            self.background.stop()
            self._attempt(lambda: self.tally.flush(self.connection))
            if not self._attempt(self.registration.death):
                log.warning("worker %s stopped without deregistering: Redis is unreachable", self.rq_worker.name)
            log.info("worker %s stopped", self.rq_worker.name)

    def step(self) -> None:
        """One turn of the loop: collect a batch, run it, publish what completed, heartbeat, recovery."""
        if self.outbox:
            self._publish()  # results held back while Redis was away go first
        self.registration.beat_if_due(self.in_hand(), self.lease_s)  # e.g. due since an outage
        batch = collect(
            self.source,
            self.settings.max_microbatch_rows,
            self.settings.max_microbatch_delay_ms / 1000,
            0.0 if self.stopping else IDLE_TIMEOUT_S,
        )
        stats = run_microbatch(self.model, batch) if batch else None
        finished = self.source.take_finished()
        self.outbox += finished
        if stats:
            self.outbox_stats = stats if self.outbox_stats is None else self.outbox_stats + stats
        self._publish()
        if stats and stats.rows:
            log.debug(
                "batch: %d rows, %d jobs finished, model %.2f ms", stats.rows, len(finished), stats.model_s * 1000
            )
        self.registration.beat_if_due(self.in_hand(), self.lease_s)
        if self.tally.due():
            self.tally.flush(self.connection)
        self.recovery.run_if_due()

    def _publish(self) -> None:
        if not self.outbox and self.outbox_stats is None:
            return
        lost = self.publisher.publish(self.outbox, self.outbox_stats, self.source.take_round_trips())
        self.outbox, self.outbox_stats = [], None
        if lost:
            log.warning(
                "%d result(s) not published: this worker's lease on them lapsed and they were queued again "
                "(a step took longer than the %d s lease?)",
                len(lost),
                self.lease_s,
            )

    def _attempt(self, action: Callable[[], object]) -> bool:
        """Run `action`; on a Redis failure log once per outage, back off, and return False."""
        try:
            action()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.source.rewind()
            self._pause(f"Redis is unreachable ({type(exc).__name__}: {exc})")
            return False
        except redis.RedisError as exc:
            # Not an outage: Redis refused a command (out of memory, say). The completed jobs in the outbox
            # may be what it refuses, so they are let go; their leases lapse and recovery requeues them.
            log.exception("Redis refused a command; dropping %d unpublished result(s)", len(self.outbox))
            self.outbox, self.outbox_stats = [], None
            self.source.rewind()
            self._pause(f"Redis error ({type(exc).__name__})")
            return False
        if self._down_since is not None:
            log.warning("Redis answers again after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
        self._backoff_s = FIRST_BACKOFF_S
        return True

    def _pause(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "%s: holding %d job(s) and retrying until it answers",
                reason,
                len(self.source.pending) + len(self.outbox),
            )
        time.sleep(self._backoff_s)
        self._backoff_s = min(2 * self._backoff_s, MAX_BACKOFF_S)


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    started = time.monotonic()
    tf_runtime.configure(settings)
    try:
        where = locate_model(settings.model_path, settings.model_name, settings.model_version)
        log.info("loading model %s version %s from %s", where.name, where.version, where.path)
        model = load_model(where.path, where.name, where.version)
    except (ModelPathError, ModelLoadError) as exc:
        log.error("cannot start: %s", exc)
        return 3
    warm = model.warm_up([1, min(8, settings.max_microbatch_rows), settings.max_microbatch_rows])
    load_s = time.monotonic() - started
    log.info("model loaded and warmed up in %.2f s (warm-up %.2f s)", load_s, warm)
    worker = InferenceWorker(settings, model)
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    worker.run(load_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())

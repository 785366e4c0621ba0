"""The worker process: load its models' versions, warm them up, register, then loop over micro-batches until told
to stop, loading new versions and unloading old ones as their base paths change (worker/model/manager.py).

Run as `python -m worker`. SIGTERM or SIGINT: finish the work in hand, claim nothing more, exit 0.
A model with no version that loads at start exits with status 3 and a message naming the path and the reason.
Redis being unreachable never ends the process: it waits, holding its jobs, until Redis is back.
"""

from __future__ import annotations

import faulthandler
import logging
import math
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

import redis
from rq import Queue, Worker

from shared import fair, storage, tenants
from shared.batch_records import BatchRecords
from shared.config import ConfigError, Settings
from shared.connection import connect
from shared.logs import configure_logging
from shared.model_registry import encode, model_queues
from shared.schema import OrjsonSerializer
from worker.adaptive_window import AdaptiveWindow
from worker.background import BackgroundThread
from worker.chunks import ChunkFiles
from worker.claim import Claim
from worker.liveness import Liveness
from worker.microbatcher import Segment, collect, validate_knobs
from worker.model import runtime as tf_runtime
from worker.model.loader import LoadedModel, load_and_warm
from worker.model.manager import ModelManager
from worker.model.serving_config import ServingConfigError, served_models
from worker.outage import Outage
from worker.outcomes import Tally
from worker.publish import Publisher
from worker.publisher_thread import PublisherThread
from worker.recovery import Recovery
from worker.redis_source import Lane, RedisSource
from worker.registration import Registration, model_document
from worker.runner import RunStats, run_microbatch

log = logging.getLogger("worker")

IDLE_TIMEOUT_S = 1.0  # how long an idle worker blocks before it checks for a stop request


def lease_seconds(settings: Settings) -> int:
    """How long a claimed job stays this worker's without a heartbeat: 3 beats, plus the longest filling window
    (a worker blocks that long collecting a micro-batch, with the jobs claimed so far in hand): the fixed
    delay and the adaptive window's cap."""
    window_s = settings.fixed_delay_s + (settings.adaptive_window_cap_s or 0.0)
    return max(2, math.ceil(3 * settings.heartbeat_s + window_s))


class InferenceWorker:
    """The outer loop, pipelined: while micro-batch N is in the model, the claim thread claims and decodes
    N+1 (`RedisSource.prefetch`) and the publisher thread publishes N−1 (worker/publisher_thread.py); while
    jobs come one at a time (`RedisSource.quiet`), this thread publishes N itself.

    The model thread (this one) owns the source between model calls, heartbeats (renewing the leases of
    every claim in hand, the publisher's included) and runs recovery. Redis going away does not end it:
    the step that failed is abandoned (its rows are handed out again), completed jobs wait in the
    publisher thread, and both retry with backoff until Redis answers.
    """

    def __init__(self, settings: Settings, models: ModelManager | LoadedModel) -> None:
        validate_knobs(settings.max_microbatch_rows, settings.fixed_delay_s)
        self.settings = settings
        if not isinstance(models, ModelManager):  # one model loaded already (tests, benches)
            models = ModelManager.preloaded(models, settings.queue_name, settings.bulk_queue_name)
        self.models = models
        self.connection = connect(settings)
        name = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        # Priority order: every model's interactive jobs, then every model's bulk batch chunks.
        statuses = models.statuses()
        lanes = [Lane(m.queue, m.name) for m in statuses] + [Lane(m.bulk_queue, m.name, bulk=True) for m in statuses]
        queue_names = [lane.queue for lane in lanes]
        queues = [Queue(q, connection=self.connection, serializer=OrjsonSerializer) for q in queue_names]
        # RQ's worker registry, so that `rq info` lists this worker; jobs never go through RQ's own loop.
        self.rq_worker = Worker(queues, connection=self.connection, name=name, serializer=OrjsonSerializer)
        self.lease_s = lease_seconds(settings)
        files = storage.from_settings(settings)
        records = BatchRecords(self.connection, settings)
        self.chunks = ChunkFiles(files, records)
        self.tally = Tally(self.rq_worker.key)  # the publisher thread's, until it has stopped
        # A key's turn in each lane (shared/fair.py): an eighth of a micro-batch of /predict rows, one bulk chunk.
        self.source = RedisSource(
            self.connection,
            queue_names,
            name,
            self.lease_s,
            self.chunks,
            settings.batch_chunk_rows,
            lanes=lanes,
            resolve=models.resolve,
            quanta=(fair.interactive_quantum(settings.max_microbatch_rows), settings.batch_chunk_rows),
            weights=tenants.load(settings).weights(),
        )
        self.registration = Registration(self.connection, self.rq_worker, settings, queue_names)
        self.publisher = Publisher(self.connection, queue_names, None, settings.result_ttl, self.tally, self.chunks)
        self.publishing = PublisherThread(self.publisher.publish, self._flush_if_due, self.lease_s)
        self.claiming = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claim")
        cap_s = settings.adaptive_window_cap_s
        self.window = AdaptiveWindow(cap_s) if cap_s is not None else None
        self.recovery = Recovery(
            self.connection,
            queue_names,
            name,
            settings.heartbeat_s,
            settings.result_ttl,
            settings.max_attempts,
            self.chunks,
        )
        bulk_queues = [lane.queue for lane in lanes if lane.bulk]
        self.background = BackgroundThread(self.connection, settings, files, records, bulk_queues)
        self.liveness = Liveness(settings.liveness_file)
        self.stopping = False
        self.outage = Outage(log)

    def request_stop(self, signum: int, _frame: object) -> None:
        log.info("received %s: finishing the work in hand, then exiting", signal.Signals(signum).name)
        self.stopping = True
        self.source.stop_claiming()

    def in_hand(self) -> list[Claim]:
        """Every claim this worker holds a lease on (call it between model calls: the source is ours then)."""
        return [*self.source.pending, *self.source.rejected, *self.publishing.holding()]

    @property
    def idle(self) -> bool:
        return self.source.idle and self.publishing.idle

    def run(self, load_s: float) -> None:
        first = self.models.resolve(self.models.names[0], None)
        assert not isinstance(first, str), first  # every model has a version AVAILABLE once started
        document = model_document(first.loaded.signature, self.settings, load_s)
        while not self._attempt(lambda: self.registration.birth(document, self.registry_doc())):
            if self.stopping:
                return
        log.info(
            "worker %s ready: models %s, max_microbatch_rows=%d, max_microbatch_delay_ms=%g, %s window, lease %d s",
            self.rq_worker.name,
            ", ".join(f"{m.name} v{','.join(m.available())}" for m in self.models.statuses()),
            self.settings.max_microbatch_rows,
            self.settings.max_microbatch_delay_ms,
            self.settings.microbatch_window,
            self.lease_s,
        )
        self.background.start()
        self.publishing.start()
        try:
            while not (self.stopping and self.idle):
                self.liveness.touch()  # before the step: a step that hangs leaves the file to age
                self._attempt(self.step)
        finally:
            self.claiming.shutdown()
            drained = self.publishing.stop(self.lease_s)
            self.background.stop()
            if drained:  # the tally is the publisher thread's while it runs
                self._attempt(lambda: self.tally.flush(self.connection))
            else:
                log.warning("%d result(s) left unpublished at exit", len(self.publishing.holding()))
            if not self._attempt(self.registration.death):
                log.warning("worker %s stopped without deregistering: Redis is unreachable", self.rq_worker.name)
            self.models.stop()
            log.info("worker %s stopped", self.rq_worker.name)

    def step(self) -> None:
        """One turn: heartbeat, collect a micro-batch, run it (claiming the next meanwhile), hand it to the
        publisher thread, heartbeat, recovery."""
        self.registration.beat_if_due(self.in_hand(), self.lease_s)  # e.g. due since an outage
        if not self.publishing.wait_for_room(IDLE_TIMEOUT_S):
            return  # results are waiting on a slow or absent Redis: claim no more until they move
        self.publishing.check()  # a publisher thread that failed takes no more work: the worker stops
        microbatch = collect(
            self.source,
            self.settings.max_microbatch_rows,
            self.settings.fixed_delay_s,
            0.0 if self.stopping else IDLE_TIMEOUT_S,
            window=self.window,
        )
        stats, claim_error = self._run(microbatch) if microbatch else (None, None)
        finished = self.source.take_finished()
        if finished or stats:
            # With nothing to run meanwhile, this thread publishes inline, which spares a lone client the
            # wake-up of the publisher thread; under load the publisher thread publishes while this one claims.
            self.publishing.hand(finished, stats, self.source.take_round_trips(), inline=self.source.quiet)
        if stats and stats.rows:
            if self.window is not None and stats.model_calls == 1:
                self.window.observe_model_call(stats.rows, stats.model_s)
            log.debug(
                "micro-batch: %d rows, %d jobs ended, model %.2f ms", stats.rows, len(finished), stats.model_s * 1000
            )
        elif self.stopping and self.source.idle:
            self.publishing.wait_idle(IDLE_TIMEOUT_S)  # nothing left to run: the last results are being published
        if claim_error is not None:
            raise claim_error  # after the handoff: the micro-batch that ran is published all the same
        self.registration.beat_if_due(self.in_hand(), self.lease_s)
        self.recovery.run_if_due()
        held = {(c.served.model, c.served.version) for c in self.source.pending if c.served is not None}
        if self.models.poll_if_due(held):
            self.registration.advertise_models(self.registry_doc())

    def registry_doc(self) -> bytes:
        """This worker's models, versions and states, with its micro-batching settings (shared/model_registry.py)."""
        knobs = {
            "max_microbatch_rows": self.settings.max_microbatch_rows,
            "max_microbatch_delay_ms": self.settings.max_microbatch_delay_ms,
            "microbatch_window": self.settings.microbatch_window,
        }
        return encode(self.models.statuses(), knobs)

    def _run(self, microbatch: list[Segment]) -> tuple[RunStats, BaseException | None]:
        """Run the micro-batch while the claim thread claims and decodes the next one; the claim's error, if any.

        The source is the claim thread's until it is done (RedisSource is not thread-safe), so this waits for it.
        """
        ahead = (
            self.claiming.submit(self.source.prefetch, self.settings.max_microbatch_rows)
            if self.source.claiming
            else None
        )
        try:
            stats = run_microbatch(None, microbatch)
        finally:
            if ahead is not None:
                futures.wait([ahead])
        return stats, ahead.exception() if ahead is not None else None

    def _flush_if_due(self) -> None:
        """The publisher thread's: write the counters once they are due."""
        if self.tally.due():
            self.tally.flush(self.connection)

    def _attempt(self, action: Callable[[], object]) -> bool:
        """Run `action`; on a Redis failure log once per outage, back off, and return False."""
        try:
            action()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._pause(f"Redis is unreachable ({type(exc).__name__}: {exc})")
            return False
        except redis.RedisError as exc:
            # Not an outage: Redis refused a command (out of memory, say). The rows collected are handed out
            # again; completed jobs are the publisher thread's, which drops those Redis refuses.
            log.exception("Redis refused a command")
            self._pause(f"Redis error ({type(exc).__name__})")
            return False
        self.outage.answered()
        return True

    def _pause(self, reason: str) -> None:
        self.source.rewind()
        time.sleep(self.outage.failed(reason, len(self.in_hand())))


def model_manager(settings: Settings) -> ModelManager:
    """The manager of the models this worker serves (WORKER_MODELS of the configuration), each with its queues.

    Raises:
        ServingConfigError: the configuration cannot be served, or WORKER_MODELS names a model it lacks.
    """
    configs = served_models(settings)
    wanted = settings.worker_model_names or tuple(c.name for c in configs)
    unknown = sorted(set(wanted) - {c.name for c in configs})
    if unknown:
        raise ServingConfigError(
            f"WORKER_MODELS names {', '.join(unknown)}, not in the configuration ({', '.join(c.name for c in configs)})"
        )
    sizes = [1, min(8, settings.max_microbatch_rows), settings.max_microbatch_rows]
    return ModelManager(
        [
            (c, *model_queues(settings.queue_name, settings.bulk_queue_name, c.name, first=i == 0))
            for i, c in enumerate(configs)
            if c.name in wanted
        ],
        lambda path, name, version: load_and_warm(path, name, version, sizes),
        settings.model_poll_s,
    )


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
        manager = model_manager(settings)
    except ServingConfigError as exc:
        log.error("cannot start: %s", exc)
        return 3
    missing = manager.start()
    if missing:
        for name, why in missing.items():
            log.error("cannot start: model %s has no version that loads: %s", name, why)
        return 3
    load_s = time.monotonic() - started
    log.info("models loaded and warmed up in %.2f s", load_s)
    worker = InferenceWorker(settings, manager)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` writes every thread's stack to the log
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    worker.run(load_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())

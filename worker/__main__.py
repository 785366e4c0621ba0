"""The worker process: load the model once, warm it up, register, then loop over batches until told to stop.

Run as `python -m worker`. SIGTERM or SIGINT: finish the work in hand, claim nothing more, exit 0.
A model that cannot be loaded exits with status 3 and a message naming the path and the reason.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
import uuid

from rq import Queue, Worker

from shared import storage
from shared.batch_records import BatchRecords
from shared.config import ConfigError, Settings
from shared.connection import connect
from shared.logs import configure_logging
from shared.schema import OrjsonSerializer
from worker.batcher import collect, validate_knobs
from worker.chunks import ChunkStore
from worker.claim import RedisSource
from worker.housekeeping import Housekeeping
from worker.model import LoadedModel, ModelLoadError, load_model
from worker.model_path import ModelPathError, locate_model
from worker.publish import publish
from worker.registration import Registration, model_document
from worker.runner import run_batch

log = logging.getLogger("worker")

IDLE_TIMEOUT_S = 1.0  # how long an idle worker blocks before it checks for a stop request


class InferenceWorker:
    """The outer loop: collect → run → publish → heartbeat, in one process that holds the model."""

    def __init__(self, settings: Settings, model: LoadedModel) -> None:
        validate_knobs(settings.max_batch_size, settings.max_batch_delay_ms / 1000)
        self.settings = settings
        self.model = model
        self.connection = connect(settings)
        name = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        # Priority order: interactive /predict jobs, then bulk batch chunks.
        queues = [Queue(q, connection=self.connection, serializer=OrjsonSerializer)
                  for q in (settings.queue_name, settings.bulk_queue_name)]
        self.rq_worker = Worker(queues, connection=self.connection, name=name, serializer=OrjsonSerializer)
        self.execution_ttl = max(30, int(3 * settings.heartbeat_s))
        files = storage.from_settings(settings)
        records = BatchRecords(self.connection, settings)
        self.chunks = ChunkStore(files, records)
        self.source = RedisSource(self.connection, queues, self.rq_worker, self.execution_ttl, self.chunks,
                                  settings.batch_chunk_rows)
        self.registration = Registration(self.connection, self.rq_worker, settings)
        self.housekeeping = Housekeeping(self.connection, settings, files, records)
        self.stopping = False

    def request_stop(self, signum: int, _frame: object) -> None:
        log.info("received %s: finishing the work in hand, then exiting", signal.Signals(signum).name)
        self.stopping = True
        self.source.stop_claiming()

    def run(self, load_s: float) -> None:
        self.registration.birth(model_document(self.model.signature, self.settings, load_s))
        log.info("worker %s ready: model %s v%s, max_batch_size=%d, max_batch_delay_ms=%g",
                 self.rq_worker.name, self.model.signature.name, self.model.signature.version,
                 self.settings.max_batch_size, self.settings.max_batch_delay_ms)
        self.housekeeping.start()
        try:
            while not (self.stopping and self.source.idle):
                self.step()
        finally:
            self.housekeeping.stop()
            self.registration.death()
            log.info("worker %s stopped", self.rq_worker.name)

    def step(self) -> None:
        """One turn of the loop: collect a batch, run it, publish what completed, heartbeat."""
        batch = collect(self.source, self.settings.max_batch_size, self.settings.max_batch_delay_ms / 1000,
                        0.0 if self.stopping else IDLE_TIMEOUT_S)
        stats = run_batch(self.model, batch) if batch else None
        finished = self.source.take_finished()
        if finished or stats:
            publish(self.connection, self.rq_worker, finished, self.model.signature, self.settings.result_ttl, stats,
                    self.chunks, self.source.take_round_trips())
        if stats and stats.rows:
            log.debug("batch: %d rows, %d jobs finished, model %.2f ms", stats.rows, len(finished), stats.model_s * 1000)
        self.registration.beat_if_due(self.source.pending, self.execution_ttl)


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    started = time.monotonic()
    try:
        where = locate_model(settings.model_path, settings.model_name, settings.model_version)
        log.info("loading model %s version %s from %s", where.name, where.version, where.path)
        model = load_model(where.path, where.name, where.version)
    except (ModelPathError, ModelLoadError) as exc:
        log.error("cannot start: %s", exc)
        return 3
    warm = model.warm_up([1, min(8, settings.max_batch_size), settings.max_batch_size])
    load_s = time.monotonic() - started
    log.info("model loaded and warmed up in %.2f s (warm-up %.2f s)", load_s, warm)
    worker = InferenceWorker(settings, model)
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    worker.run(load_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a bulk batch's time goes, chunk by chunk: the real API ingest, the real worker loop (in this process,
against the embedded Redis) and the real result streams, with a timer around each stage.

Stages (exclusive time: a stage's time excludes the stages it calls):
  ingest    api.bulk.ingest.ingest + BatchRecords.enqueue (upload validation and the chunk jobs; no HTTP)
  ingest ndjson  the same rows as NDJSON through api.bulk.ingest.ingest alone (parsing and validation)
  claim     RedisSource claims and RQ's start bookkeeping (worker.redis_source: `claim`)
  read      a chunk's rows from storage (worker.chunks.ChunkFiles.load)
  model     the compiled model call (LoadedModel.predict)
  write     a chunk's outputs file (ChunkFiles.save: storage.create + shared.batches.write_outputs)
  publish   the publish transaction (worker.publish.Publisher.publish)
  other     the rest of the worker's loop (collect, stacking rows, slicing outputs, heartbeats)
  download  the results streams (api.bulk.result_files.npy_results, ndjson_results), consumed in full

    python -m bench.bulk_profile [--rows 200000] [--microbatch-rows 256,1024]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict

from scripts.embedded_redis import EmbeddedRedis
from scripts.harness import free_port
from shared.config import PROJECT_ROOT, Settings

LIGHT_PATH = os.path.join(PROJECT_ROOT, "models", "digits.keras")
STAGES = (
    "ingest",
    "ingest ndjson",
    "claim",
    "read",
    "model",
    "write",
    "publish",
    "other",
    "download npy",
    "download ndjson",
)


class StageTimer:
    """Exclusive seconds per stage; a timed call inside another charges its time to itself only.

    Per thread: the worker claims (claim, read) and publishes (write, publish) in threads of its own while
    the model runs, so stages overlap and their sum can exceed the loop's wall time ("other" goes negative).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)  # thread CPU seconds, exclusive like `seconds`
        self.calls: dict[str, int] = defaultdict(int)
        self._local = threading.local()  # .stack, per open stage: [started, cpu, seconds and cpu of callees]

    @property
    def _stack(self) -> list[list[float]]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def wrap(self, owner: object, attribute: str, stage: str) -> None:
        """Replace `owner.attribute` with a timed version charged to `stage`."""
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            frame = [time.perf_counter(), time.thread_time(), 0.0, 0.0]
            self._stack.append(frame)
            try:
                return original(*args, **kwargs)
            finally:
                self._stack.pop()
                spent, cpu = time.perf_counter() - frame[0], time.thread_time() - frame[1]
                self.seconds[stage] += spent - frame[2]
                self.cpu[stage] += cpu - frame[3]
                self.calls[stage] += 1
                if self._stack:
                    self._stack[-1][2] += spent
                    self._stack[-1][3] += cpu

        setattr(owner, attribute, timed)


def write_rows(path: str, rows: int) -> None:
    """The digits rows as `path` (.npy) and as `path` + ".ndjson" (bench/bulk.py's inputs)."""
    from bench.bulk import write_inputs

    files = write_inputs(os.path.dirname(path), rows)
    os.replace(files["npy"], path)
    os.replace(files["ndjson"], path + ".ndjson")


def timed_ingest(upload_format: str, path: str, files, batch_id: str, signature, timer: StageTimer, stage: str):
    """Ingest the file at `path` as `upload_format`; charges its wall and CPU time to `stage`."""
    from api.bulk.ingest import ingest

    started, cpu = time.perf_counter(), time.thread_time()
    with open(path, "rb") as f:
        pieces = iter(lambda: f.read(1 << 20), b"")
        stored = ingest(upload_format, pieces, files, batch_id, signature, lambda: False)
    timer.seconds[stage] += time.perf_counter() - started
    timer.cpu[stage] += time.thread_time() - cpu
    return stored


def profile(rows: int, microbatch_rows: int, workdir: str, model) -> dict:
    """One batch of `rows` digits rows end to end in this process; seconds per stage and per chunk."""
    from api.bulk import result_files as batch_files
    from shared import storage as storage_module
    from shared.batch_records import BatchRecords
    from worker import __main__ as worker_main
    from worker import chunks as chunks_module
    from worker import publish as publish_module
    from worker import redis_source as claim_module
    from worker.__main__ import InferenceWorker
    from worker.registration import model_document

    server = EmbeddedRedis(free_port(), os.path.join(workdir, f"redis-{microbatch_rows}")).start()
    try:
        settings = Settings.from_env({}).replace(
            redis_url=server.url,
            data_dir=os.path.join(workdir, f"data-{microbatch_rows}"),
            max_microbatch_rows=microbatch_rows,
            log_level="WARNING",
        )
        timer = StageTimer()
        timer.wrap(claim_module.RedisSource, "claim", "claim")
        timer.wrap(chunks_module.ChunkFiles, "load", "read")
        timer.wrap(chunks_module.ChunkFiles, "save", "write")
        timer.wrap(publish_module.Publisher, "publish", "publish")
        timer.wrap(model, "predict", "model")
        # An idle step blocks up to IDLE_TIMEOUT_S on the interactive queue: before the first chunk (a new worker
        # waits there first) and after the last one (this loop checks the batch between steps). Neither is the
        # batch's cost (in `make bench` interactive traffic ends such waits at once), so they are kept short.
        worker_main.IDLE_TIMEOUT_S = 0.005
        worker = InferenceWorker(settings, model)
        worker.registration.birth(model_document(model.signature, settings, 0.0), worker.registry_doc())
        worker.publishing.start()  # publishes what worker.step() hands over, in its own thread
        files = storage_module.from_settings(settings)
        records = BatchRecords(worker.connection, settings)
        path = os.path.join(workdir, "rows.npy")
        if not os.path.exists(path):
            write_rows(path, rows)

        timed_ingest("ndjson", path + ".ndjson", files, "profile-ndjson", model.signature, timer, "ingest ndjson")
        started = time.perf_counter()
        batch_id = "profile"
        records.begin(batch_id, None, None)
        stored, skipped = timed_ingest("npy", path, files, batch_id, model.signature, timer, "ingest")
        chunk_count = records.enqueue(batch_id, stored, skipped, None, None)
        timer.seconds["ingest"] = time.perf_counter() - started

        loop_started, loop_cpu, redis_cpu = time.perf_counter(), time.process_time(), _redis_cpu(worker.connection)
        while not records.get(batch_id).status.is_terminal:
            worker.step()
        loop_s = time.perf_counter() - loop_started
        process_cpu = {
            "worker process": time.process_time() - loop_cpu,
            "redis": _redis_cpu(worker.connection) - redis_cpu,
        }
        timer.seconds["other"] = loop_s - sum(timer.seconds[s] for s in ("claim", "read", "model", "write", "publish"))

        record = records.get(batch_id)
        finished = batch_files.finished_chunks(files, batch_id, record, prefix_only=False)
        for kind, stream in (("npy", batch_files.npy_results), ("ndjson", batch_files.ndjson_results)):
            t = time.perf_counter()
            size = sum(len(block) for block in stream(files, batch_id, finished))
            timer.seconds[f"download {kind}"] = time.perf_counter() - t
            timer.calls[f"download {kind}"] = size
        total = time.perf_counter() - started - timer.seconds["download ndjson"]
        worker.publishing.stop()
        worker.claiming.shutdown()
        worker.connection.close()
    finally:
        server.stop()
    return {
        "rows": rows,
        "microbatch_rows": microbatch_rows,
        "chunks": chunk_count,
        "seconds": dict(timer.seconds),
        "cpu": dict(timer.cpu),
        "process_cpu": process_cpu,
        "loop_s": loop_s,
        "calls": dict(timer.calls),
        "end_to_end_npy_s": total,
        "rows_per_s_npy": rows / total,
    }


def _redis_cpu(connection) -> float:
    info = connection.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def render(result: dict) -> str:
    """A per-stage table: total seconds, ms per chunk, share of the worker's loop."""
    chunks = result["chunks"]
    loop = sum(result["seconds"].get(s, 0.0) for s in ("claim", "read", "model", "write", "publish", "other"))
    lines = [
        (
            f"{result['rows']:,} rows, {chunks} chunks, MAX_MICROBATCH_ROWS={result['microbatch_rows']}: "
            f"{result['end_to_end_npy_s']:.2f} s to the .npy results ({result['rows_per_s_npy']:,.0f} rows/s); "
            f"worker loop {loop:.2f} s ({loop / chunks * 1000:.1f} ms per chunk)"
        ),
        "",
        "| stage | seconds | ms per chunk | CPU ms per chunk | share of worker loop | calls |",
        "|---|---|---|---|---|---|",
    ]
    for stage in STAGES:
        s = result["seconds"].get(stage, 0.0)
        cpu = result["cpu"].get(stage)
        cpu_ms = f"{cpu / chunks * 1000:.2f}" if cpu is not None else "–"
        share = f"{s / loop:.0%}" if stage in ("claim", "read", "model", "write", "publish", "other") else "–"
        lines.append(
            f"| {stage} | {s:.3f} | {s / chunks * 1000:.2f} | {cpu_ms} | {share} | {result['calls'].get(stage, '–')} |"
        )
    lines.append("")
    lines.append(
        "CPU during the worker loop (every thread, TensorFlow's pools included), ms per chunk: "
        + ", ".join(f"{k} {v / chunks * 1000:.2f}" for k, v in result["process_cpu"].items())
        + "; the model stage's CPU column is its calling thread's only."
    )
    return "\n".join(lines)


def main() -> int:
    from worker.model.loader import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--microbatch-rows", default="256,1024")
    args = parser.parse_args()
    model = load_model(LIGHT_PATH, "digits", "1")
    model.warm_up([1, 256, 1024])
    with tempfile.TemporaryDirectory() as workdir:
        for size in (int(s) for s in args.microbatch_rows.split(",")):
            print(render(profile(args.rows, size, workdir, model)), "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Chunk jobs of bulk batches, the worker's side: load a chunk's rows from storage when it is claimed,
save its outputs (or its rows' errors) when it ends, and list the rows of a chunk that recovery failed.

The batch's counters move in the same Lua calls that claim and publish the chunk job (shared/lua/claim.lua,
publish.lua, recover.lua with lib/batch.lua); this module owns what happens in storage.

The rows then go through the same batcher and compiled model call as interactive jobs; a chunk is just
a job whose inputs came from storage rather than from its payload.

A chunk whose files cannot be read or written (the object store down) fails with `storage_failed`; while
it has attempts left (MAX_ATTEMPTS, RQ's `retries_left`) it runs again after STORAGE_RETRY_S (doubling)
instead, uncounted, so an outage costs retries rather than rows.
"""

from __future__ import annotations

import logging

import numpy as np
import orjson

from shared.batch_records import BatchRecords
from shared.batches import ChunkSpec, file_rows
from shared.schema import ErrorCode
from shared.storage import Storage, StoreUnreachable
from shared.storage.layout import chunk_errors_key, input_key, output_key, skipped_key, write_outputs
from worker.chunk_retries import retry_delay_s, schedule_retry
from worker.claim import Claim

log = logging.getLogger(__name__)


class ChunkFiles:
    """Storage and batch-record work for chunk jobs; one per worker."""

    def __init__(self, storage: Storage, records: BatchRecords) -> None:
        self.storage = storage
        self.records = records

    def load(self, spec: ChunkSpec) -> dict[str, np.ndarray]:
        """The chunk's rows, one array per model input (raises if the batch's files are gone)."""
        return {
            name: self.storage.load_rows(input_key(spec.batch, i), spec.start, spec.stop)
            for i, name in enumerate(spec.inputs)
        }

    def load_failed(self, exc: Exception) -> tuple[ErrorCode, str]:
        """The (code, message) a chunk fails with when `load` raised `exc`."""
        if isinstance(exc, StoreUnreachable):
            return ErrorCode.STORAGE_FAILED, f"the chunk's rows could not be read: {exc}"
        return ErrorCode.INVALID_PAYLOAD, f"the chunk's rows could not be loaded: {exc}"

    def save(self, claimed: Claim) -> tuple[int, int] | None:
        """Write the chunk's outputs, or one error line per row if it failed; returns (done rows, failed rows).

        None: the chunk failed on storage and has attempts left, so it is to be retried (`retry`), not
        counted. Runs before the publish pipeline, so a chunk is counted only once its file exists.
        """
        spec = claimed.chunk
        assert spec is not None, "save() is for chunk jobs"
        rows = spec.rows
        if claimed.error is None:
            try:
                with self.storage.create(output_key(spec.batch, spec.chunk)) as file:
                    write_outputs(file, claimed.stacked_outputs())
                return rows, 0
            except OSError as exc:
                claimed.fail(ErrorCode.STORAGE_FAILED, f"the chunk's outputs could not be written: {exc}")
        if claimed.error is not None and claimed.error.code is ErrorCode.STORAGE_FAILED and claimed.retries_left > 0:
            return None
        self._save_errors(claimed)
        return 0, rows

    def retry(self, queue_name: str, claimed: Claim) -> bool:
        """A chunk that failed on storage waits, then runs again (`chunk_retries`); False if no longer ours."""
        settings = self.records.settings
        delay = retry_delay_s(settings.storage_retry_s, settings.max_attempts, claimed.retries_left)
        if not schedule_retry(self.records.connection, queue_name, claimed, delay):
            return False
        log.warning(
            "chunk %s failed on storage (%s); trying again in %.0f s, %d attempt(s) left",
            claimed.id,
            claimed.error.message if claimed.error else "",
            delay,
            claimed.retries_left - 1,
        )
        return True

    def _save_errors(self, claimed: Claim) -> None:
        assert claimed.chunk is not None and claimed.error is not None
        self._write_errors(claimed.chunk, f"{claimed.error.code.value}: {claimed.error.message}")

    def lost(self, batch_id: str, chunk: int, message: str) -> None:
        """List the rows of a chunk that recovery failed (its workers died) in the batch's error file."""
        record = self.records.find(batch_id)
        if record is None:
            return  # the batch is gone: nothing left to annotate
        ranges = record.chunk_ranges()
        if 0 <= chunk < len(ranges):
            start, stop = ranges[chunk]
            self._write_errors(ChunkSpec(batch_id, chunk, start, stop, ()), f"{ErrorCode.WORKER_LOST.value}: {message}")

    def _write_errors(self, spec: ChunkSpec, error: str) -> None:
        batch = spec.batch
        try:
            has_skipped = self.storage.exists(skipped_key(batch))
            skipped = self.storage.load_rows(skipped_key(batch), 0, None) if has_skipped else None
            rows = file_rows(skipped, spec.start, spec.stop)
            with self.storage.create(chunk_errors_key(batch, spec.chunk)) as file:
                for row in rows.tolist():
                    file.write(orjson.dumps({"row": row, "error": error}) + b"\n")
        except OSError as exc:  # the batch's files are gone (expired): nothing left to annotate
            log.warning("could not write the errors of batch %s chunk %s: %s", batch, spec.chunk, exc)

"""Chunk plans, row numbering after skipped rows, and the status document."""

from __future__ import annotations

import numpy as np

from shared.batches import MAX_CHUNKS, BatchRecord, chunk_ranges, chunk_size, file_rows, status_document


def test_chunks_cover_every_row_once_in_order():
    assert chunk_ranges(2500, 1024) == [(0, 1024), (1024, 2048), (2048, 2500)]
    assert chunk_size(5000, 1024) == 1024


def test_a_huge_batch_of_tiny_rows_gets_bigger_chunks_not_more_jobs():
    rows = 100 * MAX_CHUNKS * 1024
    assert len(chunk_ranges(rows, chunk_size(rows, 1024))) <= MAX_CHUNKS


def test_accepted_rows_map_back_to_their_file_row_numbers():
    skipped = np.array([0, 3, 4, 9])
    accepted = [r for r in range(12) if r not in skipped]
    assert file_rows(skipped, 0, len(accepted)).tolist() == accepted
    assert file_rows(skipped, 2, 5).tolist() == accepted[2:5]
    assert file_rows(None, 3, 6).tolist() == [3, 4, 5]


def test_status_document_gives_urls_only_for_what_can_be_fetched():
    record = {
        b"status": b"in_progress",
        b"total_rows": b"10",
        b"done_rows": b"4",
        b"failed_rows": b"0",
        b"created_at": b"2025-01-01T00:00:00.000Z",
        b"metadata": b"",
    }
    doc = status_document("b1", BatchRecord.from_redis(record))
    assert (doc["status"], doc["output_url"], doc["errors_url"], doc["metadata"]) == ("in_progress", None, None, None)
    record.update({b"status": b"completed", b"failed_rows": b"2", b"metadata": b'{"k": "v"}'})
    doc = status_document("b1", BatchRecord.from_redis(record))
    assert doc["output_url"] == "/batches/b1/results" and doc["errors_url"] == "/batches/b1/errors"
    assert doc["metadata"] == {"k": "v"}

"""Stream a batch's results and errors out of storage, one chunk file at a time (bounded memory).

Results are in input order: chunk by chunk, and within a chunk row by row. NDJSON lines are
`{"row": <file row number>, "prediction": ...}`, the prediction in /predict's row format. A `.npy`
result is one array of the single model output, rows in the same order (rows skipped at upload or
lost with a failed chunk are absent; NDJSON names every row).

Each response lists the batch's files once (one LIST request on an object store) and reads what it
needs before the first byte is sent, so a store that is down answers 503 rather than a cut-off 200.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import orjson
import redis

from shared import keys, rq_keys
from shared.batches import BatchRecord, ChunkSpec, chunk_job_id, file_rows
from shared.errors import NotAcceptable
from shared.npy import header
from shared.storage import Storage
from shared.storage.layout import chunk_errors_key, output_key, read_outputs, skipped_key, upload_errors_key

READ_BYTES = 1 << 20


def finished_chunks(storage: Storage, batch_id: str, record: BatchRecord, prefix_only: bool) -> list[ChunkSpec]:
    """Every chunk with outputs, in order; with `prefix_only`, up to the first without."""
    present = storage.list_keys(batch_id)
    chunks = []
    for chunk, (start, stop) in enumerate(record.chunk_ranges()):
        if output_key(batch_id, chunk) in present:
            chunks.append(ChunkSpec(batch_id, chunk, start, stop, ()))
        elif prefix_only:
            break
    return chunks


def _skipped(storage: Storage, batch_id: str, present: set[str] | None = None) -> np.ndarray | None:
    present = storage.list_keys(batch_id) if present is None else present
    if skipped_key(batch_id) not in present:
        return None
    return storage.load_rows(skipped_key(batch_id), 0, None)


def ndjson_results(storage: Storage, batch_id: str, chunks: list[ChunkSpec]) -> Iterator[bytes]:
    """One line per row: {"row", "prediction"}; one chunk file in memory at a time."""
    return _ndjson_lines(storage, batch_id, chunks, _skipped(storage, batch_id))


def _ndjson_lines(
    storage: Storage, batch_id: str, chunks: list[ChunkSpec], skipped: np.ndarray | None
) -> Iterator[bytes]:
    for spec in chunks:
        outputs = read_outputs(storage.load_arrays(output_key(batch_id, spec.chunk)))
        yield ndjson_lines(file_rows(skipped, spec.start, spec.stop).tolist(), outputs)


def ndjson_lines(rows: list[int], outputs: dict[str, np.ndarray]) -> bytes:
    """The NDJSON lines of one chunk: `{"row": <row>, "prediction": ...}` each, newline-terminated.

    A single output is encoded once, as one array, and cut into rows (one orjson call per chunk rather than
    one per row: about 7× faster for 1,024 rows); several outputs build an object per row.
    """
    names = list(outputs)
    if len(names) == 1:
        predictions = _encoded_rows(outputs[names[0]])
        if len(predictions) == len(rows):
            return b"".join(b'{"row":%d,"prediction":%s}\n' % pair for pair in zip(rows, predictions))
    lines = []
    for i, row in enumerate(rows):
        prediction = outputs[names[0]][i] if len(names) == 1 else {n: outputs[n][i] for n in names}
        lines.append(orjson.dumps({"row": row, "prediction": prediction}, option=orjson.OPT_SERIALIZE_NUMPY))
    lines.append(b"")
    return b"\n".join(lines)


def _encoded_rows(array: np.ndarray) -> list[bytes]:
    """Each row of a 1-D or 2-D numeric array as JSON, exactly as orjson writes that row on its own.

    The whole array is encoded once and split between rows: a JSON number never holds a comma or a
    bracket. Other shapes (and anything orjson will not take) give [], and the caller goes row by row.
    """
    if array.ndim not in (1, 2) or not len(array):
        return []
    try:
        text = orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:
        return []
    if array.ndim == 1:
        return text[1:-1].split(b",")
    return [b"[" + row + b"]" for row in text[2:-2].split(b"],[")]


def npy_results(storage: Storage, batch_id: str, chunks: list[ChunkSpec]) -> Iterator[bytes]:
    """One `.npy` array of the model's single output; the header first, then each chunk's rows."""
    rows = sum(spec.rows for spec in chunks)
    if chunks:
        first = read_outputs(storage.load_arrays(output_key(batch_id, chunks[0].chunk)))
    else:
        first = {"output": np.zeros((0,), np.float32)}
    if len(first) != 1:
        raise NotAcceptable(
            f"the model has {len(first)} outputs ({', '.join(first)}); a .npy holds one array",
            expected="Accept: application/x-ndjson",
        )
    sample = next(iter(first.values()))
    dtype = sample.dtype.newbyteorder("<") if sample.dtype.itemsize > 1 else sample.dtype

    def body() -> Iterator[bytes]:
        yield header(dtype, (rows, *sample.shape[1:]))
        for index, spec in enumerate(chunks):
            outputs = first if index == 0 else read_outputs(storage.load_arrays(output_key(batch_id, spec.chunk)))
            yield np.ascontiguousarray(next(iter(outputs.values())), dtype=dtype).tobytes()

    return body()


def errors(storage: Storage, connection: redis.Redis, batch_id: str, record: BatchRecord) -> Iterator[bytes]:
    """NDJSON {row, error}: rows skipped at upload, then rows of chunks that failed, chunk by chunk.

    A chunk that failed without leaving its error file (failed by recovery as worker_lost, or while the
    store was down) has its rows listed from its job's failure, so every row counted in failed_rows is listed.
    """
    present = storage.list_keys(batch_id)
    total = record.chunks_total
    keys = [
        key
        for key in [upload_errors_key(batch_id)] + [chunk_errors_key(batch_id, c) for c in range(total)]
        if key in present
    ]
    unlisted = _unlisted_failures(connection, batch_id, total, present)
    skipped = _skipped(storage, batch_id, present) if unlisted else None
    first = storage.open(keys[0]) if keys else None  # before the 200: a store that is down answers 503
    return _error_lines(storage, batch_id, record, keys, first, unlisted, skipped)


def _error_lines(
    storage: Storage,
    batch_id: str,
    record: BatchRecord,
    keys: list[str],
    first: BinaryIO | None,
    unlisted: dict[int, str],
    skipped: np.ndarray | None,
) -> Iterator[bytes]:
    for index, key in enumerate(keys):
        with first if index == 0 and first is not None else storage.open(key) as file:
            while block := file.read(READ_BYTES):
                yield block
    ranges = record.chunk_ranges()
    for chunk, message in sorted(unlisted.items()):
        rows = file_rows(skipped, *ranges[chunk]).tolist()
        yield b"".join(orjson.dumps({"row": row, "error": message}) + b"\n" for row in rows)


def _unlisted_failures(connection: redis.Redis, batch_id: str, total: int, present: set[str]) -> dict[int, str]:
    """{chunk: "<code>: <message>"} of the failed chunks that have neither outputs nor an error file."""
    candidates = [
        chunk
        for chunk in range(total)
        if output_key(batch_id, chunk) not in present and chunk_errors_key(batch_id, chunk) not in present
    ]
    if not candidates:
        return {}
    with connection.pipeline(transaction=False) as pipe:
        for chunk in candidates:
            pipe.hmget(rq_keys.job(chunk_job_id(batch_id, chunk)), rq_keys.JobField.STATUS, keys.JOB_RESULT)
        replies = pipe.execute()
    failed = {}
    for chunk, (status, result) in zip(candidates, replies):
        if status == rq_keys.FAILED.encode():
            error = orjson.loads(result).get("error", {}) if result else {}
            failed[chunk] = (
                f"{error['code']}: {error['message']}"
                if error.get("code")
                else "the chunk failed (worker_lost or storage_failed); its message has expired"
            )
    return failed

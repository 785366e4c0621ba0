"""Validate an upload row by row against the model's signature while writing it to storage.

Each format is cut into blocks of rows. A block is checked with the same code as /predict bodies
(`api/validation.py`), vectorised; only a block that fails is re-checked row by row to name its bad
rows. Accepted rows go to one `.npy` per model input; rejected rows go to the error file (with
on_error=skip) or make the whole upload fail with the first few row numbers.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson

from api.validation import rows_to_arrays, to_array
from shared.batch_records import Upload as StoredUpload
from shared.batches import input_key, skipped_key, upload_errors_key
from shared.errors import InvalidInput
from shared.npy import NpyHeaderError, NpyWriter, parse_header
from shared.signature import ModelSignature
from shared.storage import Storage

BLOCK_ROWS = 2048
BLOCK_BYTES = 4 << 20
MAX_LINE_BYTES = 8 << 20
FIRST_ERRORS = 10

Bad = list[tuple[int, str]]  # (position in block, message)


class RowSink:
    """Accepted rows into one `.npy` per input; rejected rows into the error file and `skipped.npy`."""

    def __init__(self, storage: Storage, batch_id: str, signature: ModelSignature, stack: contextlib.ExitStack) -> None:
        self.storage, self.batch_id, self.stack = storage, batch_id, stack
        self.names = [t.name for t in signature.inputs]
        self.writers = [
            NpyWriter(stack.enter_context(storage.create(input_key(batch_id, i))), np.dtype(t.dtype),
                      None if None in t.shape else tuple(t.shape))
            for i, t in enumerate(signature.inputs)
        ]
        self.total = 0
        self.accepted = 0
        self.first_errors: list[dict[str, Any]] = []
        self._skipped: NpyWriter | None = None
        self._errors: Any = None

    def add(self, arrays: dict[str, np.ndarray] | None, bad: Bad, rows: int, lines: list[int] | None) -> None:
        """Record one block of `rows` file rows: the accepted ones as `arrays`, the others in `bad`."""
        if arrays is not None:
            try:
                for name, writer in zip(self.names, self.writers):
                    writer.append(arrays[name])
            except ValueError as exc:
                raise InvalidInput(f"rows from row {self.total} on: {exc}", field="file",
                                   expected="rows that all have one shape") from None
            self.accepted += len(arrays[self.names[0]])
        for position, message in bad:
            self._reject(self.total + position, lines[position] if lines else None, message)
        self.total += rows

    def _reject(self, row: int, line: int | None, message: str) -> None:
        entry = {"row": row, "line": line, "error": message} if line is not None else {"row": row, "error": message}
        if len(self.first_errors) < FIRST_ERRORS:
            self.first_errors.append(entry)
        if self._errors is None:
            self._errors = self.stack.enter_context(self.storage.create(upload_errors_key(self.batch_id)))
            self._skipped = NpyWriter(self.stack.enter_context(self.storage.create(skipped_key(self.batch_id))), np.int64, ())
        self._errors.write(orjson.dumps(entry) + b"\n")
        self._skipped.append(np.array([row], dtype=np.int64))

    @property
    def skipped(self) -> int:
        return self._skipped.rows if self._skipped else 0

    def finish(self) -> StoredUpload:
        for writer in self.writers + ([self._skipped] if self._skipped else []):
            writer.close()
        return StoredUpload(self.total, self.accepted, self.names)


def ingest(upload_format: str, chunks: Iterator[bytes], storage: Storage, batch_id: str,
           signature: ModelSignature, skip_bad_rows: Callable[[], bool]) -> tuple[StoredUpload, int]:
    """Validate and store every row; returns the stored upload and the number of skipped rows.

    `skip_bad_rows` answers whether on_error=skip was asked for (a multipart field may come late).

    Raises:
        InvalidInput: bad rows without on_error=skip (listing the first few), no valid rows, a broken file.
    """
    with contextlib.ExitStack() as stack:  # an exception here discards every file being written
        sink = RowSink(storage, batch_id, signature, stack)
        gave_up = False
        for arrays, bad, rows, lines in _blocks(upload_format, chunks, signature):
            sink.add(arrays, bad, rows, lines)
            if len(sink.first_errors) >= FIRST_ERRORS and not skip_bad_rows():
                for _ in chunks:  # read the rest, unparsed, so the client sees our answer, not a reset
                    pass
                gave_up = True
                break
        if sink.first_errors and (gave_up or not skip_bad_rows()):
            raise InvalidInput(
                f"the file has invalid rows (the first {len(sink.first_errors)} are listed in details)",
                field="file", expected="fix these rows, or pass on_error=skip to run the others",
                details=sink.first_errors)
        if sink.accepted == 0:
            raise InvalidInput("the file has no valid rows" if sink.total else "the file has no rows", field="file",
                               expected="at least one row matching the model's input", details=sink.first_errors or None)
        return sink.finish(), sink.skipped


def _blocks(upload_format: str, chunks: Iterator[bytes], signature: ModelSignature) -> Iterator[tuple]:
    """(accepted arrays or None, bad rows, rows in block, line numbers or None) per block of the file."""
    if upload_format == "npy":
        spec = _single_input(signature, "a .npy upload")
        for block in _npy_blocks(chunks, spec):
            arrays, bad = validate_block(block, signature)
            yield arrays, bad, len(block), None
        return
    parse = _parse_json_lines if upload_format == "ndjson" else _csv_parser(signature)
    for lines in _line_blocks(chunks):
        if upload_format == "csv" and lines[0][0] == 1 and _is_header(lines[0][1]):
            lines = lines[1:]  # a header line of column names is not a row
            if not lines:
                continue
        rows, positions, bad = parse(lines)
        arrays, row_bad = validate_block(rows, signature) if len(rows) else (None, [])
        bad = sorted(bad + [(positions[i], message) for i, message in row_bad])
        yield arrays, bad, len(lines), [number for number, _ in lines]


def validate_block(rows: Any, signature: ModelSignature) -> tuple[dict[str, np.ndarray] | None, Bad]:
    """Check a block (a list of JSON rows, or an array); returns the accepted rows' arrays and the bad rows."""
    try:
        return _convert(rows, signature), []
    except InvalidInput:
        pass
    good, bad = [], []
    for i in range(len(rows)):
        try:
            _convert(rows[i : i + 1], signature)
            good.append(i)
        except InvalidInput as exc:
            bad.append((i, f"{exc.message} (expected {exc.expected})" if exc.expected else exc.message))
    if not good:
        return None, bad
    kept = [rows[i] for i in good] if isinstance(rows, list) else rows[good]
    try:
        return _convert(kept, signature), bad
    except InvalidInput as exc:  # each row is fine alone, but they do not stack (variable dimensions)
        raise InvalidInput(f"rows of one batch must share one shape: {exc.message}", field="file",
                           expected=exc.expected) from None


def _convert(rows: Any, signature: ModelSignature) -> dict[str, np.ndarray]:
    if isinstance(rows, np.ndarray):
        spec = signature.inputs[0]
        return {spec.name: to_array(rows, spec, "file")}
    return rows_to_arrays(rows, signature, max(1, len(rows)))


def _single_input(signature: ModelSignature, what: str):
    if len(signature.inputs) != 1:
        raise InvalidInput(f"{what} can only feed a model with one input; this one has {len(signature.inputs)}",
                           field="file", expected="NDJSON with one object per row, keyed by input name")
    return signature.inputs[0]


def _line_blocks(chunks: Iterator[bytes]) -> Iterator[list[tuple[int, bytes]]]:
    """Non-blank lines as (1-based line number, bytes), in blocks of up to BLOCK_ROWS."""
    block: list[tuple[int, bytes]] = []
    pending = b""
    number = 0
    for chunk in chunks:
        parts = (pending + chunk).split(b"\n")
        pending = parts.pop()
        if len(pending) > MAX_LINE_BYTES:
            raise InvalidInput(f"line {number + len(parts) + 1} is longer than {MAX_LINE_BYTES} bytes", field="file",
                               expected="one row per line")
        for part in parts:
            number += 1
            _add_line(block, number, part)
        if len(block) >= BLOCK_ROWS:
            yield block
            block = []
    _add_line(block, number + 1, pending)
    if block:
        yield block


def _add_line(block: list[tuple[int, bytes]], number: int, line: bytes) -> None:
    if number == 1:
        line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
    if line.strip():
        block.append((number, line.rstrip(b"\r")))


def _parse_json_lines(lines: list[tuple[int, bytes]]) -> tuple[list, list[int], Bad]:
    rows, positions, bad = [], [], []
    for position, (_, line) in enumerate(lines):
        try:
            rows.append(orjson.loads(line))
            positions.append(position)
        except orjson.JSONDecodeError as exc:
            bad.append((position, f"not valid JSON: {exc}"))
    return rows, positions, bad


def _csv_parser(signature: ModelSignature):
    spec = _single_input(signature, "a CSV upload")
    if None in spec.shape:
        raise InvalidInput(f"a CSV upload cannot feed an input of shape {spec.describe()}", field="file",
                           expected="NDJSON, or a model input without variable dimensions")
    width = math.prod(spec.shape)

    def parse(lines: list[tuple[int, bytes]]) -> tuple[np.ndarray, list[int], Bad]:
        try:
            values = np.loadtxt(io.BytesIO(b"\n".join(line for _, line in lines)), delimiter=",",
                                dtype=np.float64, ndmin=2, comments=None)
            if values.shape[1] == width:
                return values.reshape(-1, *spec.shape), list(range(len(lines))), []
        except ValueError:
            pass
        rows, positions, bad = [], [], []
        for position, (_, line) in enumerate(lines):
            try:
                row = np.array(line.split(b","), dtype=np.float64)
            except ValueError:
                bad.append((position, "has a value that is not a number"))
                continue
            if len(row) != width:
                bad.append((position, f"has {len(row)} columns (expected {width}: {spec.describe()} flattened)"))
                continue
            rows.append(row.reshape(spec.shape))
            positions.append(position)
        return np.array(rows, dtype=np.float64).reshape(-1, *spec.shape), positions, bad

    return parse


def _is_header(line: bytes) -> bool:
    try:
        np.array(line.split(b","), dtype=np.float64)
        return False
    except ValueError:
        return True


def _npy_blocks(chunks: Iterator[bytes], spec) -> Iterator[np.ndarray]:
    """Blocks of rows of an uploaded `.npy`, checked against its own header as they arrive."""
    buffer = bytearray()
    parsed = None
    for chunk in chunks:
        buffer += chunk
        if parsed is None:
            try:
                parsed = parse_header(bytes(buffer[: 12 + 10_000]))
            except NpyHeaderError as exc:
                raise InvalidInput(str(exc), field="file", expected="an array saved with numpy.save") from None
            if parsed is None:
                continue
            dtype, shape, offset = parsed
            row_shape = _check_npy_shape(dtype, shape, spec)
            row_bytes = dtype.itemsize * math.prod(row_shape)
            per_block = max(1, min(BLOCK_ROWS, BLOCK_BYTES // max(1, row_bytes)))
            left = shape[0]
            del buffer[:offset]
        while left and len(buffer) >= min(left, per_block) * row_bytes:
            rows = min(left, per_block)
            yield np.frombuffer(buffer[: rows * row_bytes], dtype=dtype).reshape(rows, *row_shape)
            del buffer[: rows * row_bytes]
            left -= rows
    if parsed is None:
        raise InvalidInput("the upload ends inside its .npy header", field="file", expected="an array saved with numpy.save")
    rows = min(left, len(buffer) // row_bytes)
    if rows:  # the complete rows of a file that ends early
        yield np.frombuffer(buffer[: rows * row_bytes], dtype=dtype).reshape(rows, *row_shape)
        del buffer[: rows * row_bytes]
        left -= rows
    if left or buffer:
        what = f"ends {left} rows short of the {shape[0]} its header declares" if left else (
            f"has {len(buffer)} bytes after its last row")
        raise InvalidInput(f"the .npy file {what}", field="file", expected="a complete array saved with numpy.save")


def _check_npy_shape(dtype: np.dtype, shape: tuple[int, ...], spec) -> tuple[int, ...]:
    if dtype.kind not in "biuf":
        raise InvalidInput(f"the .npy array has dtype {dtype.str}", field="file",
                           expected=f"numbers, converted to {spec.dtype}")
    row_shape = shape[1:]
    if len(shape) < 1 or len(row_shape) != len(spec.shape) or any(
        d is not None and d != g for d, g in zip(spec.shape, row_shape)
    ):
        raise InvalidInput(f"the .npy array has shape {list(shape)}", field="file",
                           expected=f"shape [rows, ...] with rows of shape {spec.describe()}")
    if not math.prod(row_shape):
        raise InvalidInput(f"the .npy array has shape {list(shape)}: its rows hold no values", field="file",
                           expected=f"rows of shape {spec.describe()}")
    return row_shape

"""Validate an upload row by row against the model's signature while writing it to storage.

Each format is cut into blocks of rows. A block is checked with the same code as /predict bodies
(`api/validation.py`), vectorised (an NDJSON block without true/false bytes is not walked for booleans);
only a block that fails is re-checked row by row to name its bad rows. Accepted rows go to one `.npy` per
model input; rejected rows go to the error file (with on_error=skip) or make the whole upload fail with the
first few row numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson

from api.bulk import formats
from api.bulk.formats import Bad
from api.validation import rows_to_arrays, to_array
from shared.batch_records import StoredUpload
from shared.errors import InvalidInput
from shared.npy import NpyWriter
from shared.signature import ModelSignature
from shared.storage import Storage
from shared.storage.layout import input_key, skipped_key, upload_errors_key

FIRST_ERRORS = 10


class RowSink:
    """Accepted rows into one `.npy` per input; rejected rows into the error file and `skipped.npy`."""

    def __init__(self, storage: Storage, batch_id: str, signature: ModelSignature, stack: contextlib.ExitStack) -> None:
        self.storage, self.batch_id, self.stack = storage, batch_id, stack
        self.names = [t.name for t in signature.inputs]
        self.writers = []
        for i, spec in enumerate(signature.inputs):
            file = stack.enter_context(storage.create(input_key(batch_id, i), new_prefix=True))
            self.writers.append(NpyWriter(file, np.dtype(spec.dtype), spec.static_shape))
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
                raise InvalidInput(
                    f"rows from row {self.total} on: {exc}", field="file", expected="rows that all have one shape"
                ) from None
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
            skipped_file = self.stack.enter_context(self.storage.create(skipped_key(self.batch_id)))
            self._skipped = NpyWriter(skipped_file, np.dtype(np.int64), ())
        assert self._skipped is not None  # opened together with the error file above
        self._errors.write(orjson.dumps(entry) + b"\n")
        self._skipped.append(np.array([row], dtype=np.int64))

    @property
    def skipped(self) -> int:
        return self._skipped.rows if self._skipped else 0

    def finish(self) -> StoredUpload:
        for writer in self.writers + ([self._skipped] if self._skipped else []):
            writer.close()
        return StoredUpload(self.total, self.accepted, self.names)


def ingest(
    upload_format: str,
    pieces: Iterator[bytes],
    storage: Storage,
    batch_id: str,
    signature: ModelSignature,
    skip_bad_rows: Callable[[], bool],
) -> tuple[StoredUpload, int]:
    """Validate and store every row; returns the stored upload and the number of skipped rows.

    `skip_bad_rows` answers whether on_error=skip was asked for (a multipart field may come late).

    Raises:
        InvalidInput: bad rows without on_error=skip (listing the first few), no valid rows, a broken file.
    """
    with contextlib.ExitStack() as stack:  # an exception here discards every file being written
        sink = RowSink(storage, batch_id, signature, stack)
        gave_up = False
        for arrays, bad, rows, lines in _blocks(upload_format, pieces, signature):
            sink.add(arrays, bad, rows, lines)
            if len(sink.first_errors) >= FIRST_ERRORS and not skip_bad_rows():
                for _ in pieces:  # read the rest, unparsed, so the client sees our answer, not a reset
                    pass
                gave_up = True
                break
        if sink.first_errors and (gave_up or not skip_bad_rows()):
            raise InvalidInput(
                f"the file has invalid rows (the first {len(sink.first_errors)} are listed in details)",
                field="file",
                expected="fix these rows, or pass on_error=skip to run the others",
                details=sink.first_errors,
            )
        if sink.accepted == 0:
            raise InvalidInput(
                "the file has no valid rows" if sink.total else "the file has no rows",
                field="file",
                expected="at least one row matching the model's input",
                details=sink.first_errors or None,
            )
        return sink.finish(), sink.skipped


def _blocks(upload_format: str, pieces: Iterator[bytes], signature: ModelSignature) -> Iterator[tuple]:
    """(accepted arrays or None, bad rows, rows in block, line numbers or None) per block of the file."""
    if upload_format == "npy":
        spec = formats.single_input(signature, "a .npy upload")
        for block in formats.npy_blocks(pieces, spec):
            arrays, bad = validate_block(block, signature)
            yield arrays, bad, len(block), None
        return
    parse = formats.parse_json_lines if upload_format == "ndjson" else formats.csv_parser(signature)
    for lines in formats.line_blocks(pieces):
        if upload_format == "csv" and lines[0][0] == 1 and formats.is_header(lines[0][1]):
            lines = lines[1:]  # a header line of column names is not a row
            if not lines:
                continue
        parsed = parse(lines)
        positions = parsed.positions
        arrays, row_bad = (
            validate_block(parsed.rows, signature, parsed.maybe_booleans) if len(parsed.rows) else (None, [])
        )
        bad = sorted(parsed.bad + [(positions[i], message) for i, message in row_bad])
        yield arrays, bad, len(lines), [number for number, _ in lines]


def validate_block(
    rows: Any, signature: ModelSignature, maybe_booleans: bool = True
) -> tuple[dict[str, np.ndarray] | None, Bad]:
    """Check a block (a list of JSON rows, or an array); returns the accepted rows' arrays and the bad rows.

    `maybe_booleans`: False when the block's bytes hold no true/false, so its numeric rows are not walked for one.
    """
    try:
        return _convert(rows, signature, maybe_booleans), []
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
        raise InvalidInput(
            f"rows of one batch must share one shape: {exc.message}", field="file", expected=exc.expected
        ) from None


def _convert(rows: Any, signature: ModelSignature, maybe_booleans: bool = True) -> dict[str, np.ndarray]:
    if isinstance(rows, np.ndarray):
        spec = signature.inputs[0]
        return {spec.name: to_array(rows, spec, "file")}
    return rows_to_arrays(rows, signature, max(1, len(rows)), maybe_booleans)

"""The upload formats, cut into blocks of rows: NDJSON and CSV line by line, `.npy` by its own header.

Each parser holds at most one block (BLOCK_ROWS rows, or BLOCK_BYTES of a `.npy`) and one line in memory.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import orjson

from api.validation import may_hold_booleans
from shared.errors import InvalidInput
from shared.npy import NpyHeaderError, parse_header
from shared.signature import ModelSignature, TensorSpec

# Rows per NDJSON or CSV block. Parsing a block holds the API process's GIL in long C calls (numpy's conversion
# of the block's rows): 512 rows keep each under a millisecond, so the /predict requests that the same process
# serves during an upload wait little for it, at a per-block cost that adds about 1% to an upload's CPU.
BLOCK_ROWS = 512
BLOCK_BYTES = 4 << 20
MAX_LINE_BYTES = 8 << 20

Bad = list[tuple[int, str]]  # (position in block, message)


def single_input(signature: ModelSignature, what: str) -> TensorSpec:
    if len(signature.inputs) != 1:
        raise InvalidInput(
            f"{what} can only feed a model with one input; this one has {len(signature.inputs)}",
            field="file",
            expected="NDJSON with one object per row, keyed by input name",
        )
    return signature.inputs[0]


def line_blocks(pieces: Iterator[bytes]) -> Iterator[list[tuple[int, bytes]]]:
    """Non-blank lines as (1-based line number, bytes), in blocks of up to BLOCK_ROWS."""
    block: list[tuple[int, bytes]] = []
    pending = b""
    number = 0
    for piece in pieces:
        parts = (pending + piece).split(b"\n")
        pending = parts.pop()
        if len(pending) > MAX_LINE_BYTES:
            raise InvalidInput(
                f"line {number + len(parts) + 1} is longer than {MAX_LINE_BYTES} bytes",
                field="file",
                expected="one row per line",
            )
        _add_lines(block, number + 1, parts)
        number += len(parts)
        while len(block) >= BLOCK_ROWS:
            yield block[:BLOCK_ROWS]
            del block[:BLOCK_ROWS]
    _add_lines(block, number + 1, [pending])
    if block:
        yield block


def _add_lines(block: list[tuple[int, bytes]], first: int, lines: list[bytes]) -> None:
    """Append the non-blank `lines`, numbered from `first`, without a carriage return."""
    if first == 1 and lines:
        lines[0] = lines[0].removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
    block.extend((first + i, line.rstrip(b"\r")) for i, line in enumerate(lines) if line.strip())


@dataclass
class ParsedLines:
    """A block of lines, parsed: the rows that parsed, their positions in the block, the lines that did not,
    and whether the block's bytes hold a true or false at all (api/validation.py's `may_hold_booleans`)."""

    rows: list | np.ndarray
    positions: list[int]
    bad: Bad
    maybe_booleans: bool = True


def parse_json_lines(lines: list[tuple[int, bytes]]) -> ParsedLines:
    """The block's JSON rows, one `orjson.loads` per line (as fast as one call on the whole block, measured,
    and it names the bad lines)."""
    rows, positions, bad = [], [], []
    for position, (_, line) in enumerate(lines):
        try:
            rows.append(orjson.loads(line))
            positions.append(position)
        except orjson.JSONDecodeError as exc:
            bad.append((position, f"not valid JSON: {exc}"))
    return ParsedLines(rows, positions, bad, may_hold_booleans(b"\n".join(line for _, line in lines)))


def csv_parser(signature: ModelSignature) -> Callable[[list[tuple[int, bytes]]], ParsedLines]:
    spec = single_input(signature, "a CSV upload")
    if None in spec.shape:
        raise InvalidInput(
            f"a CSV upload cannot feed an input of shape {spec.describe()}",
            field="file",
            expected="NDJSON, or a model input without variable dimensions",
        )
    shape = spec.static_shape or ()  # every dimension is fixed: checked above
    width = math.prod(shape)

    def parse(lines: list[tuple[int, bytes]]) -> ParsedLines:
        try:
            values = np.loadtxt(
                io.BytesIO(b"\n".join(line for _, line in lines)),
                delimiter=",",
                dtype=np.float64,
                ndmin=2,
                comments=None,
            )
            if values.shape[1] == width:
                return ParsedLines(values.reshape(-1, *spec.shape), list(range(len(lines))), [])
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
            rows.append(row.reshape(shape))
            positions.append(position)
        return ParsedLines(np.array(rows, dtype=np.float64).reshape(-1, *spec.shape), positions, bad)

    return parse


def is_header(line: bytes) -> bool:
    try:
        np.array(line.split(b","), dtype=np.float64)
        return False
    except ValueError:
        return True


def npy_blocks(pieces: Iterator[bytes], spec: TensorSpec) -> Iterator[np.ndarray]:
    """Blocks of rows of an uploaded `.npy`, checked against its own header as they arrive."""
    buffer = bytearray()
    parsed = None
    for piece in pieces:
        buffer += piece
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
        raise InvalidInput(
            "the upload ends inside its .npy header", field="file", expected="an array saved with numpy.save"
        )
    rows = min(left, len(buffer) // row_bytes)
    if rows:  # the complete rows of a file that ends early
        yield np.frombuffer(buffer[: rows * row_bytes], dtype=dtype).reshape(rows, *row_shape)
        del buffer[: rows * row_bytes]
        left -= rows
    if left or buffer:
        what = (
            f"ends {left} rows short of the {shape[0]} its header declares"
            if left
            else (f"has {len(buffer)} bytes after its last row")
        )
        raise InvalidInput(f"the .npy file {what}", field="file", expected="a complete array saved with numpy.save")


def _check_npy_shape(dtype: np.dtype, shape: tuple[int, ...], spec: TensorSpec) -> tuple[int, ...]:
    if dtype.kind not in "biuf":
        raise InvalidInput(
            f"the .npy array has dtype {dtype.str}", field="file", expected=f"numbers, converted to {spec.dtype}"
        )
    row_shape = shape[1:]
    if (
        len(shape) < 1
        or len(row_shape) != len(spec.shape)
        or any(d is not None and d != g for d, g in zip(spec.shape, row_shape))
    ):
        raise InvalidInput(
            f"the .npy array has shape {list(shape)}",
            field="file",
            expected=f"shape [rows, ...] with rows of shape {spec.describe()}",
        )
    if not math.prod(row_shape):
        raise InvalidInput(
            f"the .npy array has shape {list(shape)}: its rows hold no values",
            field="file",
            expected=f"rows of shape {spec.describe()}",
        )
    return row_shape

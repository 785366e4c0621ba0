"""The `.npy` format, a row at a time: write arrays whose row count is known only at the end, build headers
for streamed responses, and read the header of an upload before its data has arrived.

Nothing here ever unpickles: object dtypes are refused wherever a header is read.
"""

from __future__ import annotations

import ast
import io
import math
import struct
from typing import BinaryIO

import numpy as np

MAGIC = b"\x93NUMPY"
# A fixed header size leaves room for any row count, so the header can be rewritten in place once the
# data is written. numpy itself pads headers to a multiple of 64 bytes; 128 keeps the data aligned.
HEADER_BYTES = 128
MAX_HEADER_BYTES = 10_000  # what numpy's own reader accepts by default


def header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A version 1.0 header of exactly HEADER_BYTES bytes for a C-ordered array of `dtype` and `shape`."""
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)})
    room = HEADER_BYTES - len(MAGIC) - 4 - 1
    if len(text) > room:
        raise ValueError(f"a .npy header for shape {shape} does not fit in {HEADER_BYTES} bytes")
    length = struct.pack("<H", HEADER_BYTES - len(MAGIC) - 4)
    return MAGIC + b"\x01\x00" + length + text.ljust(room).encode("latin1") + b"\n"


class NpyWriter:
    """Append rows of one dtype and row shape to a `.npy` file; `close()` writes the final row count."""

    def __init__(self, file: BinaryIO, dtype: np.dtype, row_shape: tuple[int, ...] | None = None) -> None:
        self.file = file
        self.dtype = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
        self.row_shape = row_shape
        self.rows = 0
        file.write(header(self.dtype, (0, *(row_shape or ()))))

    def append(self, rows: np.ndarray) -> None:
        """Write `rows` (first axis = rows); every call must have the same row shape."""
        if self.row_shape is None:
            self.row_shape = tuple(rows.shape[1:])
        if tuple(rows.shape[1:]) != self.row_shape:
            raise ValueError(f"rows of shape {list(rows.shape[1:])} cannot follow rows of shape {list(self.row_shape)}")
        self.file.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        """Rewrite the header with the final shape (the file stays open; its owner closes it)."""
        self.file.seek(0)
        self.file.write(header(self.dtype, (self.rows, *(self.row_shape or ()))))
        self.file.seek(0, io.SEEK_END)


class NpyHeaderError(ValueError):
    """The bytes do not start with a `.npy` header this service accepts; the message says why."""


def parse_header(prefix: bytes) -> tuple[np.dtype, tuple[int, ...], int] | None:
    """Read the header at the start of `prefix`: (dtype, shape, header length), or None if more bytes are needed.

    Raises:
        NpyHeaderError: not a .npy file, an object dtype (pickles are never loaded), or Fortran order.
    """
    if len(prefix) < 10:
        return None
    if not prefix.startswith(MAGIC):
        raise NpyHeaderError("the data does not start with the .npy magic string")
    major = prefix[6]
    if major == 1:
        start, (length,) = 10, struct.unpack("<H", prefix[8:10])
    elif major in (2, 3):
        if len(prefix) < 12:
            return None
        start, (length,) = 12, struct.unpack("<I", prefix[8:12])
    else:
        raise NpyHeaderError(f".npy format version {major} is not supported (expected 1, 2 or 3)")
    if length > MAX_HEADER_BYTES:
        raise NpyHeaderError(f"the .npy header is {length} bytes long (at most {MAX_HEADER_BYTES})")
    if len(prefix) < start + length:
        return None
    try:
        fields = ast.literal_eval(prefix[start : start + length].decode("utf-8" if major == 3 else "latin1"))
        dtype = np.dtype(np.lib.format.descr_to_dtype(fields["descr"]))
        shape = tuple(int(d) for d in fields["shape"])
        fortran = bool(fields["fortran_order"])
    except Exception as exc:  # literal_eval and descr_to_dtype raise many types for a bad header
        raise NpyHeaderError(f"the .npy header cannot be read: {exc}") from None
    if dtype.hasobject:
        raise NpyHeaderError("the .npy array holds Python objects; only numeric arrays are accepted (no pickles)")
    if fortran and len(shape) > 1:
        raise NpyHeaderError("the .npy array is in Fortran order; save a C-ordered array (np.ascontiguousarray)")
    return dtype, shape, start + length


def read_rows(file: BinaryIO, start: int, stop: int | None) -> np.ndarray:
    """Rows `start:stop` (Python slice rules) of the `.npy` array in the seekable `file`, as a writable array.

    Only the header and the rows' bytes are read: one seek and one read, which is a third of the time of
    memory-mapping the file for the 1,024 rows of a chunk. An object storage backend can do the same with
    a ranged read once it has the header.

    Raises:
        NpyHeaderError: not a `.npy` array this service accepts, or the file ends before the rows.
    """
    prefix = file.read(HEADER_BYTES)
    parsed = parse_header(prefix)
    if parsed is None:
        prefix += file.read(MAX_HEADER_BYTES + 12 - len(prefix))
        parsed = parse_header(prefix)
    if parsed is None:
        raise NpyHeaderError("the .npy header is cut short")
    dtype, shape, offset = parsed
    if not shape:
        raise NpyHeaderError("the .npy array has no rows (it is a single value)")
    first, end, _ = slice(start, stop).indices(shape[0])
    count = max(0, end - first)
    row_bytes = dtype.itemsize * math.prod(shape[1:])
    file.seek(offset + first * row_bytes)
    data = bytearray(count * row_bytes)
    if file.readinto(data) != len(data):  # type: ignore[attr-defined]  # every file we pass is a real file object
        raise NpyHeaderError(f"the .npy file ends before row {first + count} of {shape[0]}")
    return np.frombuffer(data, dtype=dtype).reshape((count, *shape[1:]))

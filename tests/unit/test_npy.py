"""The streaming .npy writer makes files numpy reads; the header reader refuses what it must."""

from __future__ import annotations

import io

import numpy as np
import pytest

from shared.npy import NpyHeaderError, NpyWriter, header, parse_header, read_rows


def saved(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_rows_appended_in_pieces_read_back_as_one_array():
    file = io.BytesIO()
    writer = NpyWriter(file, np.dtype(np.float32), (3,))
    writer.append(np.ones((2, 3)))
    writer.append(np.arange(3).reshape(1, 3))
    writer.close()
    array = np.load(io.BytesIO(file.getvalue()), allow_pickle=False)
    assert array.shape == (3, 3) and array.dtype == np.float32
    assert array[2].tolist() == [0, 1, 2]


def test_rows_of_another_shape_are_refused():
    writer = NpyWriter(io.BytesIO(), np.dtype(np.int64))
    writer.append(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="cannot follow rows of shape"):
        writer.append(np.zeros((1, 3)))


def test_a_header_is_read_from_a_prefix_and_needs_all_its_bytes():
    data = saved(np.zeros((5, 2), dtype="<i2"))
    assert parse_header(data[:20]) is None
    dtype, shape, offset = parse_header(data)
    assert (dtype, shape, data[offset:]) == (np.dtype("<i2"), (5, 2), b"\0" * 20)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"PK\x03\x04" + b"\0" * 200, "magic"),
        (header(np.dtype(object), (1,)), "Python objects"),
        (saved(np.asfortranarray(np.zeros((2, 3), np.float32))), "Fortran order"),
        (b"\x93NUMPY\x09\x00" + b"\0" * 100, "version 9"),
    ],
)
def test_headers_that_are_not_plain_numeric_arrays_are_refused(data, words):
    with pytest.raises(NpyHeaderError, match=words):
        parse_header(data)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(60, dtype=np.float32).reshape(20, 3),
        np.arange(20, dtype=">i4"),
        np.arange(40, dtype=np.float64).reshape(5, 2, 4),
        np.zeros((6, 0), np.float32),
    ],
)
@pytest.mark.parametrize(("start", "stop"), [(0, None), (2, 4), (3, 3), (-3, None), (4, 100), (0, -1)])
def test_rows_read_by_range_are_the_rows_numpy_slices(array, start, stop):
    rows = read_rows(io.BytesIO(saved(array)), start, stop)
    expected = array[start:stop]
    assert rows.dtype == array.dtype and rows.shape == expected.shape and np.array_equal(rows, expected)
    rows[...] = 0  # a copy of its own, detached from the file


def test_rows_are_read_past_a_long_header_and_from_our_own_writer():
    file = io.BytesIO()
    np.lib.format.write_array(file, np.arange(8, dtype=np.int16).reshape(4, 2), version=(2, 0))
    assert read_rows(io.BytesIO(file.getvalue()), 1, 3).tolist() == [[2, 3], [4, 5]]
    file = io.BytesIO()
    writer = NpyWriter(file, np.dtype(np.float32), (2,))
    writer.append(np.ones((3, 2)))
    writer.close()
    assert read_rows(io.BytesIO(file.getvalue()), 2, None).tolist() == [[1.0, 1.0]]


def test_a_file_cut_short_is_refused_naming_the_missing_row():
    data = saved(np.arange(10, dtype=np.float32))
    with pytest.raises(NpyHeaderError, match="ends before row 10 of 10"):
        read_rows(io.BytesIO(data[:-4]), 0, None)
    with pytest.raises(NpyHeaderError, match="cut short"):
        read_rows(io.BytesIO(data[:20]), 0, None)

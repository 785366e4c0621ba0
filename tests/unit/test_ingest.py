"""Uploads are parsed and validated row by row in bounded pieces, whatever the byte boundaries, and stored."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pytest

from api.bulk import formats
from api.bulk.ingest import ingest
from api.bulk.uploads import open_upload
from shared.batches import file_rows
from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from shared.signature import ModelSignature, TensorSpec
from shared.storage.layout import input_key, skipped_key, upload_errors_key
from shared.storage.local import LocalStorage

PIXELS = ModelSignature("m", "1", (TensorSpec("pixels", (4,), "float32"),), (TensorSpec("p", (2,), "float32"),))
TWO_INPUTS = ModelSignature(
    "m", "1", (TensorSpec("a", (2,), "float32"), TensorSpec("b", (), "int32")), (TensorSpec("p", (1,), "float32"),)
)


def pieces(data: bytes, size: int):
    return (data[i : i + size] for i in range(0, len(data), size))


def run(tmp_path, body: bytes, fmt: str, signature=PIXELS, skip=False, piece=7):
    storage = LocalStorage(str(tmp_path))
    stored, skipped = ingest(fmt, pieces(body, piece), storage, "b1", signature, lambda: skip)
    return storage, stored, skipped


ROWS = np.arange(20, dtype=np.float32).reshape(5, 4)


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
def test_ndjson_rows_are_stored_whatever_the_byte_boundaries(tmp_path, piece):
    body = b"\xef\xbb\xbf" + b"\r\n".join(orjson.dumps(r.tolist()) for r in ROWS) + b"\r\n\n"
    storage, stored, skipped = run(tmp_path, body, "ndjson", piece=piece)
    assert (stored.total_rows, stored.accepted_rows, skipped) == (5, 5, 0)
    np.testing.assert_array_equal(np.load(storage.path(input_key("b1", 0))), ROWS)


def test_csv_header_line_is_not_a_row(tmp_path):
    body = b"a,b,c,d\n" + b"\n".join(b",".join(str(v).encode() for v in r) for r in ROWS)
    storage, stored, _ = run(tmp_path, body, "csv")
    assert stored.total_rows == 5
    np.testing.assert_array_equal(np.load(storage.path(input_key("b1", 0))), ROWS)


def test_npy_rows_are_converted_to_the_models_dtype(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, ROWS.astype(">f8"))
    storage, stored, _ = run(tmp_path, buffer.getvalue(), "npy", piece=100)
    stored_rows = np.load(storage.path(input_key("b1", 0)), mmap_mode="r")
    assert stored_rows.dtype == np.float32 and stored.accepted_rows == 5
    np.testing.assert_array_equal(stored_rows, ROWS)


def test_bad_rows_are_named_by_row_and_line_and_the_upload_leaves_no_file(tmp_path):
    body = b"[1,2,3,4]\n[1,2]\n\n[1,2,3,NaN]\n[1,2,3,4]\n"
    with pytest.raises(InvalidInput) as rejected:
        run(tmp_path, body, "ndjson")
    assert [(d["row"], d["line"]) for d in rejected.value.details] == [(1, 2), (2, 4)]
    assert list(tmp_path.rglob("*.npy")) == []


def test_skipped_rows_go_to_the_error_file_and_keep_their_row_numbers(tmp_path):
    body = b'[1,2,3,4]\n[1,2]\n[5,6,7,8]\n"x"\n[9,9,9,9]\n'
    storage, stored, skipped = run(tmp_path, body, "ndjson", skip=True)
    assert (stored.total_rows, stored.accepted_rows, skipped) == (5, 3, 2)
    errors = [orjson.loads(line) for line in open(storage.path(upload_errors_key("b1")), "rb")]
    assert [e["row"] for e in errors] == [1, 3]
    skipped_rows = np.load(storage.path(skipped_key("b1")))
    assert file_rows(skipped_rows, 0, 3).tolist() == [0, 2, 4]


def test_lines_are_cut_into_blocks_of_block_rows_that_keep_their_line_numbers():
    lines = b"".join(b"[%d]\n" % i + (b"\n" if i % 100 == 0 else b"") for i in range(formats.BLOCK_ROWS * 2 + 3))
    blocks = list(formats.line_blocks(pieces(lines, 1 << 20)))  # one piece: more lines than a block holds
    assert [len(b) for b in blocks] == [formats.BLOCK_ROWS, formats.BLOCK_ROWS, 3]
    numbered = [pair for block in blocks for pair in block]
    assert [row for _, row in numbered] == [b"[%d]" % i for i in range(formats.BLOCK_ROWS * 2 + 3)]
    assert [number for number, _ in numbered] == [i + 1 + (i + 99) // 100 for i in range(len(numbered))]


def test_a_bad_row_after_the_first_block_is_named_by_its_row_and_line(tmp_path):
    rows = [orjson.dumps([float(i)] * 4) for i in range(formats.BLOCK_ROWS + 10)]
    rows[formats.BLOCK_ROWS + 5] = b"[1,2]"
    with pytest.raises(InvalidInput) as rejected:
        run(tmp_path, b"\n".join(rows) + b"\n", "ndjson", piece=1 << 20)
    assert [(d["row"], d["line"]) for d in rejected.value.details] == [(formats.BLOCK_ROWS + 5, formats.BLOCK_ROWS + 6)]


@pytest.mark.parametrize(
    "body",
    [
        b"[1,2,3,4],[5,6,7,8]\n[9,9,9,9]\n",  # two rows on one line
        b"[1,2,\n3,4]\n[9,9,9,9]\n",  # one row over two lines
        b'"x\ny"\n[9,9,9,9]\n',  # a string over two lines
    ],
)
def test_a_line_that_is_not_one_json_value_is_named(tmp_path, body):
    with pytest.raises(InvalidInput) as rejected:
        run(tmp_path, body, "ndjson")
    assert rejected.value.details[0]["line"] == 1


def test_booleans_are_refused_in_numeric_rows_whichever_line_holds_them(tmp_path):
    body = b"[1,2,3,4]\n[1,true,3,4]\n[5,6,7,8]\n"
    storage, stored, skipped = run(tmp_path, body, "ndjson", skip=True)
    assert (stored.accepted_rows, skipped) == (2, 1)
    error = orjson.loads(open(storage.path(upload_errors_key("b1")), "rb").readline())
    assert (error["row"], error["line"]) == (1, 2) and "true/false" in error["error"]


def test_rows_of_a_two_input_model_are_objects_keyed_by_input(tmp_path):
    body = b'{"a": [1, 2], "b": 3}\n{"a": [4, 5], "b": 6}\n'
    storage, stored, _ = run(tmp_path, body, "ndjson", signature=TWO_INPUTS)
    assert stored.input_names == ["a", "b"]
    assert np.load(storage.path(input_key("b1", 1))).tolist() == [3, 6]
    with pytest.raises(InvalidInput, match="one input"):
        run(tmp_path, b"1,2\n", "csv", signature=TWO_INPUTS)


def test_a_file_of_only_bad_rows_is_rejected_even_with_skip(tmp_path):
    with pytest.raises(InvalidInput, match="no valid rows"):
        run(tmp_path, b"[1]\n[2]\n", "ndjson", skip=True)


def test_multipart_upload_yields_the_file_and_its_fields():
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="on_error"\r\n\r\nskip\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="r.csv"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n1,2\n3,4\r\n--XyZ--\r\n"
    )
    upload = open_upload("multipart/form-data; boundary=XyZ", io.BytesIO(body), 10_000)
    assert upload.format == "csv"
    assert b"".join(upload.pieces) == b"1,2\n3,4"
    assert upload.fields == {"on_error": "skip"}


def test_upload_format_and_size_are_checked():
    with pytest.raises(UnsupportedMediaType):
        open_upload("application/json", io.BytesIO(b"[]"), 100)
    upload = open_upload("text/csv", io.BytesIO(b"1,2\n" * 100), 100)
    with pytest.raises(PayloadTooLarge):
        list(upload.pieces)

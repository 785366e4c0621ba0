"""The S3 backend against a real S3 HTTP server on loopback (moto's standalone server): multipart uploads in
bounded memory, ranged row reads, listing and deleting by prefix, and what an unreachable store raises."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from api import create_app
from api.services import services_of
from shared import storage
from shared.config import PROJECT_ROOT, Settings
from shared.npy import NpyWriter
from shared.signature import ModelSignature, TensorSpec
from shared.storage import StoreUnreachable
from shared.storage import s3 as s3_storage
from shared.storage.multipart import PART_BYTES
from shared.storage.s3 import S3Storage
from tests.support import advertise_model

SIGNATURE = ModelSignature("double", "1", (TensorSpec("x", (2,), "float32"),), (TensorSpec("y", (2,), "float32"),))


class Calls:
    """The S3 operations a client made (and the Range of each GetObject), from botocore's own events."""

    def __init__(self, client) -> None:
        self.names: list[str] = []
        self.ranges: list[str | None] = []
        client.meta.events.register("before-call.s3", self._seen)

    def _seen(self, model, params, **_) -> None:
        self.names.append(model.name)
        if model.name == "GetObject":
            self.ranges.append(params.get("headers", {}).get("Range"))


@pytest.fixture
def store(s3_bucket) -> S3Storage:
    return storage.from_settings(Settings().replace(storage_url=f"s3://{s3_bucket}/some/prefix"))


def write_npy(store: S3Storage, key: str, array: np.ndarray, block_rows: int) -> None:
    with store.create(key, new_prefix=True) as file:
        writer = NpyWriter(file, array.dtype, array.shape[1:])
        for start in range(0, len(array), block_rows):
            writer.append(array[start : start + block_rows])
        writer.close()


def test_storage_url_s3_picks_the_s3_backend_with_the_bucket_and_prefix(store, s3_bucket):
    assert isinstance(store, S3Storage)
    assert store.describe() == f"s3://{s3_bucket}/some/prefix/"


def test_a_large_npy_is_sent_as_a_multipart_upload_and_its_rewritten_header_is_the_final_one(
    store, s3_server, s3_bucket
):
    rows = np.arange(3 * PART_BYTES // 4, dtype=np.float32).reshape(-1, 64)  # 3 parts' worth of 256-byte rows
    calls = Calls(store.client)
    write_npy(store, "b1/input-0.npy", rows, 1000)
    # The head (part 1) is kept; part 2 goes once a full part's worth has followed it; the rest (part 3,
    # a little short of a part since part 2 ran over by up to one write) and the head go at the end.
    assert calls.names.count("UploadPart") == 3 and calls.names.count("CompleteMultipartUpload") == 1
    assert "PutObject" in calls.names  # the batch's marker only
    raw = s3_server.client().get_object(Bucket=s3_bucket, Key="some/prefix/b1/input-0.npy")["Body"].read()
    np.testing.assert_array_equal(np.load(io.BytesIO(raw)), rows)


def test_a_small_file_is_one_put(store):
    calls = Calls(store.client)
    with store.create("b1/errors-upload.ndjson", new_prefix=True) as file:
        file.write(b'{"row": 1, "error": "bad"}\n')
    assert "CreateMultipartUpload" not in calls.names and calls.names.count("PutObject") == 2  # marker + file
    with store.open("b1/errors-upload.ndjson") as body:
        assert body.read() == b'{"row": 1, "error": "bad"}\n'


def test_rows_are_read_with_ranged_gets_after_one_header_read(store):
    rows = np.arange(5000 * 3, dtype=np.int64).reshape(5000, 3)
    write_npy(store, "b1/input-0.npy", rows, 777)
    calls = Calls(store.client)
    np.testing.assert_array_equal(store.load_rows("b1/input-0.npy", 1024, 2048), rows[1024:2048])
    np.testing.assert_array_equal(store.load_rows("b1/input-0.npy", 4096, None), rows[4096:])
    assert store.load_rows("b1/input-0.npy", 10, 10).shape == (0, 3)
    header = "bytes=0-4095"
    first_row = 128 + 1024 * 24
    assert calls.ranges == [
        header,
        f"bytes={first_row}-{first_row + 1024 * 24 - 1}",
        f"bytes={128 + 4096 * 24}-{128 + 5000 * 24 - 1}",
    ]
    assert store.load_rows("b1/input-0.npy", 0, 2).flags.writeable


def test_a_file_that_fails_while_written_leaves_no_object_and_no_open_upload(store, s3_server, s3_bucket):
    with pytest.raises(RuntimeError):
        with store.create("b1/input-0.npy", new_prefix=True) as file:
            file.write(b"x" * (2 * PART_BYTES + 1))  # one part sent already
            raise RuntimeError("the upload broke off")
    assert store.list_keys("b1") == set()
    assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_listing_and_deleting_a_prefix_cover_every_page(store, monkeypatch):
    monkeypatch.setattr(s3_storage, "DELETE_BATCH", 3)
    for chunk in range(7):
        with store.create(f"b1/output-{chunk}.npz", new_prefix=chunk == 0) as file:
            file.write(b"npz")
    with store.create("b2/input-0.npy", new_prefix=True) as file:
        file.write(b"other batch")
    assert store.list_keys("b1") == {f"b1/output-{chunk}.npz" for chunk in range(7)}  # not the marker
    store.delete_prefix("b1")
    assert store.list_keys("b1") == set() and store.list_keys("b2") == {"b2/input-0.npy"}


def test_a_deleted_batch_does_not_come_back_with_a_late_file(store):
    write_npy(store, "b1/input-0.npy", np.zeros((4, 2), np.float32), 4)
    store.delete_prefix("b1")
    with pytest.raises(FileNotFoundError):
        with store.create("b1/output-0.npz") as file:
            file.write(b"late")
    assert store.list_keys("b1") == set()


def test_a_missing_object_is_file_not_found(store):
    with pytest.raises(FileNotFoundError):
        store.open("b1/nothing.ndjson")
    with pytest.raises(FileNotFoundError):
        store.load_rows("b1/nothing.npy", 0, 1)
    assert not store.exists("b1/nothing.npy")


def test_an_unreachable_or_missing_store_is_store_unreachable_naming_it(own_s3_server):
    store = storage.from_settings(Settings().replace(storage_url="s3://no-such-bucket/p"))
    with pytest.raises(StoreUnreachable, match="s3://no-such-bucket/p/"):
        with store.create("b1/input-0.npy", new_prefix=True) as file:
            file.write(b"x")
    bucket = own_s3_server.new_bucket()
    store = storage.from_settings(Settings().replace(storage_url=f"s3://{bucket}"))
    own_s3_server.stop()
    for call in (
        lambda: store.list_keys("b1"),
        lambda: store.load_rows("b1/input-0.npy", 0, 1),
        lambda: store.delete_prefix("b1"),
    ):
        with pytest.raises(StoreUnreachable, match=f"s3://{bucket}/ is not reachable"):
            call()


def test_a_bug_while_uploading_a_part_is_raised_as_itself_not_as_an_outage(store, monkeypatch, s3_server, s3_bucket):
    def broken_part(**_):
        raise TypeError("a bug of ours, not the store's")

    monkeypatch.setattr(store.client, "upload_part", broken_part)
    with pytest.raises(TypeError, match="a bug of ours"):
        with store.create("b1/input-0.npy", new_prefix=True) as file:
            file.write(b"x" * (2 * PART_BYTES + 1))  # a part is sent during the write
    assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_a_bug_while_committing_is_raised_as_itself_not_as_an_outage(store, monkeypatch):
    def broken_put(**_):
        raise TypeError("a bug of ours, not the store's")

    with store.create("b1/input-0.npy", new_prefix=True) as file:
        file.write(b"first")
    monkeypatch.setattr(store.client, "put_object", broken_put)
    with pytest.raises(TypeError, match="a bug of ours"):
        with store.create("b1/errors-upload.ndjson") as file:
            file.write(b"small: one PUT at commit")


def test_the_api_answers_a_bug_in_the_storage_path_with_a_500_not_a_503(s3_bucket, redis_db, monkeypatch):
    """A TypeError of ours in the upload path is a bug report (500), not "the store is down, retry" (503)."""
    kwargs = redis_db.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
    app = create_app(Settings.from_env({}).replace(redis_url=url, storage_url=f"s3://{s3_bucket}/api"))
    advertise_model(redis_db, SIGNATURE)

    client = services_of(app).storage.client
    put_marker = client.put_object

    def broken_put(**kwargs):  # the batch's marker is written; its files hit a bug of ours
        if kwargs["Key"].endswith(s3_storage.MARKER):
            return put_marker(**kwargs)
        raise TypeError("a bug of ours, not the store's")

    monkeypatch.setattr(client, "put_object", broken_put)
    answer = app.test_client().post(
        "/batches", data=b'{"x": [1.0, 2.0]}\n', headers={"Content-Type": "application/x-ndjson"}
    )
    assert answer.status_code == 500, answer.get_data(as_text=True)
    assert "Retry-After" not in answer.headers


def test_the_lifecycle_rule_in_the_docs_is_accepted_by_the_s3_api(s3_server, s3_bucket):
    with open(os.path.join(PROJECT_ROOT, "docs", "object-storage.md")) as f:
        rule = json.loads(f.read().split("```json\n", 1)[1].split("```", 1)[0])
    client = s3_server.client()
    client.put_bucket_lifecycle_configuration(Bucket=s3_bucket, LifecycleConfiguration=rule)
    (stored,) = client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]
    assert stored["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}

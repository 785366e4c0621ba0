"""Batch files in an S3 bucket (AWS S3, MinIO, Ceph, R2, GCS's S3 interface...), behind `shared.storage.Storage`.

boto3 finds credentials and the endpoint itself (its standard chain: AWS_ACCESS_KEY_ID..., AWS_PROFILE,
instance roles; AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 for a store other than AWS). Uploads are multipart
(`shared/storage/multipart.py`), rows are read with ranged GETs of the `.npy` (its header read once per key), and a
batch is deleted by listing its prefix and deleting up to 1000 keys per request.

A batch's prefix holds a marker object, written when its upload starts: a file written later (a chunk's
outputs) appears only if the marker is still there, so an expired batch does not come back with one late
file. (A write racing the delete itself can still leave an object; the bucket's lifecycle rule removes it.)
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, BinaryIO

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.npy import MAX_HEADER_BYTES, parse_header
from shared.storage import StoreUnreachable, check_key
from shared.storage.multipart import MultipartUpload

MARKER = ".batch"  # the object that says a batch's prefix exists
HEADER_READ = 4096  # the first ranged GET of a .npy: our headers are 128 bytes, numpy's rarely over 4 KiB
HEADER_CACHE = 1024  # .npy headers remembered (keys are written once, so a cached header never goes stale)
DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
MISSING = {"NoSuchKey", "404", "NotFound"}
# Each call is tried 3 times (botocore's standard mode) within seconds, so that an outage shows as an error
# promptly rather than as a request hanging; the caller's own retry (a chunk's attempts, a client's
# Retry-After) covers longer ones.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60, max_pool_connections=64
)


class S3Storage:
    """Blobs as objects under `s3://bucket/prefix/`."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.client = client or boto3.session.Session().client("s3", config=CLIENT_CONFIG)
        self._headers: OrderedDict[str, tuple[np.dtype, tuple[int, ...], int]] = OrderedDict()
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _error(self, exc: BotoCoreError | ClientError, key: str = "") -> OSError:
        """The OSError for a boto3 failure: FileNotFoundError for a missing object, else StoreUnreachable.

        Only the storage client's own errors come here; any other exception is a bug and propagates as is.
        """
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING:
                return FileNotFoundError(f"{self.describe()}{key} does not exist")
            return StoreUnreachable(f"the object store {self.describe()} refused the request ({code}): {exc}")
        return StoreUnreachable(f"the object store {self.describe()} is not reachable: {exc}")

    @contextlib.contextmanager
    def _calls(self, key: str = "") -> Iterator[None]:
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key) from exc

    @contextlib.contextmanager
    def create(self, key: str, new_prefix: bool = False) -> Iterator[BinaryIO]:
        batch = check_key(key).split("/", 1)[0]
        if new_prefix:
            with self._calls(key):
                self.client.put_object(Bucket=self.bucket, Key=self._name(f"{batch}/{MARKER}"), Body=b"")
        upload = MultipartUpload(self.client, self.bucket, self._name(key), lambda exc: self._error(exc, key))
        try:
            yield upload  # type: ignore[misc]
            if not new_prefix and not self.exists(f"{batch}/{MARKER}"):
                raise FileNotFoundError(f"batch {batch} was deleted from {self.describe()}; {key} is not written")
            upload.commit()
        except BaseException:
            upload.abort()
            raise

    def open(self, key: str) -> BinaryIO:
        with self._calls(key):
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]

    def exists(self, key: str) -> bool:
        try:
            with self._calls(key):
                self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except FileNotFoundError:
            return False
        return True

    def _range(self, key: str, first: int, last: int) -> bytes:
        """Bytes first..last (inclusive) of an object."""
        with self._calls(key):
            reply = self.client.get_object(Bucket=self.bucket, Key=self._name(key), Range=f"bytes={first}-{last}")
            return reply["Body"].read()

    def _header(self, key: str) -> tuple[np.dtype, tuple[int, ...], int]:
        """(dtype, shape, data offset) of a stored `.npy`, from one small ranged GET the first time."""
        with self._lock:
            if key in self._headers:
                self._headers.move_to_end(key)
                return self._headers[key]
        prefix = self._range(key, 0, HEADER_READ - 1)
        parsed = parse_header(prefix)
        if parsed is None and len(prefix) == HEADER_READ:
            parsed = parse_header(self._range(key, 0, MAX_HEADER_BYTES + 16))
        if parsed is None:
            raise ValueError(f"{self.describe()}{key} is not a complete .npy file")
        with self._lock:
            self._headers[key] = parsed
            while len(self._headers) > HEADER_CACHE:
                self._headers.popitem(last=False)
        return parsed

    def load_rows(self, key: str, start: int, stop: int | None) -> np.ndarray:
        dtype, shape, offset = self._header(key)
        start, stop, _ = slice(start, stop).indices(shape[0] if shape else 0)
        row_shape = shape[1:]
        row_bytes = dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
        count = max(0, stop - start)
        if count == 0 or row_bytes == 0:
            return np.zeros((count, *row_shape), dtype)
        data = self._range(key, offset + start * row_bytes, offset + stop * row_bytes - 1)
        if len(data) != count * row_bytes:
            raise ValueError(f"{self.describe()}{key}: expected {count * row_bytes} bytes of rows, got {len(data)}")
        return np.frombuffer(bytearray(data), dtype).reshape(count, *row_shape)

    def load_arrays(self, key: str) -> dict[str, np.ndarray]:
        with self._calls(key):
            data = self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"].read()
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}

    def _listing(self, prefix: str) -> Iterator[str]:
        """Every object name under `prefix/`, page by page."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._name(prefix) + "/"
        )
        with self._calls(prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"]

    def list_keys(self, prefix: str) -> set[str]:
        names = (name[len(self.prefix) :] for name in self._listing(prefix))
        return {key for key in names if not key.rsplit("/", 1)[-1].startswith(".")}

    def delete_prefix(self, prefix: str) -> None:
        names = list(self._listing(prefix))
        for start in range(0, len(names), DELETE_BATCH):
            batch = [{"Key": name} for name in names[start : start + DELETE_BATCH]]
            with self._calls(prefix):
                reply = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if reply.get("Errors"):
                first = reply["Errors"][0]
                raise StoreUnreachable(
                    f"the object store {self.describe()} did not delete {len(reply['Errors'])} "
                    f"object(s) of {prefix}, e.g. {first.get('Key')}: {first.get('Code')}"
                )

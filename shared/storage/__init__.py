"""Where batch files live: a small interface over named blobs, and the
one factory that picks the backend from STORAGE_URL: `local.py` (a directory), `s3.py` (a bucket, written through
`multipart.py`); `layout.py` names the files of a batch.

The API writes uploads and reads results through it; workers read input rows and write outputs. Only
these few operations are used, so an object store maps onto them directly: `create` is a multipart
upload, `load_rows` a ranged GET, `list_keys` a listing, `delete_prefix` a listing and bulk delete.
Keys are relative paths such as `<batch id>/input-0.npy`.

Errors: a missing blob is FileNotFoundError; a store that cannot be reached or refuses a request is
StoreUnreachable. Both are OSError, so callers that only care that storage failed catch OSError.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import BinaryIO, Protocol

import numpy as np

from shared.config import Settings

_KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")


class StoreUnreachable(OSError):
    """The object store did not answer, or refused the request (credentials, bucket, 5xx); worth a retry later."""


def check_key(key: str) -> str:
    """`key` if it is a relative path of letters, digits, '-', '_' and '.', without '..'; else ValueError."""
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"storage key {key!r} is not a relative path of letters, digits, '-', '_' and '.'")
    return key


class Storage(Protocol):
    """Named blobs shared by the API and the workers."""

    def create(self, key: str, new_prefix: bool = False) -> contextlib.AbstractContextManager[BinaryIO]:
        """A writable, seekable file that appears under `key` only if the block exits without an error.

        Only with `new_prefix` may its prefix (the batch) be new; otherwise a deleted batch stays deleted
        (FileNotFoundError) instead of coming back with one late file.
        """

    def open(self, key: str) -> BinaryIO:
        """Read a blob; raises FileNotFoundError if it does not exist."""

    def exists(self, key: str) -> bool:
        """Whether a blob exists."""

    def load_rows(self, key: str, start: int, stop: int | None) -> np.ndarray:
        """Rows `start:stop` of a stored `.npy` array, read without loading the rest."""

    def load_arrays(self, key: str) -> dict[str, np.ndarray]:
        """All arrays of a stored `.npz` file."""

    def list_keys(self, prefix: str) -> set[str]:
        """The keys of every complete blob under `prefix/`, in one listing (empty if there are none)."""

    def delete_prefix(self, prefix: str) -> None:
        """Delete every blob under `prefix/` (missing is fine)."""

    def describe(self) -> str:
        """Where the blobs are, for messages: a directory or an s3:// URL."""


def from_settings(settings: Settings) -> Storage:
    """The storage every process uses: STORAGE_URL's bucket, its directory, or `DATA_DIR/batches`."""
    if settings.storage_url.startswith("s3://"):
        from shared.storage.s3 import (
            S3Storage,  # boto3 is imported only by processes that use it
        )

        return S3Storage(settings.storage_bucket, settings.storage_prefix)
    from shared.storage.local import LocalStorage

    return LocalStorage(settings.storage_url or os.path.join(settings.data_dir, "batches"))

"""One object written as a stream: a file-like object that sends an S3 multipart upload part by part, so an
object of any size is written in bounded memory (about two parts: the head and the part being filled).

Our `.npy` writer rewrites its header once the row count is known, so the first part is kept in memory
until the end: writes may seek back into it, and it is uploaded last (as part 1). An object that never
outgrows one part is sent with a single PUT instead.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

# What the storage client raises for a failed request. Only these become the store's OSError: anything else
# (a TypeError of ours) is a bug, and must surface as one rather than as "the store is down, retry".
CLIENT_ERRORS = (BotoCoreError, ClientError)
# S3 parts are 5 MiB to 5 GiB (but the last); 8 MiB is what the AWS CLI uses. 10,000 parts of 8 MiB
# (78 GiB) is far above MAX_BATCH_BYTES.
PART_BYTES = 8 * 1024 * 1024


class MultipartUpload(io.RawIOBase):
    """A writable stream into `bucket`/`key`; `commit()` makes the object appear, `abort()` leaves none.

    Seeking is allowed anywhere within the first PART_BYTES (kept in memory) and to the end.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        translate: Callable[[BotoCoreError | ClientError], OSError],
        part_bytes: int = PART_BYTES,
    ) -> None:
        super().__init__()
        self.client, self.bucket, self.key, self.translate = client, bucket, key, translate
        self.part_bytes = part_bytes
        self.head = bytearray()  # part 1, kept until commit so that its start can be rewritten
        self.tail = bytearray()  # the part being filled
        self.size = 0
        self.position = 0
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = (
            offset if whence == io.SEEK_SET else self.size + offset if whence == io.SEEK_END else self.position + offset
        )
        if target != self.size and not 0 <= target <= len(self.head):
            raise io.UnsupportedOperation(
                f"an S3 upload can seek within its first {self.part_bytes} bytes or to its end"
            )
        self.position = target
        return target

    def write(self, data: Any) -> int:
        data = memoryview(data).cast("B")
        if self.position < self.size:  # rewriting the start of the object (a header)
            end = self.position + len(data)
            if end > len(self.head):
                raise io.UnsupportedOperation(f"an S3 upload can rewrite only its first {self.part_bytes} bytes")
            self.head[self.position : end] = data
            self.position = end
            return len(data)
        room = max(0, self.part_bytes - len(self.head))  # the head fills first, then parts 2, 3...
        self.head += data[:room]
        self.tail += data[room:]
        self.size += len(data)
        self.position = self.size
        if len(self.tail) >= self.part_bytes:  # a part may exceed PART_BYTES by one write: S3 takes any size
            body, self.tail = self.tail, bytearray()  # sent as is, not copied
            self._send_part(body)
        return len(data)

    def _send_part(self, body: bytearray, number: int | None = None) -> None:
        try:
            if self.upload_id is None:
                self.upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
            number = number or len(self.parts) + 2  # part 1 is the head, sent at commit
            reply = self.client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
            )
        except CLIENT_ERRORS as exc:
            raise self.translate(exc) from exc
        self.parts.append({"PartNumber": number, "ETag": reply["ETag"]})

    def commit(self) -> None:
        """Make the object appear with everything written (one PUT, or the last parts and the completion)."""
        try:
            if self.upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self.head + self.tail)
                return
            if self.tail:
                self._send_part(self.tail)
            self._send_part(self.head, number=1)
            parts = sorted(self.parts, key=lambda part: part["PartNumber"])
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
            )
        except CLIENT_ERRORS as exc:
            raise self.translate(exc) from exc
        finally:
            self.head, self.tail = bytearray(), bytearray()

    def abort(self) -> None:
        """Drop what was sent; best effort (the bucket's lifecycle rule removes uploads left incomplete)."""
        self.head, self.tail = bytearray(), bytearray()
        if self.upload_id is not None:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            except (
                CLIENT_ERRORS
            ) as exc:  # the store is down: the lifecycle rule's AbortIncompleteMultipartUpload cleans up
                log.warning("could not abort the multipart upload of %s: %s", self.key, exc)

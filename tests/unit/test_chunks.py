"""A chunk whose outputs cannot be written fails as storage_failed, with an error line per row."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import orjson

from shared.batches import ChunkSpec
from shared.schema import ErrorCode
from shared.storage.layout import chunk_errors_key
from worker.chunks import ChunkFiles
from worker.claim import Claim


class FullDisk:
    """Storage whose output files cannot be written; error files land in memory."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    @contextlib.contextmanager
    def create(self, key, new_prefix=False):
        if "/output-" in key:
            raise OSError(28, "No space left on device")
        buffer = io.BytesIO()
        yield buffer
        self.files[key] = buffer.getvalue()

    def exists(self, key):
        return False


def test_a_chunk_whose_outputs_cannot_be_written_fails_with_storage_failed():
    storage = FullDisk()
    claimed = Claim(id="b1-0", queue_index=1, lease="b1-0:t", rows=2, chunk=ChunkSpec("b1", 0, 0, 2, ("pixels",)))
    claimed.outputs.append({"probabilities": np.zeros((2, 10), np.float32)})
    claimed.done_rows = 2
    assert ChunkFiles(storage, records=None).save(claimed) == (0, 2)
    assert claimed.error.code is ErrorCode.STORAGE_FAILED and "No space left" in claimed.error.message
    lines = storage.files[chunk_errors_key("b1", 0)].splitlines()
    assert [orjson.loads(line)["row"] for line in lines] == [0, 1]

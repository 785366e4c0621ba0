"""The files of one batch in storage, all under `<batch id>/`: their names and the chunk outputs' format."""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np


def input_key(batch_id: str, index: int) -> str:
    """The accepted rows of the model's `index`-th input, a `.npy` array."""
    return f"{batch_id}/input-{index}.npy"


def skipped_key(batch_id: str) -> str:
    """The file row numbers of the rows skipped at upload (sorted int64 `.npy`); only when there are some."""
    return f"{batch_id}/skipped.npy"


def upload_errors_key(batch_id: str) -> str:
    """NDJSON {row, line, error} of the rows skipped at upload (on_error=skip)."""
    return f"{batch_id}/errors-upload.ndjson"


def output_key(batch_id: str, chunk: int) -> str:
    """One finished chunk's outputs, a `.npz` with one array per model output."""
    return f"{batch_id}/output-{chunk}.npz"


def chunk_errors_key(batch_id: str, chunk: int) -> str:
    """NDJSON {row, error} for every row of a chunk that failed in the worker."""
    return f"{batch_id}/errors-{chunk}.ndjson"


# Output arrays are stored under this prefix in a chunk's `.npz`, so that no output name can collide with
# an argument of numpy.savez (an output called "file", say).
OUTPUT_PREFIX = "output."


def write_outputs(file: BinaryIO, outputs: dict[str, np.ndarray]) -> None:
    """Write one chunk's outputs (one array per model output) as an uncompressed `.npz`, front to back."""
    # zipfile seeks back to each member's header; an object-store upload cannot seek far, so the archive
    # is built in memory (a chunk's outputs are in memory already) and written in one go.
    buffer = io.BytesIO()
    np.savez(buffer, **{OUTPUT_PREFIX + name: array for name, array in outputs.items()})  # type: ignore[arg-type]
    file.write(buffer.getbuffer())


def read_outputs(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs of a chunk from the arrays of its `.npz`, by output name, in model order."""
    return {name[len(OUTPUT_PREFIX) :]: array for name, array in arrays.items() if name.startswith(OUTPUT_PREFIX)}

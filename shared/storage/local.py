"""Batch files as files in a local directory (or a shared volume): the default storage."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from shared.npy import read_rows
from shared.storage import check_key


class LocalStorage:
    """Blobs as files under `root`, written to a temporary name and renamed, so readers never see half a file."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)

    def path(self, key: str) -> str:
        return os.path.join(self.root, check_key(key))

    @contextlib.contextmanager
    def create(self, key: str, new_prefix: bool = False) -> Iterator[BinaryIO]:
        final = self.path(key)
        if new_prefix:
            os.makedirs(os.path.dirname(final), exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(final), prefix=".part-")
        try:
            with os.fdopen(fd, "w+b") as file:
                yield file
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def exists(self, key: str) -> bool:
        return os.path.exists(self.path(key))

    def load_rows(self, key: str, start: int, stop: int | None) -> np.ndarray:
        with open(self.path(key), "rb") as file:
            return read_rows(file, start, stop)  # reads only the header and the rows asked for

    def load_arrays(self, key: str) -> dict[str, np.ndarray]:
        with np.load(self.path(key), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}

    def list_keys(self, prefix: str) -> set[str]:
        try:
            names = os.listdir(self.path(prefix))
        except FileNotFoundError:
            return set()
        return {f"{prefix}/{name}" for name in names if not name.startswith(".")}  # .part-*: still being written

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def describe(self) -> str:
        return self.root

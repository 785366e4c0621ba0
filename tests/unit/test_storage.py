"""Local storage: files appear whole or not at all, deleted batches stay deleted, rows are read by range."""

from __future__ import annotations

import numpy as np
import pytest

from shared.storage.local import LocalStorage


def test_a_file_appears_only_when_its_block_succeeds(tmp_path):
    storage = LocalStorage(str(tmp_path))
    with pytest.raises(RuntimeError):
        with storage.create("b1/x.npy", new_prefix=True) as file:
            file.write(b"half")
            raise RuntimeError("upload broke off")
    assert not storage.exists("b1/x.npy") and list((tmp_path / "b1").iterdir()) == []
    with storage.create("b1/x.npy", new_prefix=True) as file:
        np.save(file, np.arange(10).reshape(5, 2))
    assert storage.load_rows("b1/x.npy", 1, 3).tolist() == [[2, 3], [4, 5]]


def test_a_deleted_batch_does_not_come_back_with_a_late_file(tmp_path):
    storage = LocalStorage(str(tmp_path))
    with storage.create("b1/input-0.npy", new_prefix=True) as file:
        file.write(b"x")
    storage.delete_prefix("b1")
    with pytest.raises(FileNotFoundError):
        with storage.create("b1/output-0.npz"):
            pass
    assert not (tmp_path / "b1").exists()


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "b1/../../x", "b1//x"])
def test_keys_cannot_leave_the_storage_root(tmp_path, key):
    with pytest.raises(ValueError):
        LocalStorage(str(tmp_path)).path(key)


def test_listing_a_batch_names_its_complete_files_only(tmp_path):
    storage = LocalStorage(str(tmp_path))
    with storage.create("b1/input-0.npy", new_prefix=True) as file:
        file.write(b"x")
        assert storage.list_keys("b1") == set()  # still being written
    assert storage.list_keys("b1") == {"b1/input-0.npy"} and storage.list_keys("b2") == set()


def test_storage_url_picks_a_directory_or_data_dir(tmp_path):
    from shared.config import Settings
    from shared.storage import from_settings

    assert from_settings(Settings(data_dir=str(tmp_path))).describe() == str(tmp_path / "batches")
    assert from_settings(Settings(storage_url=str(tmp_path / "shared"))).describe() == str(tmp_path / "shared")

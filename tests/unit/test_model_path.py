"""MODEL_PATH resolves a model file, a SavedModel, or TF Serving's `<base>/<name>/<version>/` layout."""

from __future__ import annotations

import pytest

from worker.model.path import ModelPathError, locate_model


def _saved_model(path):
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    return path


def test_a_model_file_is_named_after_itself_with_version_1(tmp_path):
    (tmp_path / "digits.keras").write_bytes(b"")
    found = locate_model(str(tmp_path / "digits.keras"))
    assert (found.path, found.name, found.version) == (str(tmp_path / "digits.keras"), "digits", "1")


def test_a_base_directory_serves_its_highest_numbered_version(tmp_path):
    base = tmp_path / "sentiment"
    for version in ("1", "2", "10"):
        _saved_model(base / version)
    (base / "99-tmp").mkdir()  # not a number: ignored, as TF Serving does
    found = locate_model(str(base))
    assert (found.path, found.name, found.version) == (str(base / "10"), "sentiment", "10")


def test_a_version_directory_may_hold_one_keras_file(tmp_path):
    version = tmp_path / "multi" / "3"
    version.mkdir(parents=True)
    (version / "model.keras").write_bytes(b"")
    for path in (tmp_path / "multi", version):
        found = locate_model(str(path))
        assert (found.path, found.name, found.version) == (str(version / "model.keras"), "multi", "3")


def test_a_version_directory_that_is_a_saved_model_names_the_model_after_its_parent(tmp_path):
    version = _saved_model(tmp_path / "resnet" / "7")
    found = locate_model(str(version))
    assert (found.path, found.name, found.version) == (str(version), "resnet", "7")


def test_a_plain_saved_model_directory_is_version_1(tmp_path):
    path = _saved_model(tmp_path / "exported")
    assert locate_model(str(path)).version == "1"


def test_model_name_and_model_version_settings_win_over_the_path(tmp_path):
    _saved_model(tmp_path / "m" / "4")
    found = locate_model(str(tmp_path / "m"), name="prod", version="2024-06")
    assert (found.name, found.version) == ("prod", "2024-06")


def test_a_version_directory_with_two_model_files_is_refused_naming_them(tmp_path):
    version = tmp_path / "m" / "1"
    version.mkdir(parents=True)
    (version / "a.keras").write_bytes(b"")
    (version / "b.h5").write_bytes(b"")
    with pytest.raises(ModelPathError, match=r"2 model files \(a.keras, b.h5\)"):
        locate_model(str(tmp_path / "m"))

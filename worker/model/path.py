"""Find the model file, name and version from MODEL_PATH, including TensorFlow Serving's layout.

TF Serving keeps each version of a model in a numbered directory: `<base>/<name>/<version>/`. MODEL_PATH
may point at:
  - a model: a `.keras`/`.h5` file or a SavedModel directory (name: its file name; version "1");
  - a model's base directory `<base>/<name>/` holding numbered version directories: the highest number
    is served (TF Serving's default "latest" policy), named `<name>`;
  - one version directory `<base>/<name>/<version>/`.
A version directory holds a SavedModel (`saved_model.pb` at its top) or exactly one `.keras`/`.h5` file.
MODEL_NAME and MODEL_VERSION, when set, win over what the path says. No TensorFlow here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
DEFAULT_VERSION = "1"


class ModelPathError(ValueError):
    """MODEL_PATH does not lead to one model; the message names the path and what was expected."""


@dataclass(frozen=True)
class ModelLocation:
    """Where the model is and what to call it."""

    path: str
    name: str
    version: str


def is_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def version_dirs(base: str) -> dict[int, str]:
    """Numbered subdirectories of `base` (TF Serving ignores the others, and so do we)."""
    found = {}
    for entry in os.listdir(base):
        full = os.path.join(base, entry)
        if entry.isdigit() and os.path.isdir(full):
            found[int(entry)] = full
    return found


def model_in_version_dir(version_dir: str) -> str:
    """The SavedModel directory itself, or its one Keras file."""
    if is_saved_model(version_dir):
        return version_dir
    files = sorted(f for f in os.listdir(version_dir) if f.endswith(KERAS_SUFFIXES))
    if len(files) != 1:
        raise ModelPathError(
            f"version directory {version_dir!r} holds {len(files)} model files ({', '.join(files) or 'none'}): "
            "expected a SavedModel (saved_model.pb) or exactly one .keras/.h5 file"
        )
    return os.path.join(version_dir, files[0])


def locate_model(model_path: str, name: str = "", version: str = "") -> ModelLocation:
    """Resolve MODEL_PATH (and MODEL_NAME / MODEL_VERSION overrides) to the model to load.

    A path that does not exist is passed through: the loader reports it with the expected forms.
    """
    path = os.path.normpath(model_path)
    base_name = os.path.basename(path)
    parent_name = os.path.basename(os.path.dirname(path))
    if os.path.isdir(path) and not is_saved_model(path):
        versions = version_dirs(path)
        if versions:  # <base>/<name>/ with numbered versions: serve the highest
            latest = max(versions)
            found = ModelLocation(model_in_version_dir(versions[latest]), base_name, str(latest))
        elif base_name.isdigit():  # <base>/<name>/<version>/ holding a Keras file
            found = ModelLocation(model_in_version_dir(path), parent_name or "model", base_name)
        else:
            found = ModelLocation(path, base_name or "model", DEFAULT_VERSION)
    elif os.path.isdir(path) and base_name.isdigit():  # <base>/<name>/<version>/ as a SavedModel
        found = ModelLocation(path, parent_name or "model", base_name)
    else:
        found = ModelLocation(path, os.path.splitext(base_name)[0] or "model", DEFAULT_VERSION)
    return ModelLocation(found.path, name or found.name, version or found.version)

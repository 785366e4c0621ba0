"""Model versions for tests of many models and versions: a tiny Keras model whose answer is its version number
(so a wrong-version answer shows in the value itself, not only in the result's `model.version`), a broken
version, and a TF Serving model config file. Version directories appear atomically (written aside, then
renamed), as a deployment should add them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from shared.config import PROJECT_ROOT

TESTDATA = Path(PROJECT_ROOT) / "tests" / "data" / "tfserving"
HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu"
DIGITS = Path(PROJECT_ROOT) / "models" / "digits.keras"


def add_constant_version(base: Path, version: int) -> Path:
    """`<base>/<version>/model.keras`: one input `x` of shape [1]; its one output is `version`, whatever x."""
    import keras

    inputs = keras.Input(shape=(1,), name="x")
    dense = keras.layers.Dense(
        1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(float(version)), name="y"
    )
    aside = base / f".incoming-{version}"
    aside.mkdir(parents=True)
    keras.Model(inputs, dense(inputs)).save(aside / "model.keras")
    return _rename_into_place(aside, base / str(version))


def add_broken_version(base: Path, version: int) -> Path:
    """`<base>/<version>/` holding a saved_model.pb that is no SavedModel: its load fails."""
    aside = base / f".incoming-{version}"
    aside.mkdir(parents=True)
    (aside / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    return _rename_into_place(aside, base / str(version))


def add_digits(base: Path, version: int = 1) -> Path:
    """The digits model as `<base>/<version>/digits.keras`."""
    aside = base / f".incoming-{version}"
    aside.mkdir(parents=True)
    shutil.copy(DIGITS, aside / "digits.keras")
    return _rename_into_place(aside, base / str(version))


def add_half_plus_two(base: Path) -> Path:
    """TF Serving's half_plus_two test SavedModel as `<base>/123/`."""
    base.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(HALF_PLUS_TWO / "00000123", base / "123"))


def write_config(path: Path, models: list[tuple[str, Path, str]]) -> Path:
    """A TF Serving model config file: (name, base path, extra fields in text format) per model."""
    entries = "".join(
        f'  config {{\n    name: "{name}"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n    {extra}\n  }}\n'
        for name, base, extra in models
    )
    path.write_text(f"model_config_list {{\n{entries}}}\n")
    return path


def _rename_into_place(aside: Path, final: Path) -> Path:
    os.rename(aside, final)
    return final

"""Train the example model: a small Keras CNN on scikit-learn's bundled digits (8x8 images, 10 classes).

Rows are the 64 pixel values (0-16) that `sklearn.datasets.load_digits().data` gives, so a client can
send a dataset row as is; the model reshapes them to 8x8x1 itself. Nothing is downloaded.

Usage: python -m models.build_digits [OUTPUT_PATH]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

DEFAULT_OUTPUT = os.path.join(os.path.dirname(__file__), "digits.keras")
MIN_ACCURACY = 0.95


def build_model() -> keras.Model:
    """The CNN: 64 pixels in, 10 class probabilities out."""
    inputs = keras.Input(shape=(64,), dtype="float32", name="pixels")
    x = keras.layers.Rescaling(1.0 / 16.0)(inputs)
    x = keras.layers.Reshape((8, 8, 1))(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digits")


def train(output_path: str = DEFAULT_OUTPUT, seed: int = 0) -> float:
    """Train, check held-out accuracy, save as .keras; returns the accuracy."""
    keras.utils.set_random_seed(seed)
    digits = load_digits()
    x = digits.data.astype("float32")
    y = digits.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=30, batch_size=32, verbose=0)
    accuracy = float(np.mean(np.argmax(model(x_test, training=False), axis=1) == y_test))
    if accuracy < MIN_ACCURACY:
        raise SystemExit(f"held-out accuracy {accuracy:.3f} is below the required {MIN_ACCURACY}")
    model.save(output_path)
    return accuracy


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUTPUT
    acc = train(path)
    print(f"saved {path} (held-out accuracy {acc:.3f}, {os.path.getsize(path) / 1024:.0f} KiB)")

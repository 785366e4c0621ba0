"""The ceiling benchmark's stand-in model: the digits model's input and output, and next to no compute.

`pixels` (64 float32) → one 64×10 Dense layer with softmax → `probabilities` (10): the call costs what the
TensorFlow runtime costs to enter, so what the service shows with it is the queue path's own ceiling (HTTP,
validation, Redis, the worker loop, decoding and encoding rows). A test double for the model only: the
worker loads and runs it like any model. Usage: python -m bench.null_model OUTPUT.keras
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

INPUTS = 64
CLASSES = 10


def build_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    pixels = keras.Input(shape=(INPUTS,), dtype="float32", name="pixels")
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="probabilities")(pixels)
    return keras.Model(pixels, outputs, name="null")


if __name__ == "__main__":
    path = sys.argv[1]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    build_model().save(path)
    print(f"saved {path}")

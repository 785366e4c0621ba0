"""The benchmark's compute-bound model: a text classifier with random weights (nothing is trained or downloaded).

int32 token ids of length 128 → embedding → two self-attention blocks → pooling → 2 classes.
Usage: python -m bench.heavy_model OUTPUT.keras
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

SEQ_LEN = 128
VOCAB = 8000
WIDTH = 256
HEADS = 4
FFN = 512


def attention_block(x):
    attended = keras.layers.MultiHeadAttention(num_heads=HEADS, key_dim=WIDTH // HEADS)(x, x)
    x = keras.layers.LayerNormalization()(x + attended)
    hidden = keras.layers.Dense(FFN, activation="relu")(x)
    return keras.layers.LayerNormalization()(x + keras.layers.Dense(WIDTH)(hidden))


def build_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    tokens = keras.Input(shape=(SEQ_LEN,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, WIDTH)(tokens)
    x = attention_block(attention_block(x))
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities")(x)
    return keras.Model(tokens, outputs, name="heavy_text")


if __name__ == "__main__":
    path = sys.argv[1]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    build_model().save(path)
    print(f"saved {path}")

"""Job payloads: arrays, byte strings and the signature that runs them survive the trip through Redis."""

from __future__ import annotations

import numpy as np
import orjson

from shared.payload import decode_inputs, encode_inputs, signature_name


def _trip(payload):
    return orjson.loads(orjson.dumps(payload))


def test_a_payload_without_a_signature_runs_the_default_one():
    payload = _trip(encode_inputs({"x": np.ones((2, 3), np.float32)}))
    assert "signature" not in payload and signature_name(payload) == "serving_default"
    np.testing.assert_array_equal(decode_inputs(payload)["x"], np.ones((2, 3), np.float32))


def test_a_payload_names_another_signature_and_carries_byte_strings():
    examples = np.array([b"\x0a\x00", b"abc"], dtype=object)
    payload = _trip(encode_inputs({"inputs": examples}, "classify_x_to_y"))
    assert signature_name(payload) == "classify_x_to_y"
    assert list(decode_inputs(payload)["inputs"]) == [b"\x0a\x00", b"abc"]

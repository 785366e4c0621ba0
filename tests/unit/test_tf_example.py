"""JSON examples become the same tf.Example bytes TensorFlow's own protos parse, with TF Serving's kinds."""

from __future__ import annotations

import pytest

from api.protocols.tf_example import serialize_example, serialize_examples
from shared.errors import InvalidInput


def _parse(raw: bytes):
    from tensorflow.core.example import example_pb2

    return example_pb2.Example.FromString(raw).features.feature


def test_numbers_strings_and_b64_become_float_int64_and_bytes_features():
    features = _parse(serialize_example({"x": [1.5, 2.5], "n": -3, "flag": True, "s": "abc", "b": {"b64": "aGk="}}))
    assert list(features["x"].float_list.value) == [1.5, 2.5]
    assert list(features["n"].int64_list.value) == [-3]
    assert list(features["flag"].int64_list.value) == [1]
    assert list(features["s"].bytes_list.value) == [b"abc"]
    assert list(features["b"].bytes_list.value) == [b"hi"]


def test_context_features_are_in_every_example_and_an_examples_own_wins():
    first, second = serialize_examples([{}, {"x": 2.0}], context={"x": 4.0, "c": 1})
    assert list(_parse(first)["x"].float_list.value) == [4.0]
    assert list(_parse(second)["x"].float_list.value) == [2.0]
    assert list(_parse(second)["c"].int64_list.value) == [1]


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ({"x": [1.0, "a"]}, "Unexpected element type in feature: x expecting type: float"),
        ({"x": None}, "Feature: x has element with unexpected JSON type: Null"),
        ({"x": [[1.0]]}, "Feature: x has element with unexpected JSON type: Array"),
        ({"x": 2**64 - 1}, "Feature: x has uint64_t element. Only int64_t is supported."),
    ],
)
def test_bad_features_get_tf_servings_messages(example, message):
    with pytest.raises(InvalidInput) as caught:
        serialize_examples([example])
    assert caught.value.message == message


def test_an_example_must_be_an_object():
    with pytest.raises(InvalidInput, match="Example must be JSON object but got JSON Array"):
        serialize_examples([[1.0]])

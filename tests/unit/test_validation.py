"""Request rows become typed arrays or an InvalidInput naming the field and the expected form."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from api.validation import columns_to_arrays, may_hold_booleans, rows_to_arrays, start_deadline, to_array
from shared.errors import InvalidInput
from shared.payload import decode_inputs, encode_inputs
from shared.signature import ModelSignature, TensorSpec

PIXELS = TensorSpec("pixels", (4,), "float32")
TOKENS = TensorSpec("tokens", (None,), "int32")
ONE_INPUT = ModelSignature("m", "1", (PIXELS,), (TensorSpec("y", (2,), "float32"),))
TWO_INPUTS = ModelSignature("m", "1", (PIXELS, TOKENS), (TensorSpec("y", (2,), "float32"),))


def test_rows_become_an_array_of_the_model_dtype():
    arrays = rows_to_arrays([[1, 2, 3, 4], [5, 6, 7, 8]], ONE_INPUT, 10)
    assert arrays["pixels"].dtype == np.float32 and arrays["pixels"].shape == (2, 4)


def test_rows_for_several_inputs_are_objects_keyed_by_input_name():
    arrays = rows_to_arrays([{"pixels": [1, 2, 3, 4], "tokens": [7, 8, 9]}], TWO_INPUTS, 10)
    assert arrays["tokens"].dtype == np.int32 and arrays["tokens"].tolist() == [[7, 8, 9]]


def test_a_row_missing_an_input_names_the_row_and_the_inputs():
    with pytest.raises(InvalidInput) as info:
        rows_to_arrays([{"pixels": [1, 2, 3, 4]}], TWO_INPUTS, 10)
    assert info.value.field == "instances[0]" and '"tokens": [*] int32' in info.value.expected


@pytest.mark.parametrize(
    ("rows", "spec", "words"),
    [
        ([[1.5, 2, 3]], TOKENS, "non-integer"),
        ([[2**40]], TOKENS, "outside int32"),
        ([[1, 2, 3]], PIXELS, "shape [3]"),
        ([[float("nan")] * 4], PIXELS, "NaN"),
        ([["1"] * 4], PIXELS, "strings"),
    ],
)
def test_bad_values_are_rejected(rows, spec, words):
    with pytest.raises(InvalidInput, match=words.replace("[", r"\[").replace("]", r"\]")):
        to_array(rows, spec, "instances")


def test_payload_round_trips_arrays_exactly():
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([[1], [2], [3]], dtype=np.int64)}
    decoded = decode_inputs(encode_inputs(arrays))
    for name, array in arrays.items():
        assert decoded[name].dtype == array.dtype
        np.testing.assert_array_equal(decoded[name], array)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"rows": 1, "inputs": {}},
        {"rows": 2, "inputs": {"a": {"dtype": "float32", "shape": [2, 2], "data": "AAAA"}}},
        {"rows": 1, "inputs": {"a": {"dtype": "object", "shape": [1], "data": ""}}},
        {"rows": 1, "inputs": {"a": {"dtype": "float32", "shape": [1], "data": "!!!"}}},
    ],
)
def test_malformed_payloads_raise_value_error(payload):
    with pytest.raises(ValueError):
        decode_inputs(payload)


def test_a_one_input_model_also_takes_rows_keyed_by_its_input_name():
    arrays = rows_to_arrays([{"pixels": [1, 2, 3, 4]}], ONE_INPUT, 10)
    assert arrays["pixels"].tolist() == [[1, 2, 3, 4]]


def test_columnar_inputs_are_a_bare_array_or_an_object_keyed_by_input_name():
    assert columns_to_arrays([[1, 2, 3, 4]], ONE_INPUT, 10)["pixels"].shape == (1, 4)
    arrays = columns_to_arrays({"pixels": [[1, 2, 3, 4]] * 2, "tokens": [[1], [2]]}, TWO_INPUTS, 10)
    assert arrays["tokens"].dtype == np.int32 and arrays["tokens"].tolist() == [[1], [2]]


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        ({"pixels": [[1, 2, 3, 4]]}, "inputs", "must hold the model's inputs"),
        ([[1, 2, 3, 4]], "inputs", "must hold the model's inputs"),
        ({"pixels": [[1, 2, 3, 4]] * 2, "tokens": [[1]]}, "inputs", "different numbers of rows"),
        ({"pixels": [[1, 2, 3]], "tokens": [[1]]}, "inputs.pixels", "shape [3]"),
        ({"pixels": 5, "tokens": [[1]]}, "inputs.pixels", "list of rows"),
        ({"pixels": [], "tokens": []}, "inputs.pixels", "empty"),
    ],
)
def test_bad_columnar_inputs_name_the_input(inputs, field, words):
    with pytest.raises(InvalidInput) as info:
        columns_to_arrays(inputs, TWO_INPUTS, 10)
    assert info.value.field == field and words in info.value.message


@pytest.mark.parametrize(
    ("doc", "query", "expected"),
    [
        ({"instances": []}, None, 7.0),
        ([], None, 7.0),
        ({"timeout": 2.5}, None, 2.5),
        ({}, "3", 3.0),
        ({"timeout": 1}, "3", 1.0),
        ({"timeout": 86400}, None, 86400.0),
    ],
)
def test_a_jobs_timeout_comes_from_the_body_then_the_query_then_the_default(doc, query, expected):
    assert start_deadline(doc, query, 7.0) == expected


@pytest.mark.parametrize("value", [0, -1, "soon", None, True, [], float("nan"), "inf", 1e400, 86401, "1e400", "5"])
def test_a_timeout_must_be_seconds_above_zero_and_at_most_a_day(value):
    with pytest.raises(InvalidInput) as info:
        start_deadline({"timeout": value}, None, 0.0)
    assert info.value.field == "timeout" and "86400" in info.value.expected


FLAG = TensorSpec("flag", (2,), "bool")


@pytest.mark.parametrize("rows", [[[True, False, True, True]], [[1.5, True, 2, 3]], [[0, 1, 2, 3], [4, 5, 6, False]]])
def test_booleans_where_numbers_are_expected_are_refused_naming_the_field(rows):
    with pytest.raises(InvalidInput) as info:
        rows_to_arrays(rows, ONE_INPUT, 10)
    assert info.value.field == "instances" and "true/false" in info.value.message
    assert "numbers (float32)" in info.value.expected


@pytest.mark.parametrize("rows", [[[1.5, True, 2, 3]], [[0, 1, 2, 3], [4, 5, 6, False]]])
def test_a_body_that_can_hold_booleans_is_walked_for_them_and_one_that_cannot_is_not(rows):
    body = orjson.dumps({"instances": rows})
    assert may_hold_booleans(body)  # so /predict looks, and refuses them
    with pytest.raises(InvalidInput) as info:
        rows_to_arrays(orjson.loads(body)["instances"], ONE_INPUT, 10, may_hold_booleans(body))
    assert "true/false" in info.value.message
    numbers = orjson.dumps({"instances": [[1.5, 1, 2, 3]]})
    assert not may_hold_booleans(numbers)
    assert rows_to_arrays(orjson.loads(numbers)["instances"], ONE_INPUT, 10, False)["pixels"].tolist() == [
        [1.5, 1, 2, 3]
    ]


def test_a_bool_input_takes_only_true_and_false():
    assert to_array([[True, False]], FLAG, "x").dtype == np.bool_
    for rows in ([[1, 0]], [[True, 1]]):
        with pytest.raises(InvalidInput) as info:
            to_array(rows, FLAG, "x")
        assert "true or false" in info.value.expected


def test_arrays_keep_their_own_dtype_and_are_converted():
    assert to_array(np.ones((1, 4), dtype=bool), PIXELS, "file").dtype == np.float32


@pytest.mark.parametrize("query", ["999999", ""])
def test_a_bad_query_timeout_is_refused_even_when_the_body_has_a_good_one(query):
    with pytest.raises(InvalidInput) as info:
        start_deadline({"timeout": 5}, query, 7.0)
    assert info.value.field == "timeout"

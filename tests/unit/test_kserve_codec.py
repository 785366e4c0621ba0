"""KServe v2 tensors: JSON and binary bodies become model-typed arrays; outputs render as JSON or binary."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from api.protocols.kserve_codec import InferRequest, parse_request, render_response, tensor_metadata
from shared.errors import InvalidInput
from shared.signature import ModelRef, ModelSignature, TensorSpec

SIG = ModelSignature(
    "m",
    "2",
    (TensorSpec("x", (3,), "float32"), TensorSpec("k", (), "int64")),
    (TensorSpec("y", (3,), "float32"), TensorSpec("flag", (), "bool")),
)


def _body(inputs, **extra) -> bytes:
    return orjson.dumps({"inputs": inputs, **extra})


def test_json_tensors_of_any_numeric_datatype_become_the_models_dtypes():
    request = parse_request(
        _body(
            [
                {"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]},
                {"name": "k", "shape": [2], "datatype": "INT32", "data": [[7], [8]]},
            ],
            id="r1",
        ),
        None,
        SIG,
        10,
    )
    assert request.id == "r1"
    assert request.arrays["x"].dtype == np.float32 and request.arrays["x"].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert request.arrays["k"].dtype == np.int64 and request.arrays["k"].tolist() == [7, 8]
    assert request.outputs == [("y", False), ("flag", False)]


def test_binary_tensors_follow_the_json_header():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    k = np.array([1, 2], dtype=np.int64)
    header = _body(
        [
            {"name": "x", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}},
            {"name": "k", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": k.nbytes}},
        ],
        outputs=[{"name": "y", "parameters": {"binary_data": True}}],
    )
    request = parse_request(header + x.tobytes() + k.tobytes(), str(len(header)), SIG, 10)
    np.testing.assert_array_equal(request.arrays["x"], x)
    np.testing.assert_array_equal(request.arrays["k"], k)
    assert request.outputs == [("y", True)]


@pytest.mark.parametrize(
    ("inputs", "header_length_delta", "words"),
    [
        (
            [
                {"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]},
                {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]},
            ],
            None,
            "datatype 'BYTES' is not served",
        ),
        (
            [
                {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]},
                {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]},
            ],
            None,
            "2 values for shape [1, 3]",
        ),
        ([{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}], None, "missing input(s) ['k']"),
        (
            [
                {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                {"name": "k", "shape": [1], "datatype": "INT64", "data": [1.5]},
            ],
            None,
            "wrong type",
        ),
        (
            [
                {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                {"name": "k", "shape": [1], "datatype": "INT8", "data": [300]},
            ],
            None,
            "outside int8",
        ),
        (
            [
                {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]},
            ],
            None,
            "shape [4]",
        ),
        ([{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}], None, "unexpected or repeated input 'z'"),
        (
            [
                {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                {"name": "k", "shape": [2], "datatype": "INT64", "data": [1, 2]},
            ],
            None,
            "inputs have [1, 2] rows",
        ),
        (
            [
                {"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
                {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]},
            ],
            0,
            "binary_data_size 12 does not fit",
        ),
        (
            [
                {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]},
            ],
            4,
            "4 bytes of binary data",
        ),
    ],
)
def test_bad_requests_say_what_is_wrong(inputs, header_length_delta, words):
    body = _body(inputs)
    header_length = None
    if header_length_delta is not None:
        header_length = str(len(body))
        body += b"\0" * header_length_delta
    with pytest.raises(InvalidInput) as info:
        parse_request(body, header_length, SIG, 10)
    assert words in info.value.message


def test_unknown_requested_outputs_are_refused():
    body = _body(
        [
            {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
            {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]},
        ],
        outputs=[{"name": "nope"}],
    )
    with pytest.raises(InvalidInput, match="must name outputs"):
        parse_request(body, None, SIG, 10)


def test_responses_render_json_and_binary_outputs_with_their_datatypes():
    request = InferRequest("r", {}, [("y", True), ("flag", False)])
    body, header_length = render_response(request, {"y": [[1, 2, 3]], "flag": [True]}, SIG, ModelRef("m", "2"))
    header = orjson.loads(body[:header_length])
    assert header["model_name"] == "m" and header["model_version"] == "2" and header["id"] == "r"
    y, flag = header["outputs"]
    assert (y["datatype"], y["shape"], y["parameters"]) == ("FP32", [1, 3], {"binary_data_size": 12})
    assert (flag["datatype"], flag["shape"], flag["data"]) == ("BOOL", [1], [True])
    np.testing.assert_array_equal(np.frombuffer(body[header_length:], "<f4"), [1, 2, 3])


def test_metadata_marks_free_dimensions_with_minus_one():
    assert tensor_metadata(TensorSpec("t", (None, 4), "int32")) == {
        "name": "t",
        "datatype": "INT32",
        "shape": [-1, -1, 4],
    }


def test_booleans_in_a_numeric_tensor_are_refused():
    with pytest.raises(InvalidInput) as info:
        parse_request(
            _body(
                [
                    {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.5, True, 2]},
                    {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]},
                ]
            ),
            None,
            SIG,
            10,
        )
    assert info.value.field == "inputs[0].data" and "true/false" in info.value.message


@pytest.mark.parametrize(
    ("extra", "output", "field"),
    [
        ({"id": 7}, None, "id"),
        ({"parameters": 5}, None, "parameters"),
        ({"parameters": {"binary_data_output": "yes"}}, None, "parameters.binary_data_output"),
        ({}, {"name": "y", "parameters": 5}, "outputs[0].parameters"),
        ({}, {"name": "y", "parameters": {"binary_data": 1}}, "outputs[0].parameters.binary_data"),
    ],
)
def test_ids_and_parameters_of_the_wrong_type_are_refused_naming_the_field(extra, output, field):
    inputs = [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
        {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]},
    ]
    outputs = {"outputs": [output]} if output else {}
    with pytest.raises(InvalidInput) as info:
        parse_request(_body(inputs, **extra, **outputs), None, SIG, 10)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"outputs": None}, "outputs"),
        ({"id": None}, "id"),
        ({"parameters": None}, "parameters"),
        ({"outputs": [{"name": "y", "parameters": None}]}, "outputs[0].parameters"),
    ],
)
def test_optional_fields_sent_as_null_are_refused_as_the_schema_says(extra, field):
    inputs = [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
        {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]},
    ]
    with pytest.raises(InvalidInput) as refused:
        parse_request(_body(inputs, **extra), None, SIG, 10)
    assert refused.value.field == field


@pytest.mark.parametrize("declared", [{}, [], None, 3])
def test_a_datatype_that_is_not_a_string_is_refused_not_a_crash(declared):
    inputs = [{"name": "x", "shape": [1, 3], "datatype": declared, "data": [1, 2, 3]}]
    with pytest.raises(InvalidInput) as refused:
        parse_request(_body(inputs), None, SIG, 10)
    assert refused.value.field == "inputs[0].datatype"


def test_a_shape_of_booleans_is_refused_not_a_crash():
    inputs = [{"name": "x", "shape": [False, 3], "datatype": "FP32", "data": []}]
    with pytest.raises(InvalidInput) as refused:
        parse_request(_body(inputs), None, SIG, 10)
    assert refused.value.field == "inputs[0].shape"

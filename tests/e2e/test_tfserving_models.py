"""TF Serving's own test SavedModel (half_plus_two, from tensorflow/serving's testdata) answers here exactly
as TF Serving's model-server tests expect, on every REST route: predict, classify, regress, status, metadata.

The expected bodies are those of tensorflow_serving/model_servers/tensorflow_model_server_test.py and
http_rest_api_handler_test.cc; the metadata file is TF Serving's own.
"""

from __future__ import annotations

import json
import os

import pytest

from shared.config import PROJECT_ROOT

pytestmark = pytest.mark.e2e

TESTDATA = os.path.join(PROJECT_ROOT, "tests", "data", "tfserving")
HALF_PLUS_TWO = os.path.join(TESTDATA, "saved_model_half_plus_two_cpu")


@pytest.fixture(scope="module")
def tfs(make_module_service):
    """half_plus_two served as TF Serving's tests serve it: model name "default", version 123."""
    return make_module_service(model_path=HALF_PLUS_TWO, model_name="default")


def _post(service, path, body):
    return service.http.post(path, json=body)


def test_predict_takes_a_scalar_per_instance_and_answers_scalars(tfs):
    response = _post(tfs, "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [3.0, 3.5, 4.0]}


def test_columnar_predict_answers_outputs_only(tfs):
    response = _post(tfs, "/v1/models/default:predict", {"signature_name": "serving_default", "inputs": [3.0, 4.0]})
    assert response.json() == {"outputs": [3.5, 4.0]}


def test_rows_of_shape_one_are_answered_as_rows(tfs):
    assert _post(tfs, "/v1/models/default:predict", {"instances": [[2.0], [3.0]]}).json() == {
        "predictions": [[3.0], [3.5]]
    }


def test_classify_answers_label_and_score_pairs(tfs):
    response = _post(
        tfs, "/v1/models/default:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"results": [[["", 3.0]]]}
    response = _post(
        tfs,
        "/v1/models/default/versions/123:classify",
        {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}, {"x": 10.0}]},
    )
    assert response.json() == {"results": [[["", 12.0]], [["", 7.0]]]}


def test_regress_answers_one_value_per_example_through_the_named_signature(tfs):
    response = _post(tfs, "/v1/models/default:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]})
    assert response.status_code == 200, response.text
    assert response.json() == {"results": [3.0]}
    response = _post(
        tfs, "/v1/models/default:regress", {"signature_name": "regress_x_to_y2", "examples": [{"x": 80.0}]}
    )
    assert response.json() == {"results": [43.0]}


def test_regress_context_features_reach_every_example(tfs):
    response = _post(
        tfs,
        "/v1/models/default:regress",
        {"signature_name": "regress_x_to_y", "context": {"x": 4.0}, "examples": [{}, {"x": 2.0}]},
    )
    assert response.json() == {"results": [4.0, 3.0]}


def test_predict_may_run_another_signature(tfs):
    response = _post(tfs, "/v1/models/default:predict", {"signature_name": "regress_x2_to_y3", "instances": [2.0]})
    assert response.json() == {"predictions": [4.0]}


def test_status_is_tf_servings_reply_plus_kserve_v1_readiness(tfs):
    assert tfs.http.get("/v1/models/default").json() == {
        "model_version_status": [
            {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ],
        "name": "default",
        "ready": True,
    }


def test_metadata_lists_every_signature_exactly_as_tf_serving_does(tfs):
    with open(os.path.join(TESTDATA, "half_plus_two_model_metadata.json")) as f:
        expected = json.load(f)
    expected["model_spec"]["name"] = "default"
    assert tfs.http.get("/v1/models/default/metadata").json() == expected


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            ":regress",
            {"signature_name": "nope", "examples": [{"x": 1.0}]},
            "No signature was found with the name: nope",
        ),
        (
            ":regress",
            {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}]},
            "Expected regression signature method_name to be tensorflow/serving/regress. Was: tensorflow/serving/classify",
        ),
        (
            ":classify",
            {"signature_name": "classify_x_to_y"},
            'JSON Value: {"signature_name":"classify_x_to_y"} When method is classify, key \'examples\' is expected and was not found',
        ),
        (
            ":classify",
            {"signature_name": "classify_x_to_y", "examples": []},
            'JSON Value: {"signature_name":"classify_x_to_y","examples":[]} \'examples\' value is an empty array',
        ),
        (
            ":classify",
            {"signature_name": "classify_x_to_y", "examples": [[1.0]]},
            "Example must be JSON object but got JSON Array",
        ),
        (
            ":classify",
            {"signature_name": "classify_x_to_y", "examples": [{"x": [1.0, "a"]}]},
            "Unexpected element type in feature: x expecting type: float",
        ),
        (
            ":predict",
            {"signature_name": "nope", "instances": [1.0]},
            'Serving signature name: "nope" not found in signature def',
        ),
        (
            ":predict",
            {"instances": ["x", "y"]},
            "Failed to process element: 0 of 'instances' list. Error: "
            'INVALID_ARGUMENT: JSON Value: "x" Type: String is not of expected type: float',
        ),
    ],
)
def test_mistakes_get_tf_servings_status_and_message(tfs, path, body, message):
    response = _post(tfs, "/v1/models/default" + path, body)
    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_an_unknown_model_is_404(tfs):
    response = _post(tfs, "/v1/models/foo/versions/50:predict", {"instances": [1]})
    assert response.status_code == 404
    assert response.json() == {"error": "Servable not found for request: Specific(foo, 50)"}

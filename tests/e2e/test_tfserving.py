"""TensorFlow Serving's REST API on the real service: what a TF Serving client sends, it gets back."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from shared import keys, rq_keys
from tests.support import advertise_model

pytestmark = pytest.mark.e2e


def _post(service, path, body, **headers):
    # TF Serving's own curl examples send no JSON content type: we must not need one.
    return service.http.post(
        path, content=orjson.dumps(body), headers={"Content-Type": "application/x-www-form-urlencoded", **headers}
    )


def test_row_format_answers_predictions_equal_to_the_models_own_output(service, digits, digits_model):
    x, _ = digits
    response = _post(
        service, "/v1/models/digits:predict", {"signature_name": "serving_default", "instances": x[:5].tolist()}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = digits_model.predict({"pixels": x[:5]})["probabilities"]
    np.testing.assert_allclose(np.array(body["predictions"]), expected, rtol=1e-5, atol=1e-6)
    assert set(body) == {"predictions"}  # TF Serving's REST reply has nothing else


def test_columnar_format_answers_outputs_for_a_bare_array_or_named_inputs(service, digits, digits_model):
    x, _ = digits
    expected = digits_model.predict({"pixels": x[:4]})["probabilities"]
    for inputs in (x[:4].tolist(), {"pixels": x[:4].tolist()}):
        response = _post(service, "/v1/models/digits:predict", {"inputs": inputs})
        assert response.status_code == 200, response.text
        assert "predictions" not in response.json()
        np.testing.assert_allclose(np.array(response.json()["outputs"]), expected, rtol=1e-5, atol=1e-6)


def test_instances_may_name_the_single_input(service, digits):
    x, y = digits
    response = _post(service, "/v1/models/digits:predict", {"instances": [{"pixels": x[3].tolist()}]})
    assert response.status_code == 200
    assert int(np.argmax(response.json()["predictions"][0])) == y[3]


def test_the_versioned_route_serves_the_loaded_version_only(service, digits):
    x, _ = digits
    assert _post(service, "/v1/models/digits/versions/1:predict", {"instances": x[:1].tolist()}).status_code == 200
    response = _post(service, "/v1/models/digits/versions/7:predict", {"instances": x[:1].tolist()})
    assert response.status_code == 404
    assert response.json() == {"error": "Servable not found for request: Specific(digits, 7)"}


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/models/other:predict", {"instances": [[0] * 64]}, 404, "Servable not found for request: Latest(other)"),
        ("/v1/models/digits:predict", {"instances": [[0] * 63]}, 400, "rows have shape [63]"),
        (
            "/v1/models/digits:predict",
            {"instances": [[0] * 64], "inputs": [[0] * 64]},
            400,
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist",
        ),
        (
            "/v1/models/digits:predict",
            {"signature_name": "other", "instances": [[0] * 64]},
            400,
            'Serving signature name: "other" not found',
        ),
        ("/v1/models/digits:predict", {"inputs": {"image": [[0] * 64]}}, 400, "'inputs' must hold the model's inputs"),
        (
            "/v1/models/digits:classify",
            {"examples": [{"x": 1.0}]},
            400,
            "Expected classification signature method_name to be tensorflow/serving/classify. Was: tensorflow/serving/predict",
        ),
        (
            "/v1/models/digits:predict",
            {"instances": [["x"] * 64]},
            400,
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: \"x\" Type: String "
            "is not of expected type: float",
        ),
        (  # a valid first row: the message names the second
            "/v1/models/digits:predict",
            {"instances": [[0] * 64, [0] * 63 + [True]]},
            400,
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: true Type: True "
            "is not of expected type: float",
        ),
        (
            "/v1/models/digits:predict",
            {"instances": [[0] * 64, [None] * 64]},
            400,
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: null Type: Null "
            "is not of expected type: float",
        ),
        ("/v1/models/digits:predict", {"signature_name": 100}, 400, "'signature_name' key must be a string value."),
        ("/v1/models/digits:predict", {"instances": []}, 400, "No values in 'instances' array"),
        ("/v1/models/digits:predict", {}, 400, "Missing 'inputs' or 'instances' key"),
        ("/v1/models/digits/nothing/here", {}, 404, "not found"),
    ],
)
def test_errors_have_tf_servings_shape(service, path, body, status, words):
    response = _post(service, path, body)
    assert response.status_code == status
    assert set(response.json()) == {"error"} and words in response.json()["error"]


def test_invalid_json_is_a_tf_serving_error(service):
    response = service.http.post("/v1/models/digits:predict", content=b'{"instances": [')
    assert response.status_code == 400 and response.json()["error"].startswith("JSON Parse error: ")
    response = service.http.post("/v1/models/digits:predict", content=b"instances = [1, 2]")
    assert response.json() == {"error": "JSON Parse error: Invalid value. at offset: 0"}
    response = service.http.post("/v1/models/digits:predict", content=b"")
    assert response.json() == {"error": "JSON Parse error: The document is empty"}


def test_model_status_reports_the_version_available(service):
    for path in ("/v1/models/digits", "/v1/models/digits/versions/1"):
        assert service.http.get(path).json() == {
            "model_version_status": [
                {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ],
            "name": "digits",  # KServe v1's model-readiness fields, beside TF Serving's reply
            "ready": True,
        }
    assert service.http.get("/v1/models/digits/versions/2").status_code == 404


def test_model_metadata_is_a_signature_def_in_tf_servings_json(service):
    body = service.http.get("/v1/models/digits/metadata").json()
    assert body["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["pixels"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["pixels"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""},
        {"size": "64", "name": ""},
    ]
    assert signature["outputs"]["probabilities"]["tensor_shape"]["dim"][1]["size"] == "10"


def test_our_own_routes_keep_our_error_shape(service):
    response = service.http.post("/predict", json={"instances": [[0] * 63]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_input"


def test_a_job_not_done_in_time_is_answered_504_and_cancelled(make_service):
    from shared.signature import ModelSignature, TensorSpec

    # An API with an advertised model but no worker: the job can only wait.
    service = make_service(workers=0, protocol_timeout_s=1)
    signature = ModelSignature(
        "digits", "1", (TensorSpec("pixels", (64,), "float32"),), (TensorSpec("probabilities", (10,), "float32"),)
    )
    advertise_model(service.redis, signature)
    response = _post(service, "/v1/models/digits:predict", {"instances": [[0] * 64]})
    assert response.status_code == 504
    assert "did not finish within 1 s (PROTOCOL_TIMEOUT_S)" in response.json()["error"]
    assert (
        service.redis.llen(rq_keys.queue(service.settings.queue_name)) == 0
    )  # cancelled: no worker will pick it up later
    assert float(service.redis.hget(keys.metrics(), "inference_jobs_total:canceled")) == 1

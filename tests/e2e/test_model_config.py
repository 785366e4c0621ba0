"""Many models and versions from one TF Serving model config file, side by side in one stack: digits, TF
Serving's own half_plus_two test SavedModel (version 123, label "stable"), and a two-version model whose
answer is its version number (labels "stable" → 1, "canary" → 2) — by name, version and label, over REST
and gRPC, through TF Serving's stubs and tritonclient, and the native /predict."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from scripts.model_versions import add_constant_version, add_digits, add_half_plus_two, write_config
from shared import rq_keys
from tests.support import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(make_module_service, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    add_digits(root / "digits")
    add_half_plus_two(root / "half_plus_two")
    for version in (1, 2):
        add_constant_version(root / "constant", version)
    config = write_config(
        root / "models.config",
        [
            ("digits", root / "digits", ""),
            ("half_plus_two", root / "half_plus_two", 'version_labels { key: "stable" value: 123 }'),
            (
                "constant",
                root / "constant",
                'model_version_policy { all {} } version_labels { key: "stable" value: 1 } '
                'version_labels { key: "canary" value: 2 }',
            ),
        ],
    )
    return make_module_service(model_config_file=str(config)).start_grpc()


def _predict(stack, path, instances):
    response = stack.http.post(path, json={"instances": instances})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_tf_serving_rest_serves_each_model_by_name_version_and_label(stack):
    assert _predict(stack, "/v1/models/half_plus_two:predict", [1.0, 2.0, 5.0]) == [2.5, 3.0, 4.5]
    assert _predict(stack, "/v1/models/half_plus_two/versions/123:predict", [1.0]) == [2.5]
    assert _predict(stack, "/v1/models/half_plus_two/labels/stable:predict", [1.0]) == [2.5]
    assert _predict(stack, "/v1/models/constant:predict", [[0.0]]) == [[2.0]]  # the newest
    assert _predict(stack, "/v1/models/constant/versions/1:predict", [[0.0]]) == [[1.0]]
    assert _predict(stack, "/v1/models/constant/labels/stable:predict", [[0.0]]) == [[1.0]]
    assert _predict(stack, "/v1/models/constant/labels/canary:predict", [[0.0]]) == [[2.0]]
    assert len(_predict(stack, "/v1/models/digits:predict", [[0.0] * 64])[0]) == 10


def test_tf_serving_rest_reports_every_version_and_refuses_what_is_not_served(stack):
    status = stack.http.get("/v1/models/constant").json()
    assert [(v["version"], v["state"]) for v in status["model_version_status"]] == [
        ("2", "AVAILABLE"),
        ("1", "AVAILABLE"),
    ]
    metadata = stack.http.get("/v1/models/constant/labels/stable/metadata").json()
    assert metadata["model_spec"]["version"] == "1"
    for path, error in (
        ("/v1/models/nope:predict", "Servable not found for request: Latest(nope)"),
        ("/v1/models/constant/versions/7:predict", "Servable not found for request: Specific(constant, 7)"),
        ("/v1/models/constant/labels/beta:predict", "Unrecognized servable version label: beta"),
    ):
        response = stack.http.post(path, json={"instances": [[0.0]]})
        assert (response.status_code, response.json()) == (404, {"error": error})


def test_native_predict_takes_a_model_and_a_version_or_label_and_says_which_version_answered(stack):
    response = stack.http.post("/predict?wait=10&model=constant&version=1", json={"instances": [[0.0]]})
    assert response.json()["predictions"] == [[1.0]] and response.json()["model"] == {
        "name": "constant",
        "version": "1",
    }
    body = {"instances": [[0.0]], "model": "constant", "version": "canary"}
    assert stack.http.post("/predict?wait=10", json=body).json()["model"] == {"name": "constant", "version": "2"}
    default = stack.http.post("/predict?wait=10", json={"instances": [[0.0] * 64]}).json()
    assert default["model"] == {"name": "digits", "version": "1"}  # the first model of the config file
    unknown = stack.http.post("/predict?wait=10&model=nope", json={"instances": [[0.0]]})
    assert unknown.status_code == 404
    assert "served: digits, half_plus_two, constant" in unknown.json()["error"]["message"]


def test_each_model_has_its_own_queues_listed_for_rq(stack):
    queues = {k.decode() for k in stack.redis.smembers(rq_keys.QUEUES)}
    for name in ("predict", "predict-bulk", "predict-half_plus_two", "predict-bulk-constant"):
        assert rq_keys.queue(name) in queues


def test_tf_serving_grpc_stubs_take_a_version_label_and_report_each_versions_status(stack):
    with grpc.insecure_channel(stack.grpc_target) as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "constant"
        request.model_spec.version_label = "stable"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[0.0]], np.float32), dtype=types_pb2.DT_FLOAT))
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert (reply.model_spec.version.value, list(reply.outputs["y"].float_val)) == (1, [1.0])
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "half_plus_two"
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, timeout=30)
        assert [(s.version, s.state) for s in status.model_version_status] == [
            (123, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        ]


def test_tritonclient_reaches_every_model_and_version_over_http_and_grpc(stack):
    http = triton_http.InferenceServerClient(stack.base_url.removeprefix("http://"))
    grpc_client = triton_grpc.InferenceServerClient(stack.grpc_target)
    for module, client in ((triton_http, http), (triton_grpc, grpc_client)):
        for model, version, expected in (("constant", "1", 1.0), ("constant", "", 2.0), ("half_plus_two", "", 2.5)):
            tensor = module.InferInput("x", [1, 1], "FP32")  # both models take rows of one "x" and answer "y"
            tensor.set_data_from_numpy(np.ones([1, 1], np.float32))
            result = client.infer(model, [tensor], model_version=version)
            assert float(result.as_numpy("y").reshape(-1)[0]) == expected, (model, version)
        assert client.is_model_ready("constant", "2") and not client.is_model_ready("constant", "9")
        assert not client.is_model_ready("nope")


def test_the_client_and_cli_take_a_model_and_a_version(stack, capsys):
    from inferq import Client
    from inferq.cli import main

    with Client(stack.base_url, model="constant", version="canary") as client:
        assert client.predict([[0.0]]) == [[2.0]]
    with Client(stack.base_url) as client:  # the default: the first model of the config file
        assert len(client.predict([[0.0] * 64])[0]) == 10
    rows = stack.log_dir / "rows.json"
    rows.write_text("[[0.0]]")
    assert main(["--url", stack.base_url, "--model", "constant", "--version", "1", "predict", str(rows)]) == 0
    assert "[[1.0]]" in capsys.readouterr().out.replace(" ", "").replace("\n", "")


def test_metrics_count_jobs_by_model_and_the_version_that_answered(stack):
    stack.http.post("/predict?wait=10&model=constant&version=1", json={"instances": [[0.0]]})
    series = 'inference_model_jobs_total{model="constant",status="finished",version="1"}'
    wait_until(lambda: series in stack.http.get("/metrics").text, 10)

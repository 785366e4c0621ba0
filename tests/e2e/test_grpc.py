"""gRPC on the real service (a real gRPC server process, real worker, real Redis): TF Serving's own tests'
calls with its generated stubs against its half_plus_two model, and the real `tritonclient.grpc` client.
"""

from __future__ import annotations

import json
import os

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tritonclient.utils import InferenceServerException

from shared import fair, keys, rq_keys, tenants
from shared.signature import ModelSignature, TensorSpec
from tests.e2e.test_tfserving_models import HALF_PLUS_TWO, TESTDATA
from tests.support import advertise_model

pytestmark = pytest.mark.e2e
KEY = "grpc-test-key-1234"
AUTH = {"authorization": f"Bearer {KEY}"}
DIGITS = ModelSignature(
    "digits", "1", (TensorSpec("pixels", (64,), "float32"),), (TensorSpec("probabilities", (10,), "float32"),)
)


@pytest.fixture(scope="module")
def tfs(make_module_service):
    """half_plus_two as TF Serving's tests serve it ("default", version 123), with its gRPC server."""
    return make_module_service(model_path=HALF_PLUS_TWO, model_name="default").start_grpc()


@pytest.fixture(scope="module")
def stub(tfs):
    with grpc.insecure_channel(tfs.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def keyed(make_module_service):
    """The digits model behind API keys, with its gRPC server."""
    return make_module_service(api_keys=KEY).start_grpc()


def _spec_is(spec, signature_name):
    assert (spec.name, spec.version.value, spec.signature_name) == ("default", 123, signature_name)


def test_predict_answers_as_tf_servings_own_test_expects(stub):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    request.output_filter.append("y")
    result = stub.Predict(request, 30)
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [3.0]
    _spec_is(result.model_spec, "serving_default")


def test_predict_takes_batches_of_rows(stub):
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.0], [2.0], [5.0]], np.float32)))
    result = stub.Predict(request, 30)
    np.testing.assert_allclose(tf.make_ndarray(result.outputs["y"]), [[2.5], [3.0], [4.5]])


def test_classify_and_regress_answer_as_tf_servings_own_tests_expect(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.extend([2.0])
    result = stub.Classify(request, 30)
    assert len(result.result.classifications) == 1 and result.result.classifications[0].classes[0].score == 3.0
    _spec_is(result.model_spec, "classify_x_to_y")

    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "regress_x_to_y"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.extend([2.0])
    result = stub.Regress(request, 30)
    assert [r.value for r in result.result.regressions] == [3.0]
    _spec_is(result.model_spec, "regress_x_to_y")


def test_regress_merges_the_context_into_each_example(stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "regress_x_to_y2"
    listed = request.input.example_list_with_context
    listed.context.features.feature["x"].float_list.value.extend([4.0])
    listed.examples.add()
    listed.examples.add().features.feature["x"].float_list.value.extend([80.0])
    assert [r.value for r in stub.Regress(request, 30).result.regressions] == [5.0, 43.0]


def test_metadata_holds_every_signature_def_of_the_model(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    request.metadata_field.append("signature_def")
    result = stub.GetModelMetadata(request, 30)
    assert (result.model_spec.name, result.model_spec.version.value) == ("default", 123)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    result.metadata["signature_def"].Unpack(signature_map)
    with open(os.path.join(TESTDATA, "half_plus_two_model_metadata.json")) as f:
        expected = json.load(f)["metadata"]["signature_def"]
    found = json_format.MessageToDict(
        signature_map, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )
    assert found == expected


def test_model_status_is_available_with_no_error(tfs):
    with grpc.insecure_channel(tfs.grpc_target) as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "default"
        result = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, 30)
    assert [(s.version, s.state, s.status.error_code) for s in result.model_version_status] == [
        (123, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)
    ]


@pytest.mark.parametrize(
    ("name", "signature_name", "code", "message"),
    [
        ("other", "", grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(other)"),
        (
            "default",
            "nope",
            grpc.StatusCode.INVALID_ARGUMENT,
            'Serving signature name: "nope" not found in signature def',
        ),
    ],
)
def test_mistakes_are_tf_servings_status_codes(stub, name, signature_name, code, message):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature_name
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, 30)
    assert caught.value.code() == code and caught.value.details() == message


def test_regress_on_a_classify_signature_is_invalid(stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.extend([2.0])
    with pytest.raises(grpc.RpcError) as caught:
        stub.Regress(request, 30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Expected regression signature method_name to be tensorflow/serving/regress" in caught.value.details()


def test_tritonclient_grpc_infers_with_raw_tensors(keyed, digits, digits_model):
    x, _ = digits
    with triton.InferenceServerClient(keyed.grpc_target) as client:
        assert client.is_server_live()  # health needs no key, as on HTTP
        assert client.is_server_ready()
        assert client.is_model_ready("digits", headers=AUTH)
        assert not client.is_model_ready("other", headers=AUTH)
        assert client.get_server_metadata(headers=AUTH).name
        metadata = client.get_model_metadata("digits", headers=AUTH)
        assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("pixels", "FP32", [-1, 64])]
        pixels = triton.InferInput("pixels", [6, 64], "FP32")
        pixels.set_data_from_numpy(x[:6])
        result = client.infer("digits", [pixels], request_id="r-1", headers=AUTH)
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), digits_model.predict({"pixels": x[:6]})["probabilities"], rtol=1e-5, atol=1e-6
    )
    assert result.get_response().id == "r-1" and result.get_response().model_version == "1"


def test_a_call_without_a_valid_key_is_unauthenticated(keyed):
    with triton.InferenceServerClient(keyed.grpc_target) as client:
        for headers in (None, {"authorization": "Bearer wrong"}):
            with pytest.raises(InferenceServerException) as caught:
                client.get_model_metadata("digits", headers=headers)
            assert caught.value.status() == "StatusCode.UNAUTHENTICATED"


def test_too_many_rows_is_an_invalid_argument(keyed):
    rows = keyed.settings.max_rows_per_request + 1
    with triton.InferenceServerClient(keyed.grpc_target) as client:
        pixels = triton.InferInput("pixels", [rows, 64], "FP32")
        pixels.set_data_from_numpy(np.zeros((rows, 64), np.float32))
        with pytest.raises(InferenceServerException) as caught:
            client.infer("digits", [pixels], headers=AUTH)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT" and "MAX_ROWS_PER_REQUEST" in caught.value.message()


def test_no_model_full_queue_and_timeout_map_to_grpc_codes(make_service):
    service = make_service(workers=0, start_api=False, protocol_timeout_s=1, max_queue_depth=10).start_grpc()
    pixels = triton.InferInput("pixels", [1, 64], "FP32")
    pixels.set_data_from_numpy(np.zeros((1, 64), np.float32))
    with triton.InferenceServerClient(service.grpc_target) as client:

        def status():
            with pytest.raises(InferenceServerException) as caught:
                client.infer("digits", [pixels])
            return caught.value.status()

        assert status() == "StatusCode.UNAVAILABLE"  # no worker has advertised a model
        advertise_model(service.redis, DIGITS)
        assert status() == "StatusCode.DEADLINE_EXCEEDED"  # queued, but no worker runs it
        # The queue now reads 10 rows deep: a job of 10 rows waits (the one above was cancelled at its timeout,
        # and an empty queue counts nothing: it is out of the lane's ring), in the ring as a submit puts it.
        queue = service.settings.queue_name
        service.redis.rpush(rq_keys.queue(queue), "waiting")
        service.redis.rpush(keys.ring(queue), queue)
        service.redis.set(keys.extra_rows(queue), 9)
        assert status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_a_keyed_callers_job_is_its_keys_and_counts_against_its_own_limit(make_service):
    service = make_service(
        workers=0, start_api=False, protocol_timeout_s=1, api_keys=KEY, max_queued_rows_per_key=5
    ).start_grpc()
    advertise_model(service.redis, DIGITS)
    pixels = triton.InferInput("pixels", [1, 64], "FP32")
    pixels.set_data_from_numpy(np.zeros((1, 64), np.float32))
    name = tenants.load(service.settings).of(tenants.fingerprint(KEY)).name
    with triton.InferenceServerClient(service.grpc_target) as client:
        with pytest.raises(InferenceServerException) as caught:
            client.infer("digits", [pixels], headers=AUTH)
        assert caught.value.status() == "StatusCode.DEADLINE_EXCEEDED"  # queued in the key's sub-queue
        origins = {service.redis.hget(k, "origin") for k in service.redis.scan_iter(match=rq_keys.job("*"))}
        assert origins == {fair.sub_queue(service.settings.queue_name, name).encode()}
        service.redis.set(keys.extra_rows(fair.sub_queue(service.settings.queue_name, name)), 10)
        with pytest.raises(InferenceServerException) as caught:
            client.infer("digits", [pixels], headers=AUTH)
    assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED" and repr(name) in caught.value.message()

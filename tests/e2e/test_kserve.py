"""KServe v2 / Open Inference Protocol on the real service, driven by the real `tritonclient.http` library."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(service):
    with triton.InferenceServerClient(service.base_url.removeprefix("http://"), network_timeout=60) as c:
        yield c


def test_server_and_model_report_live_and_ready(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "1")
    assert not client.is_model_ready("digits", "2")
    assert not client.is_model_ready("other")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


def test_model_metadata_has_v2_datatypes_and_shapes(client):
    metadata = client.get_model_metadata("digits")
    assert metadata["name"] == "digits" and metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_matches_the_models_own_output(client, digits, digits_model, binary):
    x, _ = digits
    pixels = triton.InferInput("pixels", [6, 64], "FP32")
    pixels.set_data_from_numpy(x[:6], binary_data=binary)
    wanted = triton.InferRequestedOutput("probabilities", binary_data=binary)
    result = client.infer("digits", [pixels], outputs=[wanted], request_id="req-7")
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (6, 10)
    np.testing.assert_allclose(
        probabilities, digits_model.predict({"pixels": x[:6]})["probabilities"], rtol=1e-5, atol=1e-6
    )
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == ("digits", "1", "req-7")


def test_infer_without_requested_outputs_returns_every_output_of_the_model(client, digits):
    x, y = digits
    pixels = triton.InferInput("pixels", [3, 64], "FP64")  # converted to the model's FP32 after checks
    pixels.set_data_from_numpy(x[:3].astype(np.float64))
    result = client.infer("digits", [pixels], model_version="1")
    declared = [o["name"] for o in client.get_model_metadata("digits")["outputs"]]
    assert [o["name"] for o in result.get_response()["outputs"]] == declared == ["probabilities"]
    assert list(result.as_numpy("probabilities").argmax(axis=1)) == list(y[:3])


def test_infer_errors_reach_the_client_as_its_exception(client):
    wrong = triton.InferInput("pixels", [1, 63], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 63), np.float32))
    with pytest.raises(InferenceServerException, match=r"rows have shape \[63\]") as info:
        client.infer("digits", [wrong])
    assert info.value.status() == "400"
    with pytest.raises(InferenceServerException, match="unknown model: 'other'"):
        client.get_model_metadata("other")


def test_plain_json_infer_over_http(service, digits):
    x, y = digits
    body = {"inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32", "data": x[:2].tolist()}]}
    response = service.http.post("/v2/models/digits/infer", content=orjson.dumps(body))
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["shape"] == [2, 10] and output["datatype"] == "FP32"
    assert list(np.array(output["data"]).reshape(2, 10).argmax(axis=1)) == list(y[:2])
    bad = service.http.post("/v2/models/digits/infer", content=b"{}")
    assert bad.status_code == 400 and set(bad.json()) == {"error"}

"""Models with several named inputs and outputs work on every route: a Keras functional model served from
TF Serving's `<base>/<name>/<version>/` layout, and a SavedModel whose signature names its inputs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tritonclient.http as triton

pytestmark = pytest.mark.e2e

A = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [3.0, 1.0, 1.0]], np.float32)
B = np.array([[1, 2], [0, -3], [4, 4]], np.int32)


@pytest.fixture(scope="module")
def keras_base(tmp_path_factory):
    """`<base>/multi/` with version 1 (not a model: must not be picked) and version 2 (a two-in, two-out model)."""
    import keras

    keras.utils.set_random_seed(0)
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), dtype="int32", name="b")
    joined = keras.layers.Concatenate()([a, keras.ops.cast(b, "float32")])
    model = keras.Model(
        [a, b],
        [
            keras.layers.Dense(1, name="total")(joined),
            keras.layers.Dense(2, activation="softmax", name="probs")(joined),
        ],
    )
    base = tmp_path_factory.mktemp("models") / "multi"
    (base / "1").mkdir(parents=True)
    (base / "1" / "model.keras").write_bytes(b"an older version that is not a model")
    (base / "2").mkdir()
    model.save(str(base / "2" / "model.keras"))
    return base


@pytest.fixture(scope="module")
def keras_service(make_module_service, keras_base):
    return make_module_service(model_path=str(keras_base))


@pytest.fixture(scope="module")
def keras_expected(keras_base):
    from worker.model.loader import load_model

    return load_model(str(keras_base / "2" / "model.keras"), "multi", "2").predict({"a": A, "b": B})


class Named(tf.Module):
    @tf.function(
        input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x"), tf.TensorSpec([None], tf.int64, name="k")]
    )
    def serve(self, x, k):
        return {"scaled": x * 2.0, "weighted_sum": tf.reduce_sum(x, axis=1) * tf.cast(k, tf.float32)}


@pytest.fixture(scope="module")
def saved_model_service(make_module_service, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("named") / "named")
    module = Named()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return make_module_service(model_path=path)


K = np.array([2, 0, -1], np.int64)
SCALED = A * 2.0
WEIGHTED = A.sum(axis=1) * K


def _close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, np.float32), expected, rtol=1e-5, atol=1e-6)


def test_the_highest_version_directory_is_served_and_reported(keras_service):
    models = keras_service.http.get("/v1/models").json()["models"][0]
    assert (models["name"], models["version"]) == ("multi", "2")
    assert keras_service.http.get("/v1/models/multi").json()["model_version_status"][0]["version"] == "2"


def test_keras_multi_io_on_predict(keras_service, keras_expected):
    rows = [{"a": a.tolist(), "b": b.tolist()} for a, b in zip(A, B)]
    body = keras_service.predict(rows).json()
    assert body["model"] == {"name": "multi", "version": "2"}
    _close([p["total"] for p in body["predictions"]], keras_expected["total"])
    _close([p["probs"] for p in body["predictions"]], keras_expected["probs"])


def test_keras_multi_io_on_tf_serving_row_and_columnar(keras_service, keras_expected):
    rows = [{"a": a.tolist(), "b": b.tolist()} for a, b in zip(A, B)]
    response = keras_service.http.post("/v1/models/multi/versions/2:predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    _close([p["probs"] for p in response.json()["predictions"]], keras_expected["probs"])
    response = keras_service.http.post("/v1/models/multi:predict", json={"inputs": {"a": A.tolist(), "b": B.tolist()}})
    outputs = response.json()["outputs"]
    assert set(outputs) == {"total", "probs"}
    _close(outputs["total"], keras_expected["total"])
    _close(outputs["probs"], keras_expected["probs"])
    signature = keras_service.http.get("/v1/models/multi/metadata").json()["metadata"]["signature_def"]["signature_def"]
    assert signature["serving_default"]["inputs"]["b"]["dtype"] == "DT_INT32"


def test_keras_multi_io_through_tritonclient(keras_service, keras_expected):
    with triton.InferenceServerClient(keras_service.base_url.removeprefix("http://")) as client:
        metadata = client.get_model_metadata("multi", "2")
        assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [("a", "FP32"), ("b", "INT32")]
        a, b = triton.InferInput("a", list(A.shape), "FP32"), triton.InferInput("b", list(B.shape), "INT32")
        a.set_data_from_numpy(A)
        b.set_data_from_numpy(B)
        result = client.infer("multi", [a, b], model_version="2")
    assert result.get_response()["model_version"] == "2"
    _close(result.as_numpy("total"), keras_expected["total"])
    _close(result.as_numpy("probs"), keras_expected["probs"])


def test_saved_model_named_inputs_on_every_route(saved_model_service):
    service = saved_model_service
    rows = [{"x": x.tolist(), "k": int(k)} for x, k in zip(A, K)]
    body = service.predict(rows).json()
    _close([p["weighted_sum"] for p in body["predictions"]], WEIGHTED)
    row = service.http.post("/v1/models/named:predict", json={"instances": rows}).json()
    _close([p["scaled"] for p in row["predictions"]], SCALED)
    columnar = service.http.post("/v1/models/named:predict", json={"inputs": {"x": A.tolist(), "k": K.tolist()}}).json()
    _close(columnar["outputs"]["weighted_sum"], WEIGHTED)
    signature = service.http.get("/v1/models/named/metadata").json()["metadata"]["signature_def"]["signature_def"]
    assert signature["serving_default"]["inputs"]["k"] == {
        "dtype": "DT_INT64",
        "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
        "name": "serving_default_k:0",
    }  # the graph's tensor name, as TF Serving shows it
    with triton.InferenceServerClient(service.base_url.removeprefix("http://")) as client:
        assert [t["shape"] for t in client.get_model_metadata("named")["outputs"]] == [[-1, 3], [-1]]
        x, k = triton.InferInput("x", list(A.shape), "FP32"), triton.InferInput("k", [3], "INT64")
        x.set_data_from_numpy(A)
        k.set_data_from_numpy(K, binary_data=False)
        result = client.infer("named", [x, k], outputs=[triton.InferRequestedOutput("weighted_sum")])
    _close(result.as_numpy("weighted_sum"), WEIGHTED)
    assert result.as_numpy("scaled") is None  # not asked for, not sent

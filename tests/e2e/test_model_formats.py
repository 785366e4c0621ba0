"""Legacy .h5 and SavedModel models load and serve; a job whose input breaks the model fails alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf

from shared import keys
from tests.conftest import DIGITS_MODEL
from tests.support import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["h5", "savedmodel"])
def converted_model(request, tmp_path_factory):
    import keras

    model = keras.saving.load_model(DIGITS_MODEL, compile=False)
    out = tmp_path_factory.mktemp("models")
    if request.param == "h5":
        path = str(out / "digits.h5")
        model.save(path)
    else:
        path = str(out / "digits_savedmodel")
        model.export(path, verbose=False)
    return path


def test_h5_and_savedmodel_models_serve_the_same_predictions(make_service, converted_model, digits, digits_model):
    x, _ = digits
    service = make_service(model_path=converted_model, model_name="digits")
    response = service.predict(x[:10].tolist())
    assert response.status_code == 200, response.text
    expected = digits_model.predict({"pixels": x[:10]})["probabilities"]
    np.testing.assert_allclose(np.array(response.json()["predictions"]), expected, rtol=1e-5, atol=1e-6)


class Poisonable(tf.Module):
    """Doubles its input, and refuses (raises inside the graph) any value of 100 or more."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        tf.debugging.assert_less(x, 100.0, message="poison: value >= 100")
        return {"y": x * 2.0}


@pytest.fixture(scope="module")
def poisonable_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("poison") / "model")
    module = Poisonable()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def test_a_job_that_breaks_the_model_fails_alone_and_its_batch_mates_finish(make_service, poisonable_model):
    service = make_service(
        model_path=poisonable_model, max_microbatch_delay_ms=1000, microbatch_window="fixed", api_threads=16
    )
    rows = [[[float(i)] * 4] for i in range(8)] + [[[500.0] * 4]]
    with ThreadPoolExecutor(len(rows)) as pool:
        responses = list(pool.map(lambda r: service.predict(r, wait=20), rows))
    bodies = [r.json() for r in responses]
    assert [b["status"] for b in bodies] == ["finished"] * 8 + ["failed"]
    for i, body in enumerate(bodies[:8]):
        assert body["predictions"] == [[2.0 * i] * 4]
    assert bodies[8]["error"]["code"] == "inference_failed"
    assert "poison" in bodies[8]["error"]["message"]
    wait_until(lambda: service.stats().get("rows", 0) >= 9, 10)  # counters are written at most once a second
    assert service.stats()["model_calls"] > len(service.redis.lrange(keys.microbatch_sizes(), 0, -1))
    assert service.http.get("/readyz").status_code == 200  # the worker survived

"""Submit, wait and poll through the real API with a real worker and the real example model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from shared import keys
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def test_predictions_equal_the_models_own_output(service, digits, digits_model):
    x, y = digits
    rows = x[:20]
    response = service.predict(rows.tolist())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "finished"
    assert body["model"] == {"name": "digits", "version": "1"}
    expected = digits_model.predict({"pixels": rows})["probabilities"]
    np.testing.assert_allclose(np.array(body["predictions"]), expected, rtol=1e-5, atol=1e-6)
    assert list(np.argmax(body["predictions"], axis=1)) == list(y[:20])


def test_bare_json_array_of_rows_is_accepted_as_instances(service, digits):
    x, y = digits
    response = service.http.post("/predict?wait=10", json=x[:3].tolist())
    assert response.status_code == 200
    assert list(np.argmax(response.json()["predictions"], axis=1)) == list(y[:3])


def test_submit_then_poll_returns_202_then_the_result(service, digits):
    x, y = digits
    submitted = service.http.post("/predict", json={"instances": [x[7].tolist()]})
    assert submitted.status_code == 202
    body = submitted.json()
    assert body["status"] == "queued" and len(body["id"]) == 32
    assert submitted.headers["Location"] == body["result_url"] == f"/result/{body['id']}"

    def poll():
        r = service.http.get(body["result_url"])
        if r.status_code == 202:
            assert r.json()["status"] in ("queued", "started")
            assert r.headers["Retry-After"]
            return None
        return r

    final = wait_until(poll, 10)
    assert final.status_code == 200
    assert final.json()["status"] == "finished"
    assert int(np.argmax(final.json()["predictions"][0])) == y[7]


def test_result_long_poll_returns_when_the_job_finishes(service, digits):
    x, _ = digits
    job_id = service.http.post("/predict", json={"instances": [x[1].tolist()]}).json()["id"]
    response = service.http.get(f"/result/{job_id}", params={"wait": 10})
    assert response.status_code == 200
    assert response.json()["status"] == "finished"


def test_wait_returns_the_result_in_one_call(service, digits):
    x, _ = digits
    response = service.predict([x[0].tolist()], wait=10)
    assert response.status_code == 200
    assert response.json()["status"] == "finished"
    assert len(response.json()["predictions"]) == 1


def test_unknown_job_id_is_404(service):
    assert service.http.get("/result/" + "0" * 32).status_code == 404
    response = service.http.get("/result/..%2F..%2Fetc%2Fpasswd")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_job_with_more_rows_than_a_batch_spans_batches_in_order(make_service, digits, digits_model):
    x, _ = digits
    small = make_service(max_microbatch_rows=16)
    response = small.predict(x[:100].tolist())
    assert response.status_code == 200
    expected = digits_model.predict({"pixels": x[:100]})["probabilities"]
    np.testing.assert_allclose(np.array(response.json()["predictions"]), expected, rtol=1e-5, atol=1e-6)
    # Workers write their counters at most once a second.
    wait_until(lambda: small.stats().get("rows", 0) >= 100, 10)
    assert max(int(s) for s in small.redis.lrange(keys.microbatch_sizes(), 0, -1)) <= 16


def test_concurrent_submissions_are_batched_into_fewer_model_calls(make_service, digits, digits_model):
    x, _ = digits
    expected = np.argmax(digits_model.predict({"pixels": x[:64]})["probabilities"], axis=1)
    # A long delay window makes the outcome certain: the first job waits for the others to arrive.
    batching = make_service(
        max_microbatch_delay_ms=1500, microbatch_window="fixed", max_microbatch_rows=64, api_threads=64
    )
    with ThreadPoolExecutor(64) as pool:
        responses = list(pool.map(lambda i: batching.predict([x[i].tolist()], wait=20), range(64)))
    assert [r.status_code for r in responses] == [200] * 64
    assert [int(np.argmax(r.json()["predictions"][0])) for r in responses] == expected.tolist()
    wait_until(lambda: batching.stats().get("rows", 0) >= 64, 10)  # counters are written at most once a second
    stats = batching.stats()
    assert stats["rows"] == 64
    assert stats["model_calls"] < 64
    sizes = [int(s) for s in batching.redis.lrange(keys.microbatch_sizes(), 0, -1)]
    assert sum(sizes) == 64 and max(sizes) > 1
    assert stats["microbatches"] == len(sizes) and stats["model_s"] > 0  # model_s / wall time: the busy fraction


def test_result_expires_after_result_ttl(make_service, digits):
    x, _ = digits
    short = make_service(result_ttl=1)
    response = short.predict([x[0].tolist()])
    assert response.status_code == 200
    job_id = response.json()["id"]
    wait_until(lambda: short.http.get(f"/result/{job_id}").status_code == 404, 10)


def test_a_job_with_a_corrupt_payload_fails_alone(service, digits):
    from rq import Queue

    from shared.payload import PREDICT_FUNC
    from shared.schema import OrjsonSerializer

    queue = Queue("predict", connection=service.redis, serializer=OrjsonSerializer)
    bad = queue.enqueue(PREDICT_FUNC, {"rows": 1, "inputs": {"pixels": {"dtype": "object", "shape": [1], "data": ""}}})
    good = service.predict([digits[0][0].tolist()])
    assert good.json()["status"] == "finished"
    body = service.http.get(f"/result/{bad.id}", params={"wait": 10}).json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "invalid_payload"
    assert "unsupported dtype 'object'" in body["error"]["message"]

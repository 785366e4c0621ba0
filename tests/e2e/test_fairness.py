"""The fair-share drill, short: key A queues a big batch and floods /predict past its own limit; key B then
submits a small batch and single rows. A's excess gets 429 naming its limit while B gets 202; B's batch
finishes before A's does (with one shared queue it would wait for all of A's); every row of both is right.
With two models, each model's queue has each key's sub-queue in its own ring, and a key's limit is per model.

Behaviour only: the numbers (B's batch time, B's /predict latencies) are printed, never asserted; the long
drill with targets is scripts/fairness_drill.py (make soak).
"""

from __future__ import annotations

import io
import time
from datetime import datetime

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scripts.model_versions import add_digits, add_half_plus_two, write_config
from shared import keys, rq_keys
from shared.tenants import fingerprint
from tests.support import Service, wait_until

pytestmark = pytest.mark.e2e

KEY_A, KEY_B = "tenant-a-secret-0001", "tenant-b-secret-0002"
LIMIT = 40  # rows A (and B) may have waiting for /predict
BIG, SMALL, CHUNK = 24_000, 2_000, 500


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keys_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("keys") / "keys.toml"
    path.write_text(
        f'[keys.team-a]\nsha256 = "{fingerprint(KEY_A)}"\n\n[keys.team-b]\nsha256 = "{fingerprint(KEY_B)}"\nweight = 1\n'
    )
    return str(path)


@pytest.fixture(scope="module")
def shared(make_module_service, tmp_path_factory) -> Service:
    return make_module_service(
        api_keys_file=keys_file(tmp_path_factory),
        max_queued_rows_per_key=LIMIT,
        batch_chunk_rows=CHUNK,
        job_start_deadline_s=600,
    )


@pytest.fixture(scope="module")
def two_models(make_module_service, tmp_path_factory) -> Service:
    """Digits (the first model: `predict`) and TF Serving's half_plus_two (`predict-half_plus_two`), with keys."""
    root = tmp_path_factory.mktemp("models")
    add_digits(root / "digits")
    add_half_plus_two(root / "half_plus_two")
    config = write_config(
        root / "models.config", [("digits", root / "digits", ""), ("half_plus_two", root / "half_plus_two", "")]
    )
    return make_module_service(
        model_config_file=str(config), api_keys_file=keys_file(tmp_path_factory), max_queued_rows_per_key=3
    )


def upload(service: Service, key: str, rows: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, rows)
    response = service.http.post(
        "/batches", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy", **bearer(key)}
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_batch(service: Service, key: str, batch_id: str, timeout_s: float) -> dict:
    def ended():
        doc = service.http.get(f"/batches/{batch_id}", headers=bearer(key)).json()
        return doc if doc["status"] not in ("validating", "queued", "in_progress") else None

    return wait_until(ended, timeout_s, 0.1)


def results(service: Service, key: str, batch_id: str) -> np.ndarray:
    response = service.http.get(
        f"/batches/{batch_id}/results", headers={"Accept": "application/x-npy", **bearer(key)}, timeout=60
    )
    assert response.status_code == 200
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def seconds(doc: dict, start: str = "created_at") -> float:
    return (datetime.fromisoformat(doc["finished_at"]) - datetime.fromisoformat(doc[start])).total_seconds()


def predict_p99(service: Service, key: str, rows: np.ndarray) -> float:
    times = []
    for row in rows:
        began = time.perf_counter()
        response = service.http.post(
            "/predict", params={"wait": 30}, json={"instances": [row.tolist()]}, headers=bearer(key)
        )
        assert response.status_code == 200, response.text
        times.append(time.perf_counter() - began)
    return float(np.percentile(times, 99))


def test_a_flooding_key_gets_429_for_its_own_limit_while_another_key_is_served_first(shared, digits, digits_model):
    x = digits[0]
    big = np.tile(x, (BIG // len(x) + 1, 1))[:BIG]
    small = np.tile(x, (2, 1))[:SMALL]
    idle_p99 = predict_p99(shared, KEY_B, x[:50])
    idle_batch = wait_batch(shared, KEY_B, upload(shared, KEY_B, small), 120)

    with shared.frozen_worker():
        a_batch = upload(shared, KEY_A, big)
        accepted = [
            shared.http.post("/predict", json={"instances": [x[i].tolist()]}, headers=bearer(KEY_A))
            for i in range(LIMIT)
        ]
        assert {r.status_code for r in accepted} == {202}
        over = shared.http.post("/predict", json={"instances": [x[0].tolist()]}, headers=bearer(KEY_A))
        assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
        assert "team-a" in over.json()["error"]["message"]
        assert f"MAX_QUEUED_ROWS_PER_KEY={LIMIT}" in over.json()["error"]["message"]
        b_single = shared.http.post("/predict", json={"instances": [x[1].tolist()]}, headers=bearer(KEY_B))
        assert b_single.status_code == 202  # B's own backlog is empty: A's does not count against it
        b_batch = upload(shared, KEY_B, small)
    busy_p99 = predict_p99(shared, KEY_B, x[:50])
    b_doc = wait_batch(shared, KEY_B, b_batch, 300)
    a_doc = wait_batch(shared, KEY_A, a_batch, 600)
    assert b_doc["status"] == a_doc["status"] == "completed" and a_doc["done_rows"] == BIG
    # B's batch, queued after all of A's, did not wait behind it: it ended first.
    assert datetime.fromisoformat(b_doc["finished_at"]) < datetime.fromisoformat(a_doc["finished_at"]), (a_doc, b_doc)

    expected = np.asarray(digits_model.predict({"pixels": x})["probabilities"])
    np.testing.assert_allclose(results(shared, KEY_B, b_batch), np.tile(expected, (2, 1))[:SMALL], atol=1e-4)
    np.testing.assert_allclose(
        results(shared, KEY_A, a_batch), np.tile(expected, (BIG // len(x) + 1, 1))[:BIG], atol=1e-4
    )
    for response in accepted:
        assert (
            shared.http.get(response.headers["Location"], params={"wait": 30}, headers=bearer(KEY_A)).json()["status"]
            == "finished"
        )

    def tenant_samples() -> dict[tuple[str, str], float]:
        text = shared.http.get("/metrics", headers=bearer(KEY_A)).text
        return {
            (s.name, s.labels.get("tenant", "")): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name.startswith("inference_tenant_")
        }

    def counted() -> dict[tuple[str, str], float] | None:  # workers write their counters once a second
        samples = tenant_samples()
        done = (
            samples.get(("inference_tenant_rows_total", "team-a"), 0) == BIG + LIMIT
            and samples.get(("inference_tenant_rows_total", "team-b"), 0) == 2 * SMALL + 2 * 50 + 1
        )
        return samples if done else None

    samples = wait_until(counted)
    assert samples[("inference_tenant_rejections_total", "team-a")] >= 1
    assert samples[("inference_tenant_rejections_total", "team-b")] == 0
    assert samples[("inference_tenant_wait_seconds_count", "team-b")] > 0
    print(
        f"\nfairness drill (suite size): B's {SMALL}-row batch {seconds(b_doc):.2f} s behind A's {BIG}-row batch "
        f"vs {seconds(idle_batch):.2f} s idle; B's /predict p99 {busy_p99 * 1000:.1f} ms vs {idle_p99 * 1000:.1f} ms "
        f"idle; A's batch {seconds(a_doc):.2f} s"
    )


def test_each_models_queue_has_a_sub_queue_per_key_in_its_own_ring_and_its_own_per_key_limit(two_models):
    lane = "predict-half_plus_two"

    def post(key: str, model: str, instances: list) -> object:
        body = {"instances": instances, "model": model}
        return two_models.http.post("/predict", json=body, headers=bearer(key))

    with two_models.frozen_worker():
        a_jobs = [post(KEY_A, "half_plus_two", [[float(i)]]) for i in range(3)]
        assert [r.status_code for r in a_jobs] == [202, 202, 202], a_jobs[0].text
        over = post(KEY_A, "half_plus_two", [[9.0]])
        assert over.status_code == 429 and f"'team-a' are waiting in '{lane}'" in over.json()["error"]["message"]
        b_job = post(KEY_B, "half_plus_two", [[4.0]])
        a_digits = post(KEY_A, "digits", [[0.0] * 64])  # A's limit in digits' queue is its own
        assert b_job.status_code == a_digits.status_code == 202
        # B at its limit in the first model's queue (the one a request naming no model goes to) is still
        # accepted for a model its body names: the limit checked is the named model's
        assert [post(KEY_B, "digits", [[0.0] * 64]).status_code for _ in range(4)] == [202, 202, 202, 429]
        b_second = post(KEY_B, "half_plus_two", [[6.0]])
        assert b_second.status_code == 202, b_second.text
        r = two_models.redis
        assert [r.llen(rq_keys.queue(f"{lane}~{name}")) for name in ("team-a", "team-b")] == [3, 2]
        assert r.lrange(keys.ring(lane), 0, -1) == [f"{lane}~team-a".encode(), f"{lane}~team-b".encode()]
        assert r.lrange(keys.ring("predict"), 0, -1) == [b"predict~team-a", b"predict~team-b"]

    def answer(response, key: str) -> dict:
        return two_models.http.get(response.headers["Location"], params={"wait": 30}, headers=bearer(key)).json()

    docs = [answer(response, KEY_A) for response in a_jobs] + [answer(b, KEY_B) for b in (b_job, b_second)]
    assert [d["predictions"] for d in docs] == [[[2.0]], [[2.5]], [[3.0]], [[4.0]], [[5.0]]]  # x / 2 + 2
    assert {(d["model"]["name"], d["model"]["version"]) for d in docs} == {("half_plus_two", "123")}
    assert answer(a_digits, KEY_A)["model"]["name"] == "digits"

"""API keys: every endpoint but the health checks needs one; a job is visible only to the key that made it.

The keyed service runs without a worker: the model document is the one the session's real worker
published, so requests validate and jobs stay queued, which is all ownership needs.
"""

from __future__ import annotations

import hashlib

import pytest

from shared import keys, rq_keys
from tests.support import Service, copy_models

pytestmark = pytest.mark.e2e

ALPHA, BETA = "alpha-key-0001", "beta-key-0002"
ROW = [3.14159] * 64


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(make_module_service, service) -> Service:
    keyed = make_module_service(workers=0, api_keys=f"{ALPHA},{BETA}", log_level="DEBUG")
    copy_models(service.redis, keyed.redis)
    return keyed


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/predict"),
        ("GET", "/result/" + "0" * 32),
        ("DELETE", "/jobs/" + "0" * 32),
        ("GET", "/v1/models"),
        ("GET", "/no-such-route"),
        ("POST", "/batches"),
        ("GET", "/batches/" + "0" * 32),
        ("GET", "/metrics"),
        ("POST", "/v1/models/digits:predict"),
        ("POST", "/v2/models/digits/infer"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key-9999", f"Basic {ALPHA}", "Bearer", f"bearer{ALPHA}"])
def test_without_a_valid_bearer_key_every_endpoint_but_health_answers_401(keyed, method, path, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = keyed.http.request(method, path, headers=headers, json={"instances": [ROW]})
    assert response.status_code == 401
    error = response.json()["error"]
    if path.startswith(("/v1/models/", "/v2/")):  # the protocols' own error shape: {"error": "..."}
        assert "API key" in error
    else:
        assert error["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_health_checks_need_no_key_and_a_valid_key_gets_through(keyed):
    assert keyed.http.get("/healthz").status_code == 200
    assert keyed.http.get("/v2/health/live").status_code == 200
    assert keyed.http.get("/openapi.json").status_code == 200
    assert keyed.http.get("/readyz").status_code == 503  # no worker here: not ready, but not 401 either
    assert keyed.http.get("/v1/models", headers=bearer(BETA)).status_code == 200
    assert keyed.http.post("/predict", json={"instances": [ROW]}, headers=bearer(ALPHA)).status_code == 202


def test_a_job_is_readable_and_cancellable_only_with_the_key_that_created_it(keyed):
    job_id = keyed.http.post("/predict", json={"instances": [ROW]}, headers=bearer(ALPHA)).json()["id"]
    unknown = keyed.http.get("/result/" + "f" * 32, headers=bearer(BETA))
    foreign = keyed.http.get(f"/result/{job_id}", headers=bearer(BETA))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert keyed.http.get(f"/result/{job_id}", params={"wait": 0.1}, headers=bearer(BETA)).status_code == 404
    assert keyed.http.delete(f"/jobs/{job_id}", headers=bearer(BETA)).status_code == 404
    assert keyed.http.get(f"/result/{job_id}", headers=bearer(ALPHA)).json()["status"] == "queued"
    assert keyed.http.delete(f"/jobs/{job_id}", headers=bearer(ALPHA)).json()["status"] == "canceled"
    assert keyed.http.get(f"/result/{job_id}", headers=bearer(BETA)).status_code == 404


def test_the_job_records_a_hash_of_its_key_never_the_key_and_logs_hold_no_key_or_payload(keyed):
    job_id = keyed.http.post("/predict", json={"instances": [ROW]}, headers=bearer(ALPHA)).json()["id"]
    job = keyed.redis.hgetall(rq_keys.job(job_id))
    assert job[keys.JOB_OWNER.encode()] == hashlib.sha256(ALPHA.encode()).hexdigest().encode()
    assert not any(ALPHA.encode() in value for value in job.values())
    keyed.http.get("/v1/models", headers=bearer("wrong-key-9999"))
    logs = keyed.logs()
    for secret in (ALPHA, BETA, "wrong-key-9999", "3.14159"):
        assert secret not in logs


def test_a_batch_and_its_files_are_visible_only_to_the_key_that_created_it(keyed):
    rows = b"".join(b"[" + b", ".join([b"1"] * 64) + b"]\n" for _ in range(3))
    created = keyed.http.post(
        "/batches", content=rows, headers={**bearer(ALPHA), "Content-Type": "application/x-ndjson"}
    )
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    assert keyed.redis.hget(keys.batch(batch_id), "owner") == hashlib.sha256(ALPHA.encode()).hexdigest().encode()
    for path in (f"/batches/{batch_id}", f"/batches/{batch_id}/results?partial=true", f"/batches/{batch_id}/errors"):
        assert keyed.http.get(path, headers=bearer(BETA)).status_code == 404, path
        assert keyed.http.get(path, headers=bearer(ALPHA)).status_code == 200, path
    assert keyed.http.delete(f"/batches/{batch_id}", headers=bearer(BETA)).status_code == 404
    assert keyed.http.get(f"/batches/{batch_id}", headers=bearer(ALPHA)).json()["status"] == "queued"
    assert keyed.http.delete(f"/batches/{batch_id}", headers=bearer(ALPHA)).json()["status"] == "cancelled"


@pytest.mark.parametrize(("method", "suffix"), [("DELETE", ""), ("POST", "/cancel")])
def test_cancelling_a_batch_either_way_leaves_it_readable(keyed, method, suffix):
    rows = b"".join(b"[" + b", ".join([b"1"] * 64) + b"]\n" for _ in range(3))
    created = keyed.http.post(
        "/batches", content=rows, headers={**bearer(ALPHA), "Content-Type": "application/x-ndjson"}
    )
    batch_id = created.json()["id"]
    assert keyed.http.request(method, f"/batches/{batch_id}{suffix}", headers=bearer(BETA)).status_code == 404
    cancelled = keyed.http.request(method, f"/batches/{batch_id}{suffix}", headers=bearer(ALPHA))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert keyed.http.get(f"/batches/{batch_id}", headers=bearer(ALPHA)).json()["status"] == "cancelled"
    assert keyed.http.request(method, f"/batches/{batch_id}{suffix}", headers=bearer(ALPHA)).status_code == 409


def test_the_index_page_is_public_and_says_what_the_server_is(keyed):
    index = keyed.http.get("/")
    assert index.status_code == 200
    body = index.json()
    assert body["service"] and body["version"] and body["status"] == "alive"
    assert body["links"]["docs"] == "/docs" and body["links"]["openapi"] == "/openapi.json"
    assert body["links"]["metrics"] == "/metrics"
    assert [m["name"] for m in body["models"]] == ["digits"]

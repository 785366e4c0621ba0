"""Idempotency-Key on POST /predict and POST /batches, against the real API and a real worker: a submit sent
again with its key gets the first one's job or batch, and nothing is ever enqueued twice."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest

from shared import keys, rq_keys
from tests.support import Service

pytestmark = pytest.mark.e2e

ALPHA, BETA = "alpha-key-0001", "beta-key-0002"


@pytest.fixture(scope="module")
def keyed(make_module_service) -> Service:
    return make_module_service(api_keys=f"{ALPHA},{BETA}")


def headers(api_key: str = ALPHA, idempotency_key: str | None = None, **extra: str) -> dict[str, str]:
    found = {"Authorization": f"Bearer {api_key}", **extra}
    if idempotency_key is not None:
        found["Idempotency-Key"] = idempotency_key
    return found


def jobs_in(service: Service) -> int:
    """RQ job hashes in the service's database: one per job ever enqueued (they outlive their results)."""
    return sum(1 for _ in service.redis.scan_iter(rq_keys.job("*")))


def batches_in(service: Service) -> int:
    return sum(1 for _ in service.redis.scan_iter(keys.batch("*")))


def ndjson(rows: np.ndarray) -> bytes:
    return b"".join(f"{row.tolist()}\n".encode() for row in rows)


def test_the_same_key_twice_gives_the_first_job_and_enqueues_one(keyed, digits):
    rows = {"instances": digits[0][:2].tolist()}
    before = jobs_in(keyed)
    first = keyed.http.post("/predict", json=rows, headers=headers(idempotency_key="same-twice"))
    again = keyed.http.post("/predict", params={"wait": 10}, json=rows, headers=headers(idempotency_key="same-twice"))
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.status_code == 200 and again.json()["status"] == "finished"  # its current state, waited for
    assert jobs_in(keyed) == before + 1


def test_the_same_key_with_a_different_body_is_a_409_naming_the_key(keyed, digits):
    x = digits[0]
    keyed.http.post("/predict", json={"instances": x[:1].tolist()}, headers=headers(idempotency_key="other-body"))
    before = jobs_in(keyed)
    response = keyed.http.post(
        "/predict", json={"instances": x[1:2].tolist()}, headers=headers(idempotency_key="other-body")
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("conflict", "Idempotency-Key")
    assert "different request body" in error["message"]
    options = keyed.http.post(
        "/predict",
        params={"timeout": 30},
        json={"instances": x[:1].tolist()},
        headers=headers(idempotency_key="other-body"),
    )
    assert options.status_code == 409
    assert jobs_in(keyed) == before


def test_keys_are_scoped_per_api_key(keyed, digits):
    rows = {"instances": digits[0][:1].tolist()}
    alpha = keyed.http.post("/predict", json=rows, headers=headers(ALPHA, "shared-key")).json()["id"]
    beta = keyed.http.post("/predict", json=rows, headers=headers(BETA, "shared-key")).json()["id"]
    assert alpha != beta
    assert keyed.http.post("/predict", json=rows, headers=headers(BETA, "shared-key")).json()["id"] == beta


def test_concurrent_identical_submits_create_one_job(keyed, digits):
    rows = {"instances": digits[0][:1].tolist()}
    before, callers = jobs_in(keyed), 8
    start, answers = threading.Barrier(callers), []

    def submit() -> None:
        with httpx.Client(base_url=keyed.base_url, timeout=60) as http:
            start.wait()
            answers.append(http.post("/predict", json=rows, headers=headers(idempotency_key="at-once")))

    threads = [threading.Thread(target=submit) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} <= {200, 202}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    assert jobs_in(keyed) == before + 1


def test_a_key_that_is_not_1_to_255_printable_ascii_is_a_400_naming_the_header(keyed, digits):
    for bad in ("", "x" * 256, "tab\tinside"):
        response = keyed.http.post(
            "/predict", json={"instances": digits[0][:1].tolist()}, headers=headers(idempotency_key=bad)
        )
        assert response.status_code == 400, bad
        assert response.json()["error"]["field"] == "Idempotency-Key"
    ok = keyed.http.post(
        "/predict", json={"instances": digits[0][:1].tolist()}, headers=headers(idempotency_key="x" * 255)
    )
    assert ok.status_code == 202


def test_a_batch_sent_again_with_its_key_is_the_first_batch(keyed, digits):
    body = ndjson(digits[0][:30])
    upload = headers(idempotency_key="batch-once", **{"Content-Type": "application/x-ndjson"})
    before = batches_in(keyed)
    first = keyed.http.post("/batches", content=body, headers=upload)
    again = keyed.http.post("/batches", content=body, headers=upload)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert batches_in(keyed) == before + 1
    other = keyed.http.post("/batches", content=ndjson(digits[0][:31]), headers=upload)
    assert other.status_code == 409 and other.json()["error"]["field"] == "Idempotency-Key"
    beta = keyed.http.post("/batches", content=body, headers={**upload, "Authorization": f"Bearer {BETA}"})
    assert beta.status_code == 202 and beta.json()["id"] != first.json()["id"]


def test_a_multipart_batch_sent_again_is_the_same_upload_whatever_its_boundary(keyed, digits):
    body = ndjson(digits[0][:10])
    ids = {
        keyed.http.post(
            "/batches",
            files={"file": ("rows.ndjson", body, "application/x-ndjson")},
            data={"on_error": "skip"},
            headers=headers(idempotency_key="multipart"),
        ).json()["id"]
        for _ in range(2)
    }
    assert len(ids) == 1


def test_concurrent_identical_uploads_create_one_batch(keyed, digits):
    body = ndjson(digits[0][:200])
    before, callers = batches_in(keyed), 6
    start, answers = threading.Barrier(callers), []

    def upload() -> None:
        with httpx.Client(base_url=keyed.base_url, timeout=60) as http:
            start.wait()
            answers.append(
                http.post(
                    "/batches",
                    content=body,
                    headers=headers(idempotency_key="uploads-at-once", **{"Content-Type": "application/x-ndjson"}),
                )
            )

    threads = [threading.Thread(target=upload) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert batches_in(keyed) == before + 1


def test_a_refused_upload_does_not_use_its_key_up(keyed, digits):
    upload = headers(idempotency_key="refused-first", **{"Content-Type": "application/x-ndjson"})
    refused = keyed.http.post("/batches", content=ndjson(digits[0][:3]) + b"[1, 2]\n", headers=upload)
    assert refused.status_code == 400
    accepted = keyed.http.post("/batches", content=ndjson(digits[0][:3]), headers=upload)
    assert accepted.status_code == 202

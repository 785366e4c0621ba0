"""SIGTERM to the API and to the worker while clients keep submitting: no accepted job is lost.

Both are restarted (the API holds no state; the worker finishes what it holds, then exits 0), clients
carry on throughout, and every job that got a 200 or 202 must end finished, once, with the right answer.
"""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import orjson
import pytest

from tests.support import wait_until

pytestmark = pytest.mark.e2e


def test_sigterm_to_the_api_and_the_worker_under_load_loses_no_accepted_job(make_service, digits, digits_model):
    x, _ = digits
    service = make_service()
    accepted: dict[str, int] = {}  # job id -> digits row it carries
    unexpected: list[str] = []
    lock, stop = threading.Lock(), threading.Event()

    def client(seed: int) -> None:
        with httpx.Client(base_url=service.base_url, timeout=30) as http:
            i = seed
            while not stop.is_set():
                i += 1
                row = i % len(x)
                try:
                    r = http.post("/predict", params={"wait": i % 2}, json={"instances": [x[row].tolist()]})
                except httpx.TransportError:
                    time.sleep(0.05)  # the API is restarting; this request was not accepted
                    continue
                if r.status_code in (200, 202):
                    with lock:
                        accepted[r.json()["id"]] = row
                else:
                    unexpected.append(f"{r.status_code} {r.text}")

    def accepted_grows_by(n: int) -> None:
        target = len(accepted) + n
        wait_until(lambda: len(accepted) >= target, 60)

    clients = [threading.Thread(target=client, args=(k * 1000,)) for k in range(4)]
    for t in clients:
        t.start()
    try:
        accepted_grows_by(20)
        assert service.stop_process(service.api) == 0, service.logs()
        service.start_api()
        accepted_grows_by(20)
        [worker] = service.workers
        assert service.stop_process(worker) == 0, service.logs()
        accepted_grows_by(10)  # queued while no worker runs
        service.start_worker()
        accepted_grows_by(20)
    finally:
        stop.set()
        for t in clients:
            t.join(30)
    assert unexpected == []
    expected = digits_model.predict({"pixels": x})["probabilities"]
    for job_id, row in accepted.items():
        body = service.http.get(f"/result/{job_id}", params={"wait": 30}).json()
        assert body["status"] == "finished", body
        np.testing.assert_allclose(body["predictions"][0], expected[row], rtol=1e-5, atol=1e-6)
        assert [orjson.loads(d)["status"] for d in service.documents(job_id)] == ["finished"]
    wait_until(
        lambda: service.stats().get("rows", 0) >= len(accepted), 10
    )  # counters are written at most once a second
    assert service.stats()["rows"] == len(accepted)  # each ran exactly once

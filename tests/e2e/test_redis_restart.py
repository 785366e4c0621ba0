"""Redis crashes and comes back: queued jobs, stored results and jobs in a worker's hands all survive.

The service runs on a Redis of its own (append-only file, `appendfsync always`), killed with SIGKILL
and restarted on the same port and data directory, so it reloads its AOF. The API and the worker are
never restarted: they must recover by themselves.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
from rq.job import Job

from scripts.embedded_redis import EmbeddedRedis
from shared.schema import OrjsonSerializer
from tests.support import Service, free_port, service_settings, wait_until

pytestmark = pytest.mark.e2e


class Crashable:
    """A redis-server that can be killed and started again with the same port and data."""

    def __init__(self, data_dir: str) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.server = EmbeddedRedis(self.port, data_dir, appendfsync="always").start()

    def crash(self) -> None:
        self.server.stop(kill=True)

    def restart(self) -> None:
        self.server = EmbeddedRedis(self.port, self.data_dir, appendfsync="always").start()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = Crashable(str(tmp_path_factory.mktemp("crashable-redis")))
    yield server
    server.server.stop()


@pytest.fixture(scope="module")
def svc(redis_server, tmp_path_factory) -> Service:
    # A 2 s batch window keeps claimed jobs in the worker's hands long enough to crash Redis meanwhile.
    settings = service_settings(
        f"redis://127.0.0.1:{redis_server.port}/0",
        0,
        max_microbatch_delay_ms=2000,
        microbatch_window="fixed",
        heartbeat_s=0.5,
        redis_appendfsync="always",
    )
    service = Service(settings, tmp_path_factory.mktemp("redis-restart-service"))
    try:
        service.start_api()
        service.start_worker()
        yield service
    finally:
        service.stop()


ROW = [1.0] * 64


def test_while_redis_is_down_every_route_but_healthz_answers_503_and_all_recovers_by_itself(svc, redis_server, digits):
    x, _ = digits
    done = svc.predict([x[0].tolist()], wait=20).json()
    assert done["status"] == "finished"
    [worker] = svc.live_worker_processes()
    svc.signal_worker(worker, signal.SIGSTOP)  # so that what we queue now stays queued
    queued = [svc.http.post("/predict", json={"instances": [x[i].tolist()]}).json()["id"] for i in (1, 2, 3)]

    redis_server.crash()
    requests = [
        ("POST", "/predict", {"json": {"instances": [ROW]}}),
        ("POST", "/predict?wait=5", {"json": {"instances": [ROW]}}),
        ("GET", f"/result/{done['id']}", {}),
        ("GET", f"/result/{queued[0]}?wait=5", {}),
        ("DELETE", f"/jobs/{queued[0]}", {}),
        ("GET", "/readyz", {}),
        ("GET", "/v1/models", {}),
    ]
    for method, url, kwargs in requests:
        response = svc.http.request(method, url, **kwargs)
        assert response.status_code == 503, (method, url, response.text)
        assert response.json()["error"]["code"] == "not_ready" and int(response.headers["Retry-After"]) >= 1
    assert svc.http.get("/healthz").status_code == 200

    redis_server.restart()
    assert svc.http.get(f"/result/{done['id']}").json() == done  # the stored result survived
    assert [svc.http.get(f"/result/{j}").json()["status"] for j in queued] == ["queued"] * 3
    svc.signal_worker(worker, signal.SIGCONT)
    for job_id in queued:
        body = svc.http.get(f"/result/{job_id}", params={"wait": 20}).json()
        assert body["status"] == "finished" and len(body["predictions"]) == 1
    wait_until(lambda: svc.http.get("/readyz").status_code == 200, 10)
    assert worker.running


def test_jobs_in_the_workers_hands_when_redis_crashes_are_finished_exactly_once(svc, redis_server, digits):
    x, _ = digits
    with ThreadPoolExecutor(4) as pool:
        job_ids = list(
            pool.map(lambda i: svc.http.post("/predict", json={"instances": [x[i].tolist()]}).json()["id"], range(4))
        )
    wait_until(lambda: all(svc.job_status(j) == "started" for j in job_ids), 10)  # inside the batch window
    redis_server.crash()
    # Down for longer than the client's own retries: the worker's loop has to hold the jobs and wait.
    wait_until(lambda: "Redis is unreachable" in svc.logs(), 20)
    redis_server.restart()
    for job_id in job_ids:
        body = svc.http.get(f"/result/{job_id}", params={"wait": 20}).json()
        assert body["status"] == "finished"
        assert [orjson.loads(d)["status"] for d in svc.documents(job_id)] == ["finished"]
        job = Job.fetch(job_id, connection=svc.redis, serializer=OrjsonSerializer)
        assert job.get_status() == "finished"
        assert job.retries_left == svc.settings.max_attempts - 1  # finished by the worker that held it
    wait_until(lambda: "Redis answers again" in svc.logs(), 10)

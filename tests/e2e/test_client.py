"""The Python client, its asyncio twin and the CLI against the real service."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import inferq
from inferq import AsyncClient, Client
from shared.config import PROJECT_ROOT
from tests.support import copy_models, wait_until

pytestmark = pytest.mark.e2e


def test_client_round_trips_a_job_and_a_batch(service, digits, digits_model, tmp_path):
    x, y = digits
    expected = digits_model.predict({"pixels": x[:1500]})["probabilities"]
    with Client(service.base_url) as c:
        assert np.argmax(c.predict(x[:5]), axis=1).tolist() == y[:5].tolist()
        job = c.submit(x[5:8])
        assert job.status() in ("queued", "started", "finished")
        assert np.argmax(job.result(timeout=20), axis=1).tolist() == y[5:8].tolist()
        batch = c.submit_batch(x[:1500])
        assert batch.wait(timeout=60)["status"] == "completed"
        rows = list(batch.iter_results())
        assert [r["row"] for r in rows] == list(range(1500))
        np.testing.assert_allclose([r["prediction"] for r in rows], expected, rtol=1e-5, atol=1e-6)
        batch.download(str(tmp_path / "out.npy"))
        np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-5, atol=1e-6)
        with pytest.raises(inferq.Conflict, match="cannot be cancelled"):
            batch.cancel()


def test_client_errors_are_typed_and_carry_the_servers_message(service):
    with Client(service.base_url) as c:
        with pytest.raises(inferq.NotFound, match="unknown, or its result was purged") as missing:
            c.job("0" * 32).status()
        assert missing.value.status == 404 and missing.value.code == "not_found"
        with pytest.raises(inferq.InvalidInput) as invalid:
            c.predict([[1, 2, 3]])
        assert invalid.value.field == "instances" and "shape [3]" in invalid.value.message
        with pytest.raises(inferq.InvalidInput) as rows:
            c.submit_batch(np.zeros((3, 5), np.float32))
        assert "shape [3, 5]" in rows.value.message


class CountingRelay:
    """A TCP relay in front of the API that counts the connections a client opens through it: exactly,
    at accept and close, so no sampling can miss one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.open = self.peak = self.total = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _relay(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        self.open += 1
        self.total += 1
        self.peak = max(self.peak, self.open)
        try:
            api_in, api_out = await asyncio.open_connection("127.0.0.1", self.port)
            await asyncio.gather(_pipe(client_in, api_out), _pipe(api_in, client_out))
        finally:
            self.open -= 1
            client_out.close()

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until either side closes, then close `sink` (which ends the other direction too)."""
    try:
        while data := await source.read(1 << 16):
            sink.write(data)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        sink.close()


def test_async_client_runs_a_thousand_concurrent_predictions_over_at_most_eight_connections(
    service, digits, digits_model
):
    x = digits[0]
    labels = np.argmax(digits_model.predict({"pixels": x[:100]})["probabilities"], axis=1)
    relay = CountingRelay(service.settings.api_port)

    async def main() -> list:
        url = await relay.start()
        try:
            async with AsyncClient(url, max_connections=8) as c:
                return await asyncio.gather(*(c.predict(x[i % 100 : i % 100 + 1], timeout=60) for i in range(1000)))
        finally:
            await relay.stop()

    predictions = asyncio.run(main())
    assert [int(np.argmax(p[0])) for p in predictions] == [int(labels[i % 100]) for i in range(1000)]
    assert 1 < relay.peak <= 8, f"{relay.peak} connections open at once"


def test_async_client_round_trips_a_job_and_a_batch(service, digits, digits_model, tmp_path):
    x, y = digits
    labels = np.argmax(digits_model.predict({"pixels": x[:300]})["probabilities"], axis=1)

    async def main() -> tuple:
        async with AsyncClient(service.base_url) as c:
            job = await c.submit(x[:3])
            result = await job.result(timeout=20)
            batch = await c.submit_batch(x[:300])
            doc = await batch.wait(timeout=60, poll_interval=0.2)
            rows = [r async for r in batch.iter_results()]
            await batch.download(str(tmp_path / "out.ndjson"))
            return result, doc, rows

    result, doc, rows = asyncio.run(main())
    assert np.argmax(result, axis=1).tolist() == y[:3].tolist()
    assert doc["status"] == "completed" and len(rows) == 300
    assert [int(np.argmax(r["prediction"])) for r in rows] == labels.tolist()
    assert len((tmp_path / "out.ndjson").read_bytes().splitlines()) == 300


def test_cli_uploads_a_file_waits_and_downloads_the_results(service, digits, digits_model, tmp_path):
    x, y = digits
    expected = digits_model.predict({"pixels": x[:400]})["probabilities"]
    np.save(tmp_path / "rows.npy", x[:400])
    env = {**os.environ, "PYTHONPATH": os.path.join(PROJECT_ROOT, "client"), "INFERQ_URL": service.base_url}

    def cli(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "inferq", *args],
            env=env,
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    doc = json.loads(cli("batch", "upload", "rows.npy", "--wait", "--output", "out.npy"))
    assert (doc["status"], doc["done_rows"]) == ("completed", 400)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-5, atol=1e-6)
    assert json.loads(cli("batch", "status", doc["id"]))["status"] == "completed"
    cli("batch", "download", doc["id"], "out.ndjson")
    assert len((tmp_path / "out.ndjson").read_text().splitlines()) == 400
    predictions = json.loads(cli("predict", "-", stdin=json.dumps(x[:2].tolist())))
    assert np.argmax(predictions, axis=1).tolist() == y[:2].tolist()
    job_id = json.loads(cli("submit", "-", stdin=json.dumps({"instances": x[:1].tolist()})))["id"]
    assert np.argmax(json.loads(cli("result", job_id))[0]) == y[0]

    failed = subprocess.run(
        [sys.executable, "-m", "inferq", "batch", "status", "0" * 32],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1 and "404 not_found" in failed.stderr


@pytest.fixture(scope="module")
def expiring(make_module_service, service):
    """A service whose jobs must start within 1 s (JOB_START_DEADLINE_S) and no worker to start them: every job expires.

    The model document is the one the session's real worker advertised, so requests validate.
    """
    expiring = make_module_service(workers=0, job_start_deadline_s=1.0)
    copy_models(service.redis, expiring.redis)
    return expiring


def expired_job(service) -> str:
    """The id of a job that the service already reports as expired."""
    job_id = service.http.post("/predict", json={"instances": [[0.0] * 64]}).json()["id"]
    wait_until(lambda: service.http.get(f"/result/{job_id}").json()["status"] == "expired", 10)
    return job_id


def test_an_expired_job_fails_predict_and_result_at_once_with_job_expired(expiring):
    # Timeouts far beyond the 1 s deadline: a client still waiting for the job would end in WaitTimeout.
    with Client(expiring.base_url) as c:
        with pytest.raises(inferq.JobExpired, match="expired: its deadline passed before a worker started it"):
            c.predict([[0.0] * 64], timeout=25)
        with pytest.raises(inferq.JobExpired, match="never ran"):
            c.job(expired_job(expiring)).result(timeout=600)
        assert c.job(expired_job(expiring)).status() == "expired"

    async def main() -> None:
        async with AsyncClient(expiring.base_url) as c:
            with pytest.raises(inferq.JobExpired):
                await c.predict([[0.0] * 64], timeout=25)
            with pytest.raises(inferq.JobExpired):
                await c.job(expired_job(expiring)).result(timeout=600)

    asyncio.run(main())


def test_the_cli_fails_at_once_with_one_line_for_an_expired_job(expiring, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.path.join(PROJECT_ROOT, "client"), "INFERQ_URL": expiring.base_url}
    for args, stdin in (
        (["result", expired_job(expiring), "--timeout", "600"], None),
        (["predict", "-", "--timeout", "25"], json.dumps([[0.0] * 64])),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "inferq", *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith("error: job ") and "expired" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr

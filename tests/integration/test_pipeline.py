"""The pipelined worker loop against a real Redis: while micro-batch N is in the model, N+1 is claimed and
N−1 is published.

The worker (worker.__main__.InferenceWorker) runs in the test process with a tiny numpy model that holds
each call until the test lets it go, so what happens around a model call can be looked at from outside.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from api.jobs.redis_jobs import RedisJobs
from shared import rq_keys
from shared.config import Settings
from shared.signature import ModelSignature, TensorSpec
from tests.support import wait_until
from worker.__main__ import InferenceWorker
from worker.model.loader import LoadedModel, SignatureCall
from worker.registration import model_document

pytestmark = pytest.mark.integration

SIGNATURE = ModelSignature("double", "1", (TensorSpec("x", (2,), "float32"),), (TensorSpec("y", (2,), "float32"),))
WAIT_S = 10.0


class GatedModel:
    """Doubles its input, but each call waits until the test opens it; `entered` counts calls begun."""

    def __init__(self) -> None:
        self.entered = 0
        self.gates: list[threading.Event] = [threading.Event() for _ in range(8)]
        self.lock = threading.Lock()

    def __call__(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            gate = self.gates[self.entered]
            self.entered += 1
        assert gate.wait(WAIT_S)
        return {"y": arrays["x"] * 2}


@pytest.fixture
def settings(redis_db, tmp_path) -> Settings:
    url = "redis://{host}:{port}/{db}".format(**redis_db.connection_pool.connection_kwargs)
    return Settings.from_env({}).replace(redis_url=url, data_dir=str(tmp_path), max_microbatch_rows=1)


def status(redis_db, job_id: str) -> str | None:
    raw = redis_db.hget(rq_keys.job(job_id), "status")
    return raw.decode() if raw is not None else None


def test_the_next_micro_batch_is_claimed_and_the_last_published_while_the_model_runs(redis_db, settings):
    gated = GatedModel()
    worker = InferenceWorker(settings, LoadedModel(SIGNATURE, {"serving_default": SignatureCall(gated)}))
    worker.registration.birth(model_document(SIGNATURE, settings, 0.0), worker.registry_doc())
    worker.publishing.start()
    jobs = RedisJobs(redis_db, settings)
    first, second, third = (jobs.submit({"x": np.full((1, 2), v, np.float32)}) for v in (1.0, 2.0, 3.0))
    try:
        step = threading.Thread(target=worker.step)
        step.start()
        wait_until(lambda: gated.entered == 1, WAIT_S)  # the first job is in the model...
        wait_until(lambda: status(redis_db, second) == "started", WAIT_S)  # ...and the second is claimed
        assert status(redis_db, third) == "queued"  # one micro-batch ahead, no more
        gated.gates[0].set()
        step.join(WAIT_S)

        step = threading.Thread(target=worker.step)
        step.start()
        wait_until(lambda: gated.entered == 2, WAIT_S)  # the second job is in the model...
        wait_until(lambda: status(redis_db, first) == "finished", WAIT_S)  # ...while the first is published
        assert status(redis_db, second) == "started"
        wait_until(lambda: status(redis_db, third) == "started", WAIT_S)
        for gate in gated.gates:
            gate.set()
        step.join(WAIT_S)
        worker.step()
        assert worker.publishing.wait_idle(WAIT_S)
        assert [status(redis_db, j) for j in (first, second, third)] == ["finished"] * 3
    finally:
        for gate in gated.gates:
            gate.set()
        worker.publishing.stop(WAIT_S)
        worker.claiming.shutdown()

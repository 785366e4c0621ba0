"""Nothing a client sends is ever unpickled, and the embedded Redis listens on loopback only."""

from __future__ import annotations

import os
import pickle
import zlib

import orjson
import pytest
from rq import Queue

from shared import rq_keys
from shared.payload import PREDICT_FUNC
from shared.schema import OrjsonSerializer
from tests.support import wait_until

pytestmark = pytest.mark.e2e


class _Tripwire:
    """Unpickling this creates a file: proof that something unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickled_job_payload_fails_as_invalid_and_is_never_unpickled(service, tmp_path):
    tripwire = tmp_path / "unpickled"
    queue = Queue(service.settings.queue_name, connection=service.redis, serializer=OrjsonSerializer)
    job = queue.enqueue(PREDICT_FUNC, {"rows": 1, "inputs": {}})
    service.redis.hset(job.key, "data", zlib.compress(pickle.dumps(((_Tripwire(str(tripwire)),), {}))))
    body = service.http.get(f"/result/{job.id}", params={"wait": 10}).json()
    assert body["status"] == "failed" and body["error"]["code"] == "invalid_payload"
    assert not os.path.exists(tripwire)
    pickle.loads(pickle.dumps(_Tripwire(str(tripwire))))  # the tripwire works when something does unpickle
    assert os.path.exists(tripwire)


def test_the_embedded_redis_listens_on_loopback_only_in_protected_mode(service):
    config = service.redis.config_get("bind")
    assert config["bind"].split() == ["127.0.0.1"]
    assert service.redis.config_get("protected-mode")["protected-mode"] == "yes"


def test_jobs_are_stored_as_json_and_drop_their_input_once_ended(service, digits):
    job_id = service.http.post("/predict", json={"instances": [digits[0][0].tolist()]}).json()["id"]
    func, instance, args, kwargs = orjson.loads(service.redis.hget(rq_keys.job(job_id), "data"))
    assert func == PREDICT_FUNC and (args == [] or set(args[0]) == {"rows", "inputs"})  # [] once it ended
    wait_until(lambda: service.job_status(job_id) == "finished", 10)
    func, instance, args, kwargs = orjson.loads(service.redis.hget(rq_keys.job(job_id), "data"))
    assert func == PREDICT_FUNC and args == []  # the input rows are not kept once the job has ended

"""Two deployments on one Redis database, told apart by REDIS_KEY_PREFIX: each takes and answers its own jobs,
and neither sees the other's queues, workers, model, metrics, batches, idempotency keys or job ids.

Stack `default` keeps the default prefixes (`infer`, RQ's `rq`), as an existing deployment does; stack `blue`
has REDIS_KEY_PREFIX=blue (so RQ_KEY_PREFIX=blue:rq) and another model name. Both are real APIs with
one real worker each, on the same database of the test Redis.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from scripts.harness import child_env
from shared import keys, rq_keys
from tests.support import Service, wait_until

pytestmark = pytest.mark.e2e

BLUE = {"redis_key_prefix": "blue", "rq_key_prefix": "blue:rq", "model_name": "digits-blue"}


@pytest.fixture(scope="module")
def stacks(make_module_service) -> tuple[Service, Service]:
    """(default, blue): two stacks, each an API and one worker, on one database."""
    default = make_module_service()
    return default, make_module_service(same_db_as=default, **BLUE)


def predict(service: Service, rows: np.ndarray, **headers: str) -> dict:
    response = service.http.post("/predict", params={"wait": 30}, json={"instances": rows.tolist()}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def metric(service: Service, line_start: str) -> float:
    """The value of the /metrics sample whose line starts with `line_start`."""
    text = service.http.get("/metrics").text
    found = re.search(rf"^{re.escape(line_start)} (\S+)$", text, flags=re.M)
    assert found, f"no {line_start} in /metrics"
    return float(found.group(1))


def rq_info(service: Service) -> str:
    """`rq info -c shared.rq_settings --raw` run with the service's settings, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "rq.cli", "info", "-c", "shared.rq_settings", "--raw"],
        env=child_env(service.settings),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def test_each_stack_answers_its_own_jobs_and_the_other_knows_no_id_of_them(stacks, digits):
    default, blue = stacks
    x, _ = digits
    answers = {name: predict(service, x[:3]) for name, service in (("default", default), ("blue", blue))}
    assert answers["default"]["model"]["name"] == "digits" and answers["blue"]["model"]["name"] == "digits-blue"
    assert answers["default"]["predictions"] == answers["blue"]["predictions"]  # the same model file
    assert default.http.get(f"/result/{answers['blue']['id']}").status_code == 404
    assert blue.http.get(f"/result/{answers['default']['id']}").status_code == 404
    assert blue.http.get(f"/result/{answers['blue']['id']}").json()["status"] == "finished"


def test_each_stack_lists_only_its_own_worker_model_and_queues(stacks):
    default, blue = stacks
    models = {s.settings.redis_key_prefix: s.http.get("/v1/models").json()["models"][0] for s in (default, blue)}
    assert models["infer"]["name"] == "digits" and models["blue"]["name"] == "digits-blue"
    assert len(models["infer"]["workers"]) == len(models["blue"]["workers"]) == 1
    assert models["infer"]["workers"] != models["blue"]["workers"]
    for service in (default, blue):
        assert service.http.get("/readyz").json()["workers"] == 1
        assert metric(service, "inference_workers") == 1
    for service, own, other in ((default, models["infer"], models["blue"]), (blue, models["blue"], models["infer"])):
        info = rq_info(service)
        assert f"worker {own['workers'][0]} " in info and other["workers"][0] not in info, info
        assert sorted(re.findall(r"^queue (\S+) ", info, flags=re.M)) == ["predict", "predict-bulk"], info


FINISHED = 'inference_jobs_total{status="finished"}'


def settled_finished(service: Service) -> float:
    """The stack's finished-jobs counter once it counts every job in its finished registry: workers write
    counters at most once a second, so a job that just finished may not be counted yet."""
    queues = (service.settings.queue_name, service.settings.bulk_queue_name)

    def counted() -> int:
        jobs = sum(service.redis.zcard(service.rq_key(rq_keys.finished(queue))) for queue in queues)
        return jobs if jobs and metric(service, FINISHED) == jobs else 0

    return float(wait_until(counted))


def test_metrics_count_each_stacks_own_jobs(stacks, digits):
    default, blue = stacks
    for service in (default, blue):  # each stack has finished jobs of its own before the counts are compared
        predict(service, digits[0][:1])
    before = {"default": settled_finished(default), "blue": settled_finished(blue)}
    for _ in range(2):
        predict(blue, digits[0][:1])
    assert settled_finished(blue) == before["blue"] + 2
    assert settled_finished(default) == before["default"]


def test_a_batch_of_one_stack_is_unknown_to_the_other(stacks, digits):
    default, blue = stacks
    body = b"".join(f"{row.tolist()}\n".encode() for row in digits[0][:5])
    created = blue.upload(body, "application/x-ndjson")
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    assert blue.wait_batch(batch_id)["status"] == "completed"
    assert default.http.get(f"/batches/{batch_id}").status_code == 404


def test_the_same_idempotency_key_on_both_stacks_makes_two_jobs(stacks, digits):
    default, blue = stacks
    rows = digits[0][:1]
    ids = [predict(service, rows, **{"Idempotency-Key": "shared-key-0001"})["id"] for service in (default, blue)]
    assert ids[0] != ids[1]
    assert predict(blue, rows, **{"Idempotency-Key": "shared-key-0001"})["id"] == ids[1]  # replayed on its own stack


def test_every_key_sits_under_its_stacks_prefix(stacks, digits):
    default, blue = stacks
    job_id = predict(blue, digits[0][:1])["id"]
    names = {key.decode() for key in default.redis.scan_iter()}
    prefixes = tuple(f"{p}:" for s in stacks for p in (s.settings.redis_key_prefix, s.settings.rq_key_prefix))
    assert prefixes == ("infer:", "rq:", "blue:", "blue:rq:")
    assert {name for name in names if not name.startswith(prefixes)} == set()
    assert blue.rq_key(rq_keys.job(job_id)) in names and default.rq_key(rq_keys.job(job_id)) not in names
    for service in stacks:
        assert {service.key(keys.model()), service.key(keys.workers()), service.rq_key(rq_keys.QUEUES)} <= names

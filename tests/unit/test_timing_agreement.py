"""The numbers that must agree across settings, Kubernetes and compose: the lease (3 x HEARTBEAT_S plus the
window), the micro-batch time histogram that shows how close micro-batches come to it, the liveness limit,
the drains on SIGTERM and the grace periods that must outlast them."""

from __future__ import annotations

import ast
import os

import yaml

from api import serve
from scripts import harness
from shared import worker_metrics
from shared.config import PROJECT_ROOT, Settings
from shared.connection import MAX_BLOCKING_WAIT_S
from tests.unit.test_k8s import by_kind, config, container

LIVENESS_MAX_AGE_S = 60  # `python -m worker.liveness --max-age-s 60` in the images, compose and Kubernetes
PRESTOP_S = 5  # the API pods' preStop sleep


def gunicorn_setting(name: str) -> float:
    """A constant of api/gunicorn_conf.py, read without running it (importing it sets up metrics directories)."""
    with open(os.path.join(PROJECT_ROOT, "api", "gunicorn_conf.py")) as f:
        tree = ast.parse(f.read())
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == name]
    return ast.literal_eval(value)


def compose() -> dict:
    with open(os.path.join(PROJECT_ROOT, "docker-compose.yml")) as f:
        return yaml.safe_load(f)


def seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def lease_s(heartbeat_s: float) -> float:
    return 3 * heartbeat_s


def test_the_microbatch_histogram_reaches_the_lease_and_the_liveness_limit():
    bounds = worker_metrics.MICROBATCH_SECONDS.bounds
    for heartbeat in (Settings().heartbeat_s, float(config()["HEARTBEAT_S"])):
        assert lease_s(heartbeat) in bounds  # "how many micro-batches came near the lease" is one bucket
    assert bounds[-1] >= LIVENESS_MAX_AGE_S
    assert 10.0 in bounds  # InferenceMicrobatchNearLease reads le="10.0"


def test_the_liveness_limit_outlasts_the_lease_everywhere():
    for name in ("worker", "worker-gpu"):
        probe = container(name)["livenessProbe"]["exec"]["command"]
        assert probe[-1] == str(LIVENESS_MAX_AGE_S)
    for name in ("worker", "worker-gpu"):
        assert compose()["services"][name]["healthcheck"]["test"][-1] == str(LIVENESS_MAX_AGE_S)
    assert LIVENESS_MAX_AGE_S > lease_s(float(config()["HEARTBEAT_S"]))


def test_worker_grace_periods_cover_a_microbatch_up_to_the_lease_plus_the_webhook_in_hand():
    heartbeat = float(config()["HEARTBEAT_S"])
    drain = lease_s(heartbeat) + float(config()["WEBHOOK_TIMEOUT_S"]) + 5
    deployments = by_kind("Deployment")
    for name in ("worker", "worker-gpu"):
        k8s = deployments[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert k8s > drain
        assert seconds(compose()["services"][name]["stop_grace_period"]) == k8s


def test_api_grace_periods_cover_the_longest_long_poll_and_the_protocol_timeout():
    settings = Settings()
    graceful = gunicorn_setting("graceful_timeout")
    assert serve.DRAIN_S == graceful  # granian's drain is gunicorn's
    assert graceful > max(MAX_BLOCKING_WAIT_S, settings.protocol_timeout_s)
    assert settings.api_process_timeout_s > graceful
    deployments = by_kind("Deployment")
    for name in ("api", "grpc"):
        assert deployments[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > (PRESTOP_S + graceful)
        assert seconds(compose()["services"][name]["stop_grace_period"]) > graceful
    assert harness.STOP_TIMEOUT_S > graceful  # the tests' stop outlasts the drain, as the grace periods do
